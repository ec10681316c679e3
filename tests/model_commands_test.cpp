// End-to-end tests of the commands on a saved model (flows sample, log-prob,
// evaluate, info) and of the C++ example program, on a quickstart model and a
// conditional model p(x | c1, c2), each trained once for its suite.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>

#include "flows/checkpoint.hpp"
#include "flows/data/conditional_toys.hpp"
#include "flows/data/csv.hpp"
#include "flows/data/npy.hpp"
#include "json_support.hpp"
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

std::size_t count_of(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

// A failed command: status 1, one line starting "error: ", containing every
// one of `parts`.
void expect_error(const Result& r, const std::vector<std::string>& parts) {
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_EQ(r.output.rfind("error: ", 0), 0u) << r.output;
  EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
  for (const std::string& part : parts) EXPECT_NE(r.output.find(part), std::string::npos) << part;
}

TEST_F(ModelCommands, InfoDescribesTheModel) {
  const Result r = run("info " + model());
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("name:           quickstart"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("x columns:      2 (x1, x2)\n"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("context:        none (an unconditional model, p(x))"), std::string::npos)
      << r.output;
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
  const nlohmann::json json = parse_json(r.output);
  EXPECT_NEAR(json_number(json, "/nll"), mean, 1e-9) << r.output;
  EXPECT_NEAR(json_number(json, "/nll_stderr"), se, 1e-9) << r.output;
  EXPECT_NEAR(json_number(json, "/bits_per_dim"), mean / (2 * std::log(2.0)), 1e-9) << r.output;
  EXPECT_EQ(json_number(json, "/rows"), 400) << r.output;

  const Result text = run("evaluate " + model() + " " + path("e.csv"));
  ASSERT_EQ(text.code, 0) << text.output;
  EXPECT_NE(text.output.find("NLL: "), std::string::npos) << text.output;
  EXPECT_NE(text.output.find(" ± "), std::string::npos) << text.output;
}

TEST_F(ModelCommands, InputOfAnotherDimensionIsNamed) {
  std::ofstream(path("three.csv")) << "a,b,c\n1,2,3\n4,5,6\n";
  const Result r = run("log-prob " + model() + " " + path("three.csv") + " -o " + path("o.csv"));
  expect_error(r, {"three.csv: 3 columns, but the model 'quickstart' reads 2 x columns (x1, x2) "
                   "and no context"});
  EXPECT_FALSE(fs::exists(path("o.csv")));
  std::ofstream(path("three.npy.csv")) << "1,2,3\n4,5,6\n";  // no header: by position
  expect_error(run("evaluate " + model() + " " + path("three.npy.csv")),
               {"3 columns, but the model 'quickstart' reads 2 x columns"});
}

TEST_F(ModelCommands, ColumnsAreReadByName) {
  ASSERT_EQ(run("sample " + model() + " -n 50 --seed 2 -o " + path("n.csv")).code, 0);
  const flows::Matrix x = flows::read_csv(path("n.csv"));
  {
    std::ofstream out(path("swapped.csv"));
    out.precision(17);
    out << "x2,x1\n";
    for (flows::Index i = 0; i < x.shape(0); ++i) out << x(i, 1) << "," << x(i, 0) << "\n";
  }
  ASSERT_EQ(run("log-prob " + model() + " " + path("n.csv") + " -o " + path("n_lp.npy")).code, 0);
  const Result r =
      run("log-prob " + model() + " " + path("swapped.csv") + " -o " + path("sw_lp.npy"));
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_EQ(r.output.find("warning"), std::string::npos) << r.output;
  EXPECT_TRUE(flows::read_npy(path("n_lp.npy")) == flows::read_npy(path("sw_lp.npy")));

  // Other names: used in the order given, with a warning.
  std::string text = read_file(path("n.csv"));
  text.replace(0, text.find('\n'), "a,b");
  std::ofstream(path("renamed.csv")) << text;
  const Result renamed =
      run("log-prob " + model() + " " + path("renamed.csv") + " -o " + path("rn_lp.npy"));
  ASSERT_EQ(renamed.code, 0) << renamed.output;
  EXPECT_NE(renamed.output.find("warning: " + path("renamed.csv") +
                                ": columns (a, b) are named "
                                "differently from the model's x columns (x1, x2)"),
            std::string::npos)
      << renamed.output;
  EXPECT_TRUE(flows::read_npy(path("n_lp.npy")) == flows::read_npy(path("rn_lp.npy")));
}

TEST_F(ModelCommands, AContextForAnUnconditionalModelIsRefused) {
  expect_error(run("sample " + model() + " -n 5 --context c=1 -o " + path("u.csv")),
               {"--context: the model 'quickstart' reads 2 x columns (x1, x2) and no context (it "
                "is unconditional); leave --context out"});
  std::ofstream(path("ctx.csv")) << "c\n1\n";
  expect_error(
      run("sample " + model() + " -n 5 --context " + path("ctx.csv") + " -o " + path("u.csv")),
      {"unconditional", "leave --context out"});
  EXPECT_FALSE(fs::exists(path("u.csv")));
  // An extra column in INPUT is not silently dropped.
  std::ofstream(path("with_c.csv")) << "x1,x2,c\n0.1,0.2,3\n";
  expect_error(run("log-prob " + model() + " " + path("with_c.csv") + " -o " + path("u.csv")),
               {"with_c.csv: 'c' is not the model's; the model 'quickstart' reads 2 x columns "
                "(x1, x2) and no context (it is unconditional)"});
  std::ofstream(path("twice.csv")) << "x1,x1\n0.1,0.2\n";
  expect_error(run("evaluate " + model() + " " + path("twice.csv")),
               {"twice.csv: the header names column 'x1' twice (columns 1 and 2)"});
  EXPECT_FALSE(fs::exists(path("u.csv")));
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

// Resource limits (issue 15): -n whose samples would not fit is refused
// before any is drawn, with the estimate, and nothing is written.
TEST_F(ModelCommands, SamplesThatWouldNotFitAreRefusedBeforeTheWork) {
  const ScopedEnv limit("FLOWS_MEMORY_LIMIT", "1M");
  const Result r = run("sample " + model() + " -n 100000 -o " + path("too_many.csv"));
  expect_error(r, {"-n 100000 needs about", "for the samples (n x columns x 8 bytes",
                   "this machine has 1 MB (FLOWS_MEMORY_LIMIT)"});
  EXPECT_FALSE(fs::exists(path("too_many.csv")));
  EXPECT_EQ(run("sample " + model() + " -n 1000 -o " + path("few.csv")).code, 0);
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
  const nlohmann::json metrics = read_json(*dir_ / "out/metrics.json");
  EXPECT_TRUE(std::isfinite(json_number(metrics, "/quality/mmd2"))) << metrics;
  EXPECT_GT(json_number(metrics, "/quality/sliced_w1"), 0) << metrics;
}

// ---------------------------------------------------------------------------
// A conditional model p(x1, x2 | c1, c2) on the conditional_gaussian toy, in
// which c1 and c2 move x2's mean in opposite directions, so that a context
// read in the wrong order gives other samples and a much worse likelihood.

class ConditionalCommands : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new fs::path(temp_dir("conditional_commands"));
    std::ofstream(*dir_ / "conditional.yaml") << R"(name: conditional
seed: 1
data: {type: conditional_gaussian, context_dim: 2, n_train: 4000, n_val: 500, n_test: 1000}
model:
  bijectors:
    - {type: maf, layers: 3, hidden: [32, 32]}
trainer:
  type: mle
  optimizer: {type: adam, lr: 5.0e-3}
  batch_size: 256
  steps: 400
  eval_every: 100
sample: {n: 300}
stages: [train, evaluate, sample, save, report]
)";
    const Result r =
        run("run " + (*dir_ / "conditional.yaml").string() + " -q -o " + (*dir_ / "out").string());
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

  // Rows (x, c) from the toy: x | c drawn from the true conditional.
  static void draw(flows::Index n, std::uint64_t seed, flows::Matrix& x, flows::Matrix& c) {
    flows::Rng rng(seed);
    c = rng.normal(n, 2);
    x = flows::conditional_gaussian_sample(c, rng);
  }

  // Writes the columns named in `order` (of x1, x2, c1, c2) as a CSV with a header.
  static void write_named(const std::string& file, const flows::Matrix& x, const flows::Matrix& c,
                          const std::vector<std::string>& order) {
    std::ofstream out(path(file));
    out.precision(17);
    for (std::size_t k = 0; k < order.size(); ++k) out << (k ? "," : "") << order[k];
    out << "\n";
    for (flows::Index i = 0; i < x.shape(0); ++i) {
      for (std::size_t k = 0; k < order.size(); ++k) {
        const std::string& name = order[k];
        const double v = name[0] == 'x' ? x(i, name[1] - '1') : c(i, name[1] - '1');
        out << (k ? "," : "") << v;
      }
      out << "\n";
    }
  }

  static fs::path* dir_;
};

fs::path* ConditionalCommands::dir_ = nullptr;

flows::Matrix block(const flows::Matrix& m, flows::Index first_row, flows::Index rows,
                    flows::Index first_col) {
  return xt::view(m, xt::range(first_row, first_row + rows), xt::range(first_col, m.shape(1)));
}

TEST_F(ConditionalCommands, InfoListsXAndContextColumns) {
  const Result r = run("info " + model());
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("x columns:      2 (x1, x2)\n"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("context:        2 columns (c1, c2): a conditional model, p(x | c); "
                          "the context is standardized\n"),
            std::string::npos)
      << r.output;

  // With an embedding network: its width is named; the commands work through it.
  std::ofstream(path("embedded.yaml")) << R"(name: embedded
data: {type: conditional_gaussian, context_dim: 3, n_train: 300, n_val: 0, n_test: 100}
model:
  context_embedding: {hidden: [8], features: 4}
  bijectors: [{type: maf, layers: 1, hidden: [8]}]
trainer: {type: mle, optimizer: {type: adam}, batch_size: 100, steps: 3}
stages: [train, save]
)";
  const Result trained = run("run " + path("embedded.yaml") + " -q -o " + path("embedded"));
  ASSERT_EQ(trained.code, 0) << trained.output;
  const std::string embedded = path("embedded/model.flows");
  const Result info = run("info " + embedded);
  ASSERT_EQ(info.code, 0) << info.output;
  EXPECT_NE(info.output.find("context:        3 columns (c1, c2, c3): a conditional model, p(x | "
                             "c); the context is standardized, then embedded in 4 features\n"),
            std::string::npos)
      << info.output;
  const Result drawn =
      run("sample " + embedded + " -n 7 --context c3=1,c2=0,c1=-1 -o " + path("embedded.csv"));
  ASSERT_EQ(drawn.code, 0) << drawn.output;
  EXPECT_EQ(flows::read_csv(path("embedded.csv")).shape(0), 7u);
}

