#pragma once
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "flows/dataset.hpp"
#include "flows/export.hpp"
#include "flows/flow.hpp"
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
  double seconds = 0;
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
