#include "blas_info.hpp"

#include <dlfcn.h>

#include <cstdlib>

namespace flows::bench {

BlasInfo blas_info() {
  BlasInfo info;
  // Looked up at run time so that a build against another BLAS still links.
  using CoreName = char* (*)();
  using Threads = int (*)();
  auto core = reinterpret_cast<CoreName>(dlsym(RTLD_DEFAULT, "openblas_get_corename"));
  auto threads = reinterpret_cast<Threads>(dlsym(RTLD_DEFAULT, "openblas_get_num_threads"));
  if (core) {
    info.library = "OpenBLAS";
    info.core = core();
  }
  if (threads) info.threads = threads();
  const char* env = std::getenv("OPENBLAS_CORETYPE");
  info.coretype_env = env ? env : "(unset)";
  return info;
}

}  // namespace flows::bench
