#include "workloads.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <iostream>

#include <fmt/format.h>

#include "flows/normal.hpp"
#include "flows/ode_solver.hpp"
#include "flows/pipeline.hpp"

namespace flows::bench {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

double quantile(std::vector<double> v, double q) {
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  const auto k = static_cast<std::size_t>(q * static_cast<double>(v.size() - 1) + 0.5);
  return v[k];
}

// The per-step wall times of a training run, from the progress callback.
struct TimedTraining {
  TrainReport report;
  std::vector<double> step_seconds;
  double seconds = 0;
};

TimedTraining train_timed(Pipeline& p) {
  TimedTraining t;
  double last = 0;
  TrainerCallbacks callbacks;
  callbacks.on_progress = [&](const Progress& progress) {
    t.step_seconds.push_back(progress.seconds - last);
    last = progress.seconds;
  };
  Rng train_rng = Rng(p.options.seed).derive(3);
  const auto start = Clock::now();
  t.report = p.trainer->train(*p.model.flow, p.data, train_rng, callbacks);
  t.seconds = seconds_since(start);
  return t;
}

// NLL in the standardized space the Python tools report: with u = (x - μ)/σ,
// log p_x = log p_u - Σ_j log σ_j, so NLL_u = NLL_x - Σ_j log σ_j.
Real standardized_nll(const Pipeline& p, Real nll_data) {
  Real log_scale_sum = 0;
  if (p.model.standardize)
    for (Real s : p.model.standardize->scale()) log_scale_sum += std::log(s);
  return nll_data - log_scale_sum;
}

// Reference figures of the Python tool measured for a density workload.
struct DensityReference {
  std::string tool;
  double step_ms, nll_standardized, nll_data, sample_s, log_prob_s;
};

// `n` rows cycling through the rows of `m`.
Matrix tile_rows(const Matrix& m, Index n) {
  Matrix out({n, m.shape(1)});
  for (Index i = 0; i < n; ++i)
    std::copy(m.data() + (i % m.shape(0)) * m.shape(1),
              m.data() + (i % m.shape(0) + 1) * m.shape(1), out.data() + i * m.shape(1));
  return out;
}

// Trains the pipeline's flow by maximum likelihood and times what a user of
// a density model waits for: steps, training, sampling and scoring.
std::vector<Measurement> run_density_workload(const Workload& w, const BenchOptions& options,
                                              const DensityReference& ref) {
  std::vector<std::string> overrides = {"stages=[train]"};
  if (options.steps) overrides.push_back(fmt::format("trainer.steps={}", *options.steps));
  Pipeline p = Pipeline::load(std::string(FLOWS_SOURCE_DIR) + "/" + w.config, overrides);

  TimedTraining t = train_timed(p);
  const TrainReport& report = t.report;
  const double train_seconds = t.seconds;
  const std::vector<double>& step_seconds = t.step_seconds;

  const Real nll_data = p.model.flow->mean_nll(p.data.test);
  const Real nll_standardized = standardized_nll(p, nll_data);

  Rng sample_rng = Rng(p.options.seed).derive(4);
  auto start = Clock::now();
  Matrix samples = p.model.flow->sample(options.points, sample_rng);
  const double sample_seconds = seconds_since(start);

  Matrix rows = tile_rows(p.data.test, options.points);
  start = Clock::now();
  Vector lp = p.model.flow->log_prob(rows);
  const double log_prob_seconds = seconds_since(start);

  const std::string n = fmt::format("{}k", options.points / 1000);
  return {
      {"train step (median)", 1e3 * quantile(step_seconds, 0.5), "ms", ref.step_ms, ref.tool, true},
      {"train step (fastest tenth)", 1e3 * quantile(step_seconds, 0.1), "ms", NAN, "", true},
      // The issue quotes no wall time for the Python tools here, so none is shown.
      {fmt::format("train wall ({} steps)", report.steps), train_seconds, "s", NAN, "", true},
      {"test NLL, standardized", nll_standardized, "nats", ref.nll_standardized, ref.tool, false},
      {"test NLL, data units", nll_data, "nats", ref.nll_data, ref.tool, false},
      {"sample " + n + " points", sample_seconds, "s", ref.sample_s, ref.tool, true},
      {"log_prob " + n + " points", log_prob_seconds, "s", ref.log_prob_s, ref.tool, true},
  };
}

// Counts the function evaluations of the solver nested under its `solver:`
// key, so the bench can report NFE without knowing the plugin's types. Flow
// runs row blocks on several threads, each its own solve of the same ODE: the
// figure reported is the largest NFE of one solve.
class CountingSolver : public OdeSolver {
 public:
  CountingSolver(std::shared_ptr<OdeSolver> inner, std::shared_ptr<std::atomic<Index>> max_nfe)
      : inner_(std::move(inner)), max_nfe_(std::move(max_nfe)) {}
  OdeStats integrate(const OdeSystem& f, Matrix& x, Real t0, Real t1) const override {
    const OdeStats s = inner_->integrate(f, x, t0, t1);
    Index seen = max_nfe_->load();
    while (s.function_evaluations > seen &&
           !max_nfe_->compare_exchange_weak(seen, s.function_evaluations)) {
    }
    return s;
  }

