// Replacements of the global allocation functions that count every call and
// forward to glibc's allocator; see alloc_counter.hpp. Link into an
// executable (not into a shared library) so that its definitions take
// precedence for the whole process.
#include "alloc_counter.hpp"

// AddressSanitizer (and the others that intercept malloc) must keep the
// allocator: without the replacements the counter reports nothing.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define FLOWS_ALLOC_COUNTER_OFF 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || \
    __has_feature(memory_sanitizer)
#define FLOWS_ALLOC_COUNTER_OFF 1
#endif
#endif

#include <dlfcn.h>
#include <execinfo.h>
#include <malloc.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <map>
#include <new>
#include <string>
#include <vector>

extern "C" {
void* __libc_malloc(std::size_t size);
void* __libc_calloc(std::size_t n, std::size_t size);
void* __libc_realloc(void* p, std::size_t size);
void* __libc_memalign(std::size_t alignment, std::size_t size);
void* __libc_valloc(std::size_t size);
void* __libc_pvalloc(std::size_t size);
void __libc_free(void* p);
}

namespace flows::bench::alloc {
namespace {

// Counters sharded by thread (one cache line each), so that threads that
// allocate do not contend on one line while being counted.
constexpr int kShards = 64;
struct alignas(64) Shard {
  std::atomic<std::uint64_t> calls{0};
  std::atomic<std::uint64_t> bytes{0};
};
Shard g_shards[kShards];
std::atomic<int> g_next_shard{0};
thread_local int t_shard = -1;
std::atomic<bool> g_tracing{false};

constexpr int kFrames = 24;
constexpr int kSkip = 2;  // record() and the hook itself
constexpr int kStacks = 512;

struct Stack {
  std::uint64_t hash = 0;
  int depth = 0;
  void* frames[kFrames];
  std::uint64_t count = 0;
  std::uint64_t bytes = 0;
};
Stack g_stacks[kStacks];
int g_used = 0;
std::uint64_t g_dropped = 0;  // allocations of stacks that found the table full
std::atomic_flag g_lock = ATOMIC_FLAG_INIT;
thread_local bool t_in_hook = false;

__attribute__((noinline)) void record(std::size_t size) {
  if (t_in_hook) return;  // backtrace() may allocate (once, loading libgcc_s)
  t_in_hook = true;
  void* frames[kFrames + kSkip];
  const int n = backtrace(frames, kFrames + kSkip);
  const int depth = std::max(0, n - kSkip);
  std::uint64_t hash = 1469598103934665603ull;
  for (int k = 0; k < depth; ++k)
    hash = (hash ^ reinterpret_cast<std::uintptr_t>(frames[kSkip + k])) * 1099511628211ull;
  while (g_lock.test_and_set(std::memory_order_acquire)) {
  }
  int slot = static_cast<int>(hash % kStacks);
  bool placed = false;
  for (int probe = 0; probe < kStacks; ++probe, slot = (slot + 1) % kStacks) {
    Stack& s = g_stacks[slot];
    if (s.count == 0) {
      s.hash = hash;
      s.depth = depth;
      std::memcpy(s.frames, frames + kSkip, sizeof(void*) * depth);
      ++g_used;
    } else if (s.hash != hash) {
      continue;
    }
    ++s.count;
    s.bytes += size;
    placed = true;
    break;
  }
  if (!placed) ++g_dropped;
  g_lock.clear(std::memory_order_release);
  t_in_hook = false;
}

inline void count(std::size_t size) {
  if (t_shard < 0) t_shard = g_next_shard.fetch_add(1, std::memory_order_relaxed) % kShards;
  Shard& shard = g_shards[t_shard];
  shard.calls.fetch_add(1, std::memory_order_relaxed);
  shard.bytes.fetch_add(size, std::memory_order_relaxed);
  if (g_tracing.load(std::memory_order_relaxed)) record(size);
}

// Loads the unwinder before any allocation is traced.
struct Preload {
  Preload() {
    void* frames[2];
    backtrace(frames, 2);
  }
} g_preload;

[[maybe_unused]] void* new_or_throw(std::size_t size) {
  count(size);
  void* p = __libc_malloc(size ? size : 1);
  if (!p) throw std::bad_alloc();
  return p;
}

[[maybe_unused]] void* aligned_new_or_throw(std::size_t size, std::align_val_t alignment) {
  count(size);
  void* p = __libc_memalign(static_cast<std::size_t>(alignment), size ? size : 1);
  if (!p) throw std::bad_alloc();
  return p;
}

// addr2line's lines for the addresses (offsets into `file`), one block per
// address, in order.
std::vector<std::string> resolve(const std::string& file, const std::vector<std::uintptr_t>& at) {
  std::vector<std::string> out(at.size());
  std::string cmd = "addr2line -a -f -C -i -p -e '" + file + "'";
  for (std::uintptr_t a : at) {
    char hex[32];
    std::snprintf(hex, sizeof hex, " 0x%lx", static_cast<unsigned long>(a));
    cmd += hex;
  }
  cmd += " 2>/dev/null";
  std::FILE* pipe = popen(cmd.c_str(), "r");
  if (!pipe) return out;
  char line[4096];
  int k = -1;
  while (std::fgets(line, sizeof line, pipe)) {
    std::string s(line);
    if (!s.empty() && s.back() == '\n') s.pop_back();
    if (s.rfind("0x", 0) == 0) {
      ++k;
      const auto colon = s.find(": ");
      s = colon == std::string::npos ? s : s.substr(colon + 2);
    }
    if (k >= 0 && k < static_cast<int>(out.size()))
      out[k] += (out[k].empty() ? "" : "\n        ") + s;
  }
  pclose(pipe);
  return out;
}

// Shortens a demangled frame for reading: xtensor containers by their flows
// names, argument lists and clone suffixes dropped.
std::string simplify(std::string s) {
  const std::pair<const char*, const char*> names[] = {
      {"xt::xtensor_container<xt::uvector<double, xsimd::aligned_allocator<double, 32ul> >, 2ul, "
       "(xt::layout_type)1, xt::xtensor_expression_tag>",
       "Matrix"},
      {"xt::xtensor_container<xt::uvector<float, xsimd::aligned_allocator<float, 32ul> >, 2ul, "
       "(xt::layout_type)1, xt::xtensor_expression_tag>",
       "MatrixOf<float>"},
      {"xt::xtensor_container<xt::uvector<double, xsimd::aligned_allocator<double, 32ul> >, 1ul, "
       "(xt::layout_type)1, xt::xtensor_expression_tag>",
       "Vector"},
      {" [clone .isra.0]", ""},
      {" [clone .constprop.0]", ""},
      {"(anonymous namespace)", "{anon}"},
  };
  for (const auto& [from, to] : names)
    for (std::size_t at; (at = s.find(from)) != std::string::npos;)
      s.replace(at, std::strlen(from), to);
  // Drop the top-level argument list of the function name (before " at ").
  const std::size_t end = s.find(" at ");
  int angle = 0;
  for (std::size_t k = 0; k < std::min(end, s.size()); ++k) {
    if (s[k] == '<') ++angle;
    if (s[k] == '>') --angle;
    if (s[k] == '(' && angle == 0) {
      int depth = 0;
      std::size_t j = k;
      for (; j < s.size(); ++j) {
        if (s[j] == '(') ++depth;
        if (s[j] == ')' && --depth == 0) break;
      }
      if (j < s.size()) s.erase(k, j - k + 1);
      break;
    }
  }
  return s;
}

}  // namespace

bool enabled() {
#ifdef FLOWS_ALLOC_COUNTER_OFF
  return false;
#else
  return true;
#endif
}

Totals totals() {
  Totals t;
  for (const Shard& s : g_shards) {
    t.calls += s.calls.load(std::memory_order_relaxed);
    t.bytes += s.bytes.load(std::memory_order_relaxed);
  }
  return t;
}

void trace_on() {
  g_tracing.store(true);
}
void trace_off() {
  g_tracing.store(false);
}

void print_trace(std::FILE* out, int top, double per) {
  const bool was = g_tracing.exchange(false);
  std::vector<Stack> stacks;
  while (g_lock.test_and_set(std::memory_order_acquire)) {
  }
  for (const Stack& s : g_stacks)
    if (s.count) stacks.push_back(s);
  for (Stack& s : g_stacks) s = Stack{};
  const std::uint64_t dropped = g_dropped;
  g_used = 0;
  g_dropped = 0;
  g_lock.clear(std::memory_order_release);
  std::sort(stacks.begin(), stacks.end(),
            [](const Stack& a, const Stack& b) { return a.count > b.count; });
  if (static_cast<int>(stacks.size()) > top) stacks.resize(top);

  // Every frame as (file, offset), resolved with one addr2line per file.
  std::map<std::string, std::vector<std::uintptr_t>> by_file;
  for (const Stack& s : stacks)
    for (int k = 0; k < s.depth; ++k) {
      Dl_info info;
      const auto a = reinterpret_cast<std::uintptr_t>(s.frames[k]) - 1;  // inside the call
      if (dladdr(reinterpret_cast<void*>(a), &info) && info.dli_fname)
        by_file[info.dli_fname].push_back(a - reinterpret_cast<std::uintptr_t>(info.dli_fbase));
    }
  std::map<std::pair<std::string, std::uintptr_t>, std::string> names;
  for (auto& [file, offsets] : by_file) {
    std::sort(offsets.begin(), offsets.end());
    offsets.erase(std::unique(offsets.begin(), offsets.end()), offsets.end());
    const auto lines = resolve(file, offsets);
    for (std::size_t k = 0; k < offsets.size(); ++k) names[{file, offsets[k]}] = lines[k];
  }
  std::fprintf(out, "allocation stacks (%zu shown; counts per %s):\n", stacks.size(),
               per == 1.0 ? "run" : "iteration");
  for (const Stack& s : stacks) {
    std::fprintf(out, "  %.3g allocations, %.4g bytes:\n", static_cast<double>(s.count) / per,
                 static_cast<double>(s.bytes) / per);
    for (int k = 0; k < s.depth; ++k) {
      Dl_info info;
      const auto a = reinterpret_cast<std::uintptr_t>(s.frames[k]) - 1;
      std::string text = "?";
      std::string lib = "?";
      if (dladdr(reinterpret_cast<void*>(a), &info) && info.dli_fname) {
        lib = info.dli_fname;
        lib = lib.substr(lib.find_last_of('/') + 1);
        text = names[{info.dli_fname, a - reinterpret_cast<std::uintptr_t>(info.dli_fbase)}];
      }
      // Below the benchmark's own function the frames are the harness's.
      if (lib.rfind("libbenchmark", 0) == 0 || text.rfind("main at", 0) == 0) break;
      std::fprintf(out, "    [%s] %s\n", lib.c_str(), simplify(text).c_str());
    }
  }
  if (dropped)
    std::fprintf(out, "  (%lu allocations not recorded: table full)\n",
                 static_cast<unsigned long>(dropped));
  if (was) g_tracing.store(true);
}

}  // namespace flows::bench::alloc

