// Dequantization and bits per dimension (issue 16): integer checks, the noise
// hook of the training loop, the bound against a known entropy (and a
// continuous model that goes below it, caught by the same check), the new
// data sets, and the settings through checkpoints and `flows info`.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>

#include "flows/checkpoint.hpp"
#include "flows/data/dequantize.hpp"
#include "flows/data/discrete.hpp"
#include "flows/gaussian_mixture.hpp"
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

TEST(Dequantizer, RefusesANonIntegerColumnByName) {
  Dequantizer d(3, {0, 2}, 1, {"a", "b", "c"});
  EXPECT_NO_THROW(d.check_integer(Matrix{{1, 0.5, 3}, {-2, 0.7, 0}}, "the train split"));
  try {
    d.check_integer(Matrix{{1, 0.5, 3}, {2, 0.5, 4.25}}, "the train split");
    ADD_FAILURE() << "4.25 was accepted";
  } catch (const DataError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("the train split: row 2, column 'c' is 4.25, not an integer"),
              std::string::npos)
        << what;
  }
}

TEST(Dequantizer, AddsFreshUnitNoiseOnlyToItsColumnsAndQuantizesBack) {
  Dequantizer d(2, {1});
  Rng rng(4);
  const Matrix x = {{0.3, 2}, {0.6, -1}};
  const Matrix a = d.dequantized(x, rng), b = d.dequantized(x, rng);
  for (Index i = 0; i < 2; ++i) {
    EXPECT_EQ(a(i, 0), x(i, 0));
    EXPECT_GT(a(i, 1), x(i, 1));
    EXPECT_LT(a(i, 1), x(i, 1) + 1);
    EXPECT_NE(a(i, 1), b(i, 1));  // a new draw each time
  }
  const Matrix q = d.quantize(a);
  EXPECT_EQ(q(0, 1), 2);
  EXPECT_EQ(q(1, 1), -1);
  EXPECT_EQ(q(0, 0), 0.3);  // continuous columns are left as they are
  // x = hi (the closed end of a bounded sample) belongs to the last bin.
  EXPECT_EQ(d.quantize(Matrix{{0, 10.0}}, {INFINITY, 10.0})(0, 1), 9);
}

TEST(Dequantizer, BitsPerDimensionIsLabelled) {
  const BitsPerDim continuous = bits_per_dim(2.0, Dequantizer(), 2);
  EXPECT_NEAR(continuous.value, 2.0 / (2 * std::log(2.0)), 1e-12);
  EXPECT_EQ(continuous.kind, "continuous density");
  const BitsPerDim bound = bits_per_dim(2.0, Dequantizer(2, {0, 1}), 2);
  EXPECT_NEAR(bound.value, 2.0 / (2 * std::log(2.0)), 1e-12);  // bin width 1: log w = 0
  EXPECT_EQ(bound.kind, "dequantized bound");
  EXPECT_EQ(bits_per_dim(2.0, Dequantizer(2, {1}), 2).kind, "partly dequantized bound");
}

// The training loop hands the objective the batch after prepare_batch, with
// fresh noise every step, and leaves the training rows unchanged.
TEST(Dequantizer, TrainingLoopHookGivesEveryBatchFreshNoise) {
  const Matrix train = {{1, 2}, {3, 4}, {5, 6}, {7, 8}};
  Parameter theta("theta", xt::zeros<Real>({Index{1}, Index{1}}));
  TrainingOptions options;
  options.steps = 6;
  options.batch_size = 4;
  options.eval_every = 0;
  std::vector<Matrix> seen;
  TrainingObjective objective;
  objective.loss_and_gradient = [&](const Matrix& batch, const Matrix&) {
    seen.push_back(batch);
    return 0.0;
  };
  objective.validation_loss = [] { return 0.0; };
  Registry registry;
  register_builtins(registry);
  ConfigNode sgd = ConfigNode::parse("{type: sgd, lr: 0.1}", "test");
  auto optimizer = registry.make<Optimizer>(sgd, BuildContext{0, 0, 0, &registry});
  Dequantizer d(2, {0, 1});
  Rng noise(8);
  TrainerCallbacks callbacks;
  callbacks.prepare_batch = [&](Matrix& batch) { d.add_noise(batch, noise); };
  Rng rng(1);
  run_training_loop(options, *optimizer, {&theta}, train, {}, objective, false, rng, callbacks);
  ASSERT_EQ(seen.size(), 6u);
  std::set<Real> values;
  for (const Matrix& b : seen)
    for (Real v : b) {
      EXPECT_NE(v, std::floor(v)) << "an integer reached the objective";
      values.insert(v);
    }
  EXPECT_EQ(values.size(), 6u * 8u) << "noise repeated between batches";
  EXPECT_EQ(train(0, 0), 1);
}

