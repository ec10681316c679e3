// flows doctor (issue 15): the checks of every layer, the failures they name,
// the runner's `doctor` command and report section, and `tail_bound: auto`.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "flows/auto_tail_bound.hpp"
#include "flows/checkpoint.hpp"
#include "flows/diagnostics.hpp"
#include "flows/doctor.hpp"
#include "flows/pipeline.hpp"
#include "flows/plugin_loader.hpp"
#include "flows/registry.hpp"
#include "flows/standardize.hpp"
#include "report.hpp"
#include "runner_support.hpp"

namespace flows {
namespace {

using namespace flows::test_support;

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// Whether a line of the printed table starts with `layer` and then `type`.
bool has_table_row(const std::string& text, const std::string& layer, const std::string& type) {
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    std::istringstream words(line);
    std::string first, second;
    if (words >> first >> second && first == layer && second == type) return true;
  }
  return false;
}

// The row of `layer` whose check starts with `check` (null when none).
const DoctorRow* row_of(const DoctorReport& report, const std::string& layer,
                        const std::string& check) {
  for (const DoctorRow& r : report.rows)
    if (r.layer == layer && r.finding.check.rfind(check, 0) == 0) return &r;
  return nullptr;
}

Registry& registry() {
  static Registry* r = [] {
    auto* reg = new Registry;
    register_builtins(*reg);
    load_plugins({FLOWS_PLUGIN_DIR}, *reg);
    return reg;
  }();
  return *r;
}

std::shared_ptr<Bijector> make_bijector(const std::string& yaml, Index dim) {
  ConfigNode node = ConfigNode::parse(yaml, "test");
  return registry().make<Bijector>(node, BuildContext{dim, 0, 3, &registry()});
}

std::shared_ptr<BaseDistribution> standard_normal(Index dim) {
  ConfigNode node = ConfigNode::parse("{type: standard_normal}", "test");
  return registry().make<BaseDistribution>(node, BuildContext{dim, 0, 0, &registry()});
}

Matrix normal_rows(Index n, Index d, Real scale, std::uint64_t seed) {
  Rng rng(seed);
  return rng.normal(n, d) * scale;
}

// A quickstart-like pipeline with one of each kind of layer the doctor has
// something specific to say about (lu_linear, actnorm), on moons.
std::string healthy_pipeline(const std::string& output) {
  return "name: doctor\nseed: 0\noutput: " + output +
         "\n"
         "data: {type: moons, n_train: 4000, n_val: 500, n_test: 1000, noise: 0.05}\n"
         "model:\n"
         "  bijectors:\n"
         "    - {type: autoregressive, layers: 2, hidden: [16, 16]}\n"
         "    - {type: lu_linear}\n"
         "    - {type: actnorm}\n"
         "    - {type: coupling, layers: 2, hidden: [16]}\n"
         "trainer: {type: mle, optimizer: {type: adam, lr: 5.0e-3}, batch_size: 256, steps: 300}\n"
         "stages: [train, save]\n";
}

TEST(Doctor, EveryCheckPassesOnATrainedModelAndEveryLayerIsNamed) {
  const fs::path dir = temp_dir("doctor_healthy");
  Pipeline p =
      Pipeline::parse(healthy_pipeline((dir / "out").string()), (dir / "doctor.yaml").string());
  p.train({});
  const DoctorReport report = diagnose_pipeline(p);
  const std::string table = doctor_table(report);
  EXPECT_TRUE(report.ok()) << table;
  EXPECT_EQ(report.failures(), 0u);
  // The data layer, then each layer of each bijector, named by its index.
  const std::vector<std::pair<std::string, std::string>> layers = {
      {"0", "standardization"}, {"1.0", "autoregressive"}, {"1.1", "autoregressive"},
      {"2", "lu_linear"},       {"3", "actnorm"},          {"4.0", "coupling"},
      {"4.1", "coupling"}};
  for (const auto& [layer, type] : layers) {
    for (const char* check : {"round trip on data", "round trip on samples",
                              "log-det vs finite differences", "inverse log-det = -forward"}) {
      const DoctorRow* r = row_of(report, layer, check);
      ASSERT_NE(r, nullptr) << layer << " " << check << "\n" << table;
      EXPECT_EQ(r->type, type) << table;
    }
  }
  ASSERT_NE(row_of(report, "2", "condition number of W"), nullptr) << table;
  ASSERT_NE(row_of(report, "3", "scale ratio"), nullptr) << table;
  EXPECT_TRUE(contains(report.source, "test split")) << report.source;
  for (const auto& [layer, type] : layers) EXPECT_TRUE(has_table_row(table, layer, type)) << table;
}

// The tail check on a spline whose bound 0.5 leaves most of N(0, 3²) data
// outside: the share is P(|N(0, 1)| > 1/6) ≈ 0.868, and the suggested bound
// is the 99.9 % quantile of |x| with the margin 1.2, rounded up to 0.5.
TEST(Doctor, ASplineWithATooNarrowTailBoundFailsAndSuggestsACoveringBound) {
  const Matrix x = normal_rows(2000, 2, 3.0, 5);  // the doctor uses 2000 rows
  auto run = [&](const std::string& bound) {
    Flow flow(standard_normal(2),
              {make_bijector("{type: coupling, layers: 1, hidden: [8], transformer: {type: "
                             "rational_quadratic, tail_bound: " +
                                 bound + "}}",
                             2)});
    return run_doctor(flow, x, {});
  };
  const DoctorReport narrow = run("0.5");
  const std::string table = doctor_table(narrow);
  const DoctorRow* tail = row_of(narrow, "0.0", "spline inputs outside [-0.5, 0.5]");
  ASSERT_NE(tail, nullptr) << table;
  EXPECT_FALSE(tail->finding.ok);
  EXPECT_FALSE(narrow.ok());
  EXPECT_NEAR(tail->finding.value, 0.868, 0.02) << table;
  EXPECT_TRUE(contains(tail->finding.advice, "tail_bound")) << tail->finding.advice;
  // The coupling layer transforms the second column (mask: halves).
  std::vector<Real> magnitudes;
  for (Index r = 0; r < x.shape(0); ++r) magnitudes.push_back(std::abs(x(r, 1)));
  std::sort(magnitudes.begin(), magnitudes.end());
  const Real q999 = magnitudes[static_cast<Index>(std::ceil(0.999 * magnitudes.size())) - 1];
  const DoctorRow* suggested = row_of(narrow, "0.0", "tail_bound covering 99.9 %");
  ASSERT_NE(suggested, nullptr) << table;
  EXPECT_TRUE(suggested->finding.ok);  // information, not a check
  EXPECT_GE(suggested->finding.value, 1.2 * q999);
  EXPECT_LE(suggested->finding.value, 1.2 * q999 + 0.5);
  EXPECT_GT(q999, 8.0);  // ≈ 3 · 3.29
  EXPECT_TRUE(contains(table, "FAIL  layer 0.0 (coupling), spline inputs outside")) << table;
  // The bound it suggests passes.
  const DoctorReport wide = run(fmt::format("{}", suggested->finding.value));
  EXPECT_TRUE(wide.ok()) << doctor_table(wide);
}

// A bijector whose map is right and whose log-det is off by a constant: only
// the finite-difference check can see it (its inverse agrees with it).
class OffsetLogDet final : public Bijector {
 public:
  OffsetLogDet(Index dim, Real offset) : Bijector("offset_logdet", dim), offset_(offset) {}
  ParameterList parameters() override { return {}; }