TEST_F(ConditionalCommands, SampleDrawsNPerContextRowAfterItsIndex) {
  // The file names the context columns in another order than the model's.
  std::ofstream(path("ctx.csv")) << "c2,c1\n-1,1\n0.5,-2\n2,2\n";
  Result r = run("sample " + model() + " -n 200 --seed 3 --context " + path("ctx.csv") + " -o " +
                 path("s.csv"));
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("wrote 600 samples (200 for each of 3 context rows)"), std::string::npos)
      << r.output;
  std::vector<std::string> header;
  const flows::Matrix s = flows::read_csv(path("s.csv"), &header);
  ASSERT_EQ(header, (std::vector<std::string>{"context_row", "x1", "x2"}));
  ASSERT_EQ(s.shape(0), 600u);
  ASSERT_EQ(s.shape(1), 3u);
  for (flows::Index i = 0; i < 600; ++i) ASSERT_EQ(s(i, 0), static_cast<double>(i / 200)) << i;

  // NPY context in the model's order (c1, c2), NPY output: the same numbers.
  flows::Matrix ctx = {{1, -1}, {-2, 0.5}, {2, 2}};
  flows::write_npy(path("ctx.npy"), ctx);
  ASSERT_EQ(run("sample " + model() + " -n 200 --seed 3 --context " + path("ctx.npy") + " -o " +
                path("s.npy"))
                .code,
            0);
  EXPECT_TRUE(flows::read_npy(path("s.npy")) == s);

  // One row inline, in either order: the first block (the same draws of the same seed).
  for (const std::string inline_row : {"'c1=1,c2=-1'", "' c2 = -1 , c1 = 1 '"}) {
    r = run("sample " + model() + " -n 200 --seed 3 --context " + inline_row + " -o " +
            path("one.csv"));
    ASSERT_EQ(r.code, 0) << inline_row << "\n" << r.output;
    const flows::Matrix one = flows::read_csv(path("one.csv"));
    ASSERT_EQ(one.shape(0), 200u);
    EXPECT_TRUE(block(one, 0, 200, 1) == block(s, 0, 200, 1)) << inline_row;
    for (flows::Index i = 0; i < 200; ++i) ASSERT_EQ(one(i, 0), 0.0);
  }
  ASSERT_EQ(
      run("sample " + model() + " -n 200 --seed 3 --context c1=-1,c2=1 -o " + path("other.csv"))
          .code,
      0);
  EXPECT_FALSE(block(flows::read_csv(path("other.csv")), 0, 200, 1) == block(s, 0, 200, 1));

  // The samples follow the context: the mean of x1 is (c1 + c2)/√2 + 0.5,
  // −0.56 at row 1 and 3.33 at row 2 (x1's conditional std is below 0.82).
  double mean1 = 0, mean2 = 0;
  for (flows::Index i = 0; i < 200; ++i) {
    mean1 += s(200 + i, 1) / 200;
    mean2 += s(400 + i, 1) / 200;
  }
  EXPECT_GT(mean2 - mean1, 2.0) << mean1 << " " << mean2;
}

