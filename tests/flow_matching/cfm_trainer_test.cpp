// The cfm trainer: Gaussian to Gaussian, where the exact marginal velocity is
// known and affine, so a small field learns it and its samples must match
// the target's mean and covariance; and a conditional Gaussian x | c with a
// closed-form density, learnt through the flow's context encoder (with and
// without an embedding network, and with context dropout for guidance).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <flows/bijector.hpp>
#include <flows/context_encoder.hpp>
#include <flows/data/conditional_toys.hpp>
#include <flows/error.hpp>
#include <flows/flow.hpp>
#include <flows/normal.hpp>
#include <flows/pipeline.hpp>
#include <flows/standardize.hpp>
#include <flows/state.hpp>
#include <flows/trainer.hpp>

#include "fm_test_support.hpp"
#include "runner_support.hpp"

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
  const flows::TrainReport report =
      trainer->train(flow, fm_test::splits(train, val), train_rng, {});
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
  EXPECT_THROW(trainer->train(flow, fm_test::splits(data, data), rng, {}), flows::ConfigError);
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
  const flows::TrainReport report =
      trainer->train(flow, fm_test::splits(data, data), rng, callbacks);
  EXPECT_EQ(calls, 40u);
  EXPECT_EQ(report.steps, 40u);
  EXPECT_EQ(report.curve.size(), 4u);
  // Regression toward the path's velocity lowers the loss.
  EXPECT_LT(report.curve.back().val_loss, report.curve.front().val_loss * 1.5);
}

// The SDK's conditional_gaussian toy with k = 2 context columns: c ~ N(0, I),
// x | c ~ N(A c + b, Σ(c)) with a closed-form log-density
// (flows/data/conditional_toys.hpp).
struct ConditionalGaussian {
  Matrix x, c;
  Real mean_nll = 0;  // −(1/n) Σ log p(x_i | c_i), the true conditional NLL

  ConditionalGaussian(Index n, Rng& rng) : c(rng.normal(n, 2)) {
    x = flows::conditional_gaussian_sample(c, rng);
    const flows::Vector lp = flows::conditional_gaussian_log_prob(x, c);
    for (Real v : lp) mean_nll -= v / static_cast<Real>(n);
  }
};

// μ(c) of the toy at one context row.
std::pair<Real, Real> true_mean(const Matrix& c) {
  const flows::ConditionalGaussianAt at = flows::conditional_gaussian_at(c.data(), c.shape(1));
  return {at.mean[0], at.mean[1]};
}

struct ConditionalSetup {
  std::shared_ptr<flows::ContextEncoder> encoder;
  std::shared_ptr<Bijector> fm;
  std::shared_ptr<Flow> flow;
};

// standard normal base ← flow_matching(v(x, t, e)) ← standardization of x,
// with the context standardized and optionally embedded (features > 0).
ConditionalSetup conditional_flow(const Matrix& train_x, const Matrix& train_c, Index features,
                                  const std::string& fm_yaml) {
  flows::ContextEncoder::EmbeddingOptions embedding;
  if (features > 0) {
    embedding.hidden = {16};
    embedding.features = features;
    embedding.activation = flows::nn::Activation(flows::nn::Activation::Kind::tanh);
  }
  Rng rng(21);
  ConditionalSetup s;
  s.encoder = std::make_shared<flows::ContextEncoder>(train_c.shape(1), embedding, rng);
  s.encoder->fit_standardization(train_c);
  s.fm = fm_test::make<Bijector>(fm_yaml, 2, 3, s.encoder->output_dim());
  s.flow = std::make_shared<Flow>(std::make_shared<flows::StandardNormal>(2),
                                  std::vector<std::shared_ptr<Bijector>>{s.fm}, s.encoder);
  s.flow->prepend(std::make_shared<flows::Standardize>(flows::Standardize::fit(train_x)));
  return s;
}

const char* kConditionalField =
    "{type: flow_matching, hidden: [64, 64], activation: silu, time_frequencies: 1, "
    "solver: {type: dopri5, rtol: 1.0e-5, atol: 1.0e-5}}";

