// Training on several threads (issue 12): row blocks of each mini-batch on
// flow replicas give the parameters one thread gives, up to summation order;
// the same thread count gives the same bits; batch_norm keeps one thread;
// the pipeline's `threads:` key.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <fstream>

#include "flows/data_parallel.hpp"
#include "flows/error.hpp"
#include "flows/pipeline.hpp"
#include "flows/threads.hpp"
#include "runner_support.hpp"

namespace flows {
namespace {

namespace fs = std::filesystem;
using test_support::temp_dir;

// FLOWS_NUM_THREADS = value (nullptr: unset) for one scope.
struct ScopedThreadsEnv : test_support::ScopedEnv {
  explicit ScopedThreadsEnv(const char* value) : ScopedEnv("FLOWS_NUM_THREADS", value) {}
};

struct Trained {
  std::vector<Matrix> values;  // every parameter of the flow, in order
  TrainReport report;
};

// Loads `yaml` and trains it with FLOWS_NUM_THREADS = threads.
Trained train(const std::string& name, const std::string& yaml, const char* threads) {
  ScopedThreadsEnv env(threads);
  const fs::path dir = temp_dir("parallel_" + name);
  const fs::path file = dir / "pipeline.yaml";
  std::ofstream(file) << yaml;
  Pipeline p = Pipeline::load(file.string());
  Trained t;
  t.report = p.train({});
  for (const Parameter* param : p.model.flow->parameters()) t.values.push_back(param->value);
  set_thread_count(0);  // a `threads:` key must not leak into other tests
  return t;
}

// Summation order only: the parameters agree to 1e-10 of their size.
void expect_close(const Trained& a, const Trained& b) {
  ASSERT_EQ(a.values.size(), b.values.size());
  for (std::size_t k = 0; k < a.values.size(); ++k)
    for (Index i = 0; i < a.values[k].size(); ++i) {
      const Real x = a.values[k].flat(i), y = b.values[k].flat(i);
      ASSERT_NEAR(x, y, 1e-10 * std::max<Real>(1, std::abs(x)))
          << "parameter " << k << "[" << i << "]";
    }
}

const char* kMoons = "{type: moons, n_train: 2000, n_val: 200, n_test: 100}";

// float64 networks by default: a comparison of summation order, not of
// precision (float32 would differ by its rounding).
std::string maf_pipeline(const std::string& bijectors, const std::string& data = kMoons,
                         const std::string& precision = "float64") {
  return "seed: 4\n"
         "data: " +
         data +
         "\n"
         "model:\n"
         "  precision: " +
         precision +
         "\n"
         "  bijectors: " +
         bijectors +
         "\n"
         "trainer: {type: mle, batch_size: 256, steps: 30, eval_every: 10,\n"
         "          optimizer: {type: adam, lr: 3.0e-3}}\n"
         "stages: [train]\n";
}

const char* kMaf = "[{type: maf, layers: 2, hidden: [16, 16]}]";

TEST(ParallelTraining, TwoThreadsGiveOneThreadsParametersUpToSummationOrder) {
  const Trained one = train("maf1", maf_pipeline(kMaf), "1");
  const Trained two = train("maf2", maf_pipeline(kMaf), "2");
  EXPECT_EQ(one.report.threads, 1u);
  EXPECT_EQ(two.report.threads, 2u);
  expect_close(one, two);
  // Training moved the parameters, so the comparison says something.
  const Trained untrained = train(
      "maf0",
      [] {
        std::string y = maf_pipeline(kMaf);
        return y.replace(y.find("steps: 30"), 9, "steps: 1");
      }(),
      "1");
  EXPECT_NE(untrained.values, one.values);
}

// In float32 too (the default precision of a pipeline).
TEST(ParallelTraining, TheSameThreadCountGivesTheSameBits) {
  const Trained a = train("bits_a", maf_pipeline(kMaf, kMoons, "float32"), "2");
  const Trained b = train("bits_b", maf_pipeline(kMaf, kMoons, "float32"), "2");
  EXPECT_EQ(a.report.threads, 2u);
  EXPECT_EQ(a.values, b.values);
  EXPECT_EQ(a.report.curve.back().val_loss, b.report.curve.back().val_loss);
}

// A conditional flow with a context embedding: the encoder's gradient comes
// from every block as well.
TEST(ParallelTraining, AConditionalFlowWithAnEmbeddingAgreesToo) {
  const std::string data =
      "{type: conditional_gaussian, n_train: 1000, n_val: 100, n_test: 100, context_dim: 3}";
  std::string yaml = maf_pipeline(kMaf, data);
  yaml.replace(yaml.find("  bijectors:"), 0, "  context_embedding: {hidden: [8], features: 4}\n");
  const Trained one = train("cond1", yaml, "1");
  const Trained two = train("cond2", yaml, "2");
  EXPECT_EQ(two.report.threads, 2u);
  expect_close(one, two);
}

// batch_norm's statistics are over the whole batch: it trains on one thread,
// bit for bit as one thread does.
TEST(ParallelTraining, BatchNormKeepsOneThread) {
  const std::string chain =
      "[{type: maf, layers: 1, hidden: [8]}, {type: batch_norm}, {type: maf, layers: 1, hidden: "
      "[8]}]";
  const Trained one = train("bn1", maf_pipeline(chain), "1");
  const Trained two = train("bn2", maf_pipeline(chain), "2");
  EXPECT_EQ(two.report.threads, 1u);
  EXPECT_EQ(one.values, two.values);
}

// actnorm initialises from the whole first batch (on one thread), and trains
// on row blocks afterwards.
TEST(ParallelTraining, ActNormInitialisesOnTheWholeFirstBatch) {
  const std::string chain = "[{type: actnorm}, {type: maf, layers: 1, hidden: [8]}]";
  const Trained one = train("an1", maf_pipeline(chain), "1");
  const Trained two = train("an2", maf_pipeline(chain), "2");
  EXPECT_EQ(two.report.threads, 2u);
  expect_close(one, two);
}

TEST(ParallelTraining, ThePipelinesThreadsKeySetsTheCount) {
  std::string yaml = "threads: 2\n" + maf_pipeline(kMaf);
  EXPECT_EQ(train("key2", yaml, nullptr).report.threads, 2u);
  // FLOWS_NUM_THREADS outranks it.
  EXPECT_EQ(train("key1", yaml, "1").report.threads, 1u);
  const fs::path dir = temp_dir("parallel_key0");
  std::ofstream(dir / "pipeline.yaml") << "threads: 0\n" + maf_pipeline(kMaf);
  try {
    Pipeline::load((dir / "pipeline.yaml").string());
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("threads"), std::string::npos) << e.what();
  }
}

// A batch too small for two blocks of kMinRowsPerTrainingBlock rows.
TEST(ParallelTraining, SmallBatchesTrainOnOneThread) {
  std::string yaml = maf_pipeline(kMaf);
  yaml.replace(yaml.find("batch_size: 256"), 15, "batch_size: 100");
  EXPECT_EQ(train("small", yaml, "2").report.threads, 1u);
}

// Flow::nll_gradient on two row blocks with total_rows adds up to the
// whole batch's loss and gradient.
TEST(ParallelTraining, RowBlockSharesAddUpToTheMean) {
  const fs::path dir = temp_dir("parallel_shares");
  std::ofstream(dir / "pipeline.yaml") << maf_pipeline(kMaf);
  Pipeline p = Pipeline::load((dir / "pipeline.yaml").string());
  Flow& flow = *p.model.flow;
  const Matrix batch = xt::view(p.data.train, xt::range(0, 50), xt::all());
  const ParameterList params = flow.parameters();
  zero_grad(params);
  const Real whole = flow.nll_gradient(batch, {});
  std::vector<Matrix> expected;
  for (const Parameter* q : params) expected.push_back(q->grad);
  zero_grad(params);
  Matrix a, b;
  const Real shares = flow.nll_gradient(copy_rows(batch, 0, 20, a), {}, 50) +
                      flow.nll_gradient(copy_rows(batch, 20, 50, b), {}, 50);
  EXPECT_NEAR(whole, shares, 1e-12 * std::abs(whole));
  for (std::size_t k = 0; k < params.size(); ++k)
    for (Index i = 0; i < expected[k].size(); ++i)
      ASSERT_NEAR(params[k]->grad.flat(i), expected[k].flat(i), 1e-12) << params[k]->name;
}

// DataParallel alone: block b adds b + 1 to every gradient of its model, so
// the master ends each step with 1 + 2 = 3 everywhere, whatever its
// gradients held before (run writes over them), step after step (the
// replica's gradients are zeroed by the reduction that reads them), and
// also after a step cut short by an error with the replica's gradients
// written.
TEST(ParallelTraining, EveryStepReducesTheReplicasOwnGradientOnly) {
  Parameter master_w("w", Matrix({3, 70}, 0.5)), master_b("b", Matrix({1, 5}, -1.0));
  Parameter replica_w("w", Matrix({3, 70}, 0.0)), replica_b("b", Matrix({1, 5}, 0.0));
  const ParameterList master{&master_w, &master_b}, replica{&replica_w, &replica_b};
  DataParallel parallel(master, {replica});
  ASSERT_EQ(parallel.threads(), 2u);
  bool fail = false;
  auto gradient = [&](Index b, Index begin, Index end) {
    const ParameterList& model = b == 0 ? master : replica;
    for (Parameter* p : model)
      for (Real& g : p->grad) g += static_cast<Real>(b + 1);
    if (fail && b == 1) throw Error("block 1 fails");
    return static_cast<Real>(end - begin);
  };
  for (int step = 0; step < 4; ++step) {
    fail = step == 2;
    for (Parameter* p : master) p->grad.fill(7.0);  // last step's, say
    if (fail) {
      EXPECT_THROW(parallel.run(2 * kMinRowsPerTrainingBlock, gradient), Error);
      continue;
    }
    EXPECT_EQ(parallel.run(2 * kMinRowsPerTrainingBlock, gradient),
              static_cast<Real>(2 * kMinRowsPerTrainingBlock));
    for (const Parameter* p : master)
      for (Real g : p->grad) ASSERT_EQ(g, 3.0) << p->name << " at step " << step;
    for (const Parameter* p : replica)
      for (Real g : p->grad) ASSERT_EQ(g, 0.0) << p->name << " at step " << step;
    EXPECT_EQ(replica_w.value, master_w.value);  // the master's values, copied
  }
}

}  // namespace
}  // namespace flows
