#include "flows/resources.hpp"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <string>

#include <fmt/format.h>

namespace flows {
namespace {

// The first line of a small file ("" when it cannot be read).
std::string first_line(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  if (in) std::getline(in, line);
  return line;
}

// A byte count as the kernel writes it; 0 for "max", an unset v1 limit
// (a value near 2^63) or anything else that is not a limit.
double limit_value(const std::string& text) {
  if (text.empty() || !std::isdigit(static_cast<unsigned char>(text[0]))) return 0;
  const double v = std::strtod(text.c_str(), nullptr);
  return v > 0 && v < 1e18 ? v : 0;
}

// The cgroup's memory limit (0: none): v2 at the process's own cgroup, then
// the root of the v2 hierarchy, then v1.
double cgroup_limit(std::string& source) {
  std::ifstream self("/proc/self/cgroup");
  std::string line, v2_path;
  while (std::getline(self, line))
    if (line.rfind("0::", 0) == 0) v2_path = line.substr(3);
  const std::string candidates[] = {
      v2_path.empty() || v2_path == "/" ? "" : "/sys/fs/cgroup" + v2_path + "/memory.max",
      "/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"};
  for (const std::string& path : candidates) {
    if (path.empty()) continue;
    const double v = limit_value(first_line(path));
    if (v > 0) {
      source = "cgroup limit " + path;
      return v;
    }
  }
  return 0;
}

// $FLOWS_MEMORY_LIMIT: digits, an optional fraction, an optional K/M/G/T
// suffix (powers of 1024, an optional trailing B).
double environment_limit(const char* text) {
  const std::string s(text);
  char* end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  std::string suffix(end);
  for (char& c : suffix) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (!suffix.empty() && suffix.back() == 'B') suffix.pop_back();
  const std::string units = "KMGT";
  if (suffix.size() == 1 && units.find(suffix[0]) != std::string::npos)
    v *= std::pow(1024.0, static_cast<double>(units.find(suffix[0]) + 1));
  else if (!suffix.empty())
    v = -1;
  if (end == s.c_str() || !(v > 0) || !std::isfinite(v))
    throw ConfigError(fmt::format(
        "FLOWS_MEMORY_LIMIT='{}': expected a byte count such as 2000000000, 512M or 8G", s));
  return v;
}

// Physical memory and the cgroup's limit, read once per process.
MemoryLimit machine_limit() {
  MemoryLimit limit;
  const long pages = ::sysconf(_SC_PHYS_PAGES);
  const long page_size = ::sysconf(_SC_PAGESIZE);
  limit.bytes = pages > 0 && page_size > 0 ? double(pages) * double(page_size) : 0;
  limit.source = "physical memory";
  std::string cgroup_source;
  const double cgroup = cgroup_limit(cgroup_source);
  if (cgroup > 0 && (limit.bytes == 0 || cgroup < limit.bytes)) {
    limit.bytes = cgroup;
    limit.source = cgroup_source;
  }
  return limit;
}

}  // namespace

MemoryLimit memory_limit() {
  static const MemoryLimit machine = machine_limit();
  MemoryLimit limit = machine;
  if (const char* text = std::getenv("FLOWS_MEMORY_LIMIT")) {
    const double v = environment_limit(text);
    if (limit.bytes == 0 || v < limit.bytes) {
      limit.bytes = v;
      limit.source = "FLOWS_MEMORY_LIMIT";
    }
  }
  return limit;
}

std::string format_bytes(double bytes) {
  if (bytes < 1e6) return fmt::format("{:.0f} bytes", bytes);
  if (bytes < 1e8) return fmt::format("{:.2g} MB", bytes / 1e6);
  const double gb = bytes / 1e9;
  return gb >= 100 ? fmt::format("{:.0f} GB", gb) : fmt::format("{:.2g} GB", gb);
}

void check_memory(const MemoryEstimate& estimate, const std::string& where) {
  const MemoryLimit limit = memory_limit();
  if (limit.bytes <= 0 || !(estimate.bytes > limit.bytes)) return;
  throw ResourceError(fmt::format("{}{} needs about {} for {} ({}); this machine has {} ({})",
                                  where.empty() ? "" : where + ": ", estimate.subject,
                                  format_bytes(estimate.bytes), estimate.purpose, estimate.formula,
                                  format_bytes(limit.bytes), limit.source));
}

MemoryEstimate data_memory(double rows, double cols, const std::string& subject, double extra_bytes,
                           const std::string& extra) {
  MemoryEstimate e;
  e.bytes = rows * cols * memory::kValueBytes * memory::kDataCopies + extra_bytes;
  e.subject = subject;
  e.purpose = "the data";
  e.formula = fmt::format("rows x columns x 8 bytes, times {:g} working copies{}",
                          memory::kDataCopies, extra.empty() ? "" : ", and " + extra);
  return e;
}

void check_data_memory(double rows, double cols, const std::string& subject,
                       const std::string& where, double extra_bytes, const std::string& extra) {
  check_memory(data_memory(rows, cols, subject, extra_bytes, extra), where);
}

MemoryEstimate sample_memory(double n, double cols, const std::string& subject) {
  MemoryEstimate e;
  e.bytes = n * cols * memory::kValueBytes * memory::kSampleCopies;
  e.subject = subject;
  e.purpose = "the samples";
  e.formula =
      fmt::format("n x columns x 8 bytes, times {:g} working copies", memory::kSampleCopies);
  return e;
}

MemoryEstimate model_memory(double parameters, double activations, double batch, double threads,
                            const std::string& subject) {
  const double extra = std::max(threads, 1.0) - 1;
  const double copies = memory::kParameterCopies + memory::kReplicaCopies * extra;
  MemoryEstimate e;
  e.bytes = parameters * memory::kValueBytes * copies +
            batch * activations * memory::kValueBytes * memory::kActivationCopies;
  e.subject = subject;
  e.purpose = "training the model";
  e.formula = fmt::format(
      "{:.0f} parameters x 8 bytes x {:g} (values, gradients, Adam's moments, working copies{})"
      "{}",
      parameters, copies,
      extra > 0 ? fmt::format(", a replica for each of {:.0f} more threads", extra) : "",
      activations > 0 ? fmt::format(", and batch_size {:.0f} x {:.0f} hidden units x 8 bytes x "
                                    "{:g} for the activations",
                                    batch, activations, memory::kActivationCopies)
                      : "");
  return e;
}

}  // namespace flows
