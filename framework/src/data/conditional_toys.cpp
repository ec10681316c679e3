#include "flows/data/conditional_toys.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

#include <fmt/format.h>

#include "flows/error.hpp"

namespace flows {
namespace {

constexpr Real kLog2Pi = 1.83787706640934548356;  // log(2π)

// Lower-triangular L with L Lᵀ = s (s symmetric positive definite, small).
Matrix cholesky(const Matrix& s) {
  const Index d = s.shape(0);
  Matrix l = xt::zeros<Real>({d, d});
  for (Index j = 0; j < d; ++j) {
    Real diag = s(j, j);
    for (Index k = 0; k < j; ++k) diag -= l(j, k) * l(j, k);
    if (!(diag > 0))
      throw NumericalError("linear_gaussian: the posterior precision is not positive definite");
    l(j, j) = std::sqrt(diag);
    for (Index i = j + 1; i < d; ++i) {
      Real v = s(i, j);
      for (Index k = 0; k < j; ++k) v -= l(i, k) * l(j, k);
      l(i, j) = v / l(j, j);
    }
  }
  return l;
}

// Solves L Lᵀ y = b in place (b has d entries).
void cholesky_solve(const Matrix& l, Real* b) {
  const Index d = l.shape(0);
  for (Index i = 0; i < d; ++i) {
    for (Index k = 0; k < i; ++k) b[i] -= l(i, k) * b[k];
    b[i] /= l(i, i);
  }
  for (Index i = d; i-- > 0;) {
    for (Index k = i + 1; k < d; ++k) b[i] -= l(k, i) * b[k];
    b[i] /= l(i, i);
  }
}

void require_rows(const Matrix& a, const Matrix& b, const char* what, const char* a_name,
                  const char* b_name) {
  if (a.shape(0) != b.shape(0))
    throw DataError(fmt::format("{}: {} has {} rows but {} has {}", what, a_name, a.shape(0),
                                b_name, b.shape(0)));
}

}  // namespace

ConditionalGaussianAt conditional_gaussian_at(const Real* c, Index k) {
  const Real inv_sqrt_k = 1 / std::sqrt(Real(k));
  Real sum = 0, alternating = 0;
  for (Index j = 0; j < k; ++j) {
    sum += c[j];
    alternating += (j % 2 == 0 ? 1 : -1) * c[j];
  }
  const Real u = sum * inv_sqrt_k;
  const Real t = std::tanh(u);
  ConditionalGaussianAt at;
  at.mean[0] = u + 0.5;
  at.mean[1] = 0.5 * alternating * inv_sqrt_k - 0.5;
  at.std[0] = std::exp(-0.7 + 0.5 * t);
  at.std[1] = std::exp(-1.2 - 0.5 * t);
  at.rho = 0.6 * t;
  return at;
}

Matrix conditional_gaussian_sample(const Matrix& context, Rng& rng) {
  const Index n = context.shape(0);
  const Index k = context.shape(1);
  if (k == 0) throw DataError("conditional_gaussian: the context has no column");
  Matrix x({n, 2});
  for (Index i = 0; i < n; ++i) {
    const ConditionalGaussianAt p = conditional_gaussian_at(&context(i, 0), k);
    const Real e1 = rng.normal();
    const Real e2 = rng.normal();
    x(i, 0) = p.mean[0] + p.std[0] * e1;
    x(i, 1) = p.mean[1] + p.std[1] * (p.rho * e1 + std::sqrt(1 - p.rho * p.rho) * e2);
  }
  return x;
}

// The bivariate normal density: with z_i = (x_i − μ_i)/σ_i,
//   log p = −log 2π − log σ_1 − log σ_2 − ½ log(1 − ρ²)
//           − (z_1² − 2ρ z_1 z_2 + z_2²) / (2 (1 − ρ²)).
Vector conditional_gaussian_log_prob(const Matrix& x, const Matrix& context) {
  if (x.shape(1) != 2)
    throw DataError(fmt::format("conditional_gaussian: x has {} columns, expected 2", x.shape(1)));
  if (context.shape(1) == 0) throw DataError("conditional_gaussian: the context has no column");
  require_rows(x, context, "conditional_gaussian", "x", "the context");
  const Index n = x.shape(0);
  Vector out = xt::empty<Real>({n});
  for (Index i = 0; i < n; ++i) {
    const ConditionalGaussianAt p = conditional_gaussian_at(&context(i, 0), context.shape(1));
    const Real z1 = (x(i, 0) - p.mean[0]) / p.std[0];
    const Real z2 = (x(i, 1) - p.mean[1]) / p.std[1];
    const Real one_minus = 1 - p.rho * p.rho;
    out(i) = -kLog2Pi - std::log(p.std[0]) - std::log(p.std[1]) - 0.5 * std::log(one_minus) -
             (z1 * z1 - 2 * p.rho * z1 * z2 + z2 * z2) / (2 * one_minus);
  }
  return out;
}

void LinearGaussianSimulator::check() const {
  if (theta_dim == 0) throw ConfigError("linear_gaussian: theta_dim must be >= 1");
  if (obs_dim == 0) throw ConfigError("linear_gaussian: obs_dim must be >= 1");
  if (!(obs_noise > 0) || !std::isfinite(obs_noise))
    throw ConfigError(
        fmt::format("linear_gaussian: obs_noise must be finite and > 0, got {}", obs_noise));
}

Matrix LinearGaussianSimulator::design() const {
  check();
  Matrix a({obs_dim, theta_dim});
  for (Index i = 0; i < obs_dim; ++i)
    for (Index j = 0; j < theta_dim; ++j) {
      const Index gap = i > j ? i - j : j - i;
      a(i, j) = ((i + j) % 2 == 0 ? 1.0 : -1.0) / Real(1 + gap);
    }
  return a;
}

void LinearGaussianSimulator::simulate(Index n, Rng& rng, Matrix& theta, Matrix& x_obs) const {
  const Matrix a = design();
  theta = Matrix({n, theta_dim});
  x_obs = Matrix({n, obs_dim});
  for (Index r = 0; r < n; ++r) {
    for (Index j = 0; j < theta_dim; ++j) theta(r, j) = rng.normal();
    for (Index i = 0; i < obs_dim; ++i) {
      Real v = 0;
      for (Index j = 0; j < theta_dim; ++j) v += a(i, j) * theta(r, j);
      x_obs(r, i) = v + obs_noise * rng.normal();
    }
  }
}

namespace {

// The posterior precision P = I + AᵀA/σ² (Bishop eq. 2.117 with Λ = I, L = I/σ²).
Matrix posterior_precision(const Matrix& a, Real noise) {
  const Index d = a.shape(1);
  Matrix p = xt::zeros<Real>({d, d});
  for (Index i = 0; i < d; ++i)
    for (Index j = 0; j < d; ++j) {
      Real v = 0;
      for (Index k = 0; k < a.shape(0); ++k) v += a(k, i) * a(k, j);
      p(i, j) = v / (noise * noise) + (i == j ? 1 : 0);
    }
  return p;
}

// μ = P⁻¹ Aᵀ x / σ² for each row of x_obs (Bishop eq. 2.116 with μ_0 = 0).
Matrix posterior_means(const Matrix& a, const Matrix& l, Real noise, const Matrix& x_obs) {
  const Index d = a.shape(1);
  Matrix mean({x_obs.shape(0), d});
  std::vector<Real> b(d);
  for (Index r = 0; r < x_obs.shape(0); ++r) {
    for (Index j = 0; j < d; ++j) {
      Real v = 0;
      for (Index k = 0; k < a.shape(0); ++k) v += a(k, j) * x_obs(r, k);
      b[j] = v / (noise * noise);
    }
    cholesky_solve(l, b.data());
    for (Index j = 0; j < d; ++j) mean(r, j) = b[j];
  }
  return mean;
}

}  // namespace

Matrix LinearGaussianSimulator::posterior_covariance() const {
  const Matrix l = cholesky(posterior_precision(design(), obs_noise));
  const Index d = theta_dim;
  Matrix cov({d, d});
  std::vector<Real> column(d);
  for (Index j = 0; j < d; ++j) {
    std::fill(column.begin(), column.end(), 0.0);
    column[j] = 1;
    cholesky_solve(l, column.data());
    for (Index i = 0; i < d; ++i) cov(i, j) = column[i];
  }
  return cov;
}

Matrix LinearGaussianSimulator::posterior_mean(const Matrix& x_obs) const {
  if (x_obs.shape(1) != obs_dim)
    throw DataError(fmt::format("linear_gaussian: x_obs has {} columns, the simulator has {}",
                                x_obs.shape(1), obs_dim));
  const Matrix a = design();
  return posterior_means(a, cholesky(posterior_precision(a, obs_noise)), obs_noise, x_obs);
}

// log N(θ; μ, P⁻¹) = −(d/2) log 2π + ½ log det P − ½ (θ − μ)ᵀ P (θ − μ),
// with log det P = 2 Σ log L_ii for P = L Lᵀ.
Vector LinearGaussianSimulator::posterior_log_prob(const Matrix& theta, const Matrix& x_obs) const {
  if (theta.shape(1) != theta_dim)
    throw DataError(fmt::format("linear_gaussian: theta has {} columns, the simulator has {}",
                                theta.shape(1), theta_dim));
  require_rows(theta, x_obs, "linear_gaussian", "theta", "x_obs");
  const Matrix mean = posterior_mean(x_obs);
  const Matrix a = design();
  const Matrix p = posterior_precision(a, obs_noise);
  const Matrix l = cholesky(p);
  Real half_log_det = 0;
  for (Index j = 0; j < theta_dim; ++j) half_log_det += std::log(l(j, j));
  const Index d = theta_dim;
  Vector out = xt::empty<Real>({theta.shape(0)});
  std::vector<Real> diff(d);
  for (Index r = 0; r < theta.shape(0); ++r) {
    for (Index j = 0; j < d; ++j) diff[j] = theta(r, j) - mean(r, j);
    Real quad = 0;
    for (Index i = 0; i < d; ++i)
      for (Index j = 0; j < d; ++j) quad += diff[i] * p(i, j) * diff[j];
    out(r) = -0.5 * Real(d) * kLog2Pi + half_log_det - 0.5 * quad;
  }
  return out;
}

const std::vector<std::string>& conditional_toy_names() {
  static const std::vector<std::string> names = {"conditional_gaussian", "linear_gaussian"};
  return names;
}

}  // namespace flows
