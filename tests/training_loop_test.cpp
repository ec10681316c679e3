#include "flows/training_loop.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "flows/normal.hpp"

namespace flows {
namespace {

TEST(MinibatchSampler, VisitsEveryRowOncePerEpoch) {
  Matrix data({10, 1});
  for (Index i = 0; i < 10; ++i) data(i, 0) = static_cast<Real>(i);
  Rng rng(1);
  const Matrix no_context;
  MinibatchSampler sampler(data, no_context, 5, rng);
  std::vector<int> seen(10, 0);
  for (int b = 0; b < 2; ++b)
    for (Real v : sampler.next()) ++seen[static_cast<std::size_t>(v)];
  for (int count : seen) EXPECT_EQ(count, 1);
}

TEST(MinibatchSampler, BatchNeverExceedsTheData) {
  Matrix data = xt::zeros<Real>({3, 2});
  Rng rng(1);
  const Matrix no_context;
  MinibatchSampler sampler(data, no_context, 100, rng);
  EXPECT_EQ(sampler.next().shape(0), 3u);
  EXPECT_EQ(sampler.context().size(), 0u);
}

// Each batch's context rows are the context of the same data rows, across
// epochs (the permutation is shared).
TEST(MinibatchSampler, ContextRowsStayWithTheirDataRows) {
  Matrix data({10, 2});
  Matrix context({10, 1});
  for (Index i = 0; i < 10; ++i) {
    data(i, 0) = static_cast<Real>(i);
    data(i, 1) = -static_cast<Real>(i);
    context(i, 0) = 100.0 + static_cast<Real>(i);
  }
  Rng rng(4);
  MinibatchSampler sampler(data, context, 3, rng);
  std::vector<int> seen(10, 0);
  for (int b = 0; b < 10; ++b) {
    const Matrix& batch = sampler.next();
    const Matrix& c = sampler.context();
    ASSERT_EQ(c.shape(0), batch.shape(0));
    ASSERT_EQ(c.shape(1), 1u);
    for (Index i = 0; i < batch.shape(0); ++i) {
      EXPECT_EQ(c(i, 0), 100.0 + batch(i, 0));
      ++seen[static_cast<std::size_t>(batch(i, 0))];
    }
  }
  for (int count : seen) EXPECT_EQ(count, 3);  // 30 rows drawn: three epochs
}

// A scripted objective: each step moves w by +1; validation losses are read
// from a list, so the best step and the stop are known in advance.
struct Scripted {
  Parameter w{"w", Matrix{{0.0}}};
  std::vector<Real> val_losses;
  std::size_t calls = 0;
  TrainingObjective objective() {
    TrainingObjective o;
    o.loss_and_gradient = [](const Matrix&, const Matrix&) { return 1.0; };
    o.validation_loss = [this] { return val_losses.at(calls++); };
    return o;
  }
};

class StepByOne : public Optimizer {
 public:
  Real learning_rate() const override { return 1.0; }
  void step(const ParameterList& params, Real) override { params[0]->value(0, 0) += 1.0; }
};

TEST(TrainingLoop, EarlyStoppingRestoresTheBestParameters) {
  Scripted s;
  s.val_losses = {3.0, 2.0, 2.5, 2.6, 2.7, 2.8};
  TrainingOptions options;
  options.steps = 100;
  options.eval_every = 10;
  options.patience = 3;
  StepByOne optimizer;
  Rng rng(0);
  Matrix data = xt::zeros<Real>({4, 1});
  TrainReport report =
      run_training_loop(options, optimizer, {&s.w}, data, {}, s.objective(), true, rng, {});
  EXPECT_TRUE(report.stopped_early);
  EXPECT_EQ(report.steps, 50u);  // evaluations at 10..50; three without gain after step 20
  EXPECT_EQ(report.best_step, 20u);
  EXPECT_EQ(report.best_val_loss, 2.0);
  EXPECT_EQ(s.w.value(0, 0), 20.0);  // the parameters of step 20
  EXPECT_EQ(report.curve.size(), 5u);
}

TEST(TrainingLoop, NonFiniteLossStopsWithANumericalError) {
  Parameter w("w", Matrix{{0.0}});
  TrainingObjective o;
  int step = 0;
  o.loss_and_gradient = [&](const Matrix&, const Matrix&) { return ++step < 5 ? 1.0 : NAN; };
  o.validation_loss = [] { return 1.0; };
  TrainingOptions options;
  options.steps = 10;
  options.eval_every = 2;
  StepByOne optimizer;
  Rng rng(0);
  Matrix data = xt::zeros<Real>({4, 1});
  try {
    run_training_loop(options, optimizer, {&w}, data, {}, o, true, rng, {});
    FAIL();
  } catch (const NumericalError& e) {
    EXPECT_NE(std::string(e.what()).find("step 5"), std::string::npos) << e.what();
  }
  EXPECT_EQ(w.value(0, 0), 2.0);  // restored to the first (best) validated step
}

// Counts its steps and checks that every gradient it gets is finite.
class CountingOptimizer : public Optimizer {
 public:
  Real learning_rate() const override { return 1.0; }
  void step(const ParameterList& params, Real) override {
    ++steps;
    for (const Parameter* p : params)
      for (Real g : p->grad) all_finite = all_finite && std::isfinite(g);
    params[0]->value(0, 0) += 1.0;
  }
  int steps = 0;
  bool all_finite = true;
};

// Issue 15: a NaN gradient with a finite loss passed clipping and reached Adam.
TEST(TrainingLoop, ANonFiniteGradientWithAFiniteLossNeverReachesTheOptimizer) {
  Parameter w("w", Matrix{{0.0}});
  TrainingObjective o;
  int step = 0;
  o.loss_and_gradient = [&](const Matrix&, const Matrix&) {
    w.grad(0, 0) = ++step == 4 ? NAN : 1.0;
    return 1.0;
  };
  o.validation_loss = [] { return 1.0; };
  o.locate_nonfinite = [](const Matrix&, const Matrix&) { return std::string("layer X"); };
  TrainingOptions options;
  options.steps = 10;
  options.eval_every = 0;
  options.clip_grad_norm = 1.0;
  CountingOptimizer optimizer;
  Rng rng(0);
  Matrix data = xt::zeros<Real>({4, 1});
  try {
    run_training_loop(options, optimizer, {&w}, data, {}, o, false, rng, {});
    FAIL();
  } catch (const NonFiniteTrainingError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("step 4: the loss is finite but the gradient is not"), std::string::npos)
        << what;
    EXPECT_NE(what.find("first non-finite value appeared in layer X"), std::string::npos) << what;
    EXPECT_EQ(e.steps_done(), 3u);
  }
  EXPECT_EQ(optimizer.steps, 3);
  EXPECT_TRUE(optimizer.all_finite);
  // Without validation: the parameters of the first finite step, which ran on
  // the starting ones (w = 0), are the last known good.
  EXPECT_EQ(w.value(0, 0), 0.0);
}

// Without validation data the fallback is the first finite step after the
// last evaluation point, not the parameters the failing step ran on.
TEST(TrainingLoop, WithoutValidationTheLastKnownGoodParametersAreKept) {
  Parameter w("w", Matrix{{0.0}});
  TrainingObjective o;
  int step = 0;
  o.loss_and_gradient = [&](const Matrix&, const Matrix&) { return ++step == 8 ? INFINITY : 1.0; };
  TrainingOptions options;
  options.steps = 10;
  options.eval_every = 5;
  CountingOptimizer optimizer;
  Rng rng(0);
  Matrix data = xt::zeros<Real>({4, 1});
  try {
    run_training_loop(options, optimizer, {&w}, data, {}, o, false, rng, {});
    FAIL();
  } catch (const NonFiniteTrainingError& e) {
    EXPECT_NE(std::string(e.what()).find("kept the parameters after step 5"), std::string::npos)
        << e.what();
  }
  EXPECT_EQ(w.value(0, 0), 5.0);  // step 6 ran on the parameters after step 5
}

TEST(TrainingLoop, SkipBatchDropsNonFiniteBatchesAndCountsThem) {
  Parameter w("w", Matrix{{0.0}});
  TrainingObjective o;
  int step = 0;
  o.loss_and_gradient = [&](const Matrix&, const Matrix&) {
    ++step;
    return step == 3 || step == 5 ? NAN : 1.0;
  };
  o.validation_loss = [] { return 1.0; };
  TrainingOptions options;
  options.steps = 10;
  options.eval_every = 5;
  options.on_nonfinite = "skip_batch";
  CountingOptimizer optimizer;
  Rng rng(0);
  Matrix data = xt::zeros<Real>({4, 1});
  const TrainReport report =
      run_training_loop(options, optimizer, {&w}, data, {}, o, true, rng, {});
  EXPECT_EQ(report.steps, 10u);
  EXPECT_EQ(report.skipped_batches, 2u);
  EXPECT_NE(report.first_skipped.find("step 3"), std::string::npos) << report.first_skipped;
  EXPECT_EQ(optimizer.steps, 8);
  EXPECT_EQ(report.curve.front().train_loss, 1.0);  // skipped losses are not averaged in
}

TEST(TrainingLoop, SkipBatchStopsAfterTooManyNonFiniteBatchesInARow) {
  Parameter w("w", Matrix{{0.0}});
  TrainingObjective o;
  int step = 0;
  o.loss_and_gradient = [&](const Matrix&, const Matrix&) { return ++step > 2 ? NAN : 1.0; };
  TrainingOptions options;
  options.steps = 100;
  options.eval_every = 0;
  options.on_nonfinite = "skip_batch";
  CountingOptimizer optimizer;
  Rng rng(0);
  Matrix data = xt::zeros<Real>({4, 1});
  try {
    run_training_loop(options, optimizer, {&w}, data, {}, o, false, rng, {});
    FAIL();
  } catch (const NonFiniteTrainingError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("step " + std::to_string(2 + kMaxSkippedInARow)), std::string::npos)
        << what;
    EXPECT_NE(
        what.find("after " + std::to_string(kMaxSkippedInARow) + " non-finite batches in a row"),
        std::string::npos)
        << what;
  }
  EXPECT_EQ(optimizer.steps, 2);
}

