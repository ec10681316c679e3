// The train stage: trains the model, writes the training curve and the log.
#include <iostream>

#include <fmt/format.h>

#include "flows/checkpoint.hpp"
#include "flows/training_loop.hpp"
#include "outputs.hpp"
#include "progress.hpp"
#include "stages.hpp"

namespace flows::app {

void train_stage(RunSession& s) {
  const PipelineOptions& options = s.options();
  // Only rank 0 of an MPI job shows progress and keeps the log.
  const bool writes = s.writes_outputs();
  ProgressReporter reporter(options.log_every, s.run.quiet || !writes,
                            writes ? s.out + "/train.log" : std::string());
  TrainerCallbacks callbacks;
  callbacks.ranks = s.run.ranks.get();
  callbacks.on_progress = [&reporter](const Progress& p) { reporter(p); };
  callbacks.should_stop = s.run.should_stop;
  // Pipeline::train adds the dequantization noise (data.dequantize) per mini-batch.
  try {
    s.report = s.pipeline.train(callbacks);
  } catch (const NonFiniteTrainingError&) {
    // The trainer kept the last good parameters: save them when asked to,
    // so that the run leaves a usable model (issue 15).
    reporter.finish();
    if (s.will_run("save") && writes) {
      write_checkpoint(s.out + "/model.flows", make_checkpoint(s.pipeline));
      std::cerr << fmt::format("saved the kept parameters to {}/model.flows\n", s.out);
    }
    // Every rank stops at the same step (the loss and gradient are summed
    // over the ranks before they are checked), and each then ends the job:
    // wait here until rank 0 has written the checkpoint, so that no rank's
    // MPI_Abort cuts the write short.
    if (s.ranks() > 1) s.run.ranks->same_on_every_rank(0);
    throw;
  }
  reporter.finish();
  s.trained = true;
  const TrainReport& report = s.report;
  if (!writes) return;
  write_file_atomically(s.out + "/training_curve.csv", curve_csv(report));
  std::cerr << fmt::format(
      "trained {} steps in {:.2f}s{}{}\n", report.steps - report.first_step, report.seconds,
      report.first_step ? fmt::format(", from step {} to {}", report.first_step, report.steps) : "",
      report.stopped_early ? " (stopped early)" : "");

  nlohmann::ordered_json& m = s.metrics;
  m["steps"] = report.steps;
  m["best_step"] = report.best_step;
  m["best_val_loss"] = report.best_val_loss;
  m["stopped_early"] = report.stopped_early;
  m["skipped_batches"] = report.skipped_batches;
  if (report.skipped_batches > 0) m["first_skipped_batch"] = report.first_skipped;
  m["train_threads"] = report.threads;
  m["train_seconds"] = report.seconds;
  if (s.ranks() > 1) m["allreduce_seconds"] = report.allreduce_seconds;
}

}  // namespace flows::app
