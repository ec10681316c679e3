#pragma once
// The allocation counters of a Google Benchmark loop (link alloc_counter.cpp;
// see alloc_counter.hpp):
//   allocs_per_iter       heap allocation calls per iteration, all threads
//   alloc_bytes_per_iter  bytes they requested
// measured in the steady state: the body runs once before the timed loop, so
// buffers that are sized on first use (and reused after) are not counted.
//
// FLOWS_ALLOC_TRACE=<text> also prints, for each benchmark whose label
// contains <text> (FLOWS_ALLOC_TRACE=all: every one), the call stacks of the
// allocations of one timed loop, per iteration, to stderr.
//
// run_benchmarks() is the main of such a program: it first sets the BLAS
// library's threads as flows does (flows::limit_blas_threads, which Flow's
// constructor calls), so that every benchmark, whichever order it runs in
// and whether or not it builds a Flow, multiplies matrices as flows runs
// them. (With more BLAS threads, OpenBLAS's threaded GEMM mallocs a buffer of
// about 0.5 MB on every call, which these counters would show.)
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <set>
#include <string>

#include "alloc_counter.hpp"
#include "flows/threads.hpp"

namespace flows::bench {

template <class Body>
void counted_loop(benchmark::State& state, const std::string& label, Body&& body) {
  body();
  static std::set<std::string> traced;
  const char* want = std::getenv("FLOWS_ALLOC_TRACE");
  const bool trace = want && !traced.count(label) &&
                     (std::string(want) == "all" || label.find(want) != std::string::npos);
  const alloc::Totals before = alloc::totals();
  if (trace) alloc::trace_on();
  for (auto _ : state) body();
  if (trace) alloc::trace_off();
  const alloc::Totals after = alloc::totals();
  if (!alloc::enabled()) return;  // a sanitizer build: nothing was counted
  state.counters["allocs_per_iter"] = benchmark::Counter(
      static_cast<double>(after.calls - before.calls), benchmark::Counter::kAvgIterations);
  state.counters["alloc_bytes_per_iter"] = benchmark::Counter(
      static_cast<double>(after.bytes - before.bytes), benchmark::Counter::kAvgIterations);
  if (trace) {
    traced.insert(label);
    std::fprintf(
        stderr, "\n== %s: %.3g allocations per iteration (%lld iterations)\n", label.c_str(),
        static_cast<double>(after.calls - before.calls) / static_cast<double>(state.iterations()),
        static_cast<long long>(state.iterations()));
    alloc::print_trace(stderr, 12, static_cast<double>(state.iterations()));
  }
}

inline int run_benchmarks(int argc, char** argv) {
  const std::string blas = flows::limit_blas_threads();
  benchmark::AddCustomContext("blas_threads", blas.empty()
                                                  ? "the BLAS's own (no thread control found)"
                                                  : "1, as flows sets them (" + blas + ")");
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

}  // namespace flows::bench