// A pipeline file in a temporary folder.
fs::path write_pipeline(const fs::path& dir, const std::string& name, const std::string& body) {
  const fs::path file = dir / (name + ".yaml");
  std::ofstream(file) << "name: " << name << "\noutput: " << (dir / name).string() << "\n" << body;
  return file;
}

// −log P(x) of each row under the product of binomials.
Vector binomial_nll(const Matrix& x, const std::vector<Index>& trials,
                    const std::vector<Real>& probs) {
  Vector out = xt::zeros<Real>({x.shape(0)});
  for (Index i = 0; i < x.shape(0); ++i)
    for (std::size_t j = 0; j < trials.size(); ++j) {
      const Real n = trials[j], k = x(i, j), p = probs[j];
      out(i) -= std::lgamma(n + 1) - std::lgamma(k + 1) - std::lgamma(n - k + 1) + k * std::log(p) +
                (n - k) * std::log1p(-p);
    }
  return out;
}

// The check the bound must pass: on the same test rows, the model's
// −log P̂(x) minus the true −log P(x) estimates KL(P || Q̂) ≥ 0 (an upper
// bound cannot beat the truth); its mean must not be below 0 by more than 3
// standard errors of the paired difference. Returns the mean gap in bits per
// dimension and sets `valid`.
Real bound_gap(const Vector& model_nll, const Vector& true_nll, Index dim, bool& valid) {
  const Index n = model_nll.size();
  Real mean = 0;
  for (Index i = 0; i < n; ++i) mean += model_nll(i) - true_nll(i);
  mean /= n;
  Real squares = 0;
  for (Index i = 0; i < n; ++i) {
    const Real d = model_nll(i) - true_nll(i) - mean;
    squares += d * d;
  }
  const Real se = std::sqrt(squares / (n - 1) / n);
  valid = mean >= -3 * se;
  return mean / (dim * std::log(2.0));
}

struct BoundRun {
  Real bits = 0;          // the model's bits/dim on the test split
  Real entropy_bits = 0;  // H / (D ln 2)
  Real gap_bits = 0;      // mean paired gap, bits/dim
  bool valid = false;
};

BoundRun run_binomials(const fs::path& dir, const std::string& name, const std::string& trials,
                       const std::string& probs, const std::vector<Index>& t,
                       const std::vector<Real>& p, const std::string& dequantize) {
  const fs::path file = write_pipeline(
      dir, name,
      "seed: 1\ndata: {type: binomials, n_train: 5000, n_val: 1000, n_test: 5000, trials: " +
          trials + ", probs: " + probs + dequantize +
          "}\nmodel:\n  bijectors:\n    - {type: autoregressive, layers: 3, hidden: [32, 32]}\n"
          "trainer: {type: mle, optimizer: {type: adam, lr: 2.0e-3}, batch_size: 256, steps: "
          "800, eval_every: 100}\n");
  Pipeline pipeline = Pipeline::load(file.string());
  pipeline.train({});
  Rng rng = pipeline.eval_rng(2);
  const Vector nll = pipeline.dequantize.nll(*pipeline.model.flow, pipeline.data.test, {}, rng);
  BoundRun r;
  Real mean = 0;
  for (Real v : nll) mean += v;
  mean /= nll.size();
  r.bits = bits_per_dim(mean, pipeline.dequantize, 2).value;
  EXPECT_NEAR(mean, pipeline.split_nll(2), 1e-9) << "split_nll draws other noise";
  r.entropy_bits = binomials_entropy(t, p) / (2 * std::log(2.0));
  r.gap_bits = bound_gap(nll, binomial_nll(pipeline.data.test, t, p), 2, r.valid);
  return r;
}

// Binomial(16, 0.5) × Binomial(24, 0.3): H = 4.3362 nats = 3.1279 bits/dim.
// The dequantized bound (8 draws per row) is above it and, after 800 steps,
// within 0.05 bits/dim (measured: 3.1395).
TEST(DequantizedBound, IsAboveTheEntropyAndCloseToItAfterTraining) {
  const fs::path dir = temp_dir("dequantized_bound");
  const BoundRun r = run_binomials(dir, "wide", "[16, 24]", "[0.5, 0.3]", {16, 24}, {0.5, 0.3},
                                   ", dequantize: uniform, dequantize_samples: 8");
  EXPECT_NEAR(r.entropy_bits, 3.1279106500, 1e-9);
  EXPECT_TRUE(r.valid) << "the bound " << r.bits << " went below the entropy " << r.entropy_bits;
  EXPECT_GE(r.bits, r.entropy_bits - 0.02);
  EXPECT_LT(r.bits, r.entropy_bits + 0.05);
  EXPECT_LT(r.gap_bits, 0.05);
}

