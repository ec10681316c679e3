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

}  // namespace flows::bench