struct ConditionalCase {
  std::string name;
  Index embedding_features;  // 0: no embedding network
  std::string trainer;
  Real kl_bound;  // mean KL reached (test NLL − true NLL), see the note below
};

class CfmConditionalGaussian : public ::testing::TestWithParam<ConditionalCase> {};

// Mean KL(p(· | c) ‖ q(· | c)) over test contexts, estimated as test NLL (ODE,
// exact divergence, dopri5 1e-5) minus the true NLL of the same rows, at a
// reduced 2,500 steps (cosine schedule). Measured: 0.020 nats (standardized
// context), 0.014 (embedding network), 0.016 (context dropout 0.2); the bound
// of 0.04 leaves room for the noise of 2,000 test rows and of the training.
TEST_P(CfmConditionalGaussian, ReachesTheStatedMeanKl) {
  Rng rng(5);
  const ConditionalGaussian train(10000, rng), val(1000, rng), test(2000, rng);
  ConditionalSetup s =
      conditional_flow(train.x, train.c, GetParam().embedding_features, kConditionalField);
  std::vector<Matrix> embedding_before;
  for (auto* p : s.encoder->parameters()) embedding_before.push_back(p->value);

  auto trainer = fm_test::make<Trainer>(GetParam().trainer, 2, 5);
  Rng train_rng(9);
  const flows::TrainReport report =
      trainer->train(*s.flow, fm_test::splits(train.x, val.x, train.c, val.c), train_rng, {});
  EXPECT_TRUE(std::isfinite(report.best_val_loss));
  // An embedding network learns from the regression loss.
  const auto params = s.encoder->parameters();
  for (std::size_t k = 0; k < params.size(); ++k) {
    Real change = 0;
    for (Index j = 0; j < params[k]->value.size(); ++j)
      change += std::abs(params[k]->value.flat(j) - embedding_before[k].flat(j));
    EXPECT_GT(change, 1e-3) << params[k]->name << " did not train";
  }

  const Real nll = s.flow->mean_nll(test.x, test.c);
  const Real kl = nll - test.mean_nll;
  std::cout << "[ conditional ] " << GetParam().name << ": test NLL " << nll << ", true "
            << test.mean_nll << ", mean KL " << kl << "\n";
  EXPECT_LT(kl, GetParam().kl_bound);
  EXPECT_GT(kl, -0.03) << "below the true density by more than the noise";

  // Samples at one context have that context's mean.
  Rng sample_rng(11);
  const Matrix c{{0.8, 0.2}};
  const Matrix samples = s.flow->sample(3000, sample_rng, c);
  Real m0 = 0, m1 = 0;
  for (Index i = 0; i < 3000; ++i) m0 += samples(i, 0) / 3000, m1 += samples(i, 1) / 3000;
  std::cout << "[ conditional ] mean at c = (0.8, 0.2): " << m0 << ", " << m1 << " (true "
            << true_mean(c).first << ", " << true_mean(c).second << ")\n";
  EXPECT_NEAR(m0, true_mean(c).first, 0.06);
  EXPECT_NEAR(m1, true_mean(c).second, 0.06);
}

INSTANTIATE_TEST_SUITE_P(
    Contexts, CfmConditionalGaussian,
    ::testing::Values(
        ConditionalCase{
            "standardized_context", 0,
            "{type: cfm, steps: 2500, batch_size: 256, eval_every: 500, lr_schedule: cosine, "
            "optimizer: {type: adam, lr: 3.0e-3}}",
            0.05},
        ConditionalCase{
            "embedded_context", 4,
            "{type: cfm, steps: 2500, batch_size: 256, eval_every: 500, lr_schedule: cosine, "
            "optimizer: {type: adam, lr: 3.0e-3}}",
            0.05},
        ConditionalCase{
            "context_dropout", 0,
            "{type: cfm, steps: 2500, batch_size: 256, eval_every: 500, lr_schedule: cosine, "
            "context_dropout: 0.2, optimizer: {type: adam, lr: 3.0e-3}}",
            0.04}),
    [](const auto& info) { return info.param.name; });

