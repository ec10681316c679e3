// S1, the scale sweep (issue 12, item 4): MAF and the autoregressive NSF on
// correlated_gaussians of D = 2, 8, 32, 64 at batch 128, 512, 4096, with the
// same hidden widths for every D. Per (model, D, batch): the median of a few
// dozen training steps (no full training) and its dense FLOP rate; per
// (model, D): the time to sample and to score a fixed number of points.
#include <algorithm>
#include <cmath>
#include <iostream>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "blas_info.hpp"
#include "flows/error.hpp"
#include "flows/streams.hpp"
#include "workloads.hpp"

namespace flows::bench {
namespace {

struct SweepRow {
  std::string model;
  Index dim = 0, batch = 0;
  Index steps = 0;  // steps timed (the median is over these)
  double step_ms = NAN;
  double mflop = NAN;                       // dense FLOP per step, 6 n Σ in·out
  double sample_s = NAN, log_prob_s = NAN;  // only on the first batch of each (model, D)
  double load = NAN;                        // 1-minute load average after the row
};

// Steps trained before the timed ones of each row: the first steps of a
// pipeline build the replicas and size every buffer, and a new pool's threads
// are still waking; on this machine they took 2-5 times a steady step.
constexpr Index kWarmupSteps = 10;

std::string list(const std::vector<Index>& v) {
  std::string s = "[";
  for (std::size_t k = 0; k < v.size(); ++k) s += (k ? ", " : "") + std::to_string(v[k]);
  return s + "]";
}

std::string bijector_yaml(const std::string& model, const std::vector<Index>& hidden) {
  if (model == "maf")
    return "{type: maf, layers: 5, hidden: " + list(hidden) +
           ", activation: relu, order: natural, permute: reverse}";
  if (model == "nsf")
    return "{type: nsf_autoregressive, layers: 5, bins: 8, hidden: " + list(hidden) +
           ", tail_bound: 3.0}";
  throw ConfigError("flows-bench --sweep: unknown model '" + model + "' (maf, nsf)");
}

WorkloadResult run_sweep(const Workload& w, const BenchOptions& options) {
  const SweepOptions& s = options.sweep;
  BenchOptions pipeline_options = options;
  pipeline_options.steps.reset();  // the sweep's own step count
  Index most_rows = 0;
  for (Index b : s.batches) most_rows = std::max(most_rows, b);

  std::vector<SweepRow> rows;
  std::string precision;
  const double start = now_seconds();
  std::cout << fmt::format(
      "     hidden {} for every D; per row the median of up to {} steps after {} untimed (at "
      "least 10, none begun after 5 s); sample {} / log_prob {} points\n",
      list(s.hidden), s.steps, kWarmupSteps, s.sample_points, s.log_prob_points);
  std::cout << fmt::format("     {:<5} {:>3} {:>6} {:>5} {:>10} {:>9} {:>8} {:>10} {:>11} {:>5}\n",
                           "model", "D", "batch", "steps", "step ms", "MFLOP", "GFLOP/s",
                           "sample s", "log_prob s", "load")
            << std::flush;
  auto make_pipeline = [&](const std::string& model, Index dim, Index batch) {
    return load_pipeline(
        w.config,
        {"stages=[train]", fmt::format("data.dim={}", dim),
         fmt::format("data.n_train={}", 2 * most_rows), "data.n_val=0",
         fmt::format("data.n_test={}", s.log_prob_points),
         "model.bijectors=[" + bijector_yaml(model, s.hidden) + "]",
         fmt::format("trainer.batch_size={}", batch),
         fmt::format("trainer.steps={}", kWarmupSteps + s.steps), "trainer.eval_every=0"},
        pipeline_options);
  };
  // At most s.steps timed steps after the untimed ones, fewer (at least 10)
  // once 5 s have passed: the largest rows would otherwise dominate the
  // sweep's run time.
  auto train_row = [&](Pipeline& p) {
    return train_timed(p, 5.0, kWarmupSteps + std::min<Index>(10, s.steps));
  };
  // The first row untimed for a second first: in a fresh process the first
  // row's steps often ran at 2-5 times the steady time, even after its own
  // untimed steps and one untimed run of the row (seen on this machine; the
  // cause is not pinned down, and OPENBLAS_NUM_THREADS=1 does not remove it).
  if (!s.models.empty() && !s.dims.empty() && !s.batches.empty()) {
    const double warm_start = now_seconds();
    do {
      Pipeline warm = make_pipeline(s.models.front(), s.dims.front(), s.batches.front());
      train_row(warm);
    } while (seconds_since(warm_start) < 1.0);
  }
  for (const std::string& model : s.models)
    for (Index dim : s.dims)
      for (std::size_t bi = 0; bi < s.batches.size(); ++bi) {
        const Index batch = s.batches[bi];
        Pipeline p = make_pipeline(model, dim, batch);
        if (precision.empty()) precision = model_precision(p);
        SweepRow row;
        row.model = model;
        row.dim = dim;
        row.batch = batch;
        TimedTraining t = train_row(p);
        const Index warm = std::min<Index>(kWarmupSteps, t.step_seconds.size() - 1);
        t.step_seconds.erase(t.step_seconds.begin(), t.step_seconds.begin() + warm);
        row.steps = t.step_seconds.size();
        row.step_ms = 1e3 * quantile(t.step_seconds, 0.5);
        row.mflop = 6.0 * static_cast<double>(batch) * dense_multiply_adds(*p.model.flow) * 1e-6;
        if (bi == 0) {
          Rng rng = run_stream(p.options.seed, RunStream::samples);
          double t0 = now_seconds();
          Matrix samples = p.model.flow->sample(s.sample_points, rng);
          row.sample_s = seconds_since(t0);
          Matrix x = tile_rows(p.data.test, s.log_prob_points);
          t0 = now_seconds();
          Vector lp = p.model.flow->log_prob(x);
          row.log_prob_s = seconds_since(t0);
        }
        row.load = load_average();
        const double gflops = row.mflop / row.step_ms;  // MFLOP/ms = GFLOP/s
        std::cout << fmt::format(
                         "     {:<5} {:>3} {:>6} {:>5} {:>10.3f} {:>9.1f} {:>8.1f} {:>10} {:>11} "
                         "{:>5.2f}\n",
                         model, dim, batch, row.steps, row.step_ms, row.mflop, gflops,
                         std::isfinite(row.sample_s) ? fmt::format("{:.4g}", row.sample_s) : "",
                         std::isfinite(row.log_prob_s) ? fmt::format("{:.4g}", row.log_prob_s) : "",
                         row.load)
                  << std::flush;
        rows.push_back(row);
      }
  const double total = seconds_since(start);

  WorkloadResult r;
  r.printed = true;
  r.precision = precision;
  Json sweep;
  sweep["hidden"] = s.hidden;
  sweep["layers"] = 5;
  sweep["steps"] = s.steps;
  sweep["warmup_steps"] = kWarmupSteps;
  sweep["sample_points"] = s.sample_points;
  sweep["log_prob_points"] = s.log_prob_points;
  sweep["seconds"] = measured_value(total);
  Json json_rows = Json::array();
  for (std::size_t k = 0; k < rows.size(); ++k) {
    const SweepRow& row = rows[k];
    const std::string key = fmt::format("{} D={} B={}", row.model, row.dim, row.batch);
    r.rows.push_back({key + ": step (median)", row.step_ms, "ms"});
    r.rows.push_back({key + ": dense FLOP per step", row.mflop, "MFLOP"});
    if (std::isfinite(row.sample_s)) {
      const std::string at = fmt::format("{} D={}", row.model, row.dim);
      r.rows.push_back({at + ": sample " + count_label(s.sample_points), row.sample_s, "s"});
      r.rows.push_back({at + ": log_prob " + count_label(s.log_prob_points), row.log_prob_s, "s"});
    }
    Json j;
    j["model"] = row.model;
    j["dim"] = row.dim;
    j["batch"] = row.batch;
    j["steps"] = row.steps;
    j["step_ms"] = measured_value(row.step_ms);
    j["dense_mflop_per_step"] = measured_value(row.mflop);
    j["gflops"] = measured_value(row.mflop / row.step_ms);
    j["sample_s"] = measured_value(row.sample_s);
    j["log_prob_s"] = measured_value(row.log_prob_s);
    j["load_average"] = measured_value(row.load);
    json_rows.push_back(std::move(j));
  }
  sweep["rows"] = std::move(json_rows);
  r.extra["sweep"] = std::move(sweep);
  r.rows.push_back({"sweep wall", total, "s"});
  std::cout << fmt::format("     sweep: {:.1f} s\n", total);
  return r;
}

}  // namespace

Workload sweep_workload() {
  return {"S1", "scale sweep: MAF and NSF over D and batch, correlated Gaussians",
          "configs/maf_gaussians64.yaml", &run_sweep};
}

}  // namespace flows::bench
