#include "flows/normal.hpp"

#include <cmath>

#include <fmt/format.h>

#include "flows/checks.hpp"
#include "flows/error.hpp"
#include "flows/log_scale.hpp"

namespace flows {

namespace {
const Real kHalfLog2Pi = 0.5 * std::log(2.0 * M_PI);
}

void check_columns(const Matrix& m, Index dim, const char* what) {
  if (m.dimension() != 2 || m.shape(1) != dim)
    throw DataError(fmt::format("{}: expected {} columns, got {}", what, dim,
                                m.dimension() == 2 ? m.shape(1) : 0));
}

StandardNormal::StandardNormal(Index dim) : dim_(dim) {}

Vector StandardNormal::log_prob(const Matrix& z, const Matrix& context) const {
  Vector out;
  log_prob_into(z, context, out);
  return out;
}

void StandardNormal::log_prob_into(const Matrix& z, const Matrix&, Vector& out) const {
  check_columns(z, dim_, "standard_normal.log_prob");
  const Index n = z.shape(0);
  ensure(out, n);
  for (Index i = 0; i < n; ++i) {
    Real s = 0;
    for (Index j = 0; j < dim_; ++j) s += z(i, j) * z(i, j);
    out(i) = -0.5 * s - static_cast<Real>(dim_) * kHalfLog2Pi;
  }
}

Matrix StandardNormal::sample(Index n, const Matrix&, Rng& rng) const {
  return rng.normal(n, dim_);
}

void StandardNormal::sample_into(Index n, const Matrix&, Rng& rng, Matrix& out) const {
  ensure(out, n, dim_);
  rng.fill_normal(out);
}

namespace {

// DataError unless z has `dim` columns and w one value per row of z.
void check_backward(const Matrix& z, const Vector& w, Index dim, const char* what) {
  check_columns(z, dim, what);
  if (w.size() != z.shape(0))
    throw DataError(
        fmt::format("{}: {} log-density gradients for {} rows", what, w.size(), z.shape(0)));
}

}  // namespace

// Unconditional: grad_context (if any) is left as it is.
void StandardNormal::log_prob_backward(const Matrix& z, const Matrix&, const Vector& w,
                                       Matrix& grad_z, Matrix*) {
  check_backward(z, w, dim_, "standard_normal.log_prob_backward");
  grad_z.resize(z.shape());
  for (Index i = 0; i < z.shape(0); ++i)
    for (Index j = 0; j < dim_; ++j) grad_z(i, j) = -w(i) * z(i, j);
}

DiagonalNormal::DiagonalNormal(Index dim, Real mean, Real log_scale)
    : mean_("mean", xt::xtensor<Real, 2>(std::array<Index, 2>{1, dim}, mean)),
      log_scale_("log_scale", xt::xtensor<Real, 2>(std::array<Index, 2>{1, dim}, log_scale)) {}

// log N(z; μ, σ²) = Σ_j [ -½((z_j-μ_j)/σ_j)² - log σ_j - ½ log 2π ], with
// log σ through the overflow guard of log_scale.hpp.
Vector DiagonalNormal::log_prob(const Matrix& z, const Matrix&) const {
  const Index d = dim();
  check_columns(z, d, "diagonal_normal.log_prob");
  const Index n = z.shape(0);
  Vector out = xt::empty<Real>({n});
  Real log_norm = 0;
  for (Index j = 0; j < d; ++j) log_norm += clamp_log_scale(log_scale_.value(0, j)) + kHalfLog2Pi;
  for (Index i = 0; i < n; ++i) {
    Real s = 0;
    for (Index j = 0; j < d; ++j) {
      Real u = (z(i, j) - mean_.value(0, j)) * std::exp(-clamp_log_scale(log_scale_.value(0, j)));
      s += u * u;
    }
    out(i) = -0.5 * s - log_norm;
  }
  return out;
}

Matrix DiagonalNormal::sample(Index n, const Matrix&, Rng& rng) const {
  Matrix eps = rng.normal(n, dim());
  for (Index i = 0; i < n; ++i)
    for (Index j = 0; j < dim(); ++j)
      eps(i, j) = mean_.value(0, j) + std::exp(clamp_log_scale(log_scale_.value(0, j))) * eps(i, j);
  return eps;
}

// With u = (z-μ)/σ: ∂lp/∂z = -u/σ, ∂lp/∂μ = u/σ, ∂lp/∂log σ = c (u² - 1), c
// the slope of the clamp (1 inside, 0 outside).
void DiagonalNormal::log_prob_backward(const Matrix& z, const Matrix&, const Vector& w,
                                       Matrix& grad_z, Matrix*) {
  const Index d = dim();
  check_backward(z, w, d, "diagonal_normal.log_prob_backward");
  grad_z.resize(z.shape());
  for (Index i = 0; i < z.shape(0); ++i)
    for (Index j = 0; j < d; ++j) {
      const Real log_sigma = log_scale_.value(0, j);
      const Real inv_sigma = std::exp(-clamp_log_scale(log_sigma));
      Real u = (z(i, j) - mean_.value(0, j)) * inv_sigma;
      grad_z(i, j) = -w(i) * u * inv_sigma;
      mean_.grad(0, j) += w(i) * u * inv_sigma;
      log_scale_.grad(0, j) += clamp_log_scale_slope(log_sigma) * w(i) * (u * u - 1.0);
    }
}

}  // namespace flows