TEST_F(ConditionalCommands, LogProbAndEvaluateReadTheContextByName) {
  flows::Matrix x, c;
  draw(300, 21, x, c);
  write_named("xc.csv", x, c, {"x1", "x2", "c1", "c2"});
  write_named("shuffled.csv", x, c, {"c2", "x2", "c1", "x1"});
  {  // x columns not named: the non-context columns, in order
    std::ofstream out(path("unnamed_x.csv"));
    out.precision(17);
    out << "c1,a,b,c2\n";
    for (flows::Index i = 0; i < 300; ++i)
      out << c(i, 0) << "," << x(i, 0) << "," << x(i, 1) << "," << c(i, 1) << "\n";
  }
  flows::Matrix stored = xt::empty<flows::Real>({flows::Index{300}, flows::Index{4}});
  xt::view(stored, xt::all(), xt::range(0, 2)) = x;
  xt::view(stored, xt::all(), xt::range(2, 4)) = c;
  flows::write_npy(path("xc.npy"), stored);
  flows::write_csv(path("xc_noheader.csv"), stored);

  const flows::LoadedModel loaded = flows::load_model(model());
  const flows::Vector expected = loaded.model.flow->log_prob(x, c);
  for (const char* input :
       {"xc.csv", "shuffled.csv", "unnamed_x.csv", "xc.npy", "xc_noheader.csv"}) {
    const Result r = run("log-prob " + model() + " " + path(input) + " -o " + path("lp.npy"));
    ASSERT_EQ(r.code, 0) << input << "\n" << r.output;
    const flows::Matrix lp = flows::read_npy(path("lp.npy"));
    ASSERT_EQ(lp.shape(0), 300u) << input;
    for (flows::Index i = 0; i < 300; ++i)
      ASSERT_EQ(lp(i, 0), expected(i)) << input << " row " << i;
  }

  // evaluate: the mean of the same values; with c1 and c2 named the other way
  // round, the likelihood is much worse (x2's mean moves by (c1 − c2)/√2).
  double nll = 0;
  for (double v : expected) nll -= v / 300;
  const Result r = run("evaluate " + model() + " " + path("shuffled.csv") + " --json");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NEAR(json_number(parse_json(r.output), "/nll"), nll, 1e-9) << r.output;
  {  // c1's values under the name c2 and the other way round
    std::ofstream out(path("misnamed.csv"));
    out.precision(17);
    out << "x1,x2,c2,c1\n";
    for (flows::Index i = 0; i < 300; ++i)
      out << x(i, 0) << "," << x(i, 1) << "," << c(i, 0) << "," << c(i, 1) << "\n";
  }
  const Result wrong = run("evaluate " + model() + " " + path("misnamed.csv") + " --json");
  ASSERT_EQ(wrong.code, 0) << wrong.output;
  EXPECT_GT(json_number(parse_json(wrong.output), "/nll"), nll + 1.0) << wrong.output;

  const Result text = run("evaluate " + model() + " " + path("xc.csv"));
  ASSERT_EQ(text.code, 0) << text.output;
  EXPECT_NE(text.output.find("nats per row (data units, given each row's context)"),
            std::string::npos)
      << text.output;
}