// Binomial(3, 0.3) × Binomial(5, 0.6), H = 1.9033 bits/dim. Dequantized, the
// model stays above it (a smooth flow pays ~0.12 bits/dim for the steps of
// the dequantized density); a continuous model of the raw integers piles
// density onto the points and goes far below it, and the check says so.
TEST(DequantizedBound, AContinuousModelWithoutDequantizationGoesBelowAndIsCaught) {
  const fs::path dir = temp_dir("dequantized_below");
  const BoundRun bound = run_binomials(dir, "narrow", "[3, 5]", "[0.3, 0.6]", {3, 5}, {0.3, 0.6},
                                       ", dequantize: uniform");
  EXPECT_NEAR(bound.entropy_bits, 1.9032504360, 1e-9);
  EXPECT_TRUE(bound.valid);
  EXPECT_GE(bound.bits, bound.entropy_bits);
  EXPECT_LT(bound.bits, bound.entropy_bits + 0.2);
  const BoundRun raw = run_binomials(dir, "raw", "[3, 5]", "[0.3, 0.6]", {3, 5}, {0.3, 0.6}, "");
  EXPECT_LT(raw.bits, raw.entropy_bits - 0.5) << "the continuous model did not go below H";
  EXPECT_FALSE(raw.valid) << "the check did not catch a value below the entropy";
}

TEST(DiscreteData, KnownEntropiesAndIntegerRows) {
  // Binomial(1, p) is a Bernoulli: H = −p log p − (1−p) log(1−p).
  EXPECT_NEAR(binomials_entropy({1}, {0.25}), -(0.25 * std::log(0.25) + 0.75 * std::log(0.75)),
              1e-12);
  // The quantized mixture's mass sums to 1; its entropy is the config's 4.9405 nats.
  Real total = 0;
  for (long a = -30; a <= 40; ++a)
    for (long b = -30; b <= 40; ++b) total += quantized_gaussians_pmf(a, b, 1.5);
  EXPECT_NEAR(total, 1.0, 1e-12);
  EXPECT_NEAR(quantized_gaussians_entropy(1.5), 4.940484818, 1e-8);
  // Empirical frequencies match the mass function.
  DiscreteDatasetOptions o;
  DiscreteDataset data("quantized_gaussians", o);
  Rng rng(2);
  const Matrix x = data.draw(200000, rng);
  Index at = 0;
  for (Index i = 0; i < x.shape(0); ++i) {
    ASSERT_EQ(x(i, 0), std::floor(x(i, 0)));
    at += x(i, 0) == 2 && x(i, 1) == 8;
  }
  const Real p = quantized_gaussians_pmf(2, 8, 1.5);
  EXPECT_NEAR(static_cast<Real>(at) / x.shape(0), p, 5 * std::sqrt(p * (1 - p) / x.shape(0)));
  DiscreteDataset box("unit_box", o);
  const Matrix u = box.draw(100000, rng);
  for (Real v : u) ASSERT_TRUE(v > 0 && v < 1);
}

TEST(DequantizePipeline, RefusesNonIntegerColumnsAndUnknownNames) {
  const fs::path dir = temp_dir("dequantize_refuse");
  {
    std::ofstream csv(dir / "mixed.csv");
    csv << "count,level\n";
    for (int i = 0; i < 30; ++i) csv << i % 4 << "," << 0.5 + i << "\n";
  }
  const std::string data = "data: {type: csv, path: mixed.csv, ";
  const std::string rest = "}\nmodel: {bijectors: [{type: affine}]}\ntrainer: {steps: 2}\n";
  EXPECT_NO_THROW(
      Pipeline::load(write_pipeline(dir, "one", data + "dequantize: [count]" + rest).string()));
  try {
    Pipeline::load(write_pipeline(dir, "all", data + "dequantize: uniform" + rest).string());
    ADD_FAILURE() << "a non-integer column was dequantized";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("column 'level' is"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("not an integer"), std::string::npos) << e.what();
  }
  try {
    Pipeline::load(write_pipeline(dir, "typo", data + "dequantize: [cuont]" + rest).string());
    ADD_FAILURE() << "an unknown column was accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("no column 'cuont'"), std::string::npos) << e.what();
  }
  EXPECT_THROW(
      Pipeline::load(
          write_pipeline(dir, "q", data + "shuffle: true" + rest + "sample: {quantize: true}\n")
              .string()),
      ConfigError);
}