 private:
  Real logdet() const { return static_cast<Real>(dim()) * std::log(2.0) + offset_; }
  Transformed forward_impl(const Matrix& x, const Matrix&) const override {
    return {2.0 * x, xt::zeros<Real>({x.shape(0)}) + logdet()};
  }
  Transformed inverse_impl(const Matrix& z, const Matrix&) const override {
    return {0.5 * z, xt::zeros<Real>({z.shape(0)}) - logdet()};
  }
  void forward_train_impl(const Matrix& x, const Matrix& c, Matrix& z, Vector& ld) override {
    Transformed t = forward_impl(x, c);
    z = t.value;
    ld = t.logdet;
  }
  void backward_impl(const Matrix& gz, const Vector&, Matrix& gx, Matrix*) override {
    gx = 2.0 * gz;
  }
  Real offset_;
};

TEST(Doctor, TheFiniteDifferenceCheckCatchesALogDetOffByAConstant) {
  const Matrix x = normal_rows(500, 3, 1.0, 7);
  for (Real offset : {0.0, 0.1}) {
    Flow flow(standard_normal(3), {std::make_shared<OffsetLogDet>(3, offset)});
    const DoctorReport report = run_doctor(flow, x, {});
    const std::string table = doctor_table(report);
    const DoctorRow* fd = row_of(report, "0", "log-det vs finite differences");
    ASSERT_NE(fd, nullptr) << table;
    EXPECT_NEAR(fd->finding.value, offset, 1e-6) << table;
    EXPECT_EQ(fd->finding.ok, offset == 0.0) << table;
    EXPECT_TRUE(row_of(report, "0", "round trip on data")->finding.ok) << table;
    EXPECT_TRUE(row_of(report, "0", "round trip on samples")->finding.ok) << table;
    EXPECT_TRUE(row_of(report, "0", "inverse log-det = -forward")->finding.ok) << table;
    EXPECT_EQ(report.ok(), offset == 0.0) << table;
    if (offset != 0.0) {
      EXPECT_TRUE(contains(table, "FAIL  layer 0 (offset_logdet), log-det vs finite")) << table;
    }
  }
}

// A checkpoint whose lu_linear has W = diag(1, e^-20): condition e^20 ≈ 4.9e8.
TEST(Doctor, ANearlySingularLuLinearInACheckpointFailsWithItsCondition) {
  const fs::path dir = temp_dir("doctor_lu");
  const std::string yaml = "name: lu\nseed: 0\noutput: " + (dir / "out").string() +
                           "\ndata: {type: moons, n_train: 1000, n_val: 100, n_test: 500}\n"
                           "model: {bijectors: [{type: lu_linear}]}\nstages: [save]\n";
  Pipeline p = Pipeline::parse(yaml, (dir / "lu.yaml").string());
  Checkpoint checkpoint = make_checkpoint(p);
  bool changed = false;
  for (auto& entry : checkpoint.tensors.entries)
    if (entry.name.size() >= 8 && entry.name.compare(entry.name.size() - 8, 8, "log_diag") == 0) {
      entry.value(0, 1) = -20;
      changed = true;
    }
  ASSERT_TRUE(changed);
  const std::string path = (dir / "singular.flows").string();
  write_checkpoint(path, checkpoint);
  LoadedModel loaded = load_model(path);
  auto exact = float64_model(read_checkpoint(path), loaded.registry, path);
  const DoctorReport report = run_doctor(*loaded.model.flow, {}, {}, {}, exact.get());
  const std::string table = doctor_table(report);
  const DoctorRow* cond = row_of(report, "1", "condition number of W");
  ASSERT_NE(cond, nullptr) << table;
  EXPECT_EQ(cond->type, "lu_linear");
  EXPECT_FALSE(cond->finding.ok) << table;
  EXPECT_NEAR(cond->finding.value / std::exp(20.0), 1.0, 1e-6) << table;
  EXPECT_TRUE(contains(report.source, "samples")) << report.source;  // no data given

  // Through the runner: the table, FAIL, and exit status 1; the healthy
  // checkpoint (condition 1) exits with 0.
  const std::string healthy = (dir / "healthy.flows").string();
  write_checkpoint(healthy, make_checkpoint(p));
  const fs::path log = dir / "doctor.txt";
  EXPECT_EQ(run_logged(std::string(FLOWS_RUNNER) + " doctor " + path, log), 1);
  std::string out = read_file(log);
  EXPECT_TRUE(contains(out, "condition number of W")) << out;
  EXPECT_TRUE(contains(out, "FAIL  layer 1 (lu_linear)")) << out;
  EXPECT_EQ(run_logged(std::string(FLOWS_RUNNER) + " doctor " + healthy, log), 0) << read_file(log);
  out = read_file(log);
  EXPECT_TRUE(contains(out, "every check passed")) << out;
}

// `flows doctor runs/quickstart/model.flows`: the quickstart, shortened, then
// the doctor on its checkpoint, on its pipeline (which finds the checkpoint)
// and on --data rows; report.html has the same table.
TEST(DoctorRunner, PrintsTheTableOfTheQuickstartModelAndTheReportHasIt) {
  const fs::path dir = temp_dir("doctor_runner");
  const std::string runner = FLOWS_RUNNER;
  const std::string config = std::string(FLOWS_SOURCE_DIR) + "/configs/quickstart.yaml";
  const std::string out_dir = (dir / "out").string();
  ASSERT_EQ(run_logged(runner + " run -q " + config + " --set trainer.steps=200 -o " + out_dir,
                       dir / "run.txt"),
            0)
      << read_file(dir / "run.txt");
  const fs::path log = dir / "doctor.txt";
  ASSERT_EQ(run_logged(runner + " doctor " + out_dir + "/model.flows", log), 0) << read_file(log);
  std::string out = read_file(log);
  for (const char* part : {"layer", "threshold", "round trip on data", "round trip on samples",
                           "log-det vs finite differences", "every check passed"})
    EXPECT_TRUE(contains(out, part)) << part << "\n" << out;
  // The standardization and the four MAF layers, each named.
  EXPECT_TRUE(has_table_row(out, "0", "standardization")) << out;
  for (const char* layer : {"1.0", "1.1", "1.2", "1.3"})
    EXPECT_TRUE(has_table_row(out, layer, "maf")) << layer << "\n" << out;

  ASSERT_EQ(run_logged(runner + " doctor " + config + " --set output=" + out_dir, log), 0)
      << read_file(log);
  out = read_file(log);
  EXPECT_TRUE(contains(out, "trained: " + out_dir + "/model.flows")) << out;
  EXPECT_TRUE(contains(out, "test split")) << out;

  std::ofstream(dir / "rows.csv") << "x0,x1\n0.5,0.2\n-0.8,0.6\n1.9,0.1\n0.0,0.9\n";
  ASSERT_EQ(run_logged(runner + " doctor " + out_dir + "/model.flows --data " +
                           (dir / "rows.csv").string(),
                       log),
            0)
      << read_file(log);
  EXPECT_TRUE(contains(read_file(log), "4 data rows")) << read_file(log);

  const std::string html = read_file(dir / "out/report.html");
  EXPECT_TRUE(contains(html, "<h2>Doctor</h2>")) << html.substr(0, 400);
  EXPECT_TRUE(contains(html, "<td>log-det vs finite differences</td>"));
  EXPECT_TRUE(contains(html, "<td>1.3</td><td>maf</td>"));
  EXPECT_TRUE(contains(html, "Every check passed."));
}

TEST(DoctorReportHtml, AFailedCheckIsMarkedAndItsAdviceEscaped) {
  app::ReportInputs inputs;
  inputs.title = "t";
  inputs.data = xt::zeros<Real>({Index{3}, Index{2}});
  inputs.samples = inputs.data;
  DoctorReport report;
  report.source = "3 data rows";
  report.rows.push_back({"0", "standardize", Finding{"round trip on data", 1e-16, 1e-4, true, ""}});
  report.rows.push_back({"1.0", "nsf_coupling",
                         Finding{"spline inputs outside [-3, 3]", 0.2, 0.005, false, "a < b"}});
  inputs.doctor = report;
  const std::string html = app::render_report(inputs);
  EXPECT_TRUE(contains(html, "<h2>Doctor</h2>"));
  EXPECT_TRUE(contains(html, "1 of 2 checks failed."));
  EXPECT_TRUE(contains(html, "<tr class=\"fail\"><td>1.0</td><td>nsf_coupling</td>"));
  EXPECT_TRUE(contains(html, "<td>FAIL</td><td>a &lt; b</td>"));
  EXPECT_TRUE(contains(html, "<td>round trip on data</td>"));
  // No doctor: no section.
  inputs.doctor.reset();
  EXPECT_FALSE(contains(app::render_report(inputs), "<h2>Doctor</h2>"));
}

TEST(SuggestedTailBound, IsTheQuantileWithItsMarginRoundedUpToAHalf) {
  std::vector<Real> values;
  for (int i = 1; i <= 1000; ++i) values.push_back(i % 2 ? -i : i);
  // The 999th of 1000 magnitudes is 999; 1.2 · 999 = 1198.8 → 1199.
  EXPECT_EQ(suggested_tail_bound(values), 1199.0);
  EXPECT_EQ(suggested_tail_bound({0.0, 0.0}), 0.5);            // at least 0.5
  EXPECT_EQ(suggested_tail_bound({1.0, NAN, INFINITY}), 1.5);  // non-finite skipped
  EXPECT_TRUE(std::isnan(suggested_tail_bound({})));
  // N(0, 1): q_0.999 = 3.29, 1.2 · 3.29 = 3.95 → 4, the floor of `auto`.
  const Matrix z = normal_rows(200000, 1, 1.0, 9);
  EXPECT_EQ(auto_tail_bound(z), kAutoTailBoundFloor);
  EXPECT_EQ(suggested_tail_bound(std::vector<Real>(z.begin(), z.end())), 4.0);
  EXPECT_EQ(auto_tail_bound(z * 0.1), kAutoTailBoundFloor);  // light tails: the floor
  EXPECT_EQ(auto_tail_bound(z * 2.0), 8.0);                  // 1.2 · 6.58 = 7.9 → 8
}

// configs/data/banana4d.csv has a Student-t column (x3): standardized, its
// 99.9 % quantile of |x| over the pooled columns is ≈ 5.76, so auto gives ⌈2 · 1.2 · 5.76⌉ / 2 = 7.
TEST(TailBoundAuto, ResolvesFromTheStandardizedTrainingRowsAndTheCheckpointStoresIt) {
  const fs::path dir = temp_dir("tail_auto");
  const std::string yaml =
      "name: auto\nseed: 0\noutput: " + (dir / "out").string() +
      "\ndata: {type: csv, path: " + FLOWS_SOURCE_DIR +
      "/configs/data/banana4d.csv, val_fraction: 0.1, test_fraction: 0.1}\n"
      "model:\n"
      "  bijectors:\n"
      "    - {type: nsf_autoregressive, layers: 1, hidden: [8], tail_bound: auto}\n"
      "    - {type: coupling, layers: 1, hidden: [8],\n"
      "       transformer: {type: rational_quadratic, tail_bound: auto}}\n"
      "stages: [save]\n";
  Pipeline p = Pipeline::parse(yaml, (dir / "auto.yaml").string());
  // The value, computed here from its definition.
  const Matrix standardized = Standardize::fit(p.data.train).forward(p.data.train).value;
  std::vector<Real> magnitudes;
  for (Real v : standardized) magnitudes.push_back(std::abs(v));
  std::sort(magnitudes.begin(), magnitudes.end());
  const Real q = magnitudes[static_cast<Index>(std::ceil(0.999 * magnitudes.size())) - 1];
  const Real expected = std::max(4.0, std::ceil(2 * 1.2 * q) / 2);
  EXPECT_EQ(expected, 7.0) << "q = " << q;
  const std::string model_yaml = make_checkpoint(p).info.model_yaml;
  EXPECT_FALSE(contains(model_yaml, "tail_bound: auto")) << model_yaml;
  EXPECT_TRUE(contains(model_yaml, "tail_bound: 7.0")) << model_yaml;
  // The saved model is built with B = 7 and needs no data to load.
  const std::string path = (dir / "auto.flows").string();
  write_checkpoint(path, make_checkpoint(p));
  LoadedModel loaded = load_model(path);
  const DoctorReport report = run_doctor(*loaded.model.flow, {}, {});
  EXPECT_NE(row_of(report, "1.0", "spline inputs outside [-7, 7]"), nullptr)
      << doctor_table(report);
  EXPECT_NE(row_of(report, "2.0", "spline inputs outside [-7, 7]"), nullptr)
      << doctor_table(report);

  // Without model.standardize the raw training values count (x4 = exp(·) reaches far).
  Pipeline raw = Pipeline::parse(yaml, (dir / "auto.yaml").string(), {"model.standardize=false"});
  magnitudes.clear();
  for (Real v : raw.data.train) magnitudes.push_back(std::abs(v));
  std::sort(magnitudes.begin(), magnitudes.end());
  const Real q_raw = magnitudes[static_cast<Index>(std::ceil(0.999 * magnitudes.size())) - 1];
  const Real expected_raw = std::max(4.0, std::ceil(2 * 1.2 * q_raw) / 2);
  EXPECT_NE(expected_raw, expected);
  EXPECT_TRUE(contains(raw.model_node.dump(), fmt::format("tail_bound: {:.1f}", expected_raw)))
      << raw.model_node.dump();

  // Light-tailed data (moons, standardized) give the floor.
  const std::string moons =
      "data: {type: moons, n_train: 2000, n_val: 100, n_test: 100, noise: 0.05}\n"
      "model: {bijectors: [{type: nsf_coupling, layers: 1, hidden: [8], tail_bound: auto}]}\n";
  Pipeline light = Pipeline::parse(moons, (dir / "moons.yaml").string());
  EXPECT_TRUE(contains(light.model_node.dump(), "tail_bound: 4.0")) << light.model_node.dump();
}

TEST(TailBoundAuto, OutsideAPipelineIsRefusedWithAMessage) {
  try {
    make_bijector("{type: nsf_autoregressive, hidden: [8], tail_bound: auto}", 2);
    ADD_FAILURE() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_TRUE(contains(e.what(), "tail_bound")) << e.what();
    EXPECT_TRUE(contains(e.what(), "pipeline")) << e.what();
  }
}

}  // namespace
}  // namespace flows
