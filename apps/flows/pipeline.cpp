#include "pipeline.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <limits>

#include <fmt/format.h>

#include "flows/bounds.hpp"
#include "flows/checkpoint.hpp"
#include "flows/config.hpp"
#include "flows/data/columns.hpp"
#include "flows/data/csv.hpp"
#include "flows/data/dequantize.hpp"
#include "flows/doctor.hpp"
#include "flows/error.hpp"
#include "flows/flow.hpp"
#include "flows/metrics.hpp"
#include "flows/pipeline.hpp"
#include "flows/plugin_loader.hpp"
#include "flows/registry.hpp"
#include "flows/training_loop.hpp"
#include "outputs.hpp"
#include "progress.hpp"
#include "report.hpp"

namespace flows::app {

namespace fs = std::filesystem;

namespace {

// The held-out rows the model is judged on: test, else validation, else
// training; with their context rows (empty for unconditional data).
struct HeldOut {
  const Matrix* x;
  const Matrix* context;
  const char* split;
};
HeldOut held_out(const DataSplits& data) {
  if (data.test.shape(0) > 0) return {&data.test, &data.test_context, "test"};
  if (data.val.shape(0) > 0) return {&data.val, &data.val_context, "val"};
  return {&data.train, &data.train_context, "train"};
}

// Rows i mod m.shape(0), i < n: n context rows cycled from the held-out ones.
Matrix cycled_rows(const Matrix& m, Index n) {
  Matrix out = xt::empty<Real>({n, m.shape(1)});
  for (Index i = 0; i < n; ++i) xt::row(out, i) = xt::row(m, i % m.shape(0));
  return out;
}

// [a | b], columns side by side (same rows).
Matrix side_by_side(const Matrix& a, const Matrix& b) {
  Matrix out = xt::empty<Real>({a.shape(0), a.shape(1) + b.shape(1)});
  xt::view(out, xt::all(), xt::range(0, a.shape(1))) = a;
  xt::view(out, xt::all(), xt::range(a.shape(1), a.shape(1) + b.shape(1))) = b;
  return out;
}

// At most `rows` rows of m, evenly spaced (deterministic).
Matrix first_rows(const Matrix& m, Index rows) {
  if (m.shape(0) <= rows) return m;
  Matrix out = xt::empty<Real>({rows, m.shape(1)});
  for (Index i = 0; i < rows; ++i) xt::row(out, i) = xt::row(m, i * m.shape(0) / rows);
  return out;
}

// The upper ends of the bounds, one per column (empty without bounds).
std::vector<Real> upper_bounds(const Model& model) {
  std::vector<Real> upper;
  if (model.bounds)
    for (const ColumnBounds& b : model.bounds->bounds()) upper.push_back(b.high);
  return upper;
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
  const bool conditional = data.context_dim() > 0;

  fs::create_directories(options.output);
  const std::string out = options.output;
  std::cerr << fmt::format(
      "{}: {} training rows, {} validation, {} test, {} dimensions{}, {} parameters\n",
      options.name, data.train.shape(0), data.val.shape(0), data.test.shape(0), dim,
      conditional
          ? fmt::format(" given {} context column{} ({})", data.context_dim(),
                        data.context_dim() == 1 ? "" : "s", join_column_names(data.context_columns))
          : "",
      parameter_count(model.flow->parameters()));

  TrainReport report;
  bool trained = false;
  JsonObject metrics;
  metrics.text("name", options.name).integer("seed", static_cast<long long>(options.seed));
  metrics.integer("dim", static_cast<long long>(dim));
  if (conditional) metrics.integer("context_dim", static_cast<long long>(data.context_dim()));
  metrics.integer("parameters", static_cast<long long>(parameter_count(model.flow->parameters())));

  Matrix samples;  // the sample stage's, reused by the report
  std::vector<std::pair<std::string, std::string>> shown;  // metrics the report lists
  for (const std::string& stage : options.stages) {
    if (stage == "train") {
      ProgressReporter reporter(options.log_every, run.quiet, out + "/train.log");
      TrainerCallbacks callbacks;
      callbacks.on_progress = [&reporter](const Progress& p) { reporter(p); };
      callbacks.should_stop = run.should_stop;
      // Pipeline::train adds the dequantization noise (data.dequantize) per mini-batch.
      try {
        report = pipeline.train(callbacks);
      } catch (const NonFiniteTrainingError&) {
        // The trainer kept the last good parameters: save them when asked
        // to, so that the run leaves a usable model (issue 15).
        reporter.finish();
        if (std::find(options.stages.begin(), options.stages.end(), "save") !=
            options.stages.end()) {
          write_checkpoint(out + "/model.flows", make_checkpoint(pipeline));
          std::cerr << fmt::format("saved the kept parameters to {}/model.flows\n", out);
        }
        throw;
      }
      reporter.finish();
      trained = true;
      write_file_atomically(out + "/training_curve.csv", curve_csv(report));
      std::cerr << fmt::format(
          "trained {} steps in {:.2f}s{}{}\n", report.steps - report.first_step, report.seconds,
          report.first_step ? fmt::format(", from step {} to {}", report.first_step, report.steps)
                            : "",
          report.stopped_early ? " (stopped early)" : "");
    } else if (stage == "evaluate") {
      JsonObject nll, bits;
      const Dequantizer& dequantize = pipeline.dequantize;
      const char* nll_label = dequantize.enabled() ? "NLL bound (nats)" : "NLL (nats)";
      BitsPerDim last_bits;
      auto score = [&](const char* split, int index, const Matrix& m) {
        if (m.shape(0) == 0) return;
        // With data.dequantize, the dequantized bound -log P(x) of the integer rows.
        const Real value = pipeline.split_nll(index);
        nll.number(split, value);
        last_bits = bits_per_dim(value, dequantize, dim);
        bits.number(split, last_bits.value);
        shown.emplace_back(fmt::format("{} {}", split, nll_label), fmt::format("{:.4f}", value));
        std::cerr << fmt::format("{} NLL{}: {:.4f} nats (data units), {:.4f} bits/dim ({})\n",
                                 split, dequantize.enabled() ? " (dequantized bound)" : "", value,
                                 last_bits.value, last_bits.kind);
      };
      score("train", 0, data.train);
      score("val", 1, data.val);
      score("test", 2, data.test);
      metrics.object("nll", nll);
      bits.text("kind", last_bits.kind).text("meaning", last_bits.meaning);
      if (dequantize.enabled()) {
        metrics.text("dequantized_columns", join_column_names(dequantize.column_names()));
        bits.integer("dequantize_samples", static_cast<long long>(dequantize.samples()));
      }
      metrics.object("bits_per_dim", bits);
      if (data.test.shape(0) > 0 || data.val.shape(0) > 0)
        shown.emplace_back(fmt::format("{} bits/dim ({})", held_out(data).split, last_bits.kind),
                           fmt::format("{:.4f}", last_bits.value));

      const HeldOut reference = held_out(data);
      const char* split = reference.split;
      Rng quality_rng = Rng(options.seed).derive(5);
      // A conditional model is judged on the joint rows (x, c): one sample
      // per held-out context, so that a model ignoring c does not match.
      Matrix compared = *reference.x;
      Matrix drawn;
      if (conditional) {
        compared = first_rows(side_by_side(*reference.x, *reference.context), options.quality_rows);
        const Matrix context =
            xt::view(compared, xt::all(), xt::range(dim, dim + data.context_dim()));
        drawn = side_by_side(model.flow->sample(context.shape(0), quality_rng, context), context);
      } else {
        drawn = model.flow->sample(options.quality_rows, quality_rng);
      }
      if (model.bounds) {
        // The model's own samples (before any quantization) against the box.
        const Matrix x_drawn = xt::view(drawn, xt::all(), xt::range(0, dim));
        Index inside = 0;
        for (Index i = 0; i < x_drawn.shape(0); ++i)
          if (model.bounds->contains(xt::view(x_drawn, xt::range(i, i + 1), xt::all()))) ++inside;
        const Index in_box_rows = x_drawn.shape(0);
        JsonObject b;
        b.text("bounds", model.bounds->describe())
            .integer("samples", static_cast<long long>(in_box_rows))
            .integer("inside", static_cast<long long>(inside));
        metrics.object("bounds", b);
        shown.emplace_back(fmt::format("samples inside the bounds ({})", model.bounds->describe()),
                           fmt::format("{} of {}", inside, in_box_rows));
        std::cerr << fmt::format("samples inside the bounds: {} of {}\n", inside, in_box_rows);
      }
      // Integer data are compared with integer samples.
      if (pipeline.dequantize.enabled())
        drawn = pipeline.dequantize.quantize(drawn, upper_bounds(model));
      SampleQuality q;
      try {
        Rng metric_rng = Rng(options.seed).derive(6);
        q = sample_quality(compared, drawn, metric_rng, options.quality_rows, options.projections);
      } catch (const DataError& e) {
        // A diverged model's non-finite samples: the NLL above already tells.
        std::cerr << fmt::format("warning: no MMD or sliced W1: {}\n", e.what());
        continue;
      }
      JsonObject quality;
      quality.text("split", split).integer("rows", static_cast<long long>(q.rows));
      if (conditional)
        quality.text("compared", "joint rows (x, c): one sample per held-out context");
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
      if (conditional) {
        // One sample per held-out context row (cycled), written next to it.
        const Matrix context = cycled_rows(*held_out(data).context, options.sample_count);
        samples = pipeline.sample(options.sample_count, sample_rng, context);
        std::vector<std::string> header = data.columns;
        header.insert(header.end(), data.context_columns.begin(), data.context_columns.end());
        write_csv(out + "/samples.csv", side_by_side(samples, context),
                  data.columns.empty() ? std::vector<std::string>{} : header);
        std::cerr << fmt::format("wrote {} samples at the {} rows' contexts to {}/samples.csv\n",
                                 options.sample_count, held_out(data).split, out);
      } else {
        samples = pipeline.sample(options.sample_count, sample_rng);
        write_csv(out + "/samples.csv", samples, data.columns);
        std::cerr << fmt::format("wrote {} samples to {}/samples.csv\n", options.sample_count, out);
      }
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
      const HeldOut reference = held_out(data);
      inputs.columns = data.columns;
      inputs.data = first_rows(*reference.x, 2000);
      inputs.context_columns = data.context_columns;
      if (conditional) {
        // The same rows as inputs.data; the samples are drawn at their contexts.
        inputs.context = first_rows(*reference.context, 2000);
        Rng sample_rng = Rng(options.seed).derive(4);
        inputs.samples = pipeline.sample(inputs.context.shape(0), sample_rng, inputs.context);
      } else {
        if (samples.shape(0) == 0) {
          Rng sample_rng = Rng(options.seed).derive(4);
          samples = pipeline.sample(2000, sample_rng);
        }
        inputs.samples = first_rows(samples, 2000);
      }
      set_model_functions(inputs, model.flow);
      if (model.bounds && inputs.log_prob) {
        // The density is 0 outside the box (the bounds refuse such rows).
        auto bounds = model.bounds;
        auto inner = inputs.log_prob;
        inputs.log_prob = [bounds, inner](const Matrix& x) {
          return log_prob_inside(*bounds, inner, x);
        };
      }
      inputs.seed = mix_seed(options.seed, 7);
      try {
        DoctorOptions doctor;  // half the command's rows: an ODE flow's solves take seconds
        doctor.rows = doctor.samples = 1000;
        doctor.seed = mix_seed(options.seed, 11);
        inputs.doctor = diagnose_pipeline(pipeline, doctor);
        if (!inputs.doctor->ok())
          std::cerr << fmt::format(
              "doctor: {} of {} checks failed (the table is in report.html; `flows doctor {}` "
              "prints it)\n",
              inputs.doctor->failures(), inputs.doctor->rows.size(), run.file);
      } catch (const std::exception& e) {
        inputs.doctor_error = e.what();  // the report is written without the table
        std::cerr << "warning: the doctor's checks could not run: " << e.what() << "\n";
      }
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
    metrics.integer("skipped_batches", static_cast<long long>(report.skipped_batches));
    if (report.skipped_batches > 0) metrics.text("first_skipped_batch", report.first_skipped);
    metrics.integer("train_threads", static_cast<long long>(report.threads));
    metrics.number("train_seconds", report.seconds);
  }
  metrics.number("wall_seconds", std::chrono::duration<double>(Clock::now() - started).count());
  metrics.text("nll_units",
               pipeline.dequantize.enabled()
                   ? "nats per sample, in the data's own units: the dequantized bound -log P(x) "
                     "of the integer rows (one fixed U(0, 1) draw per row, or the mean "
                     "likelihood over dequantize_samples draws)"
                   : "nats per sample, in the data's own units");
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