// The dequantization settings, the bounds and the mixture survive a
// checkpoint, `flows info` shows them, and `flows evaluate --bits-per-dim`
// gives the dequantized bound.
TEST(DequantizePipeline, SettingsRoundTripThroughCheckpointsAndInfo) {
  const fs::path dir = temp_dir("dequantize_checkpoint");
  const fs::path file = write_pipeline(
      dir, "saved",
      "data: {type: binomials, n_train: 500, n_val: 100, n_test: 300, trials: [6, 9], probs: "
      "[0.5, 0.4], dequantize: [x2], dequantize_samples: 3}\n"
      "model:\n  bounds: {x1: [0, 7], x2: [0, null]}\n  base: {type: gaussian_mixture, "
      "components: 3}\n  bijectors: [{type: affine}]\n"
      "trainer: {steps: 30}\nsample: {quantize: true}\n"
      "stages: [train, evaluate, sample, save]\n");
  // x1 is not dequantized: it must lie strictly inside [0, 7]; 0 occurs, so
  // the pipeline refuses it, naming the column.
  try {
    Pipeline::load(file.string());
    ADD_FAILURE() << "x1 = 0 on the lower end was accepted";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("column 'x1'"), std::string::npos) << e.what();
  }
  const fs::path fixed = write_pipeline(
      dir, "saved",
      "data: {type: binomials, n_train: 500, n_val: 100, n_test: 300, trials: [6, 9], probs: "
      "[0.5, 0.4], dequantize: [x1, x2], dequantize_samples: 3}\n"
      "model:\n  bounds: {x1: [0, 7], x2: [0, null]}\n  base: {type: gaussian_mixture, "
      "components: 3}\n  bijectors: [{type: affine}]\n"
      "trainer: {steps: 30}\nsample: {quantize: true}\n"
      "stages: [train, evaluate, sample, save]\n");
  const fs::path log = dir / "run.log";
  ASSERT_EQ(run_logged(std::string(FLOWS_RUNNER) + " run " + fixed.string(), log), 0)
      << read_file(log);
  const fs::path out = dir / "saved";
  const nlohmann::json metrics = test_support::read_json(out / "metrics.json");
  EXPECT_EQ(test_support::json_text(metrics, "/bits_per_dim/kind"), "dequantized bound") << metrics;
  // Samples are integers inside the bounds.
  const std::string samples = read_file(out / "samples.csv");
  EXPECT_EQ(samples.find('.'), std::string::npos) << samples.substr(0, 200);

  const LoadedModel loaded = load_model((out / "model.flows").string());
  EXPECT_EQ(loaded.info.dequantized, (std::vector<Index>{0, 1}));
  EXPECT_EQ(loaded.info.dequantize_samples, 3u);
  ASSERT_TRUE(loaded.model.bounds);
  EXPECT_EQ(loaded.model.bounds->describe(), "x1 in [0, 7], x2 in [0, inf)");
  EXPECT_EQ(loaded.model.flow->chain()[0].get(), loaded.model.bounds.get());
  auto* mixture = dynamic_cast<GaussianMixture*>(&loaded.model.flow->base());
  ASSERT_NE(mixture, nullptr);
  EXPECT_EQ(mixture->components(), 3u);
  // The restored model scores as the trained one did.
  Pipeline again = Pipeline::load(fixed.string());
  const Real test_nll = test_support::json_number(metrics, "/nll/test");
  Rng rng = again.eval_rng(2);
  EXPECT_NEAR(loaded.dequantizer().mean_nll(*loaded.model.flow, again.data.test, {}, rng), test_nll,
              1e-9);

  ASSERT_EQ(run_logged(std::string(FLOWS_RUNNER) + " info " + (out / "model.flows").string(),
                       dir / "info.log"),
            0);
  const std::string info = read_file(dir / "info.log");
  EXPECT_NE(info.find("dequantized:    columns x1, x2 with U(0, 1) noise"), std::string::npos)
      << info;
  EXPECT_NE(info.find("3 draws per row"), std::string::npos) << info;
  EXPECT_NE(info.find("bounds:         x1 in [0, 7], x2 in [0, inf)"), std::string::npos) << info;
  EXPECT_NE(info.find("gaussian_mixture, 3 components"), std::string::npos) << info;

  // evaluate --bits-per-dim on the test rows: the dequantized bound, labelled.
  {
    std::ofstream csv(dir / "test.csv");
    csv << "x1,x2\n";
    for (Index i = 0; i < again.data.test.shape(0); ++i)
      csv << again.data.test(i, 0) << "," << again.data.test(i, 1) << "\n";
  }
  ASSERT_EQ(run_logged(std::string(FLOWS_RUNNER) + " evaluate " + (out / "model.flows").string() +
                           " " + (dir / "test.csv").string() + " --bits-per-dim --json",
                       dir / "eval.log"),
            0)
      << read_file(dir / "eval.log");
  const nlohmann::json eval = test_support::parse_json(read_file(dir / "eval.log"));
  EXPECT_EQ(test_support::json_text(eval, "/bits_per_dim_kind"), "dequantized bound") << eval;
  EXPECT_NEAR(test_support::json_number(eval, "/nll"), test_nll, 1e-6) << eval;
}

}  // namespace
}  // namespace flows
