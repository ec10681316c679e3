// End-to-end tests of the commands on a saved model (flows sample, log-prob,
// evaluate, info) and of the C++ example program, on a quickstart model
// trained once for the suite.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>

#include "flows/checkpoint.hpp"
#include "flows/data/csv.hpp"
#include "flows/data/npy.hpp"
#include "runner_support.hpp"

namespace {

namespace fs = std::filesystem;
using namespace flows::test_support;

struct Result {
  int code;
  std::string output;  // stdout and stderr together
};

class ModelCommands : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new fs::path(temp_dir("model_commands"));
    const Result r = run(std::string("run ") + FLOWS_SOURCE_DIR +
                         "/configs/quickstart.yaml -q --set trainer.steps=200 --set sample.n=500 "
                         "-o " +
                         (*dir_ / "out").string());
    ASSERT_EQ(r.code, 0) << r.output;
  }
  static void TearDownTestSuite() {
    fs::remove_all(*dir_);
    delete dir_;
  }

  static Result run(const std::string& args) {
    const fs::path log = *dir_ / "output.txt";
    const int code = run_logged(std::string(FLOWS_RUNNER) + " " + args, log);
    return {code, read_file(log)};
  }
  static std::string model() { return (*dir_ / "out/model.flows").string(); }
  static std::string path(const std::string& name) { return (*dir_ / name).string(); }

  static fs::path* dir_;
};

fs::path* ModelCommands::dir_ = nullptr;

