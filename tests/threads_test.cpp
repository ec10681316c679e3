// thread_count (FLOWS_NUM_THREADS and set_thread_count), the BLAS thread
// limit, the persistent ThreadPool and DataParallel's fixed-order reduction.
#include "flows/threads.hpp"

#include <dlfcn.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>

#include "flows/data_parallel.hpp"
#include "flows/error.hpp"
#include "runner_support.hpp"

namespace flows {
namespace {

// FLOWS_NUM_THREADS = value (nullptr: unset) for one scope.
struct ScopedThreadsEnv : test_support::ScopedEnv {
  explicit ScopedThreadsEnv(const char* value) : ScopedEnv("FLOWS_NUM_THREADS", value) {}
};

TEST(ThreadCount, FlowsNumThreadsSetsIt) {
  ScopedThreadsEnv env("3");
  EXPECT_EQ(thread_count(), 3u);
}

TEST(ThreadCount, FlowsNumThreadsOutranksSetThreadCount) {
  set_thread_count(5);
  {
    ScopedThreadsEnv env("2");
    EXPECT_EQ(thread_count(), 2u);
  }
  {
    ScopedThreadsEnv env(nullptr);
    EXPECT_EQ(thread_count(), 5u);
    set_thread_count(0);  // cleared: every core
    EXPECT_EQ(thread_count(), std::max(1u, std::thread::hardware_concurrency()));
  }
}

TEST(ThreadCount, ABadFlowsNumThreadsIsAnErrorNamingTheVariableAndValue) {
  for (const char* bad : {"0", "-2", "abc", "3x", "", " 2", "1.5", "99999999"}) {
    ScopedThreadsEnv env(bad);
    try {
      thread_count();
      ADD_FAILURE() << "accepted FLOWS_NUM_THREADS='" << bad << "'";
    } catch (const ConfigError& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find("FLOWS_NUM_THREADS='" + std::string(bad) + "'"), std::string::npos)
          << what;
    }
  }
}

// With OpenBLAS in the process (the build's BLAS), its thread count is 1
// afterwards and the call says what it did.
TEST(LimitBlasThreads, SetsOpenBlasToOneThread) {
  using Get = int (*)();
  const std::string& called = limit_blas_threads();
  auto get = reinterpret_cast<Get>(dlsym(RTLD_DEFAULT, "openblas_get_num_threads"));
  if (!get) GTEST_SKIP() << "not linked with OpenBLAS (" << called << ")";
  EXPECT_EQ(get(), 1);
  EXPECT_NE(called.find("openblas_set_num_threads(1)"), std::string::npos) << called;
}

TEST(ThreadPool, RunsEachTaskOnceOnItsOwnThread) {
  ThreadPool pool(3);
  ASSERT_EQ(pool.threads(), 3u);
  for (int round = 0; round < 200; ++round) {
    std::mutex mutex;
    std::set<std::thread::id> ids;
    std::vector<int> runs(3, 0);
    pool.run(3, [&](Index t) {
      std::lock_guard<std::mutex> lock(mutex);
      ids.insert(std::this_thread::get_id());
      ++runs[t];
    });
    ASSERT_EQ(ids.size(), 3u);
    ASSERT_EQ(runs, (std::vector<int>{1, 1, 1}));
    ASSERT_EQ(ids.count(std::this_thread::get_id()), 1u);  // task 0 on the caller
  }
  // Fewer tasks than threads: only those run.
  std::vector<int> runs(3, 0);
  pool.run(2, [&](Index t) { ++runs[t]; });
  EXPECT_EQ(runs, (std::vector<int>{1, 1, 0}));
}

TEST(ThreadPool, RethrowsTheLowestTasksException) {
  ThreadPool pool(2);
  try {
    pool.run(2, [](Index t) { throw std::runtime_error("task " + std::to_string(t)); });
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "task 0");
  }
  int ran = 0;
  pool.run(2, [&](Index t) {  // still usable
    if (t == 1) ran = 1;
  });
  EXPECT_EQ(ran, 1);
}

// Three "replicas" whose gradients are known: the master gets block 0's
// gradient plus the others', each block's loss share is summed in order, the
// replicas see the master's values, and the blocks cover the rows once.
TEST(DataParallel, ReducesReplicaGradientsIntoTheMasterInBlockOrder) {
  ScopedThreadsEnv env(nullptr);
  std::vector<Parameter> params;
  for (int r = 0; r < 3; ++r) params.emplace_back("w", Matrix{{1.0, 2.0, 3.0}});
  params[0].value = Matrix{{7.0, 8.0, 9.0}};
  ParameterList master = {&params[0]};
  DataParallel parallel(master, {{&params[1]}, {&params[2]}});
  ASSERT_EQ(parallel.threads(), 3u);
  EXPECT_EQ(parallel.blocks(3 * kMinRowsPerTrainingBlock), 3u);
  EXPECT_EQ(parallel.blocks(2 * kMinRowsPerTrainingBlock + 1), 2u);
  EXPECT_EQ(parallel.blocks(kMinRowsPerTrainingBlock), 1u);

  const Index rows = 300;
  std::vector<Index> covered(rows, 0);
  bool values_copied = true;
  params[0].zero_grad();
  const Real loss = parallel.run(rows, [&](Index b, Index begin, Index end) {
    for (Index i = begin; i < end; ++i) ++covered[i];
    Parameter& p = params[b];
    values_copied = values_copied && p.value == params[0].value;
    for (Index k = 0; k < 3; ++k) p.grad(0, k) += static_cast<Real>((b + 1) * (k + 1));
    return static_cast<Real>(b + 1);
  });
  EXPECT_TRUE(values_copied);
  EXPECT_EQ(loss, 6.0);
  for (Index i = 0; i < rows; ++i) ASSERT_EQ(covered[i], 1u) << i;
  EXPECT_EQ(params[0].grad, (Matrix{{6.0, 12.0, 18.0}}));
}

TEST(DataParallel, RefusesReplicasWithOtherParameters) {
  Parameter a("w", Matrix{{1.0, 2.0}}), b("w", Matrix{{1.0}});
  EXPECT_THROW(DataParallel({&a}, {{&b}}), Error);
}

TEST(TrainingThreads, NoBlockSmallerThanTheMinimum) {
  ScopedThreadsEnv env("8");
  EXPECT_EQ(training_threads(10), 1u);
  EXPECT_EQ(training_threads(2 * kMinRowsPerTrainingBlock), 2u);
  EXPECT_EQ(training_threads(100 * kMinRowsPerTrainingBlock), 8u);
}

}  // namespace
}  // namespace flows
