#include "workloads.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <iostream>
#include <thread>

#include <fmt/format.h>
#include <xtensor/xmath.hpp>

#include "alloc_counter.hpp"
#include "blas_info.hpp"
#include "flows/data/correlated_gaussians.hpp"
#include "flows/error.hpp"
#include "flows/normal.hpp"
#include "flows/ode_solver.hpp"
#include "flows/pipeline.hpp"
#include "flows/precision.hpp"
#include "flows/streams.hpp"

namespace flows::bench {

using Clock = std::chrono::steady_clock;

double now_seconds() {
  return std::chrono::duration<double>(Clock::now().time_since_epoch()).count();
}

double seconds_since(double start) {
  return now_seconds() - start;
}

double median_seconds(const std::function<void()>& fn, int calls) {
  std::vector<double> seconds;
  for (int k = 0; k < calls; ++k) {
    const double start = now_seconds();
    fn();
    seconds.push_back(seconds_since(start));
  }
  return quantile(seconds, 0.5);
}

double quantile(std::vector<double> v, double q) {
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  const auto k = static_cast<std::size_t>(q * static_cast<double>(v.size() - 1) + 0.5);
  return v[k];
}

std::string count_label(Index n) {
  if (n >= 1000 && n % 1000 == 0) return fmt::format("{}k", n / 1000);
  return fmt::format("{}", n);
}

Pipeline load_pipeline(const std::string& config, std::vector<std::string> overrides,
                       const BenchOptions& options) {
  if (options.steps) overrides.push_back(fmt::format("trainer.steps={}", *options.steps));
  for (const std::string& o : options.overrides) overrides.push_back(o);
  return Pipeline::load(std::string(FLOWS_SOURCE_DIR) + "/" + config, overrides);
}

TimedTraining train_timed(Pipeline& p, double budget_seconds, Index min_steps) {
  TimedTraining t;
  double last = 0;
  std::uint64_t last_allocations = alloc::totals().calls;
  const char* trace = std::getenv("FLOWS_ALLOC_TRACE");
  const bool trace_steps = trace && std::string(trace) == "steps";
  TrainerCallbacks callbacks;
  callbacks.on_progress = [&](const Progress& progress) {
    // Read the counter first and again last, so that the callback's own
    // allocations (the vectors growing) are not charged to a step.
    const std::uint64_t allocations = alloc::totals().calls;
    if (t.step_seconds.capacity() < progress.total_steps) {
      t.step_seconds.reserve(progress.total_steps);
      t.step_allocations.reserve(progress.total_steps);
    }
    t.step_seconds.push_back(progress.seconds - last);
    t.step_allocations.push_back(static_cast<double>(allocations - last_allocations));
    // FLOWS_ALLOC_TRACE=steps: the call stacks of steps 50-59's allocations.
    if (trace_steps && t.step_seconds.size() == 50) alloc::trace_on();
    if (trace_steps && t.step_seconds.size() == 60) {
      alloc::trace_off();
      std::fprintf(stderr, "\n== allocations of training steps 50-59, per step\n");
      alloc::print_trace(stderr, 12, 10.0);
    }
    last = progress.seconds;
    last_allocations = alloc::totals().calls;
  };
  if (budget_seconds > 0)
    callbacks.should_stop = [&] {
      return t.step_seconds.size() >= min_steps && last >= budget_seconds;
    };
  // Through the pipeline, as `flows run` trains: it hands the trainer the
  // replica factory that row-block training on every core needs.
  const double start = now_seconds();
  t.report = p.train(callbacks);
  t.seconds = seconds_since(start);
  return t;
}

std::string model_precision(const Pipeline& p) {
  std::string precision = "float64";
  ConfigNode model = p.model_node;
  model.read("precision", precision);
  return precision;
}

Matrix tile_rows(const Matrix& m, Index n) {
  Matrix out({n, m.shape(1)});
  for (Index i = 0; i < n; ++i)
    std::copy(m.data() + (i % m.shape(0)) * m.shape(1),
              m.data() + (i % m.shape(0) + 1) * m.shape(1), out.data() + i * m.shape(1));
  return out;
}

double dense_multiply_adds(Flow& flow) {
  double total = 0;
  for (const Parameter* param : flow.parameters()) {
    const std::string& name = param->name;
    const bool weight = name.size() >= 6 && name.compare(name.size() - 6, 6, "weight") == 0;
    // The saved shape: a MADE's layers keep their unmasked weights only.
    const auto [rows, cols] = param->saved_shape();
    if (weight && rows > 1 && cols > 1) total += static_cast<double>(rows * cols);
  }
  return total;
}

namespace {

// The median heap allocations of a step; NaN when the counter is off (a
// sanitizer build), so that no false zero is reported.
double allocations_per_step(const TimedTraining& t) {
  return alloc::enabled() ? quantile(t.step_allocations, 0.5) : NAN;
}

// NLL in the standardized space the Python tools report: with u = (x - μ)/σ,
// log p_x = log p_u - Σ_j log σ_j, so NLL_u = NLL_x - Σ_j log σ_j.
Real standardized_nll(const Pipeline& p, Real nll_data) {
  Real log_scale_sum = 0;
  if (p.model.standardize)
    for (Real s : p.model.standardize->scale()) log_scale_sum += std::log(s);
  return nll_data - log_scale_sum;
}

// The true mean NLL of the test split when the data set is
// correlated_gaussians (its density is known), else NaN. The distribution is
// rebuilt from the data section with the Rng the pipeline gives load().
Real true_test_nll(const Pipeline& p) {
  try {
    ConfigNode node = p.root;
    ConfigNode data = node.child("data");
    std::string type;
    data.read("type", type);
    if (type != "correlated_gaussians") return NAN;
    const CorrelatedGaussiansDataset dataset(CorrelatedGaussiansOptions::from(data));
    const CorrelatedGaussians truth =
        dataset.distribution(run_stream(p.options.seed, RunStream::data_rows));
    return -xt::mean(truth.log_prob(p.data.test))();
  } catch (const Error&) {
    return NAN;
  }
}

Index trainer_batch(const Pipeline& p) {
  ConfigNode node = p.root;
  ConfigNode trainer = node.child("trainer");
  Index batch = 0;
  trainer.read("batch_size", batch);
  return batch;
}

// How a density workload is measured.
struct DensitySpec {
  Index sample_points = 100000;
  Index log_prob_points = 100000;
  bool flop_rate = false;  // W4: FLOP per step, GFLOP/s and the GEMM reference rates
};

// The GEMM rates the training step is set against (same run, same machine):
// SGEMM at 2048³ and at the hidden layer's shape 128 x 256 x 256, on every
// core and on one, and DGEMM at 2048³ for the float64 networks.
std::vector<Measurement> gemm_reference(double step_gflops) {
  const int cores = std::max(1u, std::thread::hardware_concurrency());
  const double s_big = gemm_gflops(true, 2048, 2048, 2048, cores);
  const double s_layer = gemm_gflops(true, 128, 256, 256, cores);
  const double s_big_1 = gemm_gflops(true, 2048, 2048, 2048, 1);
  const double d_big = gemm_gflops(false, 2048, 2048, 2048, cores);
  const double d_layer = gemm_gflops(false, 128, 256, 256, cores);
  return {
      {fmt::format("SGEMM 2048^3, {} threads", cores), s_big, "GFLOP/s"},
      {fmt::format("SGEMM 128x256x256, {} threads", cores), s_layer, "GFLOP/s"},
      {"SGEMM 2048^3, 1 thread", s_big_1, "GFLOP/s"},
      {fmt::format("DGEMM 2048^3, {} threads", cores), d_big, "GFLOP/s"},
      {fmt::format("DGEMM 128x256x256, {} threads", cores), d_layer, "GFLOP/s"},
      {fmt::format("train step rate / SGEMM 2048^3 ({} threads)", cores), 100 * step_gflops / s_big,
       "%"},
      {fmt::format("train step rate / SGEMM 128x256x256 ({} threads)", cores),
       100 * step_gflops / s_layer, "%"},
      {fmt::format("train step rate / DGEMM 2048^3 ({} threads)", cores), 100 * step_gflops / d_big,
       "%"},
  };
}

// Trains the pipeline's flow by maximum likelihood and times what a user of
// a density model waits for: steps, training, sampling and scoring.
WorkloadResult run_density_workload(const Workload& w, const BenchOptions& options,
                                    const DensitySpec& spec) {
  Pipeline p = load_pipeline(w.config, {"stages=[train]"}, options);

  TimedTraining t = train_timed(p);
  const double step = quantile(t.step_seconds, 0.5);

  const Real nll_data = p.model.flow->mean_nll(p.data.test);
  const Real nll_standardized = standardized_nll(p, nll_data);

  const Index n_sample = options.points.value_or(spec.sample_points);
  const Index n_score = options.points.value_or(spec.log_prob_points);
  Matrix samples;
  const double sample_seconds = median_seconds([&] {
    Rng sample_rng = run_stream(p.options.seed, RunStream::samples);
    samples = p.model.flow->sample(n_sample, sample_rng);
  });

  Matrix rows = tile_rows(p.data.test, n_score);
  Vector lp;
  const double log_prob_seconds = median_seconds([&] { lp = p.model.flow->log_prob(rows); });

  WorkloadResult r;
  r.precision = model_precision(p);
  r.rows = {
      {"train step (median)", 1e3 * step, "ms"},
      {"train step (fastest tenth)", 1e3 * quantile(t.step_seconds, 0.1), "ms"},
      {fmt::format("train wall ({} steps)", t.report.steps), t.seconds, "s"},
      {"test NLL, standardized", nll_standardized, "nats"},
      {"test NLL, data units", nll_data, "nats"},
  };
  const Real truth = true_test_nll(p);
  if (std::isfinite(truth))
    r.rows.push_back({"NLL of the true density (test split)", truth, "nats"});
  r.rows.push_back({"sample " + count_label(n_sample) + " points", sample_seconds, "s"});
  r.rows.push_back({"log_prob " + count_label(n_score) + " points", log_prob_seconds, "s"});
  r.rows.push_back({"heap allocations per step (median)", allocations_per_step(t), ""});
  if (spec.flop_rate) {
    const Index batch = trainer_batch(p);
    const double flop = 6.0 * static_cast<double>(batch) * dense_multiply_adds(*p.model.flow);
    const double gflops = flop / step * 1e-9;
    r.rows.push_back(
        {fmt::format("FLOP per train step (6 n sum in*out, n = {})", batch), flop * 1e-6, "MFLOP"});
    r.rows.push_back({"train step rate (median step)", gflops, "GFLOP/s"});
    for (Measurement& m : gemm_reference(gflops)) r.rows.push_back(std::move(m));
  }
  return r;
}

// Counts the function evaluations of the solver nested under its `solver:`
// key, so the bench can report NFE without knowing the plugin's types. Flow
// runs row blocks on several threads, each its own solve of the same ODE: the
// NFE reported is the largest of one solve, and beside it the mean over rows
// (each row counted with its solve's NFE), which is the work per row.
struct NfeCounts {
  std::atomic<Index> largest{0}, row_evaluations{0}, rows{0};
  void reset() { largest = 0, row_evaluations = 0, rows = 0; }
  double per_row() const {
    return rows == 0 ? NAN : static_cast<double>(row_evaluations) / static_cast<double>(rows);
  }
};

class CountingSolver : public OdeSolver {
 public:
  CountingSolver(std::shared_ptr<OdeSolver> inner, std::shared_ptr<NfeCounts> counts)
      : inner_(std::move(inner)), counts_(std::move(counts)) {}
  OdeStats integrate(const OdeSystem& f, Matrix& x, Real t0, Real t1) const override {
    const OdeStats s = inner_->integrate(f, x, t0, t1);
    Index seen = counts_->largest.load();
    while (s.function_evaluations > seen &&
           !counts_->largest.compare_exchange_weak(seen, s.function_evaluations)) {
    }
    counts_->row_evaluations += s.function_evaluations * x.shape(0);
    counts_->rows += x.shape(0);
    return s;
  }

