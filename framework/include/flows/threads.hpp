#pragma once
// How many threads flows runs on, its BLAS library's own threads, and the
// small pool of persistent workers that training steps share (issue 12).
#include <atomic>
#include <condition_variable>
#include <exception>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "flows/export.hpp"
#include "flows/function_ref.hpp"
#include "flows/tensor.hpp"

namespace flows {

// The threads flows uses for inference row blocks and training row blocks:
// $FLOWS_NUM_THREADS when set (a positive integer, else a ConfigError naming
// the variable and its value), else the count set by set_thread_count (the
// pipeline's `threads:` key), else the machine's hardware threads.
FLOWS_API Index thread_count();
// The count thread_count() falls back to when $FLOWS_NUM_THREADS is not set;
// 0 clears it (every core).
FLOWS_API void set_thread_count(Index threads);

// Sets the BLAS library's own thread count to 1, once per process, so that
// BLAS threads never multiply with flows' threads: flows splits rows among
// its threads itself, and each matrix product then runs on the thread that
// asked for it. Works with whichever BLAS the process has (OpenBLAS, GotoBLAS,
// MKL, BLIS), found at run time. Returns the functions it called ("" when no
// BLAS thread control was found). Flow's constructor calls it, so every use
// of a model gets it without an environment variable.
FLOWS_API const std::string& limit_blas_threads();

// Workers that live as long as the pool, for work that repeats many times a
// second (a training step): run() hands task t to thread t, thread 0 being
// the caller, and returns when every task is done. A worker waits for work
// by spinning briefly and then blocking, so back-to-back steps do not pay a
// wake-up each, and an idle pool costs no CPU.
class FLOWS_API ThreadPool {
 public:
  // threads - 1 workers (none for threads <= 1).
  explicit ThreadPool(Index threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  Index threads() const { return workers_.size() + 1; }
  // task(t) for t < tasks (tasks <= threads()), each on its own thread. The
  // exception of the lowest t that threw is rethrown once all are done.
  void run(Index tasks, FunctionRef<void(Index)> task);

 private:
  void work(Index t);

  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable wake_, done_;
  std::atomic<std::uint64_t> generation_{0};        // one more for every run()
  std::atomic<Index> pending_{0};                   // tasks of this run still running on workers
  const FunctionRef<void(Index)>* task_ = nullptr;  // run()'s, while it runs
  Index tasks_ = 0;
  bool stop_ = false;
  std::vector<std::exception_ptr> errors_;
};

}  // namespace flows
