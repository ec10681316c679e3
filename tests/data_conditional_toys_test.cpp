// The conditional toys against their closed forms: samples have the stated
// conditional moments (within statistical tolerance), and the true
// log-densities agree with the Gaussian density written out another way.
#include "flows/data/conditional_toys.hpp"

#include <gtest/gtest.h>

#include <cmath>

#include "flows/error.hpp"

namespace flows {
namespace {

constexpr Real kPi = 3.14159265358979323846;

// Sample mean, variances and correlation of the two columns of x.
struct Moments {
  Real mean[2] = {0, 0};
  Real var[2] = {0, 0};
  Real corr = 0;
};
Moments moments(const Matrix& x) {
  Moments m;
  const Real n = static_cast<Real>(x.shape(0));
  for (Index i = 0; i < x.shape(0); ++i)
    for (int j = 0; j < 2; ++j) m.mean[j] += x(i, j) / n;
  Real cov = 0;
  for (Index i = 0; i < x.shape(0); ++i) {
    const Real a = x(i, 0) - m.mean[0], b = x(i, 1) - m.mean[1];
    m.var[0] += a * a / n;
    m.var[1] += b * b / n;
    cov += a * b / n;
  }
  m.corr = cov / std::sqrt(m.var[0] * m.var[1]);
  return m;
}

// n copies of one context row.
Matrix repeated(const std::vector<Real>& c, Index n) {
  Matrix m({n, c.size()});
  for (Index i = 0; i < n; ++i)
    for (Index j = 0; j < c.size(); ++j) m(i, j) = c[j];
  return m;
}

TEST(ConditionalGaussian, ParametersFollowTheDocumentedFormulas) {
  const Real c[3] = {1.0, 2.0, -1.0};
  const ConditionalGaussianAt p = conditional_gaussian_at(c, 3);
  const Real u = 2.0 / std::sqrt(3.0);
  EXPECT_NEAR(p.mean[0], u + 0.5, 1e-15);
  EXPECT_NEAR(p.mean[1], 0.5 * (1.0 - 2.0 - 1.0) / std::sqrt(3.0) - 0.5, 1e-15);
  EXPECT_NEAR(p.std[0], std::exp(-0.7 + 0.5 * std::tanh(u)), 1e-15);
  EXPECT_NEAR(p.std[1], std::exp(-1.2 - 0.5 * std::tanh(u)), 1e-15);
  EXPECT_NEAR(p.rho, 0.6 * std::tanh(u), 1e-15);
  // Saturation keeps the scales and the correlation in their ranges.
  const Real far[1] = {50.0};
  const ConditionalGaussianAt q = conditional_gaussian_at(far, 1);
  EXPECT_NEAR(q.std[0], std::exp(-0.2), 1e-12);
  EXPECT_NEAR(q.std[1], std::exp(-1.7), 1e-12);
  EXPECT_LT(std::abs(q.rho), 0.6 + 1e-12);
}

// At fixed contexts the samples have mean μ(c), variances σ_i(c)² and
// correlation ρ(c). Tolerances: 5 standard errors (mean: σ/√n; variance:
// σ²√(2/n); correlation: (1 − ρ²)/√n).
TEST(ConditionalGaussian, SamplesHaveTheClosedFormMoments) {
  const Index n = 40000;
  Rng rng(17);
  for (const std::vector<Real>& c :
       {std::vector<Real>{0.0}, std::vector<Real>{-1.5}, std::vector<Real>{0.8, -0.3}}) {
    SCOPED_TRACE("context " + std::to_string(c[0]));
    const Matrix x = conditional_gaussian_sample(repeated(c, n), rng);
    const ConditionalGaussianAt p = conditional_gaussian_at(c.data(), c.size());
    const Moments m = moments(x);
    const Real sn = std::sqrt(Real(n));
    for (int j = 0; j < 2; ++j) {
      EXPECT_NEAR(m.mean[j], p.mean[j], 5 * p.std[j] / sn) << "mean " << j;
      const Real var = p.std[j] * p.std[j];
      EXPECT_NEAR(m.var[j], var, 5 * var * std::sqrt(2.0 / Real(n))) << "variance " << j;
    }
    EXPECT_NEAR(m.corr, p.rho, 5 * (1 - p.rho * p.rho) / sn);
  }
}

// The density from the 2 x 2 covariance directly:
//   log N(x; μ, Σ) = −log 2π − ½ log det Σ − ½ (x − μ)ᵀ Σ⁻¹ (x − μ).
TEST(ConditionalGaussian, LogProbIsTheBivariateNormalDensity) {
  Rng rng(3);
  const Matrix context = rng.normal(50, 2);
  const Matrix x = rng.normal(50, 2);
  const Vector lp = conditional_gaussian_log_prob(x, context);
  for (Index i = 0; i < x.shape(0); ++i) {
    const ConditionalGaussianAt p = conditional_gaussian_at(&context(i, 0), 2);
    const Real s11 = p.std[0] * p.std[0], s22 = p.std[1] * p.std[1];
    const Real s12 = p.rho * p.std[0] * p.std[1];
    const Real det = s11 * s22 - s12 * s12;
    const Real d1 = x(i, 0) - p.mean[0], d2 = x(i, 1) - p.mean[1];
    const Real quad = (s22 * d1 * d1 - 2 * s12 * d1 * d2 + s11 * d2 * d2) / det;
    EXPECT_NEAR(lp(i), -std::log(2 * kPi) - 0.5 * std::log(det) - 0.5 * quad, 1e-12) << i;
  }
}

// A density integrates to 1: a Riemann sum over a grid around the mean.
TEST(ConditionalGaussian, LogProbIntegratesToOne) {
  const std::vector<Real> c = {0.7};
  const ConditionalGaussianAt p = conditional_gaussian_at(c.data(), 1);
  const Index steps = 400;
  const Real h0 = 16 * p.std[0] / steps, h1 = 16 * p.std[1] / steps;
  Matrix grid({steps * steps, 2});
  for (Index a = 0; a < steps; ++a)
    for (Index b = 0; b < steps; ++b) {
      grid(a * steps + b, 0) = p.mean[0] - 8 * p.std[0] + (a + 0.5) * h0;
      grid(a * steps + b, 1) = p.mean[1] - 8 * p.std[1] + (b + 0.5) * h1;
    }
  const Vector lp = conditional_gaussian_log_prob(grid, repeated(c, steps * steps));
  Real total = 0;
  for (Real v : lp) total += std::exp(v) * h0 * h1;
  EXPECT_NEAR(total, 1.0, 1e-6);
}

TEST(ConditionalGaussian, ShapeMismatchesAreDataErrors) {
  EXPECT_THROW(conditional_gaussian_log_prob(Matrix({3, 3}), Matrix({3, 1})), DataError);
  EXPECT_THROW(conditional_gaussian_log_prob(Matrix({3, 2}), Matrix({4, 1})), DataError);
  EXPECT_THROW(conditional_gaussian_log_prob(Matrix({3, 2}), Matrix({3, 0})), DataError);
  Rng rng(0);
  EXPECT_THROW(conditional_gaussian_sample(Matrix({3, 0}), rng), DataError);
}

TEST(LinearGaussian, DesignMatrixIsTheDocumentedOne) {
  LinearGaussianSimulator sim;
  sim.theta_dim = 2;
  sim.obs_dim = 3;
  const Matrix a = sim.design();
  const Matrix expected = {{1.0, -0.5}, {-0.5, 1.0}, {1.0 / 3, -0.5}};
  for (Index i = 0; i < 3; ++i)
    for (Index j = 0; j < 2; ++j) EXPECT_DOUBLE_EQ(a(i, j), expected(i, j)) << i << "," << j;
}

// Σ = (I + AᵀA/σ²)⁻¹ against the Woodbury form Σ = I − Aᵀ(AAᵀ + σ²I)⁻¹A
// (d = m = 2, so the 2 x 2 inverse is written out).
TEST(LinearGaussian, PosteriorCovarianceAgreesWithTheWoodburyForm) {
  LinearGaussianSimulator sim;
  sim.obs_noise = 0.7;
  const Matrix a = sim.design();
  Matrix g({2, 2});  // A Aᵀ + σ² I
  for (Index i = 0; i < 2; ++i)
    for (Index j = 0; j < 2; ++j)
      g(i, j) = a(i, 0) * a(j, 0) + a(i, 1) * a(j, 1) + (i == j ? 0.49 : 0.0);
  const Real det = g(0, 0) * g(1, 1) - g(0, 1) * g(1, 0);
  const Matrix g_inv = {{g(1, 1) / det, -g(0, 1) / det}, {-g(1, 0) / det, g(0, 0) / det}};
  const Matrix cov = sim.posterior_covariance();
  for (Index i = 0; i < 2; ++i)
    for (Index j = 0; j < 2; ++j) {
      Real woodbury = i == j ? 1.0 : 0.0;
      for (Index k = 0; k < 2; ++k)
        for (Index l = 0; l < 2; ++l) woodbury -= a(k, i) * g_inv(k, l) * a(l, j);
      EXPECT_NEAR(cov(i, j), woodbury, 1e-12) << i << "," << j;
    }
}

// From simulated pairs (θ, x): the least-squares regression of θ on x has
// coefficients Σ Aᵀ/σ² (the posterior mean is linear in x) and residual
// covariance Σ, as the closed form says.
TEST(LinearGaussian, SimulationsHaveTheClosedFormPosterior) {
  LinearGaussianSimulator sim;  // d = m = 2, σ = 0.5
  const Index n = 100000;
  Rng rng(5);
  Matrix theta, x;
  sim.simulate(n, rng, theta, x);
  ASSERT_EQ(theta.shape(1), 2u);
  ASSERT_EQ(x.shape(1), 2u);
  // Normal equations: B = (XᵀX)⁻¹ XᵀΘ (all variables have mean 0).
  Real xx[2][2] = {{0, 0}, {0, 0}}, xt_theta[2][2] = {{0, 0}, {0, 0}};
  for (Index r = 0; r < n; ++r)
    for (int i = 0; i < 2; ++i)
      for (int j = 0; j < 2; ++j) {
        xx[i][j] += x(r, i) * x(r, j);
        xt_theta[i][j] += x(r, i) * theta(r, j);
      }
  const Real det = xx[0][0] * xx[1][1] - xx[0][1] * xx[1][0];
  const Real inv[2][2] = {{xx[1][1] / det, -xx[0][1] / det}, {-xx[1][0] / det, xx[0][0] / det}};
  Real b[2][2];  // b[i][j]: coefficient of x_i in θ_j
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 2; ++j) b[i][j] = inv[i][0] * xt_theta[0][j] + inv[i][1] * xt_theta[1][j];

