#include "pipeline.hpp"

#include <chrono>
#include <cmath>
#include <filesystem>
#include <iostream>

#include <fmt/format.h>

#include "flows/config.hpp"
#include "flows/data/csv.hpp"
#include "flows/flow.hpp"
#include "flows/pipeline.hpp"
#include "flows/plugin_loader.hpp"
#include "flows/registry.hpp"
#include "flows/version.hpp"
#include "outputs.hpp"
#include "progress.hpp"

namespace flows::app {

namespace fs = std::filesystem;

namespace {

// A checkpoint of what this stage can write today: the model section, the
// standardization and every parameter, as YAML (no loader yet).
std::string checkpoint_yaml(const std::string& model_yaml, const Model& model) {
  auto row = [](const Matrix& m) {
    std::string s = "[";
    for (std::size_t i = 0; i < m.size(); ++i)
      s += (i ? ", " : "") + fmt::format("{:.17g}", m.data()[i]);
    return s + "]";
  };
  std::string out = fmt::format(
      "format: flows-checkpoint-yaml\nformat_version: 0\nsdk_version: {}\n", sdk_version());
  out += "model: " + json_escape(model_yaml) + "\n";
  if (model.standardize) {
    out += "standardize:\n  mean: " + row(model.standardize->mean()) + "\n";
    out += "  scale: " + row(model.standardize->scale()) + "\n";
  }
  out += "parameters:\n";
  ParameterList params = model.flow->parameters();
  for (std::size_t k = 0; k < params.size(); ++k)
    out += fmt::format("  - {{index: {}, name: {}, shape: [{}, {}], values: {}}}\n", k,
                       json_escape(params[k]->name), params[k]->value.shape(0),
                       params[k]->value.shape(1), row(params[k]->value));
  return out;
}

}  // namespace

void run_pipeline(const RunOptions& run) {
  using Clock = std::chrono::steady_clock;
  const auto started = Clock::now();
  std::vector<std::string> overrides = run.overrides;
  if (!run.output.empty()) overrides.push_back("output=" + run.output);
  // Everything is checked and built before any work starts, so a typo fails fast.
  Pipeline pipeline = Pipeline::load(run.file, overrides);
  for (const auto& failure : pipeline.registry->failures())
    std::cerr << "warning: skipped a plugin: " << failure.message << "\n";
  const PipelineOptions& options = pipeline.options;
  const DataSplits& data = pipeline.data;
  const Model& model = pipeline.model;
  const Index dim = data.train.shape(1);

  fs::create_directories(options.output);
  const std::string out = options.output;
  std::cerr << fmt::format(
      "{}: {} training rows, {} validation, {} test, {} dimensions, {} parameters\n", options.name,
      data.train.shape(0), data.val.shape(0), data.test.shape(0), dim,
      parameter_count(model.flow->parameters()));

  TrainReport report;
  bool trained = false;
  JsonObject metrics;
  metrics.text("name", options.name).integer("seed", static_cast<long long>(options.seed));
  metrics.integer("dim", static_cast<long long>(dim));
  metrics.integer("parameters", static_cast<long long>(parameter_count(model.flow->parameters())));

  for (const std::string& stage : options.stages) {
    if (stage == "train") {
      ProgressReporter reporter(options.log_every, run.quiet, out + "/train.log");
      TrainerCallbacks callbacks;
      callbacks.on_progress = [&reporter](const Progress& p) { reporter(p); };
      Rng train_rng = Rng(options.seed).derive(3);
      report = pipeline.trainer->train(*model.flow, data.train, data.val, train_rng, callbacks);
      reporter.finish();
      trained = true;
      write_file_atomically(out + "/training_curve.csv", curve_csv(report));
      std::cerr << fmt::format("trained {} steps in {:.2f}s{}\n", report.steps, report.seconds,
                               report.stopped_early ? " (stopped early)" : "");
    } else if (stage == "evaluate") {
      JsonObject nll;
      auto score = [&](const char* split, const Matrix& m) {
        if (m.shape(0) == 0) return;
        const Real value = model.flow->mean_nll(m);
        nll.number(split, value);
        std::cerr << fmt::format("{} NLL: {:.4f} nats (data units)\n", split, value);
      };
      score("train", data.train);
      score("val", data.val);
      score("test", data.test);
      metrics.object("nll", nll);
    } else if (stage == "sample") {
      Rng sample_rng = Rng(options.seed).derive(4);
      Matrix samples = model.flow->sample(options.sample_count, sample_rng);
      write_csv(out + "/samples.csv", samples, data.columns);
      std::cerr << fmt::format("wrote {} samples to {}/samples.csv\n", options.sample_count, out);
    } else if (stage == "save") {
      write_file_atomically(out + "/checkpoint.yaml",
                            checkpoint_yaml(pipeline.model_node.dump(), model));
      std::cerr << fmt::format("saved {}/checkpoint.yaml\n", out);
    }
  }

  if (trained) {
    metrics.integer("steps", static_cast<long long>(report.steps));
    metrics.integer("best_step", static_cast<long long>(report.best_step));
    metrics.number("best_val_loss", report.best_val_loss);
    metrics.boolean("stopped_early", report.stopped_early);
    metrics.number("train_seconds", report.seconds);
  }
  metrics.number("wall_seconds", std::chrono::duration<double>(Clock::now() - started).count());
  metrics.text("nll_units", "nats per sample, in the data's own units");
  write_file_atomically(out + "/metrics.json", metrics.str(2));
  std::cerr << fmt::format("wrote {}/metrics.json\n", out);
}

void list_plugins(const std::vector<std::string>& extra_paths) {
  Registry registry;
  register_builtins(registry);
  std::vector<std::string> search = default_plugin_search_path();
  search.insert(search.end(), extra_paths.begin(), extra_paths.end());
  load_plugins(search, registry);
  for (const auto& failure : registry.failures())
    std::cerr << "warning: skipped a plugin: " << failure.message << "\n";
  std::size_t width = 4;
  for (const auto& l : registry.listing()) width = std::max(width, l.name.size());
  std::cout << fmt::format("{:<13}{:<{}}  {}\n", "kind", "name", width, "from");
  for (const auto& l : registry.listing())
    std::cout << fmt::format("{:<13}{:<{}}  {}\n", kind_name(l.kind), l.name, width, l.origin);
}

}  // namespace flows::app
