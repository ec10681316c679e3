#pragma once
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "flows/dataset.hpp"
#include "flows/export.hpp"
#include "flows/flow.hpp"
#include "flows/ranks.hpp"
#include "flows/rng.hpp"
#include "flows/state.hpp"

namespace flows {

// What a trainer reports while it runs.
struct Progress {
  Index step = 0;                                          // steps done
  Index total_steps = 0;                                   // steps planned
  Real loss = 0;                                           // training loss of the last step
  Real val_loss = std::numeric_limits<Real>::quiet_NaN();  // last validation loss, NaN if none yet
  Real lr = 0;
  double seconds = 0;  // wall time since training started
};

// One row of the training curve.
struct CurvePoint {
  Index step = 0;
  Real train_loss = 0;  // mean training loss since the previous row
  Real val_loss = std::numeric_limits<Real>::quiet_NaN();
  Real lr = 0;
  double seconds = 0;
};

struct TrainReport {
  Index first_step = 0;  // > 0 when training resumed from a checkpoint
  Index steps = 0;       // steps done in total, first_step included
  Index best_step = 0;
  Real best_val_loss = std::numeric_limits<Real>::quiet_NaN();
  bool stopped_early = false;
  bool interrupted =
      false;  // TrainerCallbacks::should_stop ended it (issue 13: Ctrl-C from Python)
  // Batches dropped for a non-finite loss or gradient (on_nonfinite: skip_batch).
  Index skipped_batches = 0;
  std::string first_skipped;  // what the first skipped batch was (step, where, rows); "" if none
  Index threads = 1;          // threads a training step ran on (row blocks; see DataParallel)
  double seconds = 0;
  // On several ranks: the time spent in the steps' sums across the ranks
  // (each batch's rows from the ranks that hold them, then the gradients;
  // waiting for the slowest rank included); 0 on one process.
  double allreduce_seconds = 0;
  std::string loss_name = "nll";  // what the loss measures
  std::vector<CurvePoint> curve;
};

struct TrainerCallbacks {
  // Called after every step; cheap callers only.
  std::function<void(const Progress&)> on_progress;
  // Asked after every step (after on_progress); true ends training there, as
  // early stopping does: the best validated parameters so far are restored
  // (the current ones without validation data) and the report says
  // `interrupted`. The Python module stops on Ctrl-C through it (issue 13).
  std::function<bool()> should_stop;
  // Called on every training mini-batch before the objective sees it; may
  // change its values in place (the pipeline's dequantization noise, fresh
  // at every step: issue 16). The sampler's rows are not changed.
  std::function<void(Matrix& batch)> prepare_batch;
  // Builds a replica of the flow being trained: the same model, with a copy
  // of its whole current state (Pipeline::train sets it). A trainer uses one
  // replica per extra thread to train on row blocks of each mini-batch (see
  // DataParallel); when empty, training runs on one thread.
  std::function<std::shared_ptr<Flow>()> make_replica;
  // The processes of a data-parallel run (null: this one alone). Each rank
  // computes rows rank_share(batch, rank, size) of every global mini-batch;
  // run_training_loop sums the ranks' gradients and losses, so that every
  // rank takes the same step (ranks.hpp).
  Ranks* ranks = nullptr;
};

// Fits a flow to data. Built by name (kind "trainer"): `mle` in the SDK,
// others in plugins.
class FLOWS_API Trainer {
 public:
  virtual ~Trainer() = default;
  // Fits `flow` to data.train (with data.train_context for a conditional
  // flow), validating on data.val; data.test is not touched.
  virtual TrainReport train(Flow& flow, const DataSplits& data, Rng& rng,
                            const TrainerCallbacks& callbacks) = 0;
  // Saves or restores what resuming needs (steps done, optimizer state); a
  // later train() continues from the restored step. Default: no state, so
  // training restarts from step 0 with the restored parameters.
  virtual void visit_state(Flow& flow, StateVisitor& visitor);
};

}  // namespace flows
