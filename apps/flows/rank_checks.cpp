#include "rank_checks.hpp"

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

std::uint64_t hash_matrix(const Matrix& m, std::uint64_t h) {
  h = fnv1a(std::to_string(m.shape(0)) + "x" + std::to_string(m.size() ? m.shape(1) : 0), h);
  return fnv1a(std::string_view(reinterpret_cast<const char*>(m.data()), m.size() * sizeof(Real)),
               h);
}

std::uint64_t hash_data(const DataSplits& d) {
  std::uint64_t h = hash_matrix(d.train, fnv1a("train"));
  h = hash_matrix(d.train_context, h);
  for (const std::string& c : d.columns) h = fnv1a(c, h);
  for (const std::string& c : d.context_columns) h = fnv1a(c, h);
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

}  // namespace

void prepare_ranks(RunSession& s) {
  Ranks& ranks = *s.run.ranks;
  // Every rank takes part in every comparison, in the same order.
  const bool same_pipeline = ranks.same_on_every_rank(fnv1a(s.pipeline.root.dump()));
  const bool same_version = ranks.same_on_every_rank(fnv1a(sdk_version()));
  const bool same_data = ranks.same_on_every_rank(hash_data(s.data()));
  std::vector<std::string> differences;
  if (!same_pipeline)
    differences.push_back(
        "the pipeline (its YAML with the --set overrides applied) differs between ranks");
  if (!same_version) differences.push_back("the flows version differs between ranks");
  if (!same_data)
    differences.push_back(
        "the training data differs between ranks (each rank read its own file or rows)");
  if (!differences.empty()) {
    std::string message = "the " + std::to_string(ranks.size()) + " ranks of this job disagree: ";
    for (std::size_t k = 0; k < differences.size(); ++k)
      message += (k ? "; " : "") + differences[k];
    throw ConfigError(message + " (start every rank with the same command, files and build)");
  }
  if (s.will_run("train") && !s.model().flow->rows_independent_in_training())
    throw ConfigError(fmt::format(
        "{}: the model has a layer that normalizes with its training batch's statistics "
        "(batch_norm), and on {} ranks each would see only its share of the batch, so the ranks "
        "would not train the model one process trains; train it on one process, or leave "
        "batch_norm out",
        s.pipeline.file, ranks.size()));
  if (s.options().threads == 0 && !std::getenv("FLOWS_NUM_THREADS")) {
    const int cores = static_cast<int>(std::thread::hardware_concurrency());
    set_thread_count(static_cast<Index>(std::max(1, cores / ranks_on_this_node(ranks.size()))));
  }
}

}  // namespace flows::app
