// End to end: the shipped spline configs trained by the runner on a reduced
// step count reach a stated test NLL, and the checkerboard's flow type can be
// switched in the YAML (maf, affine_coupling, nsf_coupling, nsf_autoregressive)
// with no rebuild.
#include <gtest/gtest.h>

#include "json_support.hpp"
#include "runner_support.hpp"

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

struct RunResult {
  int code;
  std::string output;
  nlohmann::json metrics;  // metrics.json (null when the run failed)
};

RunResult run(const fs::path& yaml, const std::string& args, const fs::path& out) {
  const fs::path log = out.string() + ".log";
  const int code = run_logged(
      std::string(FLOWS_RUNNER) + " run " + yaml.string() + " -q " + args + " -o " + out.string(),
      log);
  return {code, read_file(log), code == 0 ? read_json(out / "metrics.json") : nlohmann::json()};
}

double test_nll(const nlohmann::json& metrics) {
  return json_number(metrics, "/nll/test");
}

// configs/nsf_checkerboard.yaml with its bijector entry replaced by `entry`.
fs::path checkerboard_with(const fs::path& dir, const std::string& name, const std::string& entry) {
  std::string yaml = read_file(fs::path(FLOWS_SOURCE_DIR) / "configs/nsf_checkerboard.yaml");
  const auto begin = yaml.find("    - type: nsf_coupling");
  const auto end = yaml.find("trainer:");
  EXPECT_NE(begin, std::string::npos);
  yaml.replace(begin, end - begin, "    - " + entry + "\n");
  std::ofstream(dir / name) << yaml;
  return dir / name;
}

// 500 of the config's 5,000 steps. Measured (seeds 0 and 1): nsf_coupling
// 3.637 and 3.627 nats, MAF 6 x [64, 64] 3.883 and 3.845, affine_coupling
// 3.850 and 3.846, nsf_autoregressive 3.642 and 3.640; the full run reaches
// 3.516. The density's entropy, log 32 ≈ 3.466, bounds every model from below
// up to sampling noise of the 10,000 test points.
constexpr const char* kSteps = "--set trainer.steps=500";

TEST(SplinePipeline, CheckerboardReachesItsStatedTestNll) {
  const fs::path dir = temp_dir("checkerboard");
  const RunResult r =
      run(fs::path(FLOWS_SOURCE_DIR) / "configs/nsf_checkerboard.yaml", kSteps, dir / "nsf");
  ASSERT_EQ(r.code, 0) << r.output;
  const double nll = test_nll(r.metrics);
  EXPECT_LT(nll, 3.72) << r.metrics;
  EXPECT_GT(nll, 3.40) << r.metrics;
}

#ifdef FLOWS_PLUGIN_MAF
// The same data, steps, batch and optimizer with a MAF of as many layers.
TEST(SplinePipeline, CheckerboardSplineBeatsMafOnTheSameBudget) {
  const fs::path dir = temp_dir("versus_maf");
  const RunResult nsf =
      run(fs::path(FLOWS_SOURCE_DIR) / "configs/nsf_checkerboard.yaml", kSteps, dir / "nsf");
  ASSERT_EQ(nsf.code, 0) << nsf.output;
  const RunResult maf =
      run(checkerboard_with(dir, "maf.yaml", "{type: maf, layers: 6, hidden: [64, 64]}"), kSteps,
          dir / "maf");
  ASSERT_EQ(maf.code, 0) << maf.output;
  EXPECT_LT(test_nll(nsf.metrics), test_nll(maf.metrics) - 0.1)
      << "nsf_coupling " << nsf.metrics << "\nmaf " << maf.metrics;
}
#endif

// Every spline bijector runs from the same YAML by changing its type.
TEST(SplinePipeline, CheckerboardFlowTypeIsOneLineOfYaml) {
  const fs::path dir = temp_dir("switch");
  for (const std::string entry :
       {"{type: nsf_autoregressive, layers: 6, bins: 10, tail_bound: 2.5, hidden: [64, 64]}",
        "{type: affine_coupling, layers: 6, hidden: [64, 64]}"}) {
    SCOPED_TRACE(entry);
    const fs::path yaml = checkerboard_with(dir, "switched.yaml", entry);
    const RunResult r = run(yaml, "--set trainer.steps=100", dir / "out");
    ASSERT_EQ(r.code, 0) << r.output;
    const double nll = test_nll(r.metrics);
    EXPECT_TRUE(std::isfinite(nll)) << r.metrics;
    EXPECT_LT(nll, 4.45) << r.metrics;  // a Gaussian fit gives 4.51
    fs::remove_all(dir / "out");
  }
}

// W2's pipeline on 300 of its 3,000 steps. Measured: 0.350 and 0.346 nats
// (seeds 0, 1); the full run reaches 0.309 (zuko 1.6: 0.325). A Gaussian fit
// gives about 2.0.
TEST(SplinePipeline, MoonsReachesItsStatedTestNll) {
  const fs::path dir = temp_dir("moons");
  const RunResult r = run(fs::path(FLOWS_SOURCE_DIR) / "configs/nsf_moons.yaml",
                          "--set trainer.steps=300 --set sample.n=100", dir / "out");
  ASSERT_EQ(r.code, 0) << r.output;
  const double nll = test_nll(r.metrics);
  EXPECT_LT(nll, 0.45) << r.metrics;
  EXPECT_GT(nll, 0.0) << r.metrics;
}

}  // namespace
