#pragma once
// Pipelines assembled in memory: a model and a trainer section (YAML text)
// with data the caller already holds, instead of a pipeline file and a data
// set. This is what the Python module's flows.fit() builds on; the model,
// trainer and checkpoint that come out are the ones a pipeline file would
// give, so make_checkpoint() and load_model() treat them alike.
#include <string>
#include <vector>

#include "flows/export.hpp"
#include "flows/pipeline.hpp"

namespace flows {

struct InMemoryPipeline {
  std::string origin = "fit";  // names the sections in messages ("fit:2:3: model.bijectors...")
  std::string name = "fit";    // the pipeline's name (checkpoints, info)
  Index seed = 0;              // every random draw derives from it, as in a pipeline
  std::string model_yaml;      // the `model:` section (empty: {})
  std::string trainer_yaml;    // the `trainer:` section (empty: mle with its defaults)
  // The keys of a `data:` section that are not about a data set's source:
  // dequantize and dequantize_samples (empty: continuous data).
  std::string data_yaml;
  // train, val (may have no rows) with their context rows and column names;
  // test is not used. data.context_columns names the context (empty:
  // unconditional); every context column must be named.
  DataSplits data;
  std::vector<std::string> plugin_paths;  // searched after the default search path
};

// Checks and builds everything as Pipeline::load does after loading its data:
// the sections' keys (data: only dequantize and dequantize_samples) (ConfigError with
// origin:line:column and key path), the plugins, the model for the data's dimension and context,
// the trainer, the data and context standardization fitted on data.train (model.standardize), and
// trainer.resume_from (resolved against the working folder). DataError for data that does not fit
// together (columns, context rows) or is not finite, naming the split, row and column.
FLOWS_API Pipeline make_in_memory_pipeline(InMemoryPipeline spec);

// DataError "<what>: row r, column c is nan" (0-based) for the first
// non-finite value of m.
FLOWS_API void require_finite(const Matrix& m, const std::string& what);

}  // namespace flows