 private:
  std::shared_ptr<OdeSolver> inner_;
  std::shared_ptr<std::atomic<Index>> max_nfe_;
};

// W3 (issue 5): a velocity field trained by conditional flow matching, then
// sampled and scored through the ODE with several solvers. torchcfm 1.0.7 +
// torchdiffeq 0.2.5 on PyTorch 1.13 (CPU, float32, 2 threads): 2.2 ms per
// step (12.8 s for 3,000), 10k samples in 1.12 s with dopri5 at 1e-5 (56 NFE),
// 7.5 s with rk4 x 100, 1.68 s with euler x 100; exact NLL of 2,000 test
// points in 9.2 s (410 NFE), 1.875 standardized (1.03 data units).
std::vector<Measurement> run_flow_matching_workload(const Workload& w,
                                                    const BenchOptions& options) {
  std::vector<std::string> overrides = {"stages=[train]", "trainer.steps=3000",
                                        "model.bijectors.0.time_frequencies=0"};
  if (options.steps) overrides.push_back(fmt::format("trainer.steps={}", *options.steps));
  Pipeline p = Pipeline::load(std::string(FLOWS_SOURCE_DIR) + "/" + w.config, overrides);
  auto nfe = std::make_shared<std::atomic<Index>>(0);
  p.registry->add<OdeSolver>("counting", [nfe](ConfigNode& node, const BuildContext& context) {
    ConfigNode inner = node.child("solver");
    auto solver =
        std::make_unique<CountingSolver>(context.registry->make<OdeSolver>(inner, context), nfe);
    node.finish();
    return solver;
  });
  TimedTraining t = train_timed(p);
  const Index dim = p.data.train.shape(1);
  std::shared_ptr<Bijector> trained = p.model.flow->chain().back();

  // The trained field under another solver: the same bijector options with
  // `solver:` replaced, and the trained parameters copied in (same order).
  auto with_solver = [&](const std::string& solver, bool sample_logdet) {
    ConfigNode node = p.model_node.children("bijectors").at(0);
    node.set("solver", "{type: counting, solver: " + solver + "}");
    node.set("sample_logdet", sample_logdet ? "true" : "false");
    auto bijector = p.registry->make<Bijector>(node, BuildContext{dim, 0, 0, p.registry.get()});
    ParameterList to = bijector->parameters(), from = trained->parameters();
    for (std::size_t k = 0; k < to.size(); ++k) to[k]->value = from[k]->value;
    std::vector<std::shared_ptr<Bijector>> chain;
    if (p.model.standardize) chain.push_back(p.model.standardize);
    chain.push_back(bijector);
    return Flow(std::make_shared<StandardNormal>(dim), chain);
  };

  const Index n_samples = 10000;
  std::vector<Measurement> rows = {
      {"train step (median)", 1e3 * quantile(t.step_seconds, 0.5), "ms", 2.2, "torchcfm", true},
      {fmt::format("train wall ({} steps)", t.report.steps), t.seconds, "s",
       12.8 * static_cast<double>(t.report.steps) / 3000.0, "torchcfm", true}};
  struct SolverCase {
    const char* label;
    const char* yaml;
    double ref_seconds, ref_nfe;
  };
  for (const SolverCase& c :
       {SolverCase{"dopri5 1e-5", "{type: dopri5, rtol: 1.0e-5, atol: 1.0e-5}", 1.12, 56},
        SolverCase{"rk4 x 100", "{type: rk4, steps: 100}", 7.5, 400},
        SolverCase{"euler x 100", "{type: euler, steps: 100}", 1.68, 100}}) {
    Flow flow = with_solver(c.yaml, false);
    nfe->store(0);
    Rng rng = Rng(p.options.seed).derive(4);
    const auto start = Clock::now();
    Matrix samples = flow.sample(n_samples, rng);
    const double seconds = seconds_since(start);
    rows.push_back(
        {fmt::format("sample 10k, {}", c.label), seconds, "s", c.ref_seconds, "torchcfm", true});
    rows.push_back({fmt::format("  NFE, {}", c.label), static_cast<double>(nfe->load()), "",
                    c.ref_nfe, "torchcfm", false});
  }
  const Index n_test = std::min<Index>(2000, p.data.test.shape(0));
  Matrix test = xt::view(p.data.test, xt::range(0, n_test), xt::all());
  Flow scorer = with_solver("{type: dopri5, rtol: 1.0e-5, atol: 1.0e-5}", true);
  nfe->store(0);
  const auto start = Clock::now();
  const Real nll_data = scorer.mean_nll(test);
  const double seconds = seconds_since(start);
  rows.push_back({"exact NLL 2k points, dopri5 1e-5", seconds, "s", 9.2, "torchcfm", true});
  rows.push_back(
      {"  NFE of the NLL solve", static_cast<double>(nfe->load()), "", 410, "torchcfm", false});
  rows.push_back(
      {"test NLL, standardized", standardized_nll(p, nll_data), "nats", 1.875, "torchcfm", false});
  rows.push_back({"test NLL, data units", nll_data, "nats", 1.03, "torchcfm", false});
  return rows;
}

}  // namespace

