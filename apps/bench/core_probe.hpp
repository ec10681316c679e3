#pragma once
#include <iosfwd>
#include <vector>

#include "workloads.hpp"

namespace flows::bench {

// Whether every core is there while a benchmark runs. SGEMM 1024^3 is timed
// in short samples, alternately on one BLAS thread and on every core. On a
// virtual machine whose vCPUs share a physical core (with each other or with
// another guest) the all-core rate falls toward the one-core rate for a
// while, and every figure measured then is slower by as much; these samples
// show how often and for how long.
struct CoreSample {
  double at_seconds = 0;  // since the probe began
  double one_core_gflops = 0, all_cores_gflops = 0;
};

struct CoreProbe {
  int cores = 0;
  double sample_seconds = 0;
  std::vector<CoreSample> samples;
};

CoreProbe probe_cores(double seconds, int cores, double sample_seconds = 0.25);

// Medians and tenths of both rates and of their ratio, and the samples where
// the ratio fell below `shared_below` (the cores were not both there).
void print_core_probe(const CoreProbe& probe, std::ostream& out, double shared_below = 1.5);
Json core_probe_json(const CoreProbe& probe, double shared_below = 1.5);

}  // namespace flows::bench
