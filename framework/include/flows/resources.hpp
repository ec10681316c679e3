#pragma once
// Resource limits (issue 15): work whose memory would exceed what the machine
// has is refused before it starts, with the estimate in the message, rather
// than left to fail in an allocation (or to the kernel's out-of-memory
// killer) minutes later.
#include <cstdint>
#include <string>

#include "flows/error.hpp"
#include "flows/export.hpp"

namespace flows {

// A data set, sample count or model needs more memory than the machine has.
// A ConfigError: the fix is in the configuration (or the command line).
class FLOWS_API ResourceError : public ConfigError {
 public:
  using ConfigError::ConfigError;
};

// The memory flows plans with, and where that figure comes from.
struct MemoryLimit {
  double bytes = 0;
  std::string source;  // "physical memory", "cgroup memory.max", "FLOWS_MEMORY_LIMIT"
};

// The smaller of the physical memory (sysconf) and the cgroup's limit when it
// sets one (v2 /sys/fs/cgroup/memory.max, v1 memory.limit_in_bytes); then
// $FLOWS_MEMORY_LIMIT when set, which may only lower it: a byte count with an
// optional suffix K, M, G or T (powers of 1024), e.g. "512M" (tests and the
// fuzz harnesses set it; a malformed value is a ConfigError naming it).
FLOWS_API MemoryLimit memory_limit();

// What a piece of work needs: `subject` (e.g. "sample.n = 1000000000000")
// needs `bytes` for `purpose` ("the samples"), computed as `formula`
// ("n x dim x 8 bytes, times 3 working copies").
struct MemoryEstimate {
  double bytes = 0;
  std::string subject;
  std::string purpose;
  std::string formula;
};

// "16000 GB", "2.4 GB", "31 MB", "128 bytes": a byte count for messages
// (GB = 10^9 bytes, MB = 10^6).
FLOWS_API std::string format_bytes(double bytes);

// Raises ResourceError "<where>: <subject> needs about <N> GB for <purpose>
// (<formula>); this machine has <M> GB (<source>)" when the estimate exceeds
// memory_limit(). `where` names the place in a file or the option ("" for none).
FLOWS_API void check_memory(const MemoryEstimate& estimate, const std::string& where);

// The working copies behind the estimates, measured with /usr/bin/time -v
// (maximum resident set size less that of a tiny run, against the size of
// one copy; docs/yaml_reference.md, "Resource limits", has the numbers).
namespace memory {
constexpr double kValueBytes = 8;  // a Real
// Data: the splits, the standardization's copy of the training rows, and
// while reading, the file's values before the split (measured: 1.95 for a
// toy set, 2.6 for a CSV file with its text, 1.4 and the file for .npy).
constexpr double kDataCopies = 3;
// Samples: the base draw, each bijector's output, the copy written out
// (measured: 4.4 to 4.5, whatever the networks' widths, which run on row
// groups).
constexpr double kSampleCopies = 5;
// Model, per parameter: values, gradients, Adam's two moments, float32 and
// masked copies, the best parameters so far (measured: 9.5 at one thread)...
constexpr double kParameterCopies = 10;
// ...and a replica's values, gradients and copies per extra thread (3.9).
constexpr double kReplicaCopies = 4;
// Activations of a training mini-batch, per hidden unit and row (1.5).
constexpr double kActivationCopies = 2;
}  // namespace memory

// The estimate for `rows` x `cols` values of data held by a pipeline
// (memory::kDataCopies copies), plus `extra_bytes` described by `extra`
// (e.g. a file read whole, or a data set's own structure).
FLOWS_API MemoryEstimate data_memory(double rows, double cols, const std::string& subject,
                                     double extra_bytes = 0, const std::string& extra = "");

// Checks a data set of `rows` x `cols` values before it is drawn or read:
// check_memory(data_memory(...), where). `where` names the option or file.
FLOWS_API void check_data_memory(double rows, double cols, const std::string& subject,
                                 const std::string& where, double extra_bytes = 0,
                                 const std::string& extra = "");

// The estimate for drawing `n` samples of `cols` columns (context columns
// included): memory::kSampleCopies copies of the rows.
FLOWS_API MemoryEstimate sample_memory(double n, double cols, const std::string& subject);

// The estimate for training a model of `parameters` values on `threads`
// threads (memory::kParameterCopies copies, memory::kReplicaCopies more per
// extra thread) whose networks have `activations` hidden units per row, on
// mini-batches of `batch` rows (memory::kActivationCopies each).
FLOWS_API MemoryEstimate model_memory(double parameters, double activations, double batch,
                                      double threads, const std::string& subject);

}  // namespace flows
