// flows-bench: runs the standard workloads and prints one table (and JSON).
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include "blas_info.hpp"
#include "flows/error.hpp"
#include "workloads.hpp"

namespace {

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (char c : s) out += (c == '"' || c == '\\') ? std::string("\\") + c : std::string(1, c);
  return out + "\"";
}

std::string json_number(double v) {
  return std::isfinite(v) ? fmt::format("{:.6g}", v) : "null";
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "flows-bench: trains the standard workloads and prints, per workload, the median training\n"
      "step, training wall time, test NLL, and the times to sample and to score 100,000 points,\n"
      "beside the Python tools' figures measured for the same workload. Set OPENBLAS_CORETYPE\n"
      "and OPENBLAS_NUM_THREADS in the environment; the table says which were used."};
  std::vector<std::string> only;
  std::string json_path = "bench.json";
  flows::bench::BenchOptions options;
  flows::Index steps = 0;
  app.add_option("-w,--workload", only, "Run only these workloads (W1, W2, ...)");
  app.add_option("--steps", steps,
                 "Override the training steps (quick runs; NLL then not comparable)");
  app.add_option("--points", options.points, "Rows for the sampling and log_prob timings");
  app.add_option("--json", json_path, "Where to write the table as JSON");
  CLI11_PARSE(app, argc, argv);
  if (steps > 0) options.steps = steps;

  const auto blas = flows::bench::blas_info();
  std::cout << fmt::format("BLAS: {} core {}, {} threads (OPENBLAS_CORETYPE {})\n\n", blas.library,
                           blas.core, blas.threads, blas.coretype_env);
  std::cout << fmt::format("{:<4} {:<32} {:>12} {:>12}  {:<10} {:>9}\n", "", "metric", "flows",
                           "reference", "tool", "speed-up");
  std::string json = fmt::format(
      "{{\n  \"blas\": {{\"library\": {}, \"core\": {}, \"threads\": {}, \"coretype_env\": {}}},\n"
      "  \"workloads\": [",
      json_string(blas.library), json_string(blas.core), blas.threads,
      json_string(blas.coretype_env));
  bool first_workload = true;
  try {
    for (const auto& w : flows::bench::standard_workloads()) {
      if (!only.empty() && std::find(only.begin(), only.end(), w.id) == only.end()) continue;
      if (!std::filesystem::exists(std::string(FLOWS_SOURCE_DIR) + "/" + w.config)) {
        std::cout << fmt::format("{:<4} {} — skipped: {} is not in this tree\n", w.id, w.title,
                                 w.config);
        continue;
      }
      std::cout << fmt::format("{:<4} {} ({})\n", w.id, w.title, w.config) << std::flush;
      auto rows = w.run(w, options);
      json +=
          fmt::format("{}\n    {{\"id\": {}, \"title\": {}, \"config\": {}, \"measurements\": [",
                      first_workload ? "" : ",", json_string(w.id), json_string(w.title),
                      json_string(w.config));
      first_workload = false;
      for (std::size_t i = 0; i < rows.size(); ++i) {
        const auto& m = rows[i];
        std::string speedup = m.is_time && std::isfinite(m.reference)
                                  ? fmt::format("{:.1f}x", m.reference / m.value)
                                  : "";
        std::cout << fmt::format(
            "{:<4} {:<32} {:>9.4g} {:<2} {:>9} {:<2}  {:<10} {:>9}\n", "", m.metric, m.value,
            m.unit, std::isfinite(m.reference) ? fmt::format("{:.4g}", m.reference) : "-",
            std::isfinite(m.reference) ? m.unit : "", m.reference_tool, speedup);
        json += fmt::format(
            "{}\n      {{\"metric\": {}, \"value\": {}, \"unit\": {}, \"reference\": {}, \"tool\": "
            "{}}}",
            i ? "," : "", json_string(m.metric), json_number(m.value), json_string(m.unit),
            json_number(m.reference), json_string(m.reference_tool));
      }
      json += "\n    ]}";
      std::cout << std::flush;
    }
  } catch (const flows::Error& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  json += "\n  ]\n}\n";
  std::ofstream(json_path) << json;
  std::cout << "\nwrote " << json_path << "\n";
  return 0;
}
