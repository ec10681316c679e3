#pragma once
#include <cmath>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "flows/tensor.hpp"

namespace flows::bench {

// One figure of one workload, with the Python tool's figure for the same
// thing when the issue that set the workload measured one.
struct Measurement {
  std::string metric;  // e.g. "train step (median)"
  double value = NAN;
  std::string unit;        // ms, s, nats, count
  double reference = NAN;  // the Python tool's figure
  std::string reference_tool;
  bool is_time = false;  // time figures get a speed-up column
};

struct BenchOptions {
  std::optional<Index> steps;  // overrides the workload's training steps (quick runs)
  Index points = 100000;       // rows for the sampling and log_prob timings
};

struct Workload {
  std::string id;      // W1, W2, ...
  std::string title;   // what it is
  std::string config;  // pipeline file, relative to the source tree
  std::function<std::vector<Measurement>(const Workload&, const BenchOptions&)> run;
};

// The standard workloads, in order.
std::vector<Workload> standard_workloads();

}  // namespace flows::bench
