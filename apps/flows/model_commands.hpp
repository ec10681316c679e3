#pragma once
// The subcommands that work on a saved model (model.flows), without retraining.
#include <string>
#include <vector>

#include "flows/checkpoint.hpp"
#include "flows/tensor.hpp"

namespace flows::app {

struct ModelCommand {
  std::string model;                 // the checkpoint file
  std::vector<std::string> plugins;  // extra plugin files or folders
};

// `flows sample MODEL -n N -o FILE [--seed S] [--context C]`: N samples in
// data units, to CSV or NPY by the file's extension. A conditional model
// p(x | c) needs --context: a file (CSV whose header names the context
// columns, or NPY with the context columns in the model's order) or one row
// inline, 'name=value,...'. It draws N samples per context row and writes the
// 0-based row in a first column, `context_row`, before the x columns.
struct SampleCommand : ModelCommand {
  Index n = 1000;
  std::string output;
  Index seed = 0;
  std::string context;  // empty: none
};
void sample_command(const SampleCommand& command);

// `flows log-prob MODEL INPUT -o FILE`: log p(x) (log p(x | c) for a
// conditional model) of every row of INPUT, in the data's units, one value per
// row; for a dequantized model, log P̂(x) of the integer rows (the bound that
// bits/dim reports). A CSV's columns are found by their header names (the x columns by
// position when the header does not name them); an NPY file, or a CSV without
// a header, holds the x columns then the context columns, in the model's order.
struct LogProbCommand : ModelCommand {
  std::string input;
  std::string output;
};
void log_prob_command(const LogProbCommand& command);

// `flows evaluate MODEL INPUT [--bits-per-dim]`: mean NLL of INPUT's rows
// (read as by log-prob) and its standard error; --json prints one JSON object
// instead of text.
struct EvaluateCommand : ModelCommand {
  std::string input;
  bool bits_per_dim = false;
  bool json = false;
};
void evaluate_command(const EvaluateCommand& command);

// The rows of a data file for a model, read as log-prob and evaluate read
// INPUT: x into `x`, the context columns into `context` (empty for an
// unconditional model). DataError naming the file for columns that do not fit.
void read_model_rows(const std::string& path, const CheckpointInfo& info, Matrix& x,
                     Matrix& context);

// `flows info MODEL`: what the model is (its x and context columns), how it
// was trained, what it needs.
void info_command(const ModelCommand& command);

}  // namespace flows::app
