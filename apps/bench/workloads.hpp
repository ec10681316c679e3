#pragma once
#include <cmath>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "flows/pipeline.hpp"
#include "flows/tensor.hpp"

namespace flows::bench {

// One figure of one workload, measured in this run on this machine. The
// metric names are matched by ../shared/peers/side_by_side.py (by regex):
// keep them stable.
struct Measurement {
  std::string metric;  // e.g. "train step (median)"
  double value = NAN;
  std::string unit;  // ms, s, nats, MFLOP, GFLOP/s, %, or "" for counts
};

// The options of the scale sweep (workload S1).
struct SweepOptions {
  std::vector<std::string> models = {"maf", "nsf"};
  std::vector<Index> dims = {2, 8, 32, 64};
  std::vector<Index> batches = {128, 512, 4096};
  std::vector<Index> hidden = {64, 64};  // every model, every D
  Index steps = 60;                      // training steps timed per (model, D, batch)
  Index sample_points = 1000;            // rows sampled per (model, D)
  Index log_prob_points = 10000;         // rows scored per (model, D)
};

struct BenchOptions {
  std::optional<Index> steps;          // overrides the workload's training steps (quick runs)
  std::optional<Index> points;         // rows for the sampling and log_prob timings
  std::vector<std::string> overrides;  // --set KEY=VALUE, applied last to every pipeline
  SweepOptions sweep;
};

// bench.json is written with nlohmann-json; ordered_json keeps the members in
// the order they are set, the order the file has always had.
using Json = nlohmann::ordered_json;

// A measured value for bench.json: 6 significant digits (what the figures
// are worth), and null when it could not be measured (JSON has no NaN or
// infinity).
inline Json measured_value(double v) {
  if (!std::isfinite(v)) return nullptr;
  return std::stod(fmt::format("{:.6g}", v));
}

// What a workload reports: its measurements and, optionally, more JSON
// members for its entry in bench.json (e.g. "sweep": {...}), after
// "measurements", in their order.
struct WorkloadResult {
  std::vector<Measurement> rows;
  Json extra = Json::object();
  bool printed = false;   // the workload printed its own table (the sweep)
  std::string precision;  // model.precision of its pipelines ("" when unknown)
};

struct Workload {
  std::string id;      // W1, W2, ..., S1
  std::string title;   // what it is
  std::string config;  // pipeline file, relative to the source tree
  std::function<WorkloadResult(const Workload&, const BenchOptions&)> run;
};

// The standard workloads W1..W4, in order.
std::vector<Workload> standard_workloads();
// The scale sweep S1 (sweep.cpp).
Workload sweep_workload();

// ---- shared by the workloads -------------------------------------------------

// Loads `config` (relative to the source tree) with the bench's overrides,
// then `--steps` (when given), then the user's --set overrides.
Pipeline load_pipeline(const std::string& config, std::vector<std::string> overrides,
                       const BenchOptions& options);

// The per-step wall times and heap allocations of a training run, from the
// progress callback (one call per step). With budget_seconds > 0 training
// stops once at least min_steps steps are done and the budget has passed.
struct TimedTraining {
  TrainReport report;
  std::vector<double> step_seconds;
  std::vector<double> step_allocations;
  double seconds = 0;
};
TimedTraining train_timed(Pipeline& p, double budget_seconds = 0, Index min_steps = 0);

// The model's `precision` as the pipeline read it (float64 when absent).
std::string model_precision(const Pipeline& p);

// The q-quantile of v (nearest rank); NaN for an empty v.
double quantile(std::vector<double> v, double q);
double seconds_since(double start);
double now_seconds();

// Calls fn() `calls` times; the median wall time of a call. The peers' scripts
// time sampling and log_prob this way (median of 3), so the first call's
// one-time costs (buffers, packing) weigh as they do there.
double median_seconds(const std::function<void()>& fn, int calls = 3);

// `n` rows cycling through the rows of `m`.
Matrix tile_rows(const Matrix& m, Index n);

// Σ in·out over the flow's dense weight matrices (parameters named *weight
// with two dimensions > 1: the masked linear layers of MADE), so that a
// training step costs 6·n·Σ in·out FLOP at batch n (forward 2·n·in·out,
// backward 4·n·in·out for the input and weight gradients), masks not skipped.
double dense_multiply_adds(Flow& flow);

// "1k", "100k", or the number itself.
std::string count_label(Index n);

}  // namespace flows::bench
