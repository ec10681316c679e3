#pragma once
// What a harness accepts as the outcome of one input: success, or a
// flows::Error whose message names the input. Everything else is a finding:
// a crash or sanitizer report, another exception (it escapes, and the
// process aborts), or an error that does not say where it comes from.
// FLOWS_FUZZ_VERBOSE=1 prints each accepted error (to see what a seed reaches).
#include <cstdio>
#include <cstdlib>
#include <string>

#include "flows/error.hpp"

namespace flows::fuzz {

// An input may ask for a data set, model or sample count of any size. With
// the memory flows plans with held to 1 GB (resources.hpp), those are
// refused at once with a ResourceError, instead of running into libFuzzer's
// -rss_limit_mb or -timeout. Set before any input runs, under the fuzzer and
// in the replay; a FLOWS_MEMORY_LIMIT given by the caller is kept.
inline const bool kMemoryLimited = ::setenv("FLOWS_MEMORY_LIMIT", "1G", 0) == 0;

template <class Body>
int run_input(const std::string& origin, Body&& body) {
  try {
    body();
  } catch (const Error& e) {
    if (std::getenv("FLOWS_FUZZ_VERBOSE")) std::fprintf(stderr, "fuzz: %s\n", e.what());
    if (std::string(e.what()).find(origin) == std::string::npos) {
      std::fprintf(stderr, "fuzz: the error does not name %s: %s\n", origin.c_str(), e.what());
      std::abort();
    }
  }
  return 0;
}

}  // namespace flows::fuzz
