#include "model_commands.hpp"

#include <cmath>
#include <filesystem>
#include <iostream>

#include <fmt/format.h>

#include "flows/checkpoint.hpp"
#include "flows/data/csv.hpp"
#include "flows/data/npy.hpp"
#include "flows/error.hpp"
#include "outputs.hpp"

namespace flows::app {

namespace {

namespace fs = std::filesystem;

enum class TableFormat { csv, npy };

TableFormat format_of(const std::string& path, const char* role) {
  const std::string ext = fs::path(path).extension().string();
  if (ext == ".npy") return TableFormat::npy;
  if (ext == ".csv") return TableFormat::csv;
  throw ConfigError(fmt::format("{} '{}': the file name must end in .csv or .npy", role, path));
}

std::string column_list(const std::vector<std::string>& columns) {
  std::string out;
  for (const std::string& c : columns) out += (out.empty() ? "" : ", ") + c;
  return out;
}

// The rows of `path`, checked against the model's dimension.
Matrix read_input(const std::string& path, const LoadedModel& loaded) {
  const TableFormat format = format_of(path, "input");
  std::vector<std::string> header;
  const Matrix x = format == TableFormat::npy ? read_npy(path) : read_csv(path, &header);
  const CheckpointInfo& info = loaded.info;
  if (x.shape(1) != info.dim)
    throw DataError(fmt::format(
        "{}: {} columns, but the model '{}' was trained on {}-dimensional data{}", path, x.shape(1),
        info.name, info.dim, info.columns.empty() ? "" : " (" + column_list(info.columns) + ")"));
  if (!header.empty() && !info.columns.empty() && header != info.columns)
    std::cerr << fmt::format(
        "warning: {}: columns ({}) are named differently from the model's "
        "({}); they are used in the order given\n",
        path, column_list(header), column_list(info.columns));
  return x;
}

// The model, with a warning for every plugin that could not be loaded.
LoadedModel load(const ModelCommand& command) {
  LoadedModel loaded = load_model(command.model, command.plugins);
  for (const auto& failure : loaded.registry->failures())
    std::cerr << "warning: skipped a plugin: " << failure.message << "\n";
  return loaded;
}

void write_table(const std::string& path, const Matrix& m,
                 const std::vector<std::string>& columns) {
  if (format_of(path, "output") == TableFormat::npy)
    write_npy(path, m);
  else
    write_csv(path, m, columns);
}

}  // namespace

void sample_command(const SampleCommand& command) {
  format_of(command.output, "output");  // fail before the work
  if (command.n == 0) throw ConfigError("-n: must be > 0");
  LoadedModel loaded = load(command);
  Rng rng(command.seed);
  const Matrix samples = loaded.model.flow->sample(command.n, rng);
  write_table(command.output, samples, loaded.info.columns);
  std::cerr << fmt::format("wrote {} samples to {}\n", command.n, command.output);
}

void log_prob_command(const LogProbCommand& command) {
  format_of(command.output, "output");
  LoadedModel loaded = load(command);
  const Matrix x = read_input(command.input, loaded);
  const Vector log_p = loaded.model.flow->log_prob(x);
  Matrix column = xt::empty<Real>({log_p.size(), Index{1}});
  std::copy(log_p.begin(), log_p.end(), column.begin());
  write_table(command.output, column, {"log_prob"});
  std::cerr << fmt::format("wrote {} log-densities (nats, data units) to {}\n", log_p.size(),
                           command.output);
}

void evaluate_command(const EvaluateCommand& command) {
  LoadedModel loaded = load(command);
  const Matrix x = read_input(command.input, loaded);
  const Vector log_p = loaded.model.flow->log_prob(x);
  const Index n = log_p.size();
  // Mean and standard error of −log p over rows (two passes for accuracy).
  Real mean = 0;
  for (Real v : log_p) mean -= v;
  mean /= static_cast<Real>(n);
  Real squares = 0;
  for (Real v : log_p) squares += (-v - mean) * (-v - mean);
  const Real std_error = n > 1 ? std::sqrt(squares / static_cast<Real>(n - 1) / n) : NAN;
  // Bits per dimension: nats / (d ln 2).
  const Real to_bits = 1.0 / (static_cast<Real>(loaded.info.dim) * std::log(2.0));
  if (command.json) {
    JsonObject out;
    out.integer("rows", static_cast<long long>(n))
        .number("nll", mean)
        .number("nll_stderr", std_error);
    if (command.bits_per_dim)
      out.number("bits_per_dim", mean * to_bits).number("bits_per_dim_stderr", std_error * to_bits);
    std::cout << out.str(2) << "\n";
    return;
  }
  // One row has no standard error.
  auto plus_minus = [n](Real se) { return n > 1 ? fmt::format(" ± {:.6f}", se) : std::string(); };
  std::cout << fmt::format("rows: {}\nNLL: {:.6f}{} nats per row (data units)\n", n, mean,
                           plus_minus(std_error));
  if (command.bits_per_dim)
    std::cout << fmt::format("bits per dimension: {:.6f}{}\n", mean * to_bits,
                             plus_minus(std_error * to_bits));
}

void info_command(const ModelCommand& command) {
  const LoadedModel loaded = load(command);
  const CheckpointInfo& i = loaded.info;
  std::cout << fmt::format("model:          {}\n", command.model);
  std::cout << fmt::format("name:           {}\n", i.name);
  std::cout << fmt::format(
      "format:         flows checkpoint version {}, written by flows {} on {}\n", i.format_version,
      i.sdk_version, i.created);
  std::cout << fmt::format("dimensions:     {}{}\n", i.dim,
                           i.columns.empty() ? "" : " (" + column_list(i.columns) + ")");
  std::cout << fmt::format("parameters:     {} trainable values\n", i.parameter_count);
  std::cout << fmt::format("trained steps:  {}\n", i.trained_steps);
  std::cout << fmt::format("standardized:   {}\n",
                           i.standardize ? "yes (part of the model)" : "no");
  std::cout << fmt::format("seed:           {}\n", i.seed);
  std::cout << fmt::format("chain:          {} bijectors{}\n", loaded.model.flow->chain().size(),
                           i.standardize ? ", the standardization first" : "");
  std::cout << "components:\n";
  for (const auto& c : i.components)
    std::cout << fmt::format("  {:<13}{:<20}{}\n", c.kind, c.name, c.origin);
  std::cout << "pipeline it was trained with:\n";
  std::string line;
  for (char ch : i.pipeline_yaml) {
    if (ch == '\n') {
      std::cout << "  " << line << "\n";
      line.clear();
    } else {
      line += ch;
    }
  }
  if (!line.empty()) std::cout << "  " << line << "\n";
}

}  // namespace flows::app
