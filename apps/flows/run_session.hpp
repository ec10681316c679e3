#pragma once
// One run of a pipeline: the pipeline built once (its registry with the
// plugins, data, model and trainer) and what the stages hand on to each
// other. Every stage reads and adds to it; run_pipeline writes its metrics.
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "flows/pipeline.hpp"
#include "flows/trainer.hpp"
#include "pipeline.hpp"

namespace flows::app {

struct RunSession {
  RunSession(const RunOptions& options, Pipeline built)
      : run(options), pipeline(std::move(built)) {}

  const RunOptions& run;
  Pipeline pipeline;
  std::string out;                 // the output folder
  nlohmann::ordered_json metrics;  // metrics.json, in the order the stages add to it
  // "label", "value": the metrics the report lists, in order.
  std::vector<std::pair<std::string, std::string>> shown;
  TrainReport report;  // the train stage's
  bool trained = false;
  Matrix samples;  // the sample stage's rows, which the report reuses

  const PipelineOptions& options() const { return pipeline.options; }
  const DataSplits& data() const { return pipeline.data; }
  const Model& model() const { return pipeline.model; }
  Index dim() const { return pipeline.data.train.shape(1); }
  bool conditional() const { return pipeline.data.context_dim() > 0; }
  bool will_run(const std::string& stage) const;
  // Processes of the job, and whether this one writes the outputs (rank 0).
  int ranks() const { return run.ranks ? run.ranks->size() : 1; }
  bool writes_outputs() const { return !run.ranks || run.ranks->rank() == 0; }
  // n of the model's own samples (no quantization): each rank inverts its
  // share of the rows, and rank 0 gets them all (the others: none).
  Matrix model_samples(Index n, Rng& rng, const Matrix& context = {}) const;
};

// The held-out rows the model is judged on: test, else validation, else
// training; with their context rows (empty for unconditional data).
struct HeldOut {
  const Matrix* x;
  const Matrix* context;
  const char* split;
};
HeldOut held_out(const DataSplits& data);

}  // namespace flows::app