  // The closed form's coefficients: μ(x) = Σ Aᵀ x / σ², read off at the unit vectors.
  const Matrix unit = {{1.0, 0.0}, {0.0, 1.0}};
  const Matrix mu = sim.posterior_mean(unit);  // row i: coefficients of x_i
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 2; ++j) EXPECT_NEAR(b[i][j], mu(i, j), 0.01) << i << "," << j;

  const Matrix cov = sim.posterior_covariance();
  Real res[2][2] = {{0, 0}, {0, 0}};
  for (Index r = 0; r < n; ++r) {
    Real e[2];
    for (int j = 0; j < 2; ++j) e[j] = theta(r, j) - (b[0][j] * x(r, 0) + b[1][j] * x(r, 1));
    for (int i = 0; i < 2; ++i)
      for (int j = 0; j < 2; ++j) res[i][j] += e[i] * e[j] / Real(n);
  }
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 2; ++j)
      EXPECT_NEAR(res[i][j], cov(i, j), 5 * std::sqrt(2.0 / Real(n)) * cov(0, 0)) << i << "," << j;
}

// log N(θ; μ, Σ) with Σ's 2 x 2 inverse written out.
TEST(LinearGaussian, PosteriorLogProbIsTheGaussianDensity) {
  LinearGaussianSimulator sim;
  sim.obs_dim = 3;
  sim.obs_noise = 0.3;
  Rng rng(8);
  const Matrix x = rng.normal(20, 3);
  const Matrix theta = rng.normal(20, 2);
  const Vector lp = sim.posterior_log_prob(theta, x);
  const Matrix mean = sim.posterior_mean(x);
  const Matrix cov = sim.posterior_covariance();
  const Real det = cov(0, 0) * cov(1, 1) - cov(0, 1) * cov(1, 0);
  for (Index r = 0; r < 20; ++r) {
    const Real d0 = theta(r, 0) - mean(r, 0), d1 = theta(r, 1) - mean(r, 1);
    const Real quad = (cov(1, 1) * d0 * d0 - 2 * cov(0, 1) * d0 * d1 + cov(0, 0) * d1 * d1) / det;
    EXPECT_NEAR(lp(r), -std::log(2 * kPi) - 0.5 * std::log(det) - 0.5 * quad, 1e-10) << r;
  }
}

TEST(LinearGaussian, BadSettingsAndShapesAreErrors) {
  LinearGaussianSimulator sim;
  sim.obs_noise = 0;
  EXPECT_THROW(sim.design(), ConfigError);
  sim.obs_noise = 0.5;
  sim.theta_dim = 0;
  EXPECT_THROW(sim.check(), ConfigError);
  sim.theta_dim = 2;
  EXPECT_THROW(sim.posterior_log_prob(Matrix({3, 3}), Matrix({3, 2})), DataError);
  EXPECT_THROW(sim.posterior_log_prob(Matrix({3, 2}), Matrix({2, 2})), DataError);
  EXPECT_THROW(sim.posterior_mean(Matrix({3, 4})), DataError);
}

}  // namespace
}  // namespace flows
