#include "workloads.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <iostream>

#include <fmt/format.h>

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

  std::vector<double> step_seconds;
  double last = 0;
  TrainerCallbacks callbacks;
  callbacks.on_progress = [&](const Progress& progress) {
    step_seconds.push_back(progress.seconds - last);
    last = progress.seconds;
  };
  Rng train_rng = Rng(p.options.seed).derive(3);
  const auto train_start = Clock::now();
  TrainReport report =
      p.trainer->train(*p.model.flow, p.data.train, p.data.val, train_rng, callbacks);
  const double train_seconds = seconds_since(train_start);

  const Real nll_data = p.model.flow->mean_nll(p.data.test);
  // With u = (x - μ)/σ, log p_x = log p_u - Σ_j log σ_j, so NLL_u = NLL_x - Σ_j log σ_j.
  Real log_scale_sum = 0;
  if (p.model.standardize)
    for (Real s : p.model.standardize->scale()) log_scale_sum += std::log(s);
  const Real nll_standardized = nll_data - log_scale_sum;

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
      {fmt::format("train wall ({} steps)", report.steps), train_seconds, "s",
       ref.step_ms * static_cast<double>(report.steps) / 1e3, ref.tool, true},
      {"test NLL, standardized", nll_standardized, "nats", ref.nll_standardized, ref.tool, false},
      {"test NLL, data units", nll_data, "nats", ref.nll_data, ref.tool, false},
      {"sample " + n + " points", sample_seconds, "s", ref.sample_s, ref.tool, true},
      {"log_prob " + n + " points", log_prob_seconds, "s", ref.log_prob_s, ref.tool, true},
  };
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
  return all;
}

}  // namespace flows::bench
