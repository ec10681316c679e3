#pragma once
#include <string>

namespace flows::bench {

// Which BLAS runs the matrix products: OpenBLAS's core name and thread count
// when the linked BLAS is OpenBLAS, else what is known.
struct BlasInfo {
  std::string library = "unknown";
  std::string core = "unknown";
  int threads = 0;
  std::string coretype_env;  // OPENBLAS_CORETYPE, or "(unset)"
};

BlasInfo blas_info();

// The machine: processor name (/proc/cpuinfo), hardware threads, and the
// 1-minute load average now.
struct MachineInfo {
  std::string cpu = "unknown";
  int cores = 0;
};
MachineInfo machine_info();
double load_average();

// The median rate in GFLOP/s (2·m·n·k per call) of C = A·B with row-major A
// (m x k) and B (k x n), by cblas_sgemm (single) or cblas_dgemm, on
// `threads` BLAS threads (set for the measurement through
// openblas_set_num_threads and restored after; ignored by another BLAS).
// Calls repeat until `min_seconds` have passed (at least 3).
double gemm_gflops(bool single, int m, int n, int k, int threads, double min_seconds = 0.4);

}  // namespace flows::bench