TEST_F(ModelCommands, InfoDescribesTheModel) {
  const Result r = run("info " + model());
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("name:           quickstart"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("dimensions:     2"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("trained steps:  200"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("flows_plugin_maf"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("pipeline it was trained with:"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("type: maf"), std::string::npos) << r.output;
}

TEST_F(ModelCommands, SampleWritesCsvAndNpyReproducibly) {
  ASSERT_EQ(run("sample " + model() + " -n 300 --seed 4 -o " + path("a.csv")).code, 0);
  ASSERT_EQ(run("sample " + model() + " -n 300 --seed 4 -o " + path("b.npy")).code, 0);
  ASSERT_EQ(run("sample " + model() + " -n 300 --seed 5 -o " + path("c.csv")).code, 0);
  std::vector<std::string> header;
  const flows::Matrix a = flows::read_csv(path("a.csv"), &header);
  const flows::Matrix b = flows::read_npy(path("b.npy"));
  const flows::Matrix c = flows::read_csv(path("c.csv"));
  ASSERT_EQ(a.shape(0), 300u);
  ASSERT_EQ(a.shape(1), 2u);
  EXPECT_EQ(header.size(), 2u);
  EXPECT_TRUE(a == b);   // same seed: the same samples, whatever the format
  EXPECT_FALSE(a == c);  // another seed: others
}

TEST_F(ModelCommands, LogProbMatchesTheModelLoadedInCpp) {
  ASSERT_EQ(run("sample " + model() + " -n 200 -o " + path("x.csv")).code, 0);
  const Result r = run("log-prob " + model() + " " + path("x.csv") + " -o " + path("lp.npy"));
  ASSERT_EQ(r.code, 0) << r.output;
  const flows::Matrix lp = flows::read_npy(path("lp.npy"));
  ASSERT_EQ(lp.shape(0), 200u);
  ASSERT_EQ(lp.shape(1), 1u);
  const flows::LoadedModel loaded = flows::load_model(model());
  const flows::Vector expected = loaded.model.flow->log_prob(flows::read_csv(path("x.csv")));
  for (flows::Index i = 0; i < 200; ++i) ASSERT_EQ(lp(i, 0), expected(i)) << "row " << i;
}

TEST_F(ModelCommands, EvaluateReportsMeanNllAndItsStandardError) {
  ASSERT_EQ(run("sample " + model() + " -n 400 --seed 9 -o " + path("e.csv")).code, 0);
  ASSERT_EQ(run("log-prob " + model() + " " + path("e.csv") + " -o " + path("e_lp.csv")).code, 0);
  const flows::Matrix lp = flows::read_csv(path("e_lp.csv"));
  double mean = 0, squares = 0;
  for (double v : lp) mean -= v / 400;
  for (double v : lp) squares += (-v - mean) * (-v - mean);
  const double se = std::sqrt(squares / 399 / 400);

  const Result r = run("evaluate " + model() + " " + path("e.csv") + " --bits-per-dim --json");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NEAR(json_number(r.output, "nll"), mean, 1e-9) << r.output;
  EXPECT_NEAR(json_number(r.output, "nll_stderr"), se, 1e-9) << r.output;
  EXPECT_NEAR(json_number(r.output, "bits_per_dim"), mean / (2 * std::log(2.0)), 1e-9);
  EXPECT_EQ(json_number(r.output, "rows"), 400);

  const Result text = run("evaluate " + model() + " " + path("e.csv"));
  ASSERT_EQ(text.code, 0) << text.output;
  EXPECT_NE(text.output.find("NLL: "), std::string::npos) << text.output;
  EXPECT_NE(text.output.find(" ± "), std::string::npos) << text.output;
}

TEST_F(ModelCommands, InputOfAnotherDimensionIsNamed) {
  std::ofstream(path("three.csv")) << "a,b,c\n1,2,3\n4,5,6\n";
  const Result r = run("log-prob " + model() + " " + path("three.csv") + " -o " + path("o.csv"));
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.output.find("three.csv: 3 columns"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("trained on 2-dimensional data"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(path("o.csv")));
}

TEST_F(ModelCommands, BadFilesGiveClearErrors) {
  Result r = run("sample " + model() + " -n 5 -o " + path("s.txt"));
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.output.find("must end in .csv or .npy"), std::string::npos) << r.output;
  for (const std::string& args : {"sample " + model() + " -n -1 -o " + path("s.csv"),
                                  "sample " + model() + " -n 5 --seed -3 -o " + path("s.csv"),
                                  "evaluate " + model() + " " + path("absent.csv")}) {
    r = run(args);
    EXPECT_EQ(r.code, 1) << args << "\n" << r.output;
    EXPECT_EQ(r.output.rfind("error: ", 0), 0u) << args << "\n" << r.output;
  }
  EXPECT_FALSE(fs::exists(path("s.csv")));

  std::string bytes = read_file(model());
  bytes[bytes.size() / 2] ^= 0x01;
  std::ofstream(path("damaged.flows"), std::ios::binary) << bytes;
  r = run("info " + path("damaged.flows"));
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.output.find("damaged.flows: corrupted checkpoint"), std::string::npos) << r.output;
}

TEST_F(ModelCommands, TheExampleProgramScoresAndSamples) {
  const fs::path log = *dir_ / "example.txt";
  const int code = run_logged(std::string(FLOWS_EXAMPLE_SCORE_AND_SAMPLE) + " " + model(), log);
  const std::string out = read_file(log);
  ASSERT_EQ(code, 0) << out;
  EXPECT_NE(out.find("quickstart: 2 dimensions"), std::string::npos) << out;
  EXPECT_NE(out.find("log p(x2) = "), std::string::npos) << out;
  EXPECT_NE(out.find("sample 4:"), std::string::npos) << out;
}

TEST_F(ModelCommands, TheRunWroteItsReport) {
  const std::string html = read_file(*dir_ / "out/report.html");
  EXPECT_NE(html.find("<svg"), std::string::npos);
  EXPECT_NE(html.find("quickstart"), std::string::npos);
  const std::string metrics = read_file(*dir_ / "out/metrics.json");
  EXPECT_TRUE(std::isfinite(json_number(metrics, "mmd2"))) << metrics;
  EXPECT_GT(json_number(metrics, "sliced_w1"), 0) << metrics;
}

}  // namespace
