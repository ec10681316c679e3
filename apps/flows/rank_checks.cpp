#include "rank_checks.hpp"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "flows/error.hpp"
#include "flows/threads.hpp"
#include "flows/version.hpp"

namespace flows::app {

namespace {

// FNV-1a, 64 bits: the same on every machine and build, unlike std::hash.
std::uint64_t fnv1a(std::string_view bytes, std::uint64_t h = 0xcbf29ce484222325ULL) {
  for (unsigned char c : bytes) h = (h ^ c) * 0x100000001b3ULL;
  return h;
}

// The ranks a launcher put on this node (every rank when it does not say).
int ranks_on_this_node(int ranks) {
  for (const char* name :
       {"OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS", "SLURM_NTASKS_PER_NODE"})
    if (const char* value = std::getenv(name))
      if (const int n = std::atoi(value); n >= 1) return n;
  return ranks;
}

// The rows of a training batch: trainer.batch_size (default 256), at most
// the training rows.
Index batch_rows(const RunSession& s) {
  Index batch = 256;
  ConfigNode::parse(s.pipeline.root.dump(), s.pipeline.file)
      .child("trainer", true)
      .read("batch_size", batch);
  return std::min(batch, s.data().train_rows());
}

}  // namespace

void check_same_job(Ranks& ranks, const std::string& file,
                    const std::vector<std::string>& overrides) {
  // The YAML as Pipeline::load will see it, overrides applied; one that
  // does not parse (or a malformed override) is compared as its text and
  // overrides, and load reports it.
  std::string text;
  try {
    ConfigNode root = ConfigNode::load_file(file);
    apply_overrides(root, overrides);
    text = root.dump();
  } catch (const Error&) {
    text = "(unreadable)";
    for (const std::string& item : overrides) text += "\n" + item;
  }
  // Every rank takes part in every comparison, in the same order.
  const bool same_pipeline = ranks.same_on_every_rank(fnv1a(text));
  const bool same_version = ranks.same_on_every_rank(fnv1a(sdk_version()));
  std::vector<std::string> differences;
  if (!same_pipeline)
    differences.push_back(
        "the pipeline (its YAML with the --set overrides applied) differs between ranks");
  if (!same_version) differences.push_back("the flows version differs between ranks");
  if (differences.empty()) return;
  std::string message = "the " + std::to_string(ranks.size()) + " ranks of this job disagree: ";
  for (std::size_t k = 0; k < differences.size(); ++k) message += (k ? "; " : "") + differences[k];
  throw ConfigError(message + " (start every rank with the same command, files and build)");
}

void prepare_ranks(RunSession& s) {
  Ranks& ranks = *s.run.ranks;
  // A layer that normalizes by its batch's statistics (batch_norm, actnorm
  // before its initialisation) sums them over the ranks in every step, so
  // every rank must hold a row of each batch.
  if (s.will_run("train") && !s.model().flow->rows_independent_in_training() &&
      batch_rows(s) < static_cast<Index>(ranks.size()))
    throw ConfigError(fmt::format(
        "{}: trainer.batch_size: a batch of {} on {} ranks leaves a rank without rows, and "
        "the model has a layer that normalizes by the batch's statistics (batch_norm or actnorm), "
        "which every rank computes; use a batch of at least {} rows",
        s.pipeline.file, batch_rows(s), ranks.size(), ranks.size()));
  if (s.options().threads == 0 && !std::getenv("FLOWS_NUM_THREADS")) {
    const int cores = static_cast<int>(std::thread::hardware_concurrency());
    set_thread_count(static_cast<Index>(std::max(1, cores / ranks_on_this_node(ranks.size()))));
  }
}

}  // namespace flows::app
