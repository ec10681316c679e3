#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "flows/ranks.hpp"

namespace flows::app {

struct RunOptions {
  std::string file;                    // the pipeline YAML
  std::vector<std::string> overrides;  // "dotted.key=yaml value"
  std::string output;                  // replaces the pipeline's output folder when set
  bool quiet = false;                  // no progress lines on the terminal
  // Asked between training steps; true stops training there, keeping the
  // best parameters so far, and the later stages run on them (Python's
  // Ctrl-C). Empty: train to the end.
  std::function<bool()> should_stop;
  // The ranks of an MPI job (null: one process). Every rank trains on its
  // share of each mini-batch and scores and samples its share of the rows;
  // rank 0 alone saves, reports and writes.
  std::shared_ptr<Ranks> ranks;
};

// Runs a pipeline file: checks every key, builds data, model and trainer, then
// runs its stages in order. Raises flows::Error on any problem.
void run_pipeline(const RunOptions& options);

// Prints every registered name of every kind with the file it came from.
void list_plugins(const std::vector<std::string>& extra_paths);

}  // namespace flows::app