TEST(TrainingOptions, OnNonfiniteIsStopOrSkipBatch) {
  ConfigNode node = ConfigNode::parse("{on_nonfinite: ignore}", "t.yaml");
  TrainingOptions options;
  EXPECT_THROW(options.read_from(node), ConfigError);
}

TEST(TrainingLoop, ProgressIsReportedEveryStep) {
  Scripted s;
  s.val_losses = {1.0, 1.0};
  TrainingOptions options;
  options.steps = 6;
  options.eval_every = 3;
  StepByOne optimizer;
  Rng rng(0);
  Matrix data = xt::zeros<Real>({4, 1});
  std::vector<Index> steps;
  TrainerCallbacks callbacks;
  callbacks.on_progress = [&](const Progress& p) { steps.push_back(p.step); };
  run_training_loop(options, optimizer, {&s.w}, data, {}, s.objective(), true, rng, callbacks);
  EXPECT_EQ(steps, (std::vector<Index>{1, 2, 3, 4, 5, 6}));
}

// The objective gets each batch with its own context rows.
TEST(TrainingLoop, TheObjectiveSeesEachBatchWithItsContext) {
  Parameter w("w", Matrix{{0.0}});
  Matrix data({8, 1});
  Matrix context({8, 2});
  for (Index i = 0; i < 8; ++i) {
    data(i, 0) = static_cast<Real>(i);
    context(i, 0) = 10.0 * static_cast<Real>(i);
    context(i, 1) = -1.0;
  }
  TrainingObjective o;
  int batches = 0;
  bool paired = true;
  o.loss_and_gradient = [&](const Matrix& batch, const Matrix& c) {
    ++batches;
    paired = paired && c.shape(0) == batch.shape(0) && c.shape(1) == 2;
    for (Index i = 0; paired && i < batch.shape(0); ++i)
      paired = c(i, 0) == 10.0 * batch(i, 0) && c(i, 1) == -1.0;
    return 1.0;
  };
  o.validation_loss = [] { return 1.0; };
  TrainingOptions options;
  options.steps = 6;
  options.batch_size = 3;
  options.eval_every = 3;
  StepByOne optimizer;
  Rng rng(2);
  run_training_loop(options, optimizer, {&w}, data, context, o, true, rng, {});
  EXPECT_EQ(batches, 6);
  EXPECT_TRUE(paired);
}

