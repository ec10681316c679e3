#include "flows/conditional_normal.hpp"

#include <cmath>

#include <fmt/format.h>

#include "flows/error.hpp"
#include "flows/normal.hpp"
#include "flows/registry.hpp"
#include "flows/streams.hpp"

namespace flows {

namespace {

const Real kHalfLog2Pi = 0.5 * std::log(2.0 * M_PI);
const char* const kName = "conditional_diagonal_normal";

// context_dim, once dim and context_dim are both checked to be at least 1.
Index checked_context_dim(Index dim, Index context_dim) {
  if (dim == 0 || context_dim == 0)
    throw ConfigError(
        fmt::format("{}: needs a data dimension and a context width of at least 1, got {} and {}",
                    kName, dim, context_dim));
  return context_dim;
}

}  // namespace

ConditionalDiagonalNormal::Options ConditionalDiagonalNormal::Options::from(ConfigNode& node) {
  Options o;
  node.read("hidden", o.hidden);
  node.read("activation", o.activation);
  bool positive = true;
  for (Index h : o.hidden) positive = positive && h > 0;
  node.expect(positive, "hidden", "every width must be positive");
  node.expect_one_of("activation", o.activation, nn::Activation::names());
  node.finish();
  return o;
}

ConditionalDiagonalNormal::ConditionalDiagonalNormal(Index dim, Index context_dim,
                                                     const Options& options, Rng& rng)
    : dim_(dim),
      context_dim_(context_dim),
      network_(checked_context_dim(dim, context_dim), options.hidden, 2 * dim,
               nn::Activation::from_name(options.activation), rng, options.precision) {
  // Zero last layer: μ = 0 and log σ = 0 for every context, p(z | e) = N(0, I).
  const Index last = network_.num_layers() - 1;
  network_.weight(last).value.fill(0);
  network_.bias(last).value.fill(0);
}

void ConditionalDiagonalNormal::check_context(const Matrix& context, Index rows,
                                              const char* call) const {
  if (context.size() == 0 && rows > 0)
    throw DataError(
        fmt::format("{}: {} needs a context of {} column{} (the base distribution is conditional)",
                    kName, call, context_dim_, context_dim_ == 1 ? "" : "s"));
  if (context.shape(0) != rows || context.shape(1) != context_dim_)
    throw DataError(fmt::format("{}: {} got a context of [{} x {}], expected [{} x {}]", kName,
                                call, context.shape(0), context.shape(1), rows, context_dim_));
}

void ConditionalDiagonalNormal::mean_and_log_scale(const Matrix& context, Matrix& mean,
                                                   Matrix& log_scale) const {
  check_context(context, context.shape(0), "mean_and_log_scale");
  const Matrix out = network_.infer(context);
  mean = xt::view(out, xt::all(), xt::range(0, dim_));
  log_scale = xt::view(out, xt::all(), xt::range(dim_, 2 * dim_));
}

// log N(z; μ, σ²) = Σ_j [ −½ ((z_j − μ_j)/σ_j)² − log σ_j − ½ log 2π ], per row
// with that row's μ(e) and log σ(e) (columns 0..d−1 and d..2d−1 of the network).
Vector ConditionalDiagonalNormal::log_prob(const Matrix& z, const Matrix& context) const {
  check_columns(z, dim_, "conditional_diagonal_normal.log_prob");
  const Index n = z.shape(0);
  check_context(context, n, "log_prob");
  Vector out = xt::empty<Real>({n});
  if (n == 0) return out;
  const Matrix params = network_.infer(context);
  for (Index i = 0; i < n; ++i) {
    Real s = 0;
    for (Index j = 0; j < dim_; ++j) {
      const Real log_sigma = params(i, dim_ + j);
      const Real u = (z(i, j) - params(i, j)) * std::exp(-log_sigma);
      s += -0.5 * u * u - log_sigma;
    }
    out(i) = s - static_cast<Real>(dim_) * kHalfLog2Pi;
  }
  return out;
}

// z = μ(e) + σ(e) ε, ε ~ N(0, I).
Matrix ConditionalDiagonalNormal::sample(Index n, const Matrix& context, Rng& rng) const {
  check_context(context, n, "sample");
  Matrix z = rng.normal(n, dim_);
  if (n == 0) return z;
  const Matrix params = network_.infer(context);
  for (Index i = 0; i < n; ++i)
    for (Index j = 0; j < dim_; ++j)
      z(i, j) = params(i, j) + std::exp(params(i, dim_ + j)) * z(i, j);
  return z;
}

// With u = (z − μ)/σ and w = dL/dlog p per row:
//   ∂lp/∂z = −u/σ,  ∂lp/∂μ = u/σ,  ∂lp/∂log σ = u² − 1,
// and dL/dθ, dL/de by the network's backward pass from [w ∂lp/∂μ | w ∂lp/∂log σ].
void ConditionalDiagonalNormal::log_prob_backward(const Matrix& z, const Matrix& context,
                                                  const Vector& w, Matrix& grad_z,
                                                  Matrix* grad_context) {
  check_columns(z, dim_, "conditional_diagonal_normal.log_prob_backward");
  const Index n = z.shape(0);
  check_context(context, n, "log_prob_backward");
  if (w.size() != n)
    throw DataError(fmt::format("{}: log_prob_backward got {} log-density gradients for {} rows",
                                kName, w.size(), n));
  if (grad_context && (grad_context->shape(0) != n || grad_context->shape(1) != context_dim_))
    throw DataError(fmt::format("{}: the context gradient is [{} x {}], expected [{} x {}]", kName,
                                grad_context->shape(0), grad_context->shape(1), n, context_dim_));
  grad_z.resize({n, dim_});
  if (n == 0) return;
  network_.forward(context, out_);
  grad_out_.resize({n, 2 * dim_});
  for (Index i = 0; i < n; ++i)
    for (Index j = 0; j < dim_; ++j) {
      const Real inv_sigma = std::exp(-out_(i, dim_ + j));
      const Real u = (z(i, j) - out_(i, j)) * inv_sigma;
      grad_z(i, j) = -w(i) * u * inv_sigma;
      grad_out_(i, j) = w(i) * u * inv_sigma;
      grad_out_(i, dim_ + j) = w(i) * (u * u - 1.0);
    }
  network_.backward(grad_out_, grad_context_);
  if (grad_context) *grad_context += grad_context_;
}

std::unique_ptr<BaseDistribution> make_conditional_diagonal_normal(ConfigNode& node,
                                                                   const BuildContext& context) {
  ConditionalDiagonalNormal::Options options = ConditionalDiagonalNormal::Options::from(node);
  options.precision = context.precision;
  if (context.context_dim == 0)
    throw node.error("", std::string(kName) +
                             " models p(z | c) and needs a context: give the data "
                             "context_columns (or use standard_normal or diagonal_normal)");
  Rng rng = Rng(context.seed).derive(stream_tags::conditional_normal);
  return std::make_unique<ConditionalDiagonalNormal>(context.dim, context.context_dim, options,
                                                     rng);
}

}  // namespace flows
