#include "pipeline.hpp"

#include <chrono>
#include <filesystem>
#include <iostream>

#include <fmt/format.h>

#include "flows/data/columns.hpp"
#include "flows/error.hpp"
#include "flows/plugin_loader.hpp"
#include "outputs.hpp"
#include "rank_checks.hpp"
#include "run_session.hpp"
#include "stages.hpp"

namespace flows::app {

namespace fs = std::filesystem;

namespace {

void print_summary(const RunSession& s) {
  const DataSplits& data = s.data();
  std::cerr << fmt::format(
      "{}: {} training rows{}, {} validation, {} test, {} dimensions{}, {} parameters\n",
      s.options().name, data.train_rows(),
      data.train_is_shared()
          ? fmt::format(" (shared out: rank 0 holds {} of them)", data.train.shape(0))
          : "",
      data.val.shape(0), data.test.shape(0), s.dim(),
      s.conditional()
          ? fmt::format(" given {} context column{} ({})", data.context_dim(),
                        data.context_dim() == 1 ? "" : "s", join_column_names(data.context_columns))
          : "",
      parameter_count(s.model().flow->parameters()));
}

}  // namespace

void run_pipeline(const RunOptions& run) {
  using Clock = std::chrono::steady_clock;
  const auto started = Clock::now();
  std::vector<std::string> overrides = run.overrides;
  if (!run.output.empty()) overrides.push_back("output=" + run.output);
  // Everything is checked and built before any work starts, so a typo fails fast.
  if (run.ranks && run.ranks->size() > 1) check_same_job(*run.ranks, run.file, overrides);
  RunSession s(run, Pipeline::load(run.file, overrides, stage_names(), run.ranks.get()));
  s.out = s.options().output;
  if (s.ranks() > 1) prepare_ranks(s);
  if (s.writes_outputs()) {
    for (const auto& failure : s.pipeline.registry->failures())
      std::cerr << "warning: skipped a plugin: " << failure.message << "\n";
    fs::create_directories(s.out);
    print_summary(s);
  }

  nlohmann::ordered_json& m = s.metrics;
  m["name"] = s.options().name;
  m["seed"] = s.options().seed;
  m["dim"] = s.dim();
  if (s.conditional()) m["context_dim"] = s.data().context_dim();
  m["parameters"] = parameter_count(s.model().flow->parameters());
  m["ranks"] = s.ranks();

  for (const std::string& name : s.options().stages) {
    const Stage& stage = find_stage(name);
    if (stage.every_rank || s.writes_outputs()) stage.run(s);
  }
  if (!s.writes_outputs()) return;

  m["wall_seconds"] = std::chrono::duration<double>(Clock::now() - started).count();
  m["nll_units"] = s.pipeline.dequantize.enabled()
                       ? "nats per sample, in the data's own units: the dequantized bound "
                         "-log P(x) of the integer rows (one fixed U(0, 1) draw per row, or the "
                         "mean likelihood over dequantize_samples draws)"
                       : "nats per sample, in the data's own units";
  write_file_atomically(s.out + "/metrics.json", m.dump(2) + "\n");
  std::cerr << fmt::format("wrote {}/metrics.json\n", s.out);
}

void list_plugins(const std::vector<std::string>& extra_paths) {
  const std::shared_ptr<Registry> registry = make_registry(extra_paths);
  for (const auto& failure : registry->failures())
    std::cerr << "warning: skipped a plugin: " << failure.message << "\n";
  std::size_t width = 4;
  for (const auto& l : registry->listing()) width = std::max(width, l.name.size());
  std::cout << fmt::format("{:<13}{:<{}}  {}\n", "kind", "name", width, "from");
  for (const auto& l : registry->listing())
    std::cout << fmt::format("{:<13}{:<{}}  {}\n", kind_name(l.kind), l.name, width, l.origin);
}

}  // namespace flows::app
