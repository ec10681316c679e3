// The flows runner: `flows run pipeline.yaml`, `flows plugins`.
#include <exception>
#include <iostream>

#include <CLI/CLI.hpp>

#include "flows/error.hpp"
#include "pipeline.hpp"

int main(int argc, char** argv) {
  CLI::App app{
      "flows: normalizing flows and flow matching from YAML pipelines.\n"
      "Flows, data sets, trainers and solvers are plugins loaded by name."};
  app.require_subcommand(1);

  flows::app::RunOptions run;
  CLI::App* run_cmd = app.add_subcommand(
      "run",
      "Run a pipeline: check every key, then run its stages (train, evaluate, sample, save).\n"
      "Outputs go to the pipeline's output folder: metrics.json, training_curve.csv,\n"
      "train.log, samples.csv, checkpoint.yaml.");
  run_cmd->add_option("pipeline", run.file, "Pipeline YAML file")
      ->required()
      ->check(CLI::ExistingFile);
  run_cmd->add_option("--set", run.overrides,
                      "Override a key before checking, e.g. --set trainer.steps=200 (repeatable)");
  run_cmd->add_option("-o,--output", run.output,
                      "Output folder (replaces the pipeline's `output`)");
  run_cmd->add_flag("-q,--quiet", run.quiet,
                    "No progress on the terminal (the log file still gets it)");

  std::vector<std::string> plugin_paths;
  CLI::App* plugins_cmd = app.add_subcommand(
      "plugins",
      "List every component name of every kind, with the file it came from.\n"
      "Searched: the build's plugin folder, the install prefix, $FLOWS_PLUGIN_PATH.");
  plugins_cmd->add_option("--path", plugin_paths, "Extra plugin files or folders to search");

  CLI11_PARSE(app, argc, argv);
  try {
    if (*run_cmd) flows::app::run_pipeline(run);
    if (*plugins_cmd) flows::app::list_plugins(plugin_paths);
  } catch (const flows::Error& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 2;
  }
  return 0;
}