#ifndef FLOWS_ALLOC_COUNTER_OFF
using flows::bench::alloc::aligned_new_or_throw;
using flows::bench::alloc::count;
using flows::bench::alloc::new_or_throw;

// ---- operator new / delete -------------------------------------------------
void* operator new(std::size_t size) {
  return new_or_throw(size);
}
void* operator new[](std::size_t size) {
  return new_or_throw(size);
}
void* operator new(std::size_t size, const std::nothrow_t&) noexcept {
  count(size);
  return __libc_malloc(size ? size : 1);
}
void* operator new[](std::size_t size, const std::nothrow_t&) noexcept {
  count(size);
  return __libc_malloc(size ? size : 1);
}
void* operator new(std::size_t size, std::align_val_t a) {
  return aligned_new_or_throw(size, a);
}
void* operator new[](std::size_t size, std::align_val_t a) {
  return aligned_new_or_throw(size, a);
}
void* operator new(std::size_t size, std::align_val_t a, const std::nothrow_t&) noexcept {
  count(size);
  return __libc_memalign(static_cast<std::size_t>(a), size ? size : 1);
}
void* operator new[](std::size_t size, std::align_val_t a, const std::nothrow_t&) noexcept {
  count(size);
  return __libc_memalign(static_cast<std::size_t>(a), size ? size : 1);
}
void operator delete(void* p) noexcept {
  __libc_free(p);
}
void operator delete[](void* p) noexcept {
  __libc_free(p);
}
void operator delete(void* p, std::size_t) noexcept {
  __libc_free(p);
}
void operator delete[](void* p, std::size_t) noexcept {
  __libc_free(p);
}
void operator delete(void* p, const std::nothrow_t&) noexcept {
  __libc_free(p);
}
void operator delete[](void* p, const std::nothrow_t&) noexcept {
  __libc_free(p);
}
void operator delete(void* p, std::align_val_t) noexcept {
  __libc_free(p);
}
void operator delete[](void* p, std::align_val_t) noexcept {
  __libc_free(p);
}
void operator delete(void* p, std::size_t, std::align_val_t) noexcept {
  __libc_free(p);
}
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept {
  __libc_free(p);
}
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept {
  __libc_free(p);
}
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept {
  __libc_free(p);
}