// A field trained with context dropout has learnt v(x, t, ∅), the
// unconditional field: with guidance w = −1 (only the ∅ term) its samples
// follow the marginal of x over c, mean b = (0.5, −0.5); w = 0 follows
// p(x | c).
TEST(CfmTrainer, ContextDropoutTrainsTheNullFieldForGuidance) {
  Rng rng(6);
  const ConditionalGaussian train(8000, rng), val(500, rng);
  ConditionalSetup s = conditional_flow(train.x, train.c, 0, kConditionalField);
  auto trainer = fm_test::make<Trainer>(
      "{type: cfm, steps: 1500, batch_size: 256, eval_every: 500, context_dropout: 0.3, "
      "optimizer: {type: adam, lr: 3.0e-3}}",
      2, 5);
  Rng train_rng(9);
  trainer->train(*s.flow, fm_test::splits(train.x, val.x, train.c, val.c), train_rng, {});

  // The same field under guidance: rebuilt from YAML, state (parameters and
  // the recorded dropout) restored from the trained one.
  auto guided_flow = [&](Real w) {
    const std::string yaml =
        std::string(kConditionalField)
            .insert(std::string(kConditionalField).size() - 1, ", guidance: " + std::to_string(w));
    auto fm = fm_test::make<Bijector>(yaml, 2, 3, 2);
    flows::TensorStore store;
    flows::StateSaver saver(store);
    s.fm->visit_state(saver);
    flows::StateLoader loader(store, "the trained field");
    fm->visit_state(loader);
    auto flow = std::make_shared<Flow>(std::make_shared<flows::StandardNormal>(2),
                                       std::vector<std::shared_ptr<Bijector>>{fm}, s.encoder);
    flow->prepend(s.flow->chain().front());
    return flow;
  };
  const Matrix c{{1.5, 0.5}};
  auto mean_at = [&c](const Flow& flow) {
    Rng sample_rng(12);
    const Matrix x = flow.sample(3000, sample_rng, c);
    std::pair<Real, Real> m{0, 0};
    for (Index i = 0; i < 3000; ++i) m.first += x(i, 0) / 3000, m.second += x(i, 1) / 3000;
    return m;
  };
  const auto conditional = mean_at(*guided_flow(0.0));
  EXPECT_NEAR(conditional.first, true_mean(c).first, 0.08);
  EXPECT_NEAR(conditional.second, true_mean(c).second, 0.08);
  const auto unconditional = mean_at(*guided_flow(-1.0));
  EXPECT_NEAR(unconditional.first, 0.5, 0.1);
  EXPECT_NEAR(unconditional.second, -0.5, 0.1);
  // w > 0 extrapolates past the conditional mean, away from the marginal's
  // (here μ_1(c) − b_1 = 1.41 and μ_2(c) − b_2 = 0.35).
  const auto guided = mean_at(*guided_flow(1.0));
  std::cout << "[ guidance ] means at c = (1.5, 0.5): w = 0 (" << conditional.first << ", "
            << conditional.second << "), w = -1 (" << unconditional.first << ", "
            << unconditional.second << "), w = 1 (" << guided.first << ", " << guided.second
            << ")\n";
  EXPECT_GT(guided.first, conditional.first + 0.4);
  EXPECT_GT(guided.second, conditional.second + 0.1);
}