TEST_F(ConditionalCommands, InputWithoutTheContextIsRefused) {
  const std::string expected =
      "the model 'conditional' reads 2 x columns (x1, x2) and 2 context "
      "columns (c1, c2)";
  std::ofstream(path("no_c2.csv")) << "x1,x2,c1\n0,0,1\n";
  expect_error(run("log-prob " + model() + " " + path("no_c2.csv") + " -o " + path("o.csv")),
               {"no_c2.csv: no context column 'c2'; " + expected + "; the file has x1, x2, c1"});
  std::ofstream(path("x_only.csv")) << "x1,x2\n0,0\n";
  expect_error(run("evaluate " + model() + " " + path("x_only.csv")),
               {"no context columns 'c1', 'c2'; " + expected});
  std::ofstream(path("extra.csv")) << "x1,x2,c1,c2,w\n0,0,1,1,1\n";
  expect_error(run("evaluate " + model() + " " + path("extra.csv")),
               {"extra.csv: 'w' is not the model's; " + expected});
  flows::write_npy(path("three.npy"), flows::Matrix{{0, 0, 1}});
  expect_error(run("log-prob " + model() + " " + path("three.npy") + " -o " + path("o.csv")),
               {"three.npy: 3 columns, but " + expected +
                "; a file without a header holds the x columns, then the context columns, in "
                "that order"});
  std::ofstream(path("a_b.csv")) << "a,b,c,c1,c2\n0,0,0,1,1\n";
  expect_error(run("evaluate " + model() + " " + path("a_b.csv")),
               {"a_b.csv: 3 columns besides the context columns, but " + expected});
  EXPECT_FALSE(fs::exists(path("o.csv")));
}

