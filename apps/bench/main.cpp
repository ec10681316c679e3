// flows-bench: runs the standard workloads and prints flows' own figures, as
// measured in this run on this machine (and writes them as JSON). Comparing
// with other tools is the job of ../shared/peers/side_by_side.py, which runs
// them on the same machine, alternating with this program.
#include <algorithm>
#include <cmath>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include "blas_info.hpp"
#include "core_probe.hpp"
#include "flows/error.hpp"
#include "flows/threads.hpp"
#include "workloads.hpp"

namespace {

using flows::bench::Json;
using flows::bench::measured_value;

std::string env_or(const char* name, const char* fallback = "(unset)") {
  const char* v = std::getenv(name);
  return v ? v : fallback;
}

std::string utc_now() {
  const std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S UTC", std::gmtime(&t));
  return buf;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "flows-bench: trains the standard workloads and prints, per workload, the median training\n"
      "step, training wall time, test NLL, and the times to sample and to score points, all\n"
      "measured in this run. W1-W3 are the moons workloads, W4 a 64-dimensional MAF (with its\n"
      "FLOP rate against SGEMM measured in the same run), S1 the scale sweep (--sweep). To\n"
      "compare with the Python tools, run ../shared/peers/side_by_side.py --bench <this program>."};
  std::vector<std::string> only;
  std::string json_path = "bench.json";
  flows::bench::BenchOptions options;
  flows::Index steps = 0, points = 0;
  bool sweep = false;
  double probe_seconds = 0;
  flows::bench::SweepOptions& s = options.sweep;
  app.add_option("-w,--workload", only, "Run only these workloads (W1, W2, W3, W4, S1)");
  app.add_option("--steps", steps,
                 "Override the training steps of W1-W4 (quick runs; NLL then not comparable)");
  app.add_option("--points", points, "Rows for the sampling and log_prob timings of W1, W2, W4");
  app.add_option("--json", json_path, "Where to write the figures as JSON");
  app.add_option("--set", options.overrides,
                 "Pipeline override KEY=VALUE for every workload, applied last (repeatable), "
                 "e.g. --set model.precision=float64");
  app.add_flag("--sweep", sweep, "Run the scale sweep S1 (alone, unless -w names others too)");
  app.add_option("--sweep-models", s.models, "S1: models (maf, nsf)")->delimiter(',');
  app.add_option("--sweep-dims", s.dims, "S1: dimensions D")->delimiter(',');
  app.add_option("--sweep-batches", s.batches, "S1: batch sizes")->delimiter(',');
  app.add_option("--sweep-hidden", s.hidden, "S1: MADE hidden widths, for every D")->delimiter(',');
  app.add_option("--sweep-steps", s.steps, "S1: training steps timed per row");
  app.add_option("--sweep-sample-points", s.sample_points, "S1: rows sampled per (model, D)");
  app.add_option("--sweep-log-prob-points", s.log_prob_points, "S1: rows scored per (model, D)");
  app.add_option("--cores", probe_seconds,
                 "Probe the cores for this many seconds: SGEMM on 1 thread and on every core, "
                 "alternately, to see whether both cores were there (alone, unless -w names "
                 "workloads too)")
      ->check(CLI::PositiveNumber);
  CLI11_PARSE(app, argc, argv);
  if (steps > 0) options.steps = steps;
  if (points > 0) options.points = points;
  if (sweep) only.push_back("S1");

  std::vector<flows::bench::Workload> workloads = flows::bench::standard_workloads();
  workloads.push_back(flows::bench::sweep_workload());
  for (const std::string& id : only)
    if (std::none_of(workloads.begin(), workloads.end(),
                     [&](const flows::bench::Workload& w) { return w.id == id; })) {
      std::cerr << "error: no workload " << id << " (W1, W2, W3, W4, S1)\n";
      return 2;
    }
  auto selected = [&](const flows::bench::Workload& w) {
    if (only.empty()) return probe_seconds == 0 && w.id != "S1";  // the sweep runs on request
    return std::find(only.begin(), only.end(), w.id) != only.end();
  };

