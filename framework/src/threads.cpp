#include "flows/threads.hpp"

#include <dlfcn.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>

#include <fmt/format.h>

#include "flows/error.hpp"

// Any BLAS has the Fortran dgemm; only its address is taken, to find the
// library that provides it (see blas_symbol).
extern "C" void dgemm_();

namespace flows {

namespace {

// More would be a typo, not a machine.
constexpr Index kMaxThreads = 1024;

std::atomic<Index> configured_threads{0};

// A symbol of the BLAS library: first in the global scope (an executable
// linked with it), then in the library that provides dgemm_ for flows, which
// the global scope does not see when flows itself was loaded with
// RTLD_LOCAL (the Python module).
void* blas_symbol(const char* name) {
  if (void* f = dlsym(RTLD_DEFAULT, name)) return f;
  Dl_info info;
  if (!dladdr(reinterpret_cast<void*>(&dgemm_), &info) || !info.dli_fname) return nullptr;
  void* library = dlopen(info.dli_fname, RTLD_LAZY | RTLD_NOLOAD);
  if (!library) return nullptr;
  void* f = dlsym(library, name);
  dlclose(library);  // balances the NOLOAD reference; the library stays loaded
  return f;
}

// Spin this long for the next task or for the workers to finish before
// blocking: about a tenth of a small training step, so steps that follow
// each other skip the wake-up latency of a condition variable.
constexpr auto kSpin = std::chrono::microseconds(200);

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#else
  std::this_thread::yield();
#endif
}

// Spins until done() or kSpin has passed; returns done().
template <class Done>
bool spin_until(const Done& done) {
  const auto until = std::chrono::steady_clock::now() + kSpin;
  for (int i = 0; !done(); ++i) {
    cpu_relax();
    if ((i & 63) == 63 && std::chrono::steady_clock::now() > until) return done();
  }
  return true;
}

}  // namespace

Index thread_count() {
  if (const char* env = std::getenv("FLOWS_NUM_THREADS")) {
    const std::size_t length = std::strlen(env);
    const bool digits = length > 0 && length <= 6 &&
                        std::all_of(env, env + length, [](char c) { return c >= '0' && c <= '9'; });
    const long value = digits ? std::strtol(env, nullptr, 10) : 0;
    if (value < 1 || static_cast<Index>(value) > kMaxThreads)
      throw ConfigError(fmt::format(
          "FLOWS_NUM_THREADS='{}': must be a whole number of threads from 1 to {} (unset it to "
          "use every core)",
          env, kMaxThreads));
    return static_cast<Index>(value);
  }
  if (const Index n = configured_threads.load()) return n;
  return std::max<Index>(1, std::thread::hardware_concurrency());
}

void set_thread_count(Index threads) {
  if (threads > kMaxThreads)
    throw ConfigError(fmt::format("threads: {} is more than {}", threads, kMaxThreads));
  configured_threads.store(threads);
}

const std::string& limit_blas_threads() {
  static const std::string called = [] {
    std::string names;
    auto call = [&](const char* name, auto signature) {
      using Fn = decltype(signature);
      if (auto f = reinterpret_cast<Fn>(blas_symbol(name))) {
        f(1);
        names += (names.empty() ? "" : ", ") + std::string(name) + "(1)";
        return true;
      }
      return false;
    };
    // OpenBLAS also has the GotoBLAS name; one call is enough.
    if (!call("openblas_set_num_threads", static_cast<void (*)(int)>(nullptr)))
      call("goto_set_num_threads", static_cast<void (*)(int)>(nullptr));
    call("MKL_Set_Num_Threads", static_cast<void (*)(int)>(nullptr));
    call("bli_thread_set_num_threads", static_cast<void (*)(long)>(nullptr));  // BLIS: dim_t
    return names;
  }();
  return called;
}

ThreadPool::ThreadPool(Index threads) : errors_(std::max<Index>(threads, 1)) {
  for (Index t = 1; t < threads; ++t) workers_.emplace_back([this, t] { work(t); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
    generation_.fetch_add(1);
  }
  wake_.notify_all();
  for (std::thread& worker : workers_) worker.join();
}

void ThreadPool::run(Index tasks, FunctionRef<void(Index)> task) {
  tasks = std::min(tasks, threads());
  if (tasks <= 1) {
    if (tasks == 1) task(0);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    task_ = &task;
    tasks_ = tasks;
    std::fill(errors_.begin(), errors_.end(), nullptr);
    pending_.store(tasks - 1);
    generation_.fetch_add(1);  // publishes the fields above to spinning workers
  }
  wake_.notify_all();
  try {
    task(0);
  } catch (...) {
    errors_[0] = std::current_exception();
  }
  if (!spin_until([this] { return pending_.load() == 0; })) {
    std::unique_lock<std::mutex> lock(mutex_);
    done_.wait(lock, [this] { return pending_.load() == 0; });
  }
  for (const std::exception_ptr& error : errors_)
    if (error) std::rethrow_exception(error);
}

void ThreadPool::work(Index t) {
  std::uint64_t seen = 0;
  for (;;) {
    if (!spin_until([&] { return generation_.load() != seen; })) {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] { return generation_.load() != seen; });
    }
    std::unique_lock<std::mutex> lock(mutex_);
    seen = generation_.load();
    if (stop_) return;
    if (t >= tasks_) continue;
    const FunctionRef<void(Index)> task = *task_;
    lock.unlock();
    try {
      task(t);
    } catch (...) {
      errors_[t] = std::current_exception();
    }
    // The last worker to finish tells the caller; under the lock, so that
    // a caller about to block cannot miss it.
    if (pending_.fetch_sub(1) == 1) {
      lock.lock();
      done_.notify_one();
    }
  }
}

}  // namespace flows