 private:
  std::shared_ptr<OdeSolver> inner_;
  std::shared_ptr<NfeCounts> counts_;
};

// W3: a velocity field trained by conditional flow matching, then sampled
// and scored through the ODE with several solvers.
WorkloadResult run_flow_matching_workload(const Workload& w, const BenchOptions& options) {
  Pipeline p = load_pipeline(
      w.config, {"stages=[train]", "trainer.steps=3000", "model.bijectors.0.time_frequencies=0"},
      options);
  auto nfe = std::make_shared<NfeCounts>();
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
  // Built in the model's precision (model.precision, as the pipeline read it).
  const std::string precision = model_precision(p);
  auto with_solver = [&](const std::string& solver, bool sample_logdet) {
    ConfigNode node = p.model_node.children("bijectors").at(0);
    node.set("solver", "{type: counting, solver: " + solver + "}");
    node.set("sample_logdet", sample_logdet ? "true" : "false");
    auto bijector = p.registry->make<Bijector>(
        node, BuildContext{dim, 0, 0, p.registry.get(), precision_from_name(precision)});
    ParameterList to = bijector->parameters(), from = trained->parameters();
    for (std::size_t k = 0; k < to.size(); ++k) to[k]->value = from[k]->value;
    std::vector<std::shared_ptr<Bijector>> chain;
    if (p.model.standardize) chain.push_back(p.model.standardize);
    chain.push_back(bijector);
    return Flow(std::make_shared<StandardNormal>(dim), chain);
  };

  const Index n_samples = 10000;
  WorkloadResult r;
  r.precision = precision;
  r.rows = {{"train step (median)", 1e3 * quantile(t.step_seconds, 0.5), "ms"},
            {"train step (fastest tenth)", 1e3 * quantile(t.step_seconds, 0.1), "ms"},
            {fmt::format("train wall ({} steps)", t.report.steps), t.seconds, "s"},
            {"heap allocations per step (median)", allocations_per_step(t), ""}};
  struct SolverCase {
    const char* label;
    const char* yaml;
  };
  // torchdiffeq's dopri5 estimates the error with Shampine's embedded
  // weights, which give 2/3 of the Dormand–Prince estimate flows uses by
  // default: at equal rtol and atol it would take flows' steps at 1.5x the
  // tolerances. The bench runs the same method as the peer.
  const std::string dopri5 = "{type: dopri5, rtol: 1.0e-5, atol: 1.0e-5, error_estimate: shampine}";
  for (const SolverCase& c : {SolverCase{"dopri5 1e-5", dopri5.c_str()},
                              SolverCase{"rk4 x 100", "{type: rk4, steps: 100}"},
                              SolverCase{"euler x 100", "{type: euler, steps: 100}"}}) {
    Flow flow = with_solver(c.yaml, false);
    Matrix samples;
    const double seconds = median_seconds([&] {
      nfe->reset();
      Rng rng = run_stream(p.options.seed, RunStream::samples);
      samples = flow.sample(n_samples, rng);
    });
    r.rows.push_back({fmt::format("sample 10k, {}", c.label), seconds, "s"});
    r.rows.push_back({fmt::format("  NFE, {}", c.label), static_cast<double>(nfe->largest), ""});
  }
  const Index n_test = std::min<Index>(2000, p.data.test.shape(0));
  Matrix test = xt::view(p.data.test, xt::range(0, n_test), xt::all());
  Flow scorer = with_solver(dopri5, true);
  nfe->reset();
  const double start = now_seconds();
  const Real nll_data = scorer.mean_nll(test);
  const double seconds = seconds_since(start);
  r.rows.push_back({"exact NLL 2k points, dopri5 1e-5", seconds, "s"});
  r.rows.push_back({"  NFE of the NLL solve", static_cast<double>(nfe->largest), ""});
  // (Named so that side_by_side.py's "NFE of the NLL" does not match it.)
  r.rows.push_back(
      {fmt::format("  mean NFE per row, NLL solve ({}-row groups)", kInferenceRowGroup),
       nfe->per_row(), ""});
  r.rows.push_back({"test NLL, standardized", standardized_nll(p, nll_data), "nats"});
  r.rows.push_back({"test NLL, data units", nll_data, "nats"});
  return r;
}

}  // namespace

std::vector<Workload> standard_workloads() {
  std::vector<Workload> all;
  all.push_back({"W1", "MAF, 5 layers, MADE [64, 64], moons, batch 512", "configs/maf_moons.yaml",
                 [](const Workload& w, const BenchOptions& o) {
                   return run_density_workload(w, o, DensitySpec{});
                 }});
  all.push_back({"W2", "NSF autoregressive, 5 layers, 8 bins, [64, 64], moons, batch 512",
                 "configs/nsf_moons.yaml", [](const Workload& w, const BenchOptions& o) {
                   return run_density_workload(w, o, DensitySpec{});
                 }});
  all.push_back({"W3", "flow matching, [x, t] -> 3 x 64 SELU, moons", "configs/fm_moons.yaml",
                 &run_flow_matching_workload});
  // W4: GEMM-bound. Sampling costs D = 64 passes of the five MADEs, so it
  // draws 1,000 points rather than 100,000.
  all.push_back({"W4", "MAF, 64-D correlated Gaussians, 5 layers, MADE [256, 256], batch 128",
                 "configs/maf_gaussians64.yaml", [](const Workload& w, const BenchOptions& o) {
                   return run_density_workload(w, o, DensitySpec{1000, 100000, true});
                 }});
  return all;
}

}  // namespace flows::bench
