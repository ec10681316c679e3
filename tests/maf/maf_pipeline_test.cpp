// End-to-end: the shipped MAF pipelines run through the `flows` runner with
// reduced step counts, and what they write is checked.
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
#include <vector>

#include <sys/wait.h>
#include <unistd.h>

#include <flows/data/toys.hpp>
#include <flows/rng.hpp>
#include <flows/tensor.hpp>

namespace {

namespace fs = std::filesystem;
using namespace flows::test_support;

struct Result {
  int code;
  std::string output;
};

// Runs `flows run <config> <args> -o <dir>/out` quietly.
Result run(const std::string& config, const std::string& args, const fs::path& dir) {
  const fs::path log = dir / "runner_output.txt";
  const int code = run_logged(std::string(FLOWS_RUNNER) + " run " + FLOWS_SOURCE_DIR + "/configs/" +
                                  config + " -q " + args + " -o " + (dir / "out").string(),
                              log);
  return {code, read_file(log)};
}

// The rows of a CSV file with a header line.
flows::Matrix read_csv(const fs::path& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);  // header
  std::vector<std::vector<double>> rows;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    std::vector<double> row;
    std::stringstream fields(line);
    std::string field;
    while (std::getline(fields, field, ',')) row.push_back(std::stod(field));
    rows.push_back(row);
  }
  flows::Matrix m = xt::zeros<double>({rows.size(), rows.empty() ? 0 : rows[0].size()});
  for (std::size_t i = 0; i < rows.size(); ++i)
    for (std::size_t j = 0; j < rows[i].size(); ++j) m(i, j) = rows[i][j];
  return m;
}

struct Moments {
  std::vector<double> mean;
  std::vector<std::vector<double>> cov;
};

Moments moments(const flows::Matrix& x) {
  const std::size_t n = x.shape(0), d = x.shape(1);
  Moments m{std::vector<double>(d, 0.0),
            std::vector<std::vector<double>>(d, std::vector<double>(d, 0.0))};
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t j = 0; j < d; ++j) m.mean[j] += x(i, j) / double(n);
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t j = 0; j < d; ++j)
      for (std::size_t k = 0; k < d; ++k)
        m.cov[j][k] += (x(i, j) - m.mean[j]) * (x(i, k) - m.mean[k]) / double(n - 1);
  return m;
}

// Distance from (x, y) to the nearer of scikit-learn's two moon arcs without
// noise: (cos t, sin t) and (1 − cos t, 0.5 − sin t), t ∈ [0, π].
double distance_to_moons(double x, double y) {
  double best = INFINITY;
  const double centers[2][3] = {{0.0, 0.0, 1.0}, {1.0, 0.5, -1.0}};  // centre, orientation
  for (const auto& c : centers) {
    const double dx = x - c[0], dy = y - c[1];
    const double angle = std::atan2(c[2] * dy, c[2] * dx);
    const double d = angle >= 0 ? std::abs(std::hypot(dx, dy) - 1)
                                : std::min(std::hypot(dx - 1, dy), std::hypot(dx + 1, dy));
    best = std::min(best, d);
  }
  return best;
}

// One reduced run of W1 (configs/maf_moons.yaml) shared by the tests below.
class MafMoons : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new fs::path(temp_dir("moons"));
    result_ = new Result(run("maf_moons.yaml", "--set trainer.steps=800", *dir_));
  }
  static void TearDownTestSuite() {
    fs::remove_all(*dir_);
    delete dir_;
    delete result_;
  }
  static fs::path* dir_;
  static Result* result_;
};
fs::path* MafMoons::dir_ = nullptr;
Result* MafMoons::result_ = nullptr;