// Guidance needs v(x, t, ∅): without context dropout the trainer refuses
// before training, and a model trained without it refuses to sample.
TEST(CfmTrainer, GuidanceWithoutContextDropoutIsRefused) {
  Rng rng(7);
  const ConditionalGaussian train(300, rng);
  const std::string guided = "{type: flow_matching, hidden: [8], guidance: 1.5}";
  ConditionalSetup s = conditional_flow(train.x, train.c, 0, guided);
  auto trainer = fm_test::make<Trainer>("{type: cfm, steps: 5, batch_size: 64}", 2, 5);
  try {
    trainer->train(*s.flow, fm_test::splits(train.x, Matrix(), train.c), rng, {});
    FAIL() << "no error";
  } catch (const flows::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("context_dropout"), std::string::npos) << e.what();
  }
  try {
    s.flow->sample(3, rng, Matrix{{0.5, -0.5}});
    FAIL() << "no error";
  } catch (const flows::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("context_dropout"), std::string::npos) << e.what();
  }
  // Guidance on an unconditional model, or dropout without a context, are
  // configuration errors too.
  EXPECT_THROW(fm_test::make<Bijector>(guided, 2), flows::ConfigError);
  Flow plain(std::make_shared<flows::StandardNormal>(2),
             {fm_test::make<Bijector>("{type: flow_matching, hidden: [8]}")});
  auto dropping =
      fm_test::make<Trainer>("{type: cfm, steps: 5, batch_size: 64, context_dropout: 0.1}");
  EXPECT_THROW(dropping->train(plain, fm_test::splits(train.x, Matrix()), rng, {}),
               flows::ConfigError);
}

// What resuming needs covers the embedding network too: the trainer's state
// (steps done, Adam's moments of the embedding's and the field's parameters)
// saves, restores into a fresh trainer, and training continues from there.
TEST(CfmTrainer, ResumableStateCoversTheContextEmbedding) {
  Rng rng(9);
  const ConditionalGaussian train(500, rng);
  ConditionalSetup s = conditional_flow(train.x, train.c, 3, "{type: flow_matching, hidden: [8]}");
  const std::string yaml = "{type: cfm, steps: 20, batch_size: 64, eval_every: 0}";
  auto trainer = fm_test::make<Trainer>(yaml, 2, 5);
  const auto data = fm_test::splits(train.x, Matrix(), train.c);
  Rng train_rng(1);
  trainer->train(*s.flow, data, train_rng, {});
  flows::TensorStore store;
  flows::StateSaver saver(store);
  trainer->visit_state(*s.flow, saver);
  // Adam keeps m and v per trained parameter: the embedding's and the field's.
  ASSERT_FALSE(s.encoder->parameters().empty());
  Index moments = 0;
  for (const auto& entry : store.entries) moments += entry.name.rfind("optimizer/m", 0) == 0;
  EXPECT_EQ(moments, s.encoder->parameters().size() + s.fm->parameters().size());

  auto resumed =
      fm_test::make<Trainer>("{type: cfm, steps: 30, batch_size: 64, eval_every: 0}", 2, 5);
  flows::StateLoader loader(store, "the saved trainer state");
  resumed->visit_state(*s.flow, loader);
  const flows::TrainReport report = resumed->train(*s.flow, data, train_rng, {});
  EXPECT_EQ(report.first_step, 20u);
  EXPECT_EQ(report.steps, 30u);
}

// The data's context must fit the model: a context for an unconditional
// model, none for a conditional one, are DataErrors naming the columns.
TEST(CfmTrainer, ContextThatDoesNotFitTheModelIsADataError) {
  Rng rng(8);
  const ConditionalGaussian train(200, rng);
  Flow plain(std::make_shared<flows::StandardNormal>(2),
             {fm_test::make<Bijector>("{type: flow_matching, hidden: [8]}")});
  auto trainer = fm_test::make<Trainer>("{type: cfm, steps: 5, batch_size: 64}");
  EXPECT_THROW(trainer->train(plain, fm_test::splits(train.x, Matrix(), train.c), rng, {}),
               flows::DataError);
  ConditionalSetup s = conditional_flow(train.x, train.c, 0, "{type: flow_matching, hidden: [8]}");
  EXPECT_THROW(trainer->train(*s.flow, fm_test::splits(train.x, Matrix()), rng, {}),
               flows::DataError);
}

