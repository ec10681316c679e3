#include "blas_info.hpp"

#include <cblas.h>
#include <dlfcn.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <random>
#include <thread>
#include <type_traits>
#include <vector>

namespace flows::bench {

namespace {

// Looked up at run time so that a build against another BLAS still links.
using GetThreads = int (*)();
using SetThreads = void (*)(int);
GetThreads get_threads() {
  return reinterpret_cast<GetThreads>(dlsym(RTLD_DEFAULT, "openblas_get_num_threads"));
}
SetThreads set_threads() {
  return reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"));
}

template <class T>
void gemm(int m, int n, int k, const T* a, const T* b, T* c) {
  if constexpr (std::is_same_v<T, float>)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1.0f, a, k, b, n, 0.0f, c, n);
  else
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1.0, a, k, b, n, 0.0, c, n);
}

template <class T>
double time_gemm(int m, int n, int k, double min_seconds) {
  std::mt19937 engine(1);
  std::uniform_real_distribution<T> u(-1, 1);
  std::vector<T> a(std::size_t(m) * k), b(std::size_t(k) * n), c(std::size_t(m) * n);
  for (T& v : a) v = u(engine);
  for (T& v : b) v = u(engine);
  using Clock = std::chrono::steady_clock;
  gemm(m, n, k, a.data(), b.data(), c.data());  // warm-up: threads started, pages touched
  std::vector<double> seconds;
  const auto begin = Clock::now();
  while (seconds.size() < 3 ||
         std::chrono::duration<double>(Clock::now() - begin).count() < min_seconds) {
    const auto start = Clock::now();
    gemm(m, n, k, a.data(), b.data(), c.data());
    seconds.push_back(std::chrono::duration<double>(Clock::now() - start).count());
  }
  std::nth_element(seconds.begin(), seconds.begin() + seconds.size() / 2, seconds.end());
  return 2.0 * m * n * k / seconds[seconds.size() / 2] * 1e-9;
}

}  // namespace

BlasInfo blas_info() {
  BlasInfo info;
  using CoreName = char* (*)();
  auto core = reinterpret_cast<CoreName>(dlsym(RTLD_DEFAULT, "openblas_get_corename"));
  if (core) {
    info.library = "OpenBLAS";
    info.core = core();
  }
  if (auto threads = get_threads()) info.threads = threads();
  const char* env = std::getenv("OPENBLAS_CORETYPE");
  info.coretype_env = env ? env : "(unset)";
  return info;
}

MachineInfo machine_info() {
  MachineInfo m;
  m.cores = static_cast<int>(std::thread::hardware_concurrency());
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line;
  while (std::getline(cpuinfo, line))
    if (line.rfind("model name", 0) == 0) {
      const auto colon = line.find(':');
      if (colon != std::string::npos) m.cpu = line.substr(line.find_first_not_of(' ', colon + 1));
      break;
    }
  return m;
}

double load_average() {
  double load[1] = {-1};
  return getloadavg(load, 1) == 1 ? load[0] : -1;
}

double gemm_gflops(bool single, int m, int n, int k, int threads, double min_seconds) {
  const GetThreads get = get_threads();
  const SetThreads set = set_threads();
  const int before = get ? get() : 0;
  if (set && threads > 0) set(threads);
  const double rate =
      single ? time_gemm<float>(m, n, k, min_seconds) : time_gemm<double>(m, n, k, min_seconds);
  if (set && before > 0) set(before);
  return rate;
}

}  // namespace flows::bench
