#pragma once
#include <memory>
#include <string>
#include <vector>

#include "flows/config.hpp"
#include "flows/export.hpp"
#include "flows/flow.hpp"
#include "flows/registry.hpp"
#include "flows/standardize.hpp"

namespace flows {

// The stages a pipeline may list, run in the order given.
FLOWS_API const std::vector<std::string>& pipeline_stages();

// A pipeline's own keys; each section (data, model, trainer) is checked by
// the component it builds.
struct PipelineOptions {
  std::string name = "flows";        // shown in logs and metrics.json
  Index seed = 0;                    // every random draw of the run derives from it
  std::string output;                // output folder (default runs/<name>)
  std::vector<std::string> plugins;  // extra plugin files or folders, relative to the YAML file
  std::vector<std::string> stages = {"train", "evaluate", "sample", "save", "report"};
  Index sample_count = 10000;  // sample.n: rows the sample stage writes
  Index quality_rows = 2000;   // evaluate.quality_rows: rows per side for MMD and sliced W1
  Index projections = 128;     // evaluate.projections: directions of the sliced W1
  std::string resume_from;     // trainer.resume_from: checkpoint to continue (resolved path)
  Index log_every = 0;         // progress.log_every: steps between log lines (0: a tenth)
  bool standardize = true;     // model.standardize: standardize with the training split
};

// A flow built from a `model:` section, and its data standardization (null
// when model.standardize is false), which is the first bijector of the chain.
struct Model {
  std::shared_ptr<Flow> flow;
  std::shared_ptr<Standardize> standardize;
};

// Builds the model for `dim`-dimensional data: base (standard_normal when
// absent) and the bijectors in order (data side first), each seeded from
// `seed`, so the same section and seed always build the same model. The data
// standardization is added by the caller (fitted, or restored).
FLOWS_API Model build_model(ConfigNode& model_node, Registry& registry, Index dim, Index seed);

// Everything a pipeline file describes, checked and built, before any work.
struct FLOWS_API Pipeline {
  std::string file;
  ConfigNode root;
  ConfigNode model_node;  // the model section, as checkpoints store it
  PipelineOptions options;
  std::shared_ptr<Registry> registry;
  DataSplits data;
  Model model;
  std::shared_ptr<Trainer> trainer;

  // Reads `file`, applies overrides ("dotted.key=yaml value") and checks every
  // key; loads plugins, the data, builds model and trainer. Raises
  // ConfigError (file:line:column: key path: what) and the errors of loading.
  static Pipeline load(const std::string& file, const std::vector<std::string>& overrides = {});
};

}  // namespace flows