TEST(CfmTrainer, BadOptionsAreConfigErrors) {
  EXPECT_THROW(fm_test::make<Trainer>("{type: cfm, path: curved}"), flows::ConfigError);
  EXPECT_THROW(fm_test::make<Trainer>("{type: cfm, coupling: exact}"), flows::ConfigError);
  EXPECT_THROW(fm_test::make<Trainer>("{type: cfm, sigma_min: 1.0}"), flows::ConfigError);
  EXPECT_THROW(fm_test::make<Trainer>("{type: cfm, stpes: 3}"), flows::ConfigError);
  EXPECT_THROW(fm_test::make<Trainer>("{type: cfm, context_dropout: 1.0}"), flows::ConfigError);
  EXPECT_THROW(fm_test::make<Trainer>("{type: cfm, context_dropout: -0.1}"), flows::ConfigError);
}

// Training on several threads (issue 12): the draws stay on the whole batch,
// so two threads give one thread's field up to summation order, and the
// same thread count gives the same bits; with OT pairing and a conditional
// model whose embedding gets dL/dc from every block.
namespace parallel {

namespace fs = std::filesystem;

std::vector<Matrix> train_pipeline(const std::string& name, const std::string& yaml,
                                   const char* threads, Index* used = nullptr) {
  flows::test_support::ScopedEnv env("FLOWS_NUM_THREADS", threads);
  const fs::path dir = flows::test_support::temp_dir("cfm_parallel_" + name);
  std::ofstream(dir / "pipeline.yaml") << yaml;
  flows::Pipeline p = flows::Pipeline::load((dir / "pipeline.yaml").string());
  const flows::TrainReport report = p.train({});
  if (used) *used = report.threads;
  std::vector<Matrix> values;
  for (const flows::Parameter* q : p.model.flow->parameters()) values.push_back(q->value);
  return values;
}

void expect_close(const std::vector<Matrix>& a, const std::vector<Matrix>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t k = 0; k < a.size(); ++k)
    for (Index i = 0; i < a[k].size(); ++i)
      ASSERT_NEAR(a[k].flat(i), b[k].flat(i), 1e-10 * std::max<Real>(1, std::abs(a[k].flat(i))))
          << "parameter " << k << "[" << i << "]";
}

std::string cfm_pipeline(const std::string& data, const std::string& extra_model,
                         const std::string& extra_trainer) {
  // float64: a comparison of summation order, not of precision.
  return "seed: 2\ndata: " + data + "\nmodel:\n  precision: float64\n" + extra_model +
         "  bijectors:\n    - {type: flow_matching, hidden: [32, 32]}\n"
         "trainer: {type: cfm, batch_size: 256, steps: 25, eval_every: 10" +
         extra_trainer + "}\nstages: [train]\n";
}

TEST(CfmTrainerThreads, TwoThreadsGiveOneThreadsFieldWithOtPairing) {
  const std::string yaml = cfm_pipeline(
      "{type: 8gaussians, n_train: 2000, n_val: 200, n_test: 100}", "", ", coupling: ot");
  Index used = 0;
  const auto one = train_pipeline("ot1", yaml, "1");
  const auto two = train_pipeline("ot2", yaml, "2", &used);
  EXPECT_EQ(used, 2u);
  expect_close(one, two);
  EXPECT_EQ(two, train_pipeline("ot2b", yaml, "2"));  // bit for bit
}

TEST(CfmTrainerThreads, AConditionalFieldWithAnEmbeddingAgrees) {
  const std::string yaml = cfm_pipeline(
      "{type: conditional_gaussian, n_train: 1000, n_val: 100, n_test: 100, context_dim: 3}",
      "  context_embedding: {hidden: [8], features: 4}\n", ", context_dropout: 0.2");
  Index used = 0;
  const auto one = train_pipeline("cond1", yaml, "1");
  const auto two = train_pipeline("cond2", yaml, "2", &used);
  EXPECT_EQ(used, 2u);
  expect_close(one, two);
}

}  // namespace parallel

}  // namespace
