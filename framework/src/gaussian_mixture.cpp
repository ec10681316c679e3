#include "flows/gaussian_mixture.hpp"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "flows/error.hpp"
#include "flows/normal.hpp"
#include "flows/registry.hpp"

namespace flows {

namespace {
const Real kHalfLog2Pi = 0.5 * std::log(2.0 * M_PI);

}  // namespace

// Shifted by the maximum so that no term overflows.
Real log_sum_exp(const Real* a, Index k) {
  Real m = a[0];
  for (Index c = 1; c < k; ++c) m = std::max(m, a[c]);
  if (!std::isfinite(m)) return m;
  Real s = 0;
  for (Index c = 0; c < k; ++c) s += std::exp(a[c] - m);
  return m + std::log(s);
}

GaussianMixture::Options GaussianMixture::Options::from(ConfigNode& node) {
  Options o;
  node.read("components", o.components);
  node.read("init_spread", o.init_spread);
  node.read("log_scale", o.log_scale);
  node.expect(o.components >= 1, "components", "must be >= 1");
  node.expect(o.init_spread >= 0 && std::isfinite(o.init_spread), "init_spread", "must be >= 0");
  node.expect(std::isfinite(o.log_scale), "log_scale", "must be finite");
  node.finish();
  return o;
}

GaussianMixture::GaussianMixture(Index dim, const Options& options, Rng& rng)
    : logits_("logits", xt::zeros<Real>({Index{1}, options.components})),
      means_("means", rng.normal(options.components, dim) * options.init_spread),
      log_scales_("log_scales", xt::xtensor<Real, 2>(std::array<Index, 2>{options.components, dim},
                                                     options.log_scale)) {
  if (dim < 1 || options.components < 1)
    throw ConfigError(fmt::format("gaussian_mixture: dim {} and components {} must be >= 1", dim,
                                  options.components));
}

Matrix GaussianMixture::weights() const {
  const Index k = components();
  Matrix w = xt::empty<Real>({Index{1}, k});
  const Real lse = log_sum_exp(logits_.value.data(), k);
  for (Index c = 0; c < k; ++c) w(0, c) = std::exp(logits_.value(0, c) - lse);
  return w;
}

Matrix GaussianMixture::component_log_probs(const Matrix& z) const {
  const Index n = z.shape(0), d = dim(), k = components();
  const Real lse = log_sum_exp(logits_.value.data(), k);
  Matrix out = xt::empty<Real>({n, k});
  for (Index c = 0; c < k; ++c) {
    Real constant = logits_.value(0, c) - lse;
    for (Index j = 0; j < d; ++j) constant -= log_scales_.value(c, j) + kHalfLog2Pi;
    for (Index i = 0; i < n; ++i) {
      Real s = 0;
      for (Index j = 0; j < d; ++j) {
        const Real u = (z(i, j) - means_.value(c, j)) * std::exp(-log_scales_.value(c, j));
        s += u * u;
      }
      out(i, c) = constant - 0.5 * s;
    }
  }
  return out;
}

Vector GaussianMixture::log_prob(const Matrix& z, const Matrix&) const {
  check_columns(z, dim(), "gaussian_mixture.log_prob");
  const Matrix l = component_log_probs(z);
  const Index n = z.shape(0), k = components();
  Vector out = xt::empty<Real>({n});
  for (Index i = 0; i < n; ++i) out(i) = log_sum_exp(l.data() + i * k, k);
  return out;
}

Matrix GaussianMixture::sample(Index n, const Matrix&, Rng& rng) const {
  const Index d = dim(), k = components();
  Matrix out = rng.normal(n, d);
  const Matrix w = weights();
  for (Index i = 0; i < n; ++i) {
    const Real u = rng.uniform();
    Index c = 0;
    Real cumulative = w(0, 0);
    while (c + 1 < k && u >= cumulative) cumulative += w(0, ++c);
    for (Index j = 0; j < d; ++j)
      out(i, j) = means_.value(c, j) + std::exp(log_scales_.value(c, j)) * out(i, j);
  }
  return out;
}

void GaussianMixture::log_prob_backward(const Matrix& z, const Matrix&, const Vector& w,
                                        Matrix& grad_z, Matrix*) {
  const Index n = z.shape(0), d = dim(), k = components();
  check_columns(z, d, "gaussian_mixture.log_prob_backward");
  if (w.size() != n)
    throw DataError(
        fmt::format("gaussian_mixture.log_prob_backward: {} gradients for {} rows", w.size(), n));
  const Matrix l = component_log_probs(z);
  const Matrix pi = weights();
  grad_z = xt::zeros<Real>({n, d});
  for (Index i = 0; i < n; ++i) {
    const Real lp = log_sum_exp(l.data() + i * k, k);
    for (Index c = 0; c < k; ++c) {
      const Real r = std::exp(l(i, c) - lp);  // responsibility r_c(z_i)
      const Real wr = w(i) * r;
      logits_.grad(0, c) += w(i) * (r - pi(0, c));
      for (Index j = 0; j < d; ++j) {
        const Real inv_sigma = std::exp(-log_scales_.value(c, j));
        const Real u = (z(i, j) - means_.value(c, j)) * inv_sigma;
        grad_z(i, j) -= wr * u * inv_sigma;
        means_.grad(c, j) += wr * u * inv_sigma;
        log_scales_.grad(c, j) += wr * (u * u - 1);
      }
    }
  }
}

std::unique_ptr<BaseDistribution> make_gaussian_mixture(ConfigNode& node,
                                                        const BuildContext& context) {
  const GaussianMixture::Options options = GaussianMixture::Options::from(node);
  node.expect(context.dim > 0, "", "the data dimension is not known when building this component");
  Rng rng(context.seed);
  return std::make_unique<GaussianMixture>(context.dim, options, rng);
}

}  // namespace flows
