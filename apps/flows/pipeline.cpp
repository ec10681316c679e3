#include "pipeline.hpp"

#include <chrono>
#include <cmath>
#include <filesystem>
#include <iostream>

#include <fmt/format.h>

#include "flows/checkpoint.hpp"
#include "flows/config.hpp"
#include "flows/data/csv.hpp"
#include "flows/error.hpp"
#include "flows/flow.hpp"
#include "flows/metrics.hpp"
#include "flows/pipeline.hpp"
#include "flows/plugin_loader.hpp"
#include "flows/registry.hpp"
#include "outputs.hpp"
#include "progress.hpp"
#include "report.hpp"

namespace flows::app {

namespace fs = std::filesystem;

namespace {

// The held-out rows the model is judged on: test, else validation, else training.
std::pair<const Matrix*, const char*> held_out(const DataSplits& data) {
  if (data.test.shape(0) > 0) return {&data.test, "test"};
  if (data.val.shape(0) > 0) return {&data.val, "val"};
  return {&data.train, "train"};
}

// At most `rows` rows of m, evenly spaced (deterministic).
Matrix first_rows(const Matrix& m, Index rows) {
  if (m.shape(0) <= rows) return m;
  Matrix out = xt::empty<Real>({rows, m.shape(1)});
  for (Index i = 0; i < rows; ++i) xt::row(out, i) = xt::row(m, i * m.shape(0) / rows);
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

  Matrix samples;  // the sample stage's, reused by the report
  std::vector<std::pair<std::string, std::string>> shown;  // metrics the report lists
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
      std::cerr << fmt::format(
          "trained {} steps in {:.2f}s{}{}\n", report.steps - report.first_step, report.seconds,
          report.first_step ? fmt::format(", from step {} to {}", report.first_step, report.steps)
                            : "",
          report.stopped_early ? " (stopped early)" : "");
    } else if (stage == "evaluate") {
      JsonObject nll;
      auto score = [&](const char* split, const Matrix& m) {
        if (m.shape(0) == 0) return;
        const Real value = model.flow->mean_nll(m);
        nll.number(split, value);
        shown.emplace_back(fmt::format("{} NLL (nats)", split), fmt::format("{:.4f}", value));
        std::cerr << fmt::format("{} NLL: {:.4f} nats (data units)\n", split, value);
      };
      score("train", data.train);
      score("val", data.val);
      score("test", data.test);
      metrics.object("nll", nll);

      const auto [reference, split] = held_out(data);
      Rng quality_rng = Rng(options.seed).derive(5);
      const Matrix drawn = model.flow->sample(options.quality_rows, quality_rng);
      SampleQuality q;
      try {
        Rng metric_rng = Rng(options.seed).derive(6);
        q = sample_quality(*reference, drawn, metric_rng, options.quality_rows,
                           options.projections);
      } catch (const DataError& e) {
        // A diverged model's non-finite samples: the NLL above already tells.
        std::cerr << fmt::format("warning: no MMD or sliced W1: {}\n", e.what());
        continue;
      }
      JsonObject quality;
      quality.text("split", split).integer("rows", static_cast<long long>(q.rows));
      quality.number("mmd2", q.mmd.mmd2).number("mmd_bandwidth", q.mmd.bandwidth);
      quality.text("mmd_kernel", "gaussian exp(-|a-b|^2/(2h^2)), h = median pairwise distance");
      quality.number("sliced_w1", q.sliced_w1);
      quality.integer("projections", static_cast<long long>(q.projections));
      metrics.object("quality", quality);
      shown.emplace_back(fmt::format("MMD² vs {} (h = {:.3g})", split, q.mmd.bandwidth),
                         fmt::format("{:.5f}", q.mmd.mmd2));
      shown.emplace_back(fmt::format("sliced W1 vs {} ({} directions)", split, q.projections),
                         fmt::format("{:.4f}", q.sliced_w1));
      std::cerr << fmt::format("{} rows vs samples: MMD² {:.5f}, sliced W1 {:.4f}\n", split,
                               q.mmd.mmd2, q.sliced_w1);
    } else if (stage == "sample") {
      Rng sample_rng = Rng(options.seed).derive(4);
      samples = model.flow->sample(options.sample_count, sample_rng);
      write_csv(out + "/samples.csv", samples, data.columns);
      std::cerr << fmt::format("wrote {} samples to {}/samples.csv\n", options.sample_count, out);
    } else if (stage == "save") {
      write_checkpoint(out + "/model.flows", make_checkpoint(pipeline));
      std::cerr << fmt::format("saved {}/model.flows\n", out);
    } else if (stage == "report") {
      ReportInputs inputs;
      inputs.title = options.name;
      if (trained) {
        inputs.loss_name = report.loss_name;
        inputs.curve = report.curve;
      }
      inputs.columns = data.columns;
      inputs.data = first_rows(*held_out(data).first, 2000);
      if (samples.shape(0) == 0) {
        Rng sample_rng = Rng(options.seed).derive(4);
        samples = model.flow->sample(2000, sample_rng);
      }
      inputs.samples = first_rows(samples, 2000);
      const std::shared_ptr<Flow> flow = model.flow;
      inputs.log_prob = [flow](const Matrix& x) { return flow->log_prob(x); };
      inputs.metrics = shown;
      inputs.pipeline_yaml = pipeline.root.dump();
      write_file_atomically(out + "/report.html", render_report(inputs));
      std::cerr << fmt::format("wrote {}/report.html\n", out);
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