// ---- the C allocator ---------------------------------------------------------
extern "C" {
void* malloc(std::size_t size) noexcept {
  count(size);
  return __libc_malloc(size);
}
void* calloc(std::size_t n, std::size_t size) noexcept {
  count(n * size);
  return __libc_calloc(n, size);
}
void* realloc(void* p, std::size_t size) noexcept {
  if (size) count(size);
  return __libc_realloc(p, size);
}
void free(void* p) noexcept {
  __libc_free(p);
}
int posix_memalign(void** out, std::size_t alignment, std::size_t size) noexcept {
  if (alignment % sizeof(void*) != 0 || (alignment & (alignment - 1)) != 0) return EINVAL;
  count(size);
  void* p = __libc_memalign(alignment, size);
  if (!p) return ENOMEM;
  *out = p;
  return 0;
}
void* aligned_alloc(std::size_t alignment, std::size_t size) noexcept {
  count(size);
  return __libc_memalign(alignment, size);
}
void* memalign(std::size_t alignment, std::size_t size) noexcept {
  count(size);
  return __libc_memalign(alignment, size);
}
void* valloc(std::size_t size) noexcept {
  count(size);
  return __libc_valloc(size);
}
void* pvalloc(std::size_t size) noexcept {
  count(size);
  return __libc_pvalloc(size);
}
}
#endif  // FLOWS_ALLOC_COUNTER_OFF