TEST(MleTrainer, FitsAGaussianWithADiagonalNormalBase) {
  Registry registry;
  register_builtins(registry);
  Rng data_rng(11);
  Matrix data = data_rng.normal(4000, 2);
  for (Index i = 0; i < data.shape(0); ++i) {
    data(i, 0) = 2.0 + 0.5 * data(i, 0);
    data(i, 1) = -1.0 + 3.0 * data(i, 1);
  }
  auto base = std::make_shared<DiagonalNormal>(2);
  Flow flow(base, {});
  ConfigNode node = ConfigNode::parse(
      "{type: mle, steps: 1500, batch_size: 256, eval_every: 500, optimizer: {type: adam, lr: "
      "0.02}}",
      "t.yaml");
  auto trainer = registry.make<Trainer>(node, BuildContext{2, 0, 0, &registry});
  Rng rng(3);
  DataSplits splits;
  splits.train = data;
  splits.val = xt::zeros<Real>({0, 2});  // no validation
  TrainReport report = trainer->train(flow, splits, rng, {});
  EXPECT_EQ(report.steps, 1500u);
  ParameterList p = flow.parameters();
  EXPECT_NEAR(p[0]->value(0, 0), 2.0, 0.05);
  EXPECT_NEAR(p[0]->value(0, 1), -1.0, 0.2);
  EXPECT_NEAR(std::exp(p[1]->value(0, 0)), 0.5, 0.03);
  EXPECT_NEAR(std::exp(p[1]->value(0, 1)), 3.0, 0.15);
}

}  // namespace
}  // namespace flows