TEST_F(ConditionalCommands, BadContextsAreNamedAndNothingIsWritten) {
  const std::string out = " -o " + path("never.csv");
  auto sample = [&](const std::string& context) {
    return run("sample " + model() + " -n 5" + context + out);
  };
  expect_error(sample(""), {"the model 'conditional' is conditional, p(x | c1, c2): give "
                            "--context FILE",
                            "or --context 'c1=...,c2=...'"});
  expect_error(sample(" --context c1=1,c3=2"),
               {"--context: 'c3' is not a context column; the model 'conditional' reads the "
                "context columns c1, c2"});
  expect_error(sample(" --context c1=1"), {"--context: no value for 'c2'", "c1, c2, each once"});
  expect_error(sample(" --context c1=1,c1=2,c2=0"), {"--context: 'c1' is given twice"});
  expect_error(sample(" --context c1=abc,c2=0"), {"--context: c1='abc' is not a finite number"});
  expect_error(sample(" --context c1=nan,c2=0"), {"c1='nan' is not a finite number"});
  expect_error(sample(" --context c1=1e999,c2=0"), {"c1='1e999' is not a finite number"});
  expect_error(sample(" --context c1=1,,c2=0"), {"--context 'c1=1,,c2=0': '' is not name=value"});
  expect_error(sample(" --context c1=1,c2"), {"'c2' is not name=value"});
  expect_error(sample(" --context " + path("absent.csv")),
               {"absent.csv': no such file, and not name=value pairs", "c1, c2"});

  std::ofstream(path("c1_only.csv")) << "c1\n1\n";
  expect_error(sample(" --context " + path("c1_only.csv")),
               {"c1_only.csv: no context column 'c2'; the model 'conditional' reads the context "
                "columns c1, c2; the file has c1"});
  std::ofstream(path("zz.csv")) << "c1,c2,zz\n1,1,1\n";
  expect_error(sample(" --context " + path("zz.csv")),
               {"zz.csv: 'zz' is neither a context column (c1, c2) nor an x column"});
  flows::write_npy(path("wide.npy"), flows::Matrix{{1, 2, 3}});
  expect_error(sample(" --context " + path("wide.npy")),
               {"wide.npy: 3 columns, but the model 'conditional' reads 2 context columns (c1, "
                "c2), in that order"});
  std::ofstream(path("ctx.txt")) << "c1,c2\n1,1\n";
  expect_error(sample(" --context " + path("ctx.txt")), {"must end in .csv or .npy"});
  std::ofstream(path("three_rows.csv")) << "c1,c2\n1,1\n2,2\n3,3\n";
  expect_error(
      run("sample " + model() + " -n 1000000000 --context " + path("three_rows.csv") + out),
      {"-n 1000000000 for each of 3 context rows is more than 10^9 samples"});
  EXPECT_FALSE(fs::exists(path("never.csv")));

  // A data file works as a context file: its x columns are not used.
  std::ofstream(path("data.csv")) << "x1,x2,c1,c2\n9,9,1,-1\n";
  ASSERT_EQ(run("sample " + model() + " -n 20 --seed 3 --context " + path("data.csv") + " -o " +
                path("from_data.csv"))
                .code,
            0);
  ASSERT_EQ(
      run("sample " + model() + " -n 20 --seed 3 --context c1=1,c2=-1 -o " + path("inline.csv"))
          .code,
      0);
  EXPECT_TRUE(flows::read_csv(path("from_data.csv")) == flows::read_csv(path("inline.csv")));
}

TEST_F(ConditionalCommands, TheRunWroteAReportAtThreeContexts) {
  const std::string html = read_file(*dir_ / "out/report.html");
  EXPECT_NE(html.find("2 dimensions \u00b7 2 context columns"), std::string::npos);
  EXPECT_NE(html.find("<h2>At three context values</h2>"), std::string::npos);
  EXPECT_NE(html.find("At c1 = "), std::string::npos);
  EXPECT_NE(html.find(" (10% quantile); c2 = "), std::string::npos);
  EXPECT_NE(html.find(" (90% quantile); c2 = "), std::string::npos);
  EXPECT_EQ(count_of(html, ">Density p(x | c)</text>"), 3u);
  EXPECT_EQ(count_of(html, ">Samples at c (1000)</text>"), 3u);
  EXPECT_EQ(html.find("could not be"), std::string::npos);
}

}  // namespace
