// The cfm trainer: Gaussian to Gaussian, where the exact marginal velocity is
// known and affine, so a small field learns it and its samples must match
// the target's mean and covariance.
#include <gtest/gtest.h>

#include <cmath>
#include <memory>

#include <flows/bijector.hpp>
#include <flows/error.hpp>
#include <flows/flow.hpp>
#include <flows/normal.hpp>
#include <flows/standardize.hpp>
#include <flows/trainer.hpp>

#include "fm_test_support.hpp"

namespace {

using flows::Bijector;
using flows::Flow;
using flows::Index;
using flows::Matrix;
using flows::Real;
using flows::Rng;
using flows::Trainer;

// x1 ~ N(m, C) with m = (2, −1), C = L Lᵀ, L = [[0.5, 0], [0.6, 0.8]]:
// C = [[0.25, 0.3], [0.3, 1.0]].
Matrix gaussian_data(Index n, Rng& rng) {
  Matrix z = rng.normal(n, 2), x({n, 2});
  for (Index i = 0; i < n; ++i) {
    x(i, 0) = 2 + 0.5 * z(i, 0);
    x(i, 1) = -1 + 0.6 * z(i, 0) + 0.8 * z(i, 1);
  }
  return x;
}

void expect_matches_target(const Matrix& s, Real mean_tol, Real cov_tol) {
  const Index n = s.shape(0);
  Real m0 = 0, m1 = 0;
  for (Index i = 0; i < n; ++i) m0 += s(i, 0), m1 += s(i, 1);
  m0 /= n, m1 /= n;
  Real c00 = 0, c01 = 0, c11 = 0;
  for (Index i = 0; i < n; ++i) {
    c00 += (s(i, 0) - m0) * (s(i, 0) - m0);
    c01 += (s(i, 0) - m0) * (s(i, 1) - m1);
    c11 += (s(i, 1) - m1) * (s(i, 1) - m1);
  }
  c00 /= n, c01 /= n, c11 /= n;
  EXPECT_NEAR(m0, 2.0, mean_tol);
  EXPECT_NEAR(m1, -1.0, mean_tol);
  EXPECT_NEAR(c00, 0.25, cov_tol);
  EXPECT_NEAR(c01, 0.3, cov_tol);
  EXPECT_NEAR(c11, 1.0, cov_tol);
}

struct GaussianCase {
  std::string name;
  std::string trainer;
  bool standardize;
};

class CfmGaussian : public ::testing::TestWithParam<GaussianCase> {};

// With independent coupling and the straight path (σ_min = 0), x_t ~ N(t m,
// Σ_t) with Σ_t = (1−t)² I + t² C, and the marginal velocity is affine:
// u(x, t) = m + (t C − (1−t) I) Σ_t⁻¹ (x − t m) (Lipman et al. 2023, thm. 1 on
// Gaussian paths). Transporting N(0, I) with it gives exactly N(m, C).
TEST_P(CfmGaussian, SamplesMatchTheTargetMeanAndCovariance) {
  Rng rng(7);
  const Matrix train = gaussian_data(8000, rng), val = gaussian_data(1000, rng);
  auto base = std::make_shared<flows::StandardNormal>(2);
  auto fm = fm_test::make<Bijector>(
      "{type: flow_matching, hidden: [32, 32], activation: silu, time_frequencies: 1, "
      "solver: {type: dopri5, rtol: 1.0e-6, atol: 1.0e-6}}",
      2, 3);
  Flow flow(base, {fm});
  if (GetParam().standardize)
    flow.prepend(std::make_shared<flows::Standardize>(flows::Standardize::fit(train)));
  auto trainer = fm_test::make<Trainer>(GetParam().trainer, 2, 5);
  Rng train_rng(9);
  const flows::TrainReport report = trainer->train(flow, train, val, train_rng, {});
  EXPECT_EQ(report.loss_name, "cfm_mse");
  ASSERT_FALSE(report.curve.empty());
  EXPECT_TRUE(std::isfinite(report.best_val_loss));
  Rng sample_rng(11);
  expect_matches_target(flow.sample(6000, sample_rng), 0.06, 0.08);
  // The ODE log-likelihood is close to the target's own (its entropy, 1.922
  // nats for det C = 0.16).
  const Real nll = flow.mean_nll(val);
  EXPECT_LT(nll, 1.922 + 0.1);
  EXPECT_GT(nll, 1.922 - 0.1);
}

INSTANTIATE_TEST_SUITE_P(
    Couplings, CfmGaussian,
    ::testing::Values(
        GaussianCase{"independent",
                     "{type: cfm, steps: 1500, batch_size: 256, eval_every: 500, "
                     "optimizer: {type: adam, lr: 3.0e-3}}",
                     false},
        GaussianCase{"exact_ot_standardized",
                     "{type: cfm, steps: 1500, batch_size: 128, eval_every: 500, coupling: ot, "
                     "optimizer: {type: adam, lr: 3.0e-3}}",
                     true},
        GaussianCase{"sinkhorn_standardized",
                     "{type: cfm, steps: 1500, batch_size: 128, eval_every: 500, coupling: ot, "
                     "ot_solver: sinkhorn, optimizer: {type: adam, lr: 3.0e-3}}",
                     true},
        GaussianCase{"vp_path",
                     "{type: cfm, steps: 1500, batch_size: 256, eval_every: 500, path: vp, "
                     "optimizer: {type: adam, lr: 3.0e-3}}",
                     false}),
    [](const auto& info) { return info.param.name; });

TEST(CfmTrainer, NeedsAFlowMatchingBijector) {
  auto base = std::make_shared<flows::StandardNormal>(2);
  Rng rng(1);
  const Matrix data = rng.normal(50, 2);
  Flow flow(base, {std::make_shared<flows::Standardize>(flows::Standardize::fit(data))});
  auto trainer = fm_test::make<Trainer>("{type: cfm, steps: 3}");
  EXPECT_THROW(trainer->train(flow, data, data, rng, {}), flows::ConfigError);
}

TEST(CfmTrainer, ReportsProgressAndValidation) {
  auto base = std::make_shared<flows::StandardNormal>(2);
  Rng rng(1);
  const Matrix data = gaussian_data(500, rng);
  Flow flow(base, {fm_test::make<Bijector>("{type: flow_matching, hidden: [8]}")});
  auto trainer = fm_test::make<Trainer>("{type: cfm, steps: 40, batch_size: 64, eval_every: 10}");
  Index calls = 0;
  flows::TrainerCallbacks callbacks;
  callbacks.on_progress = [&calls](const flows::Progress& p) {
    ++calls;
    EXPECT_TRUE(std::isfinite(p.loss));
  };
  const flows::TrainReport report = trainer->train(flow, data, data, rng, callbacks);
  EXPECT_EQ(calls, 40u);
  EXPECT_EQ(report.steps, 40u);
  EXPECT_EQ(report.curve.size(), 4u);
  // Regression toward the path's velocity lowers the loss.
  EXPECT_LT(report.curve.back().val_loss, report.curve.front().val_loss * 1.5);
}

TEST(CfmTrainer, BadOptionsAreConfigErrors) {
  EXPECT_THROW(fm_test::make<Trainer>("{type: cfm, path: curved}"), flows::ConfigError);
  EXPECT_THROW(fm_test::make<Trainer>("{type: cfm, coupling: exact}"), flows::ConfigError);
  EXPECT_THROW(fm_test::make<Trainer>("{type: cfm, sigma_min: 1.0}"), flows::ConfigError);
  EXPECT_THROW(fm_test::make<Trainer>("{type: cfm, stpes: 3}"), flows::ConfigError);
}

}  // namespace
