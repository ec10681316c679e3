// Numerical guards in training (issue 15, item 4): a diverging run stops
// with the step, the bijector where the first non-finite value appeared and
// the rows it hit, keeps the last good parameters and, with a `save` stage,
// writes them as a usable checkpoint.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>

#include "flows/checkpoint.hpp"
#include "flows/error.hpp"
#include "flows/pipeline.hpp"
#include "flows/training_loop.hpp"
#include "json_support.hpp"
#include "runner_support.hpp"

namespace flows {
namespace {

namespace fs = std::filesystem;
using test_support::read_file;
using test_support::run_logged;
using test_support::temp_dir;

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// A tiny MAF with a learning rate that overflows its network at the second
// step (Adam moves every weight by about lr at the first).
std::string diverging(const fs::path& dir, const std::string& stages = "[train, save]") {
  return "name: diverge\nseed: 1\noutput: " + (dir / "run").string() +
         "\n"
         "data: {type: moons, n_train: 1000, n_val: 100, n_test: 100}\n"
         "model:\n"
         "  bijectors:\n"
         "    - {type: maf, layers: 2, hidden: [8, 8]}\n"
         "trainer: {type: mle, batch_size: 128, steps: 100, eval_every: 20,\n"
         "          optimizer: {type: adam, lr: 1.0e150}}\n"
         "stages: " +
         stages + "\n";
}

fs::path write(const fs::path& dir, const std::string& yaml) {
  std::ofstream(dir / "pipeline.yaml") << yaml;
  return dir / "pipeline.yaml";
}

TEST(NonFiniteTraining, AHugeLearningRateStopsNamingTheStepAndTheBijector) {
  const fs::path dir = temp_dir("nonfinite_pipeline");
  Pipeline p = Pipeline::load(write(dir, diverging(dir)).string());
  const std::vector<Matrix> start = [&] {
    std::vector<Matrix> v;
    for (const Parameter* q : p.model.flow->parameters()) v.push_back(q->value);
    return v;
  }();
  try {
    p.train({});
    FAIL() << "training did not stop";
  } catch (const NonFiniteTrainingError& e) {
    const std::string what = e.what();
    EXPECT_TRUE(contains(what, "training stopped at step 2")) << what;
    EXPECT_TRUE(contains(what, "bijectors[0] (maf), forward pass, in ")) << what;
    EXPECT_TRUE(contains(what, " of 128 rows")) << what;
    EXPECT_TRUE(contains(what, "kept the parameters training started from")) << what;
  }
  // No validation happened before the failure: the starting parameters, which
  // score the data.
  std::vector<Matrix> now;
  for (const Parameter* q : p.model.flow->parameters()) now.push_back(q->value);
  EXPECT_EQ(now, start);
  const Vector lp = p.model.flow->log_prob(p.data.test);
  for (Real v : lp) ASSERT_TRUE(std::isfinite(v));
}

// The runner exits non-zero with the message, and the save stage still
// writes the kept parameters as a checkpoint that loads and scores.
TEST(NonFiniteTraining, TheRunnerSavesTheKeptParameters) {
  const fs::path dir = temp_dir("nonfinite_runner");
  const fs::path file = write(dir, diverging(dir));
  const int code = run_logged(std::string(FLOWS_RUNNER) + " run " + file.string(), dir / "log");
  const std::string log = read_file(dir / "log");
  EXPECT_NE(code, 0) << log;
  EXPECT_TRUE(contains(log, "bijectors[0] (maf)")) << log;
  ASSERT_TRUE(fs::exists(dir / "run" / "model.flows")) << log;
  const LoadedModel m = load_model((dir / "run" / "model.flows").string());
  Pipeline p = Pipeline::load(file.string());
  for (Real v : m.model.flow->log_prob(p.data.test)) ASSERT_TRUE(std::isfinite(v));
}

// Without a save stage no checkpoint appears.
TEST(NonFiniteTraining, WithoutASaveStageNothingIsWritten) {
  const fs::path dir = temp_dir("nonfinite_nosave");
  const fs::path file = write(dir, diverging(dir, "[train]"));
  EXPECT_NE(run_logged(std::string(FLOWS_RUNNER) + " run " + file.string(), dir / "log"), 0);
  EXPECT_FALSE(fs::exists(dir / "run" / "model.flows"));
}

// metrics.json counts skipped batches (none here) and the training threads.
TEST(NonFiniteTraining, MetricsCountSkippedBatches) {
  const fs::path dir = temp_dir("nonfinite_metrics");
  std::string yaml = diverging(dir, "[train]");
  yaml.replace(yaml.find("lr: 1.0e150"), 11, "lr: 1.0e-3");
  yaml.replace(yaml.find("steps: 100"), 10, "steps: 5");
  yaml.replace(yaml.find("eval_every: 20,"), 15, "eval_every: 20, on_nonfinite: skip_batch,");
  const fs::path file = write(dir, yaml);
  ASSERT_EQ(run_logged(std::string(FLOWS_RUNNER) + " run " + file.string(), dir / "log"), 0)
      << read_file(dir / "log");
  const nlohmann::json metrics = test_support::read_json(dir / "run" / "metrics.json");
  EXPECT_EQ(test_support::json_number(metrics, "/skipped_batches"), 0.0) << metrics;
  EXPECT_GE(test_support::json_number(metrics, "/train_threads"), 1.0) << metrics;
}

// Flow::find_nonfinite names the layer by its place in model.bijectors (the
// data standardization in front does not count) and the rows it hit, and
// leaves the parameters as they were.
TEST(NonFiniteTraining, FindNonFiniteNamesTheFirstBadLayerAndItsRows) {
  const fs::path dir = temp_dir("nonfinite_find");
  std::string yaml = diverging(dir);
  yaml.replace(yaml.find("    - {type: maf"), 0,
               "    - {type: maf, layers: 1, hidden: [4]}\n");  // bijectors[0]
  Pipeline p = Pipeline::load(write(dir, yaml).string());
  Flow& flow = *p.model.flow;
  ASSERT_EQ(flow.data_layers(), 1u);
  const Matrix batch = xt::view(p.data.train, xt::range(0, 40), xt::all());
  EXPECT_EQ(flow.find_nonfinite(batch).what, "");
  // NaN parameters in bijectors[1] (its output biases too, so no activation
  // can mask them): every row turns NaN there.
  for (Parameter* q : flow.chain()[2]->parameters())
    std::fill(q->value.begin(), q->value.end(), NAN);
  const std::vector<Matrix> before = [&] {
    std::vector<Matrix> v;
    for (const Parameter* q : flow.parameters()) v.push_back(q->value);
    return v;
  }();
  const Flow::NonFinite found = flow.find_nonfinite(batch);
  EXPECT_EQ(found.what, "bijectors[1] (maf), forward pass");
  EXPECT_EQ(found.rows, 40u);
  const ParameterList after = flow.parameters();
  for (std::size_t k = 0; k < after.size(); ++k) {
    const Matrix& a = after[k]->value;
    const Matrix& b = before[k];
    for (Index i = 0; i < a.size(); ++i)
      ASSERT_TRUE(a.flat(i) == b.flat(i) || (std::isnan(a.flat(i)) && std::isnan(b.flat(i))));
  }
}

}  // namespace
}  // namespace flows
