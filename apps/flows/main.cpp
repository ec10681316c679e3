// The flows runner: `flows run pipeline.yaml`, the commands on saved models
// (sample, log-prob, evaluate, info, doctor) and `flows plugins`.
#include <exception>
#include <iostream>
#include <new>
#include <string>

#include <CLI/CLI.hpp>

#include "doctor.hpp"
#include "flows/error.hpp"
#include "model_commands.hpp"
#include "mpi/launch.hpp"
#include "pipeline.hpp"

namespace {

// The options every command on a saved model takes.
void add_model_options(CLI::App* cmd, flows::app::ModelCommand& command) {
  cmd->add_option("model", command.model, "Saved model (model.flows, from the save stage)")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--plugins", command.plugins,
                  "Extra plugin files or folders (the model's recorded plugin files and the "
                  "default search path are tried too)");
}

// "rank 1: " before a message of rank 1 of an MPI job; "" for rank 0 and
// for one process.
std::string rank_prefix(const flows::app::RunOptions& run) {
  if (!run.ranks || run.ranks->rank() == 0) return "";
  return "rank " + std::to_string(run.ranks->rank()) + ": ";
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "flows: normalizing flows and flow matching from YAML pipelines.\n"
      "Flows, data sets, trainers and solvers are plugins loaded by name."};
  app.require_subcommand(1);

  flows::app::RunOptions run;
  CLI::App* run_cmd = app.add_subcommand(
      "run",
      "Run a pipeline: check every key, then run its stages (train, evaluate, sample, save,\n"
      "report). Outputs go to the pipeline's output folder: metrics.json, training_curve.csv,\n"
      "train.log, samples.csv, model.flows, report.html.");
  run_cmd->add_option("pipeline", run.file, "Pipeline YAML file")
      ->required()
      ->check(CLI::ExistingFile);
  run_cmd->add_option("--set", run.overrides,
                      "Override a key before checking, e.g. --set trainer.steps=200 (repeatable)");
  run_cmd->add_option("-o,--output", run.output,
                      "Output folder (replaces the pipeline's `output`)");
  run_cmd->add_flag("-q,--quiet", run.quiet,
                    "No progress on the terminal (the log file still gets it)");

  flows::app::SampleCommand sample;
  CLI::App* sample_cmd =
      app.add_subcommand("sample",
                         "Draw samples from a saved model, in the data's units (a conditional\n"
                         "model: N per context row of --context).");
  add_model_options(sample_cmd, sample);
  // Signed, so that a negative number is refused rather than wrapped around.
  long long sample_n = 0, sample_seed = 0;
  sample_cmd
      ->add_option("-n", sample_n,
                   "Number of samples, 1 to 10^9 (a conditional model: per context row)")
      ->required()
      ->check(CLI::Range(1LL, 1000000000LL));
  sample_cmd->add_option("-o,--output", sample.output, "Output file, .csv or .npy")->required();
  sample_cmd->add_option("--seed", sample_seed, "Random seed, >= 0 (default 0)")
      ->check(CLI::NonNegativeNumber);
  sample_cmd->add_option(
      "--context", sample.context,
      "A conditional model's context: a .csv whose header names the context columns, or a .npy\n"
      "with them in the model's order (N samples per row, after a column context_row), or one\n"
      "row inline, 'name=value,...' naming every context column once");

  flows::app::LogProbCommand log_prob;
  CLI::App* log_prob_cmd = app.add_subcommand(
      "log-prob",
      "Write log p(x) of every row of INPUT (nats, in the data's units); log p(x | c) for a\n"
      "conditional model, with the context read from INPUT's context columns.");
  add_model_options(log_prob_cmd, log_prob);
  log_prob_cmd
      ->add_option("input", log_prob.input,
                   "Rows to score: .csv (columns found by their header names) or .npy (x "
                   "columns, then context columns)")
      ->required()
      ->check(CLI::ExistingFile);
  log_prob_cmd->add_option("-o,--output", log_prob.output, "Output file, .csv or .npy")->required();

  flows::app::EvaluateCommand evaluate;
  CLI::App* evaluate_cmd = app.add_subcommand(
      "evaluate", "Mean negative log-likelihood of INPUT's rows, with its standard error.");
  add_model_options(evaluate_cmd, evaluate);
  evaluate_cmd
      ->add_option("input", evaluate.input,
                   "Rows to score: .csv (columns found by their header names) or .npy (x "
                   "columns, then context columns)")
      ->required()
      ->check(CLI::ExistingFile);
  evaluate_cmd->add_flag("--bits-per-dim", evaluate.bits_per_dim,
                         "Also report bits per dimension, NLL / (d ln 2)");
  evaluate_cmd->add_flag("--json", evaluate.json, "Print one JSON object");

  flows::app::ModelCommand info;
  CLI::App* info_cmd = app.add_subcommand(
      "info",
      "Describe a saved model: x and context columns, parameters, plugins, its pipeline YAML.");
  add_model_options(info_cmd, info);

  flows::app::DoctorCommand doctor;
  CLI::App* doctor_cmd = app.add_subcommand(
      "doctor",
      "Check every bijector of a model, layer by layer: round trips on data and on samples,\n"
      "log|det J| against finite differences, spline tail bounds, conditioning. Prints one\n"
      "table; exits with status 1 when a check fails.");
  doctor_cmd
      ->add_option("model", doctor.target,
                   "Saved model (model.flows), or a pipeline YAML: its data and model (trained "
                   "when its save stage wrote a checkpoint)")
      ->required()
      ->check(CLI::ExistingFile);
  doctor_cmd->add_option(
      "--data", doctor.data,
      "Rows to check on, .csv or .npy, read as log-prob reads INPUT (default: a pipeline's "
      "held-out rows; a saved model's own samples)");
  doctor_cmd->add_option("--plugins", doctor.plugins, "Extra plugin files or folders");
  doctor_cmd->add_option("--set", doctor.overrides,
                         "Override a pipeline's key, e.g. --set model.bijectors.0.layers=2");
  long long doctor_rows = 2000, doctor_seed = 0;
  doctor_cmd->add_option("--rows", doctor_rows, "Data rows and samples used (default 2000)")
      ->check(CLI::Range(1LL, 10000000LL));
  doctor_cmd->add_option("--seed", doctor_seed, "Seed of the samples, >= 0 (default 0)")
      ->check(CLI::NonNegativeNumber);

  std::vector<std::string> plugin_paths;
  CLI::App* plugins_cmd = app.add_subcommand(
      "plugins",
      "List every component name of every kind, with the file it came from.\n"
      "Searched: the build's plugin folder, the install prefix, $FLOWS_PLUGIN_PATH.");
  plugins_cmd->add_option("--path,--plugins", plugin_paths,
                          "Extra plugin files or folders to search");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help
    std::cerr << "error: " << e.what() << " (see flows --help)\n";
    return 1;
  }
  sample.n = static_cast<flows::Index>(sample_n);
  sample.seed = static_cast<flows::Index>(sample_seed);
  doctor.rows = static_cast<flows::Index>(doctor_rows);
  doctor.seed = static_cast<flows::Index>(doctor_seed);
  int status = 0;
  try {
    if (*run_cmd) {
      // Started by mpirun or srun: one model trained on every rank.
      run.ranks = flows::app::start_ranks();
      flows::app::run_pipeline(run);
    } else if (flows::app::launched_processes() > 1) {
      throw flows::ConfigError(
          "only `flows run` works on several processes (mpirun, srun); run this command as one");
    }
    if (*sample_cmd) flows::app::sample_command(sample);
    if (*log_prob_cmd) flows::app::log_prob_command(log_prob);
    if (*evaluate_cmd) flows::app::evaluate_command(evaluate);
    if (*info_cmd) flows::app::info_command(info);
    if (*doctor_cmd && flows::app::doctor_command(doctor) > 0) status = 1;
    if (*plugins_cmd) flows::app::list_plugins(plugin_paths);
  } catch (const std::bad_alloc&) {
    std::cerr << rank_prefix(run) + "error: out of memory\n";
    flows::app::abort_job(run.ranks.get(), 1);
    return 1;
  } catch (const std::exception& e) {
    // flows::Error and the rest (a filesystem error, say) alike: one line.
    // One write, so that the lines of two ranks do not interleave.
    std::cerr << rank_prefix(run) + "error: " + e.what() + "\n";
    // The other ranks may wait on this one: end the whole job.
    flows::app::abort_job(run.ranks.get(), 1);
    return 1;
  }
  return status;
}
