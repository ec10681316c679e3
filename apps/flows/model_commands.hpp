#pragma once
// The subcommands that work on a saved model (model.flows), without retraining.
#include <string>
#include <vector>

#include "flows/tensor.hpp"

namespace flows::app {

struct ModelCommand {
  std::string model;                 // the checkpoint file
  std::vector<std::string> plugins;  // extra plugin files or folders
};

// `flows sample MODEL -n N -o FILE [--seed S]`: N samples in data units, to
// CSV or NPY by the file's extension.
struct SampleCommand : ModelCommand {
  Index n = 1000;
  std::string output;
  Index seed = 0;
};
void sample_command(const SampleCommand& command);

// `flows log-prob MODEL INPUT -o FILE`: log p(x) of every row of INPUT, in
// the data's units, one value per row.
struct LogProbCommand : ModelCommand {
  std::string input;
  std::string output;
};
void log_prob_command(const LogProbCommand& command);

// `flows evaluate MODEL INPUT [--bits-per-dim]`: mean NLL of INPUT's rows and
// its standard error; --json prints one JSON object instead of text.
struct EvaluateCommand : ModelCommand {
  std::string input;
  bool bits_per_dim = false;
  bool json = false;
};
void evaluate_command(const EvaluateCommand& command);

// `flows info MODEL`: what the model is, how it was trained, what it needs.
void info_command(const ModelCommand& command);

}  // namespace flows::app
