#include "pipeline.hpp"

#include <chrono>
#include <cmath>
#include <filesystem>
#include <iostream>

#include <fmt/format.h>

#include "flows/config.hpp"
#include "flows/data/csv.hpp"
#include "flows/flow.hpp"
#include "flows/plugin_loader.hpp"
#include "flows/registry.hpp"
#include "flows/standardize.hpp"
#include "flows/version.hpp"
#include "outputs.hpp"
#include "progress.hpp"

namespace flows::app {

namespace fs = std::filesystem;

namespace {

const std::vector<std::string> kStages = {"train", "evaluate", "sample", "save"};

// The pipeline's own keys; each section below is checked by its component.
struct PipelineOptions {
  std::string name = "flows";        // shown in logs and metrics.json
  Index seed = 0;                    // every random draw derives from it
  std::string output;                // output folder (default runs/<name>)
  std::vector<std::string> plugins;  // extra plugin files or folders
  std::vector<std::string> stages = {"train", "evaluate", "sample", "save"};
  Index sample_count = 10000;  // sample.n: rows written to samples.csv
  Index log_every = 0;         // progress.log_every (0: a tenth of the steps)
  bool standardize = true;     // model.standardize

  static PipelineOptions from(ConfigNode& root) {
    PipelineOptions o;
    root.read("name", o.name);
    root.read("seed", o.seed);
    root.read("output", o.output);
    root.read("plugins", o.plugins);
    root.read("stages", o.stages);
    if (o.output.empty()) o.output = "runs/" + o.name;
    for (const std::string& stage : o.stages) root.expect_one_of("stages", stage, kStages);
    ConfigNode sample = root.child("sample", true);
    sample.read("n", o.sample_count);
    sample.expect(o.sample_count > 0, "n", "must be > 0");
    sample.finish();
    ConfigNode progress = root.child("progress", true);
    progress.read("log_every", o.log_every);
    progress.finish();
    return o;
  }
};

std::string resolve_relative(const std::string& origin, const std::string& path) {
  fs::path p(path);
  if (p.is_absolute()) return path;
  return (fs::path(origin).parent_path() / p).lexically_normal().string();
}

struct Model {
  std::shared_ptr<Flow> flow;
  std::shared_ptr<Standardize> standardize;  // null when model.standardize is false
};

// Builds base and bijectors from the model section; the data dimension comes
// from the data, so the model needs no dimension of its own.
Model build_model(ConfigNode& model_node, Registry& registry, Index dim, Index seed,
                  const Matrix& train, bool standardize) {
  ConfigNode base_node = model_node.child("base", true);
  if (!base_node.has("type")) base_node.set("type", "standard_normal");
  BuildContext context{dim, mix_seed(seed, 100), &registry};
  auto base = registry.make<BaseDistribution>(base_node, context);
  std::vector<std::shared_ptr<Bijector>> chain;
  std::vector<ConfigNode> items = model_node.children("bijectors");
  for (std::size_t k = 0; k < items.size(); ++k) {
    BuildContext c{dim, mix_seed(seed, 1000 + k), &registry};
    chain.push_back(registry.make<Bijector>(items[k], c));
  }
  Model model;
  model.flow = std::make_shared<Flow>(base, chain);
  if (standardize) {
    model.standardize = std::make_shared<Standardize>(Standardize::fit(train));
    model.flow->prepend(model.standardize);
  }
  return model;
}

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
  ConfigNode root = ConfigNode::load_file(run.file);
  if (!root.is_map()) throw root.error("", "a pipeline must be a mapping of keys");
  for (const std::string& item : run.overrides) {
    const auto eq = item.find('=');
    if (eq == std::string::npos || eq == 0)
      throw ConfigError(fmt::format("--set '{}': expected KEY=VALUE", item));
    root.set(item.substr(0, eq), item.substr(eq + 1));
  }
  if (!run.output.empty()) root.set("output", run.output);

  // Everything is checked and built before any work starts, so a typo fails fast.
  PipelineOptions options = PipelineOptions::from(root);
  Registry registry;
  register_builtins(registry);
  std::vector<std::string> search = default_plugin_search_path();
  for (const std::string& entry : options.plugins) {
    const std::string path = resolve_relative(run.file, entry);
    if (!fs::exists(path)) throw root.error("plugins", fmt::format("'{}' does not exist", path));
    search.push_back(path);
  }
  load_plugins(search, registry);

  ConfigNode data_node = root.child("data");
  auto dataset =
      registry.make<Dataset>(data_node, BuildContext{0, mix_seed(options.seed, 1), &registry});
  ConfigNode model_node = root.child("model");
  model_node.read("standardize", options.standardize);
  ConfigNode trainer_node = root.child("trainer", true);
  if (!trainer_node.has("type")) trainer_node.set("type", "mle");

  Rng data_rng = Rng(options.seed).derive(1);
  DataSplits data = dataset->load(data_rng);
  const Index dim = data.train.shape(1);
  Model model =
      build_model(model_node, registry, dim, options.seed, data.train, options.standardize);
  model_node.finish();
  auto trainer =
      registry.make<Trainer>(trainer_node, BuildContext{dim, mix_seed(options.seed, 2), &registry});
  root.finish();

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
      report = trainer->train(*model.flow, data.train, data.val, train_rng, callbacks);
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
      write_file_atomically(out + "/checkpoint.yaml", checkpoint_yaml(model_node.dump(), model));
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
  std::size_t width = 4;
  for (const auto& l : registry.listing()) width = std::max(width, l.name.size());
  std::cout << fmt::format("{:<13}{:<{}}  {}\n", "kind", "name", width, "from");
  for (const auto& l : registry.listing())
    std::cout << fmt::format("{:<13}{:<{}}  {}\n", kind_name(l.kind), l.name, width, l.origin);
}

}  // namespace flows::app
