#pragma once
// Counts heap allocations, for the benchmarks' "allocate nothing inside a
// training step or an ODE step" figures (issue 12, item 3).
//
// Linking alloc_counter.cpp into an executable replaces, for the whole
// process (the SDK and the plugins loaded by dlopen included, all threads):
//   - the global operator new / new[] (plain, nothrow, aligned) and their
//     deletes, and
//   - malloc, calloc, realloc, posix_memalign, aligned_alloc, memalign,
//     valloc, pvalloc and free,
// with versions that count the call and forward to glibc's allocator
// (__libc_malloc & co.). The C functions are needed too: xtensor's buffers
// (every flows::Matrix) come from xsimd's aligned allocator, which calls
// posix_memalign, not operator new. Counting only operator new would miss them.
//
// Tracing: while tracing is on, each allocation also records its call stack
// (up to 24 frames, in a fixed table: recording allocates nothing);
// print_trace() lists the stacks by count, each frame resolved with
// addr2line (build with -g for file:line of inlined frames).
#include <cstdint>
#include <cstdio>

namespace flows::bench::alloc {

struct Totals {
  std::uint64_t calls = 0;  // allocation calls (frees not counted)
  std::uint64_t bytes = 0;  // bytes requested
};

// False in a sanitizer build, where the sanitizer owns malloc and the
// replacements are left out: totals() then stays 0, and callers report no
// figure rather than a false zero.
bool enabled();

// Since the process started, over all threads.
Totals totals();

// Starts / stops recording call stacks of allocations (all threads).
void trace_on();
void trace_off();
// Writes the recorded stacks, most frequent first (at most `top` of them),
// to `out`, then clears the record. `per` divides the counts (e.g. the
// iterations of a benchmark loop) so they read "per iteration".
void print_trace(std::FILE* out, int top = 12, double per = 1.0);

}  // namespace flows::bench::alloc