// W1 at 800 of its 3,000 steps. Measured test NLLs (data units) at 800 steps:
// 0.478 with the config's seed 0 (the same with OPENBLAS_CORETYPE Haswell,
// Zen or unset), and 0.777 and 0.517 with seeds 1 and 2, so rounding
// differences that change the training trajectory can cost ~0.3; the full
// 3,000 steps reach 0.359 (zuko: 0.346, nflows: 0.379). A Gaussian fit is 2.0
// (the affine quickstart of the basic plugin: 1.9-2.05), so the bound 0.9 has
// the margin of the worst seed yet fails any model that misses the moons.
TEST_F(MafMoons, ReachesTheStatedTestNll) {
  ASSERT_EQ(result_->code, 0) << result_->output;
  const nlohmann::json metrics = read_json(*dir_ / "out/metrics.json");
  const double test_nll = json_number(metrics, "/nll/test");
  EXPECT_LT(test_nll, 0.9) << metrics;
  EXPECT_GT(test_nll, 0.0) << metrics;  // the moons' noise bounds the density
  EXPECT_EQ(json_number(metrics, "/steps"), 800) << metrics;
}

// The 10,000 samples of the trained model against 20,000 fresh moons: means
// and covariances within 0.1 entrywise (the data's variances are 0.74 and
// 0.25, their covariance -0.196; standard errors over 10,000 samples are
// ~0.01). Measured worst differences at 800 steps: 0.039 with seed 0, 0.061
// with seed 1; 0.043 after 3,000 steps. A model that sampled its base without
// the inverse would get covariance 0 instead of -0.196. Moments alone would
// pass a Gaussian fit, so samples must also lie on the moons: within 0.2 of
// one of the two arcs (noise 0.05) for 96% (seed 0), 87% (seed 1), 99% (3,000
// steps) of them, and 43% for a Gaussian with the data's moments; bound 80%.
TEST_F(MafMoons, SamplesMatchTheDataMeanAndCovariance) {
  ASSERT_EQ(result_->code, 0) << result_->output;
  const flows::Matrix samples = read_csv(*dir_ / "out/samples.csv");
  ASSERT_EQ(samples.shape(0), 10000u);
  ASSERT_EQ(samples.shape(1), 2u);
  flows::Rng rng(12345);
  const Moments data = moments(flows::make_toy("moons", 20000, 0.05, rng));
  const Moments model = moments(samples);
  for (std::size_t j = 0; j < 2; ++j) {
    EXPECT_NEAR(model.mean[j], data.mean[j], 0.1) << "mean of column " << j;
    for (std::size_t k = 0; k < 2; ++k)
      EXPECT_NEAR(model.cov[j][k], data.cov[j][k], 0.1) << "covariance " << j << "," << k;
  }
  std::size_t near = 0;
  for (std::size_t i = 0; i < samples.shape(0); ++i)
    if (distance_to_moons(samples(i, 0), samples(i, 1)) < 0.2) ++near;
  EXPECT_GT(double(near) / double(samples.shape(0)), 0.8);
}

// Swapping `maf` for `iaf` is a YAML edit: no rebuild. IAF's density needs D
// passes per layer but trains on the same objective; 300 steps get it well
// below the Gaussian fit of 2.0 (measured: 0.537).
TEST(MafPipelines, IafTrainsFromTheSameConfig) {
  const fs::path dir = temp_dir("iaf");
  const Result r =
      run("maf_moons.yaml",
          "--set trainer.steps=300 --set sample.n=1000 --set model.bijectors.0.type=iaf", dir);
  ASSERT_EQ(r.code, 0) << r.output;
  const nlohmann::json metrics = read_json(dir / "out/metrics.json");
  EXPECT_LT(json_number(metrics, "/nll/test"), 1.2) << metrics;
  fs::remove_all(dir);
}

// The CSV pipeline (configs/maf_banana4d.yaml): 600 steps. Measured test NLL
// 2.888 (the full run stops early at 2.885); a Gaussian fit to the same data
// gives 4.05, so the bound 3.3 fails a model that learns no dependence.
TEST(MafPipelines, CsvPipelineLearnsTheFourDimensionalData) {
  const fs::path dir = temp_dir("banana");
  const Result r = run("maf_banana4d.yaml", "--set trainer.steps=600 --set sample.n=1000", dir);
  ASSERT_EQ(r.code, 0) << r.output;
  const nlohmann::json metrics = read_json(dir / "out/metrics.json");
  EXPECT_LT(json_number(metrics, "/nll/test"), 3.3) << metrics;
  EXPECT_EQ(json_number(metrics, "/dim"), 4) << metrics;
  fs::remove_all(dir);
}

}  // namespace