  // As every Flow's constructor does: BLAS on one thread, flows' own threads
  // over row blocks (flows/threads.hpp). Set first, so the table says so.
  const std::string blas_limit = flows::limit_blas_threads();
  flows::Index flows_threads = 0;
  try {
    flows_threads = flows::thread_count();
  } catch (const flows::Error& e) {  // e.g. FLOWS_NUM_THREADS=abc
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  const auto blas = flows::bench::blas_info();
  const auto machine = flows::bench::machine_info();
  const std::string date = utc_now();
  std::cout << fmt::format("{}; {} ({} hardware threads); load average {:.2f}\n", date, machine.cpu,
                           machine.cores, flows::bench::load_average());
  std::cout << fmt::format(
      "BLAS: {} core {}, {} threads ({}; OPENBLAS_CORETYPE {}, OPENBLAS_NUM_THREADS {}); flows "
      "threads: {} (FLOWS_NUM_THREADS {})\n",
      blas.library, blas.core, blas.threads,
      blas_limit.empty() ? "no BLAS thread control found" : "flows called " + blas_limit,
      blas.coretype_env, env_or("OPENBLAS_NUM_THREADS"), flows_threads,
      env_or("FLOWS_NUM_THREADS"));
  if (!options.overrides.empty())
    std::cout << "overrides: " << fmt::format("{}", fmt::join(options.overrides, " ")) << "\n";
  std::cout << "Every figure is flows' own, measured in this run on this machine.\n\n";

  // bench.json: the run's setting, then one entry per workload, in this
  // order (docs/benchmarks.md; ../shared/peers/side_by_side.py reads it).
  Json json;
  json["date"] = date;
  json["machine"] = {{"cpu", machine.cpu}, {"cores", machine.cores}};
  json["env"] = {{"OPENBLAS_NUM_THREADS", env_or("OPENBLAS_NUM_THREADS")},
                 {"FLOWS_NUM_THREADS", env_or("FLOWS_NUM_THREADS")}};
  json["flows_threads"] = flows_threads;
  json["overrides"] = options.overrides;
  json["blas"] = {{"library", blas.library},
                  {"core", blas.core},
                  {"threads", blas.threads},
                  {"coretype_env", blas.coretype_env}};
  if (probe_seconds > 0) {
    std::cout << fmt::format("{:<4} the cores, {:g} s (load {:.2f})\n", "C", probe_seconds,
                             flows::bench::load_average())
              << std::flush;
    const auto probe = flows::bench::probe_cores(probe_seconds, std::max(1, machine.cores));
    flows::bench::print_core_probe(probe, std::cout);
    json["core_probe"] = flows::bench::core_probe_json(probe);
  }
  Json entries = Json::array();
  try {
    for (const auto& w : workloads) {
      if (!selected(w)) continue;
      if (!std::filesystem::exists(std::string(FLOWS_SOURCE_DIR) + "/" + w.config)) {
        std::cout << fmt::format("{:<4} {} — skipped: {} is not in this tree\n", w.id, w.title,
                                 w.config);
        continue;
      }
      const double load_start = flows::bench::load_average();
      std::cout << fmt::format("{:<4} {} ({}; load {:.2f})\n", w.id, w.title, w.config, load_start)
                << std::flush;
      const flows::bench::WorkloadResult result = w.run(w, options);
      const double load_end = flows::bench::load_average();
      Json entry;
      entry["id"] = w.id;
      entry["title"] = w.title;
      entry["config"] = w.config;
      entry["precision"] = result.precision;
      entry["load_average"] = {{"start", measured_value(load_start)},
                               {"end", measured_value(load_end)}};
      Json measurements = Json::array();
      for (const auto& m : result.rows) {
        if (!result.printed)
          std::cout << fmt::format("{:<4} {:<48} {:>10.4g} {}\n", "", m.metric, m.value, m.unit);
        measurements.push_back(
            Json{{"metric", m.metric}, {"value", measured_value(m.value)}, {"unit", m.unit}});
      }
      entry["measurements"] = std::move(measurements);
      for (const auto& [key, value] : result.extra.items()) entry[key] = value;
      entries.push_back(std::move(entry));
      std::cout << fmt::format("{:<4} (networks in {}; load average {:.2f} at the end)\n", "",
                               result.precision.empty() ? "?" : result.precision, load_end)
                << std::flush;
    }
  } catch (const flows::Error& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  json["workloads"] = std::move(entries);
  // Invalid UTF-8 (in an override, say) is replaced rather than thrown on.
  std::ofstream(json_path) << json.dump(2, ' ', false, Json::error_handler_t::replace) << "\n";
  std::cout << "\nwrote " << json_path << "\n";
  return 0;
}
