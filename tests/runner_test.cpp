// End-to-end tests of the `flows` runner binary.
#include <gtest/gtest.h>

#include "json_support.hpp"
#include "runner_support.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <sys/wait.h>
#include <unistd.h>

namespace {

namespace fs = std::filesystem;
using namespace flows::test_support;

struct Result {
  int code;
  std::string output;  // stdout and stderr together
};

Result run(const std::string& args, const fs::path& dir) {
  const fs::path log = dir / "runner_output.txt";
  const int code = run_logged(std::string(FLOWS_RUNNER) + " " + args, log);
  return {code, read_file(log)};
}

fs::path write(const fs::path& dir, const std::string& name, const std::string& text) {
  std::ofstream(dir / name) << text;
  return dir / name;
}

std::size_t count_lines(const std::string& text) {
  return static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n'));
}

TEST(Runner, QuickstartTrainsAndWritesEveryOutput) {
  fs::path dir = temp_dir("quickstart");
  Result r =
      run(std::string("run ") + FLOWS_SOURCE_DIR +
              "/configs/quickstart.yaml --set trainer.steps=200 -o " + (dir / "out").string(),
          dir);
  ASSERT_EQ(r.code, 0) << r.output;
  const nlohmann::json metrics = read_json(dir / "out/metrics.json");
  // The quickstart's MAF reached 0.99 nats (data units) after these 200 steps
  // (seed 0). The best Gaussian fit of moons is ≈ 2.0 nats, so below 1.5 the
  // flow has learned the non-Gaussian shape; a full run reaches ≈ 0.36.
  const double test_nll = json_number(metrics, "/nll/test");
  EXPECT_LT(test_nll, 1.5) << metrics;
  EXPECT_GT(test_nll, 0.5) << metrics;
  EXPECT_EQ(json_number(metrics, "/steps"), 200) << metrics;
  EXPECT_GT(json_number(metrics, "/parameters"), 0) << metrics;
  EXPECT_EQ(count_lines(read_file(dir / "out/samples.csv")), 10001u);  // header + rows
  EXPECT_GE(count_lines(read_file(dir / "out/training_curve.csv")), 3u);
  EXPECT_NE(read_file(dir / "out/train.log").find("step 200/200"), std::string::npos);
  EXPECT_NE(r.output.find("test NLL"), std::string::npos) << r.output;
  EXPECT_TRUE(fs::exists(dir / "out/model.flows"));
  EXPECT_TRUE(fs::exists(dir / "out/report.html"));
  EXPECT_GT(json_number(metrics, "/quality/sliced_w1"), 0) << metrics;
  EXPECT_FALSE(fs::exists(dir / "out/metrics.json.tmp"));
}

// The shipped conditional pipeline, shortened: it trains p(x | c), scores
// every split with its context, and writes samples next to the contexts
// they were drawn at.
TEST(Runner, TheConditionalPipelineTrainsAndWritesContextColumns) {
  fs::path dir = temp_dir("conditional");
  Result r = run(std::string("run -q ") + FLOWS_SOURCE_DIR +
                     "/configs/conditional_gaussian_maf.yaml --set trainer.steps=300 "
                     "--set sample.n=500 --set stages=[train,evaluate,sample,save] -o " +
                     (dir / "out").string(),
                 dir);
  ASSERT_EQ(r.code, 0) << r.output;
  const nlohmann::json metrics = read_json(dir / "out/metrics.json");
  EXPECT_EQ(json_number(metrics, "/context_dim"), 1) << metrics;
  // The best Gaussian that ignores c has NLL ≈ 2.07 nats, the true density
  // 0.853 on this test split; these 300 steps reached 0.861 (seed 0).
  const double test_nll = json_number(metrics, "/nll/test");
  EXPECT_LT(test_nll, 0.95) << metrics;
  EXPECT_GT(test_nll, 0.8) << metrics;
  EXPECT_GT(json_number(metrics, "/quality/sliced_w1"), 0) << metrics;
  const std::string samples = read_file(dir / "out/samples.csv");
  EXPECT_EQ(samples.rfind("x1,x2,c1\n", 0), 0u) << samples.substr(0, 80);
  EXPECT_EQ(count_lines(samples), 501u);
  EXPECT_TRUE(fs::exists(dir / "out/model.flows"));
}

// Flow matching cannot be fit by maximum likelihood: the default trainer is
// refused before anything is trained, naming the trainer to use.
TEST(Runner, MleWithFlowMatchingIsRefusedBeforeTraining) {
  fs::path dir = temp_dir("mle_refused");
  fs::path yaml = write(dir, "fm.yaml",
                        "data: {type: moons, n_train: 100}\n"
                        "model: {bijectors: [{type: flow_matching}]}\n");
  Result r = run("run -q " + yaml.string() + " -o " + (dir / "out").string(), dir);
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_NE(r.output.find("trainer 'mle'"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("type: cfm"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(dir / "out/training_curve.csv"));
}

TEST(Runner, SameSeedGivesTheSameRun) {
  fs::path dir = temp_dir("seed");
  const std::string base =
      std::string("run ") + FLOWS_SOURCE_DIR +
      "/configs/quickstart.yaml -q --set trainer.steps=50 --set sample.n=100 -o ";
  ASSERT_EQ(run(base + (dir / "a").string(), dir).code, 0);
  ASSERT_EQ(run(base + (dir / "b").string(), dir).code, 0);
  EXPECT_EQ(read_file(dir / "a/samples.csv"), read_file(dir / "b/samples.csv"));
}

TEST(Runner, MisspelledKeyFailsNamingLineAndKey) {
  fs::path dir = temp_dir("typo");
  fs::path yaml = write(dir, "typo.yaml",
                        "name: typo\n"
                        "data: {type: moons, n_train: 100}\n"
                        "model:\n"
                        "  bijectors:\n"
                        "    - {type: affine}\n"
                        "trainer:\n"
                        "  type: mle\n"
                        "  stesp: 10\n");
  Result r = run("run " + yaml.string() + " -o " + (dir / "out").string(), dir);
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(
      r.output.find(yaml.string() + ":8:3: trainer.stesp: unknown key (did you mean 'steps'?)"),
      std::string::npos)
      << r.output;
  EXPECT_FALSE(fs::exists(dir / "out/metrics.json"));
}

TEST(Runner, UnknownBijectorTypeNamesLineAndClosestName) {
  fs::path dir = temp_dir("unknown");
  fs::path yaml = write(dir, "unknown.yaml",
                        "data: {type: moons, n_train: 100}\n"
                        "model:\n"
                        "  bijectors:\n"
                        "    - {type: revers}\n");
  Result r = run("run " + yaml.string() + " -o " + (dir / "out").string(), dir);
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(
      r.output.find(
          ":4:8: model.bijectors[0].type: unknown bijector 'revers' (did you mean 'reverse'?)"),
      std::string::npos)
      << r.output;
}

TEST(Runner, UnknownStageIsRejected) {
  fs::path dir = temp_dir("stage");
  fs::path yaml =
      write(dir, "stage.yaml", "data: {type: moons}\nmodel: {}\nstages: [train, evaluat]\n");
  Result r = run("run " + yaml.string(), dir);
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.output.find("stages: 'evaluat' is not one of"), std::string::npos) << r.output;
}

// An error raised inside a plugin's code unwinds through the pipeline that
// holds the plugin; it must still end as one error line and exit status 1.
TEST(Runner, AnErrorThrownByAPluginEndsCleanly) {
  fs::path dir = temp_dir("plugin_error");
  fs::path yaml = write(dir, "actnorm.yaml",
                        "data: {type: moons, n_train: 100}\n"
                        "model: {bijectors: [{type: actnorm}]}\n"
                        "trainer: {batch_size: 1, steps: 5}\n");
  Result r = run("run -q " + yaml.string() + " -o " + (dir / "out").string(), dir);
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_NE(r.output.find("error: actnorm: data-dependent initialisation"), std::string::npos)
      << r.output;
}

TEST(Runner, BadArgumentsAreOneErrorLine) {
  fs::path dir = temp_dir("bad_arguments");
  Result r = run("run " + (dir / "absent.yaml").string(), dir);
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_EQ(r.output.rfind("error: ", 0), 0u) << r.output;
  write(dir, "a_file", "x");
  r = run(std::string("run -q ") + FLOWS_SOURCE_DIR + "/configs/quickstart.yaml -o " +
              (dir / "a_file").string(),
          dir);
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_NE(r.output.find("error: "), std::string::npos) << r.output;
}

TEST(Runner, BadCsvIsNamedByRowAndColumn) {
  fs::path dir = temp_dir("csv");
  write(dir, "data.csv", "a,b\n1,2\n3,oops\n5,6\n");
  fs::path yaml = write(dir, "csv.yaml", "data: {type: csv, path: data.csv}\nmodel: {}\n");
  Result r = run("run " + yaml.string() + " -o " + (dir / "out").string(), dir);
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.output.find("data.csv"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("row 3, column 2"), std::string::npos) << r.output;
}

TEST(Runner, PluginsListsTheBasicPluginWithItsFile) {
  fs::path dir = temp_dir("plugins");
  Result r = run("plugins", dir);
  ASSERT_EQ(r.code, 0) << r.output;
  for (const char* name : {"reverse", "permutation", "affine", "actnorm"})
    EXPECT_NE(r.output.find(name), std::string::npos) << name;
  EXPECT_NE(r.output.find("flows_plugin_basic.so"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("mle"), std::string::npos);
}

TEST(Runner, HelpExplainsTheCommands) {
  fs::path dir = temp_dir("help");
  Result r = run("--help", dir);
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.output.find("run"), std::string::npos);
  EXPECT_NE(r.output.find("plugins"), std::string::npos);
  Result sub = run("run --help", dir);
  EXPECT_EQ(sub.code, 0);
  EXPECT_NE(sub.output.find("--set"), std::string::npos) << sub.output;
}

}  // namespace

namespace {

// configs/discrete_quantized_gaussians.yaml, shortened: the test bound is a
// dequantized bound above the entropy H/(D ln 2) = 3.5638 (the test split has
// 10,000 rows: its sampling error is ≈ 0.01 bits/dim), samples are integers,
// and the report lists the bits/dim.
TEST(Runner, DiscreteConfigReportsTheDequantizedBound) {
  fs::path dir = temp_dir("discrete_config");
  Result r = run(std::string("run -q ") + FLOWS_SOURCE_DIR +
                     "/configs/discrete_quantized_gaussians.yaml --set trainer.steps=600 "
                     "--set sample.n=500 -o " +
                     (dir / "out").string(),
                 dir);
  ASSERT_EQ(r.code, 0) << r.output;
  const nlohmann::json metrics = read_json(dir / "out/metrics.json");
  EXPECT_EQ(json_text(metrics, "/bits_per_dim/kind"), "dequantized bound") << metrics;
  const double bits = json_number(metrics, "/bits_per_dim/test");
  EXPECT_GT(bits, 3.5638 - 0.03) << metrics;
  EXPECT_LT(bits, 3.5638 + 0.1) << metrics;
  const std::string samples = read_file(dir / "out/samples.csv");
  EXPECT_EQ(samples.find('.'), std::string::npos) << "samples are not integers";
  const std::string report = read_file(dir / "out/report.html");
  EXPECT_NE(report.find("test bits/dim (dequantized bound)"), std::string::npos);
}

// configs/bounded_unit_box.yaml, shortened: every sample lies in the unit box
// and the report says how many did.
TEST(Runner, BoundedConfigKeepsEverySampleInsideTheBox) {
  fs::path dir = temp_dir("bounded_config");
  Result r = run(std::string("run -q ") + FLOWS_SOURCE_DIR +
                     "/configs/bounded_unit_box.yaml --set trainer.steps=300 "
                     "--set sample.n=20000 -o " +
                     (dir / "out").string(),
                 dir);
  ASSERT_EQ(r.code, 0) << r.output;
  const nlohmann::json metrics = read_json(dir / "out/metrics.json");
  EXPECT_EQ(json_number(metrics, "/bounds/inside"), json_number(metrics, "/bounds/samples"))
      << metrics;
  EXPECT_EQ(json_text(metrics, "/bits_per_dim/kind"), "continuous density") << metrics;
  std::istringstream samples(read_file(dir / "out/samples.csv"));
  std::string line;
  std::getline(samples, line);  // header
  std::size_t rows = 0;
  while (std::getline(samples, line)) {
    const auto comma = line.find(',');
    const double a = std::stod(line.substr(0, comma)), b = std::stod(line.substr(comma + 1));
    ASSERT_TRUE(a >= 0 && a <= 1 && b >= 0 && b <= 1) << line;
    ++rows;
  }
  EXPECT_EQ(rows, 20000u);
  const std::string report = read_file(dir / "out/report.html");
  EXPECT_NE(report.find("samples inside the bounds"), std::string::npos);
}

}  // namespace
