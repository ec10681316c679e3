#include "doctor.hpp"

#include <algorithm>
#include <filesystem>
#include <iostream>

#include <fmt/format.h>

#include "flows/checkpoint.hpp"
#include "flows/doctor.hpp"
#include "flows/error.hpp"
#include "flows/pipeline.hpp"
#include "flows/streams.hpp"
#include "model_commands.hpp"

namespace flows::app {

namespace {

namespace fs = std::filesystem;

bool is_pipeline(const std::string& path) {
  const std::string ext = fs::path(path).extension().string();
  return ext == ".yaml" || ext == ".yml";
}

void warn_skipped(const Registry& registry) {
  for (const auto& failure : registry.failures())
    std::cerr << "warning: skipped a plugin: " << failure.message << "\n";
}

// The rows of --data as the model sees them: checked against the model's
// columns, integer columns and bounds, and dequantized with the fixed draws
// that `flows evaluate` uses.
void read_rows(const std::string& path, const CheckpointInfo& info, const Model& model, Matrix& x,
               Matrix& context) {
  read_model_rows(path, info, x, context);
  const Dequantizer dequantizer(info.dim, info.dequantized, info.dequantize_samples, info.columns);
  dequantizer.check_integer(x, path);
  if (model.bounds) model.bounds->check(x, path, dequantizer.bin_widths());
  if (dequantizer.enabled()) {
    Rng rng = run_stream(info.seed, RunStream::evaluation).derive(2);
    dequantizer.add_noise(x, rng);
  }
}

// A pipeline's model: trained from its save stage's checkpoint when there is one.
DoctorReport doctor_pipeline(const DoctorCommand& command, const DoctorOptions& options,
                             std::string& what) {
  Pipeline p = Pipeline::load(command.target, command.overrides);
  warn_skipped(*p.registry);
  const std::string saved = (fs::path(p.options.output) / "model.flows").string();
  const bool saves =
      std::find(p.options.stages.begin(), p.options.stages.end(), "save") != p.options.stages.end();
  what = fmt::format("the untrained model of {} (no checkpoint at {})", command.target, saved);
  if (saves && fs::is_regular_file(saved)) {
    try {
      restore_model(read_checkpoint(saved), p.model, saved);
      what = fmt::format("the model of {}, trained: {}", command.target, saved);
    } catch (const DataError& e) {
      std::cerr << fmt::format(
          "warning: {} does not fit this pipeline's model ({}); checking the untrained model\n",
          saved, e.what());
      p = Pipeline::load(command.target,
                         command.overrides);  // a partly restored model is discarded
    }
  }
  if (command.data.empty()) return diagnose_pipeline(p, options);
  const Checkpoint checkpoint = make_checkpoint(p);
  Matrix x, context;
  read_rows(command.data, checkpoint.info, p.model, x, context);
  auto exact = float64_model(checkpoint, p.registry, command.target);
  DoctorReport report = run_doctor(*p.model.flow, x, context, options, exact.get());
  report.source = command.data + ": " + report.source;
  return report;
}

DoctorReport doctor_model(const DoctorCommand& command, const DoctorOptions& options,
                          std::string& what) {
  LoadedModel loaded = load_model(command.target, command.plugins);
  warn_skipped(*loaded.registry);
  what = command.target;
  auto exact = float64_model(read_checkpoint(command.target), loaded.registry, command.target);
  Matrix x, context;
  if (!command.data.empty()) read_rows(command.data, loaded.info, loaded.model, x, context);
  DoctorReport report = run_doctor(*loaded.model.flow, x, context, options, exact.get());
  if (!command.data.empty()) report.source = command.data + ": " + report.source;
  return report;
}

}  // namespace

Index doctor_command(const DoctorCommand& command) {
  DoctorOptions options;
  options.rows = command.rows;
  options.samples = command.rows;
  options.seed = command.seed;
  std::string what;
  DoctorReport report;
  if (is_pipeline(command.target)) {
    if (!command.plugins.empty())
      throw ConfigError("--plugins: a pipeline names its plugins itself (its `plugins:` key)");
    report = doctor_pipeline(command, options, what);
  } else {
    if (!command.overrides.empty())
      throw ConfigError("--set: only a pipeline (.yaml) takes overrides, not a saved model");
    report = doctor_model(command, options, what);
  }
  std::cout << "flows doctor: " << what << "\n" << doctor_table(report);
  const Index failed = report.failures();
  if (failed == 0)
    std::cout << fmt::format("every check passed ({} checks)\n", report.rows.size());
  else
    std::cout << fmt::format("{} of {} checks failed\n", failed, report.rows.size());
  return failed;
}

}  // namespace flows::app