std::vector<Workload> standard_workloads() {
  std::vector<Workload> all;
  // W1 (issue 3): zuko 1.6 on PyTorch 1.13, CPU float32, 2 threads: median step
  // 7.4-11.8 ms over three runs (the lower end is quoted), test NLL 1.19
  // standardized (0.346 data units), 100k samples 0.58-0.89 s, log_prob
  // 0.24-0.34 s.
  all.push_back({"W1", "MAF, 5 layers, MADE [64, 64], moons", "configs/maf_moons.yaml",
                 [](const Workload& w, const BenchOptions& o) {
                   return run_density_workload(w, o, {"zuko 1.6", 7.4, 1.19, 0.346, 0.58, 0.24});
                 }});
  // W2 (issue 4): zuko 1.6 NSF: 23 ms per step, NLL 1.168 standardized
  // (0.325 data), 100k samples 1.15 s, log_prob 0.77 s.
  all.push_back({"W2", "NSF autoregressive, 5 layers, 8 bins, [64, 64], moons",
                 "configs/nsf_moons.yaml", [](const Workload& w, const BenchOptions& o) {
                   return run_density_workload(w, o, {"zuko 1.6", 23.0, 1.168, 0.325, 1.15, 0.77});
                 }});
  all.push_back({"W3", "flow matching, [x, t] -> 3 x 64 SELU, moons", "configs/fm_moons.yaml",
                 &run_flow_matching_workload});
  return all;
}

}  // namespace flows::bench
