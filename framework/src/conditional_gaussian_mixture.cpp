#include "flows/conditional_gaussian_mixture.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include <fmt/format.h>

#include "flows/error.hpp"
#include "flows/gaussian_mixture.hpp"
#include "flows/normal.hpp"
#include "flows/registry.hpp"
#include "flows/streams.hpp"

namespace flows {

namespace {

const Real kHalfLog2Pi = 0.5 * std::log(2.0 * M_PI);
const char* const kName = "conditional_gaussian_mixture";

Index checked_width(Index dim, Index context_dim, Index components) {
  if (dim == 0 || context_dim == 0 || components == 0)
    throw ConfigError(fmt::format(
        "{}: needs a data dimension, a context width and a component count of at least 1, got "
        "{}, {} and {}",
        kName, dim, context_dim, components));
  return components * (1 + 2 * dim);
}

}  // namespace

ConditionalGaussianMixture::Options ConditionalGaussianMixture::Options::from(ConfigNode& node) {
  Options o;
  node.read("components", o.components);
  node.read("init_spread", o.init_spread);
  node.read("log_scale", o.log_scale);
  node.read("hidden", o.hidden);
  node.read("activation", o.activation);
  node.expect(o.components >= 1, "components", "must be at least 1");
  node.expect(std::isfinite(o.init_spread) && o.init_spread >= 0, "init_spread",
              "must be finite and >= 0");
  node.expect(std::isfinite(o.log_scale) && std::abs(o.log_scale) <= 10, "log_scale",
              "must be in [-10, 10]");
  bool positive = true;
  for (Index h : o.hidden) positive = positive && h > 0;
  node.expect(positive, "hidden", "every width must be positive");
  node.expect_one_of("activation", o.activation, nn::Activation::names());
  node.finish();
  return o;
}

ConditionalGaussianMixture::ConditionalGaussianMixture(Index dim, Index context_dim,
                                                       const Options& options, Rng& rng)
    : dim_(dim),
      context_dim_(context_dim),
      components_(options.components),
      network_(context_dim, options.hidden, checked_width(dim, context_dim, options.components),
               nn::Activation::from_name(options.activation), rng, options.precision) {
  const Index last = network_.num_layers() - 1, k = components_;
  network_.weight(last).value.fill(0);
  Matrix& bias = network_.bias(last).value;
  for (Index c = 0; c < k; ++c) bias(0, c) = 0;  // equal weights
  const Matrix means = rng.normal(k, dim_);
  for (Index c = 0; c < k * dim_; ++c) {
    bias(0, k + c) = options.init_spread * means.flat(c);
    bias(0, k + k * dim_ + c) = options.log_scale;
  }
}

void ConditionalGaussianMixture::check_context(const Matrix& context, Index rows,
                                               const char* call) const {
  if (context.shape(0) != rows || context.shape(1) != context_dim_)
    throw DataError(fmt::format("{}: {} got a context of [{} x {}], expected [{} x {}]", kName,
                                call, context.shape(0), context.shape(1), rows, context_dim_));
}

Matrix ConditionalGaussianMixture::mixture_parameters(const Matrix& context) const {
  check_context(context, context.shape(0), "mixture_parameters");
  return network_.infer(context);
}

// Row i, component k: a_k − lse(a) + Σ_j [−½ u² − log σ_kj − ½ log 2π],
// u = (z_j − μ_kj)/σ_kj; columns of `params`: a at k, μ_kj at K + k d + j,
// log σ_kj at K + K d + k d + j.
Matrix ConditionalGaussianMixture::component_log_probs(const Matrix& z,
                                                       const Matrix& params) const {
  const Index n = z.shape(0), k = components_, d = dim_;
  Matrix out({n, k});
  for (Index i = 0; i < n; ++i) {
    const Real* p = &params(i, 0);
    const Real norm = log_sum_exp(p, k);
    for (Index c = 0; c < k; ++c) {
      Real s = p[c] - norm;
      for (Index j = 0; j < d; ++j) {
        const Real log_sigma = p[k + k * d + c * d + j];
        const Real u = (z(i, j) - p[k + c * d + j]) * std::exp(-log_sigma);
        s += -0.5 * u * u - log_sigma - kHalfLog2Pi;
      }
      out(i, c) = s;
    }
  }
  return out;
}

Vector ConditionalGaussianMixture::log_prob(const Matrix& z, const Matrix& context) const {
  check_columns(z, dim_, "conditional_gaussian_mixture.log_prob");
  const Index n = z.shape(0);
  check_context(context, n, "log_prob");
  Vector out = xt::empty<Real>({n});
  if (n == 0) return out;
  const Matrix c = component_log_probs(z, network_.infer(context));
  for (Index i = 0; i < n; ++i) out(i) = log_sum_exp(&c(i, 0), components_);
  return out;
}

Matrix ConditionalGaussianMixture::sample(Index n, const Matrix& context, Rng& rng) const {
  check_context(context, n, "sample");
  const Index k = components_, d = dim_;
  Matrix z = rng.normal(n, d);
  if (n == 0) return z;
  const Matrix params = network_.infer(context);
  for (Index i = 0; i < n; ++i) {
    const Real* p = &params(i, 0);
    const Real norm = log_sum_exp(p, k);
    const Real u = rng.uniform();
    Index c = 0;
    for (Real cumulative = std::exp(p[0] - norm); c + 1 < k && u >= cumulative;)
      cumulative += std::exp(p[++c] - norm);
    for (Index j = 0; j < d; ++j)
      z(i, j) = p[k + c * d + j] + std::exp(p[k + k * d + c * d + j]) * z(i, j);
  }
  return z;
}

// With the responsibilities r_k = exp(c_k − log p) and u_kj, σ_kj as above,
//   ∂log p/∂z_j = −Σ_k r_k u_kj/σ_kj,   ∂log p/∂μ_kj = r_k u_kj/σ_kj,
//   ∂log p/∂log σ_kj = r_k (u_kj² − 1), ∂log p/∂a_k = r_k − π_k,
// each times w = dL/dlog p of the row; the network backpropagates them to its
// parameters and to dL/de.
void ConditionalGaussianMixture::log_prob_backward(const Matrix& z, const Matrix& context,
                                                   const Vector& w, Matrix& grad_z,
                                                   Matrix* grad_context) {
  check_columns(z, dim_, "conditional_gaussian_mixture.log_prob_backward");
  const Index n = z.shape(0), k = components_, d = dim_;
  check_context(context, n, "log_prob_backward");
  if (w.size() != n)
    throw DataError(fmt::format("{}: log_prob_backward got {} log-density gradients for {} rows",
                                kName, w.size(), n));
  grad_z.resize({n, d});
  if (n == 0) return;
  network_.forward(context, out_);
  const Matrix comp = component_log_probs(z, out_);
  grad_out_.resize(out_.shape());
  for (Index i = 0; i < n; ++i) {
    const Real* p = &out_(i, 0);
    Real* g = &grad_out_(i, 0);
    const Real norm = log_sum_exp(p, k);
    const Real lp = log_sum_exp(&comp(i, 0), k);
    for (Index j = 0; j < d; ++j) grad_z(i, j) = 0;
    for (Index c = 0; c < k; ++c) {
      const Real r = std::exp(comp(i, c) - lp);
      g[c] = w(i) * (r - std::exp(p[c] - norm));
      for (Index j = 0; j < d; ++j) {
        const Real inv_sigma = std::exp(-p[k + k * d + c * d + j]);
        const Real u = (z(i, j) - p[k + c * d + j]) * inv_sigma;
        grad_z(i, j) -= w(i) * r * u * inv_sigma;
        g[k + c * d + j] = w(i) * r * u * inv_sigma;
        g[k + k * d + c * d + j] = w(i) * r * (u * u - 1);
      }
    }
  }
  network_.backward(grad_out_, grad_context_);
  if (grad_context) *grad_context += grad_context_;
}

std::unique_ptr<BaseDistribution> make_conditional_gaussian_mixture(ConfigNode& node,
                                                                    const BuildContext& context) {
  ConditionalGaussianMixture::Options options = ConditionalGaussianMixture::Options::from(node);
  options.precision = context.precision;
  if (context.context_dim == 0)
    throw node.error("", std::string(kName) +
                             " models p(z | c) and needs a context: give the data "
                             "context_columns (or use gaussian_mixture)");
  Rng rng = Rng(context.seed).derive(stream_tags::gaussian_mixture);
  return std::make_unique<ConditionalGaussianMixture>(context.dim, context.context_dim, options,
                                                      rng);
}

}  // namespace flows
