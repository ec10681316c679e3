#pragma once
#include <functional>
#include <memory>
#include <string>

#include "flows/config.hpp"
#include "flows/error.hpp"
#include "flows/export.hpp"
#include "flows/optimizer.hpp"
#include "flows/ranks.hpp"
#include "flows/registry.hpp"
#include "flows/trainer.hpp"

namespace flows {

// Options every mini-batch trainer shares (mle here, cfm in its plugin). Read
// with read_from(node) inside the trainer's own options parse.
struct TrainingOptions {
  Index steps = 1000;                // optimizer steps
  Index batch_size = 256;            // rows per mini-batch
  Index eval_every = 100;            // steps between validation evaluations (0: only at the end)
  Index patience = 0;                // evaluations without improvement before stopping (0: never)
  Real clip_grad_norm = 0;           // joint gradient-norm limit (0: no clipping)
  LearningRateSchedule lr_schedule;  // keys lr_schedule, warmup_steps, min_lr
  // A step whose loss or gradient is not finite: `stop` ends training with a
  // NonFiniteTrainingError; `skip_batch` drops that batch (no update) and
  // goes on, counting it, until kMaxSkippedInARow batches in a row fail.
  std::string on_nonfinite = "stop";
  FLOWS_API void read_from(ConfigNode& node);
};

// With on_nonfinite: skip_batch, this many non-finite batches in a row stop
// training all the same: the parameters themselves have gone bad.
inline constexpr Index kMaxSkippedInARow = 10;

// Training stopped on a non-finite loss or gradient. The message names the
// step, where the first non-finite value appeared (the objective's
// locate_nonfinite) and which parameters were kept. steps_done(): the steps
// completed before the failing one, which a checkpoint of the kept
// parameters records.
class FLOWS_API NonFiniteTrainingError : public NumericalError {
 public:
  NonFiniteTrainingError(const std::string& what, Index steps_done)
      : NumericalError(what), steps_done_(steps_done) {}
  Index steps_done() const { return steps_done_; }

 private:
  Index steps_done_;
};

// Builds the optimizer under `optimizer:` of a trainer's node (Adam with
// defaults when absent).
FLOWS_API std::shared_ptr<Optimizer> make_optimizer(ConfigNode& trainer_node,
                                                    const BuildContext& context);

// The training rows a process holds (DataSplits): rows [begin, begin +
// data.shape(0)) of `total`; total 0: every row.
struct HeldRows {
  Index begin = 0;
  Index total = 0;
};

// Shuffled mini-batches: a new permutation every epoch; every batch has
// min(batch_size, rows) rows. With a context (one row per data row, or
// empty), each batch's context rows are the same rows of the context.
//
// On several ranks that each hold a share of the rows (`held`, `ranks`),
// every rank draws the same permutation of all the rows; it fills in the
// batch's rows it holds, zeros elsewhere, and a sum across the ranks gives
// every rank the whole batch, the one a single process draws.
class FLOWS_API MinibatchSampler {
 public:
  MinibatchSampler(const Matrix& data, const Matrix& context, Index batch_size, Rng& rng,
                   HeldRows held = {}, Ranks* ranks = nullptr);
  // The next batch; the reference stays valid until the next call.
  const Matrix& next();
  // The context rows of the last batch (empty without a context).
  const Matrix& context() const { return batch_context_; }
  // Seconds spent so far in the sums that put the batches together.
  double sharing_seconds() const { return sharing_seconds_; }

 private:
  void shuffle();
  void share_batch();  // on several ranks: the sums of the ranks' parts
  const Matrix& data_;
  const Matrix& context_;
  Rng& rng_;
  HeldRows held_;
  Ranks* ranks_;
  std::vector<Index> order_;
  Index cursor_ = 0;
  Matrix batch_, batch_context_;
  std::vector<Real> shared_;  // the batch and its context, summed across the ranks
  double sharing_seconds_ = 0;
};

// The parts of a trainer that differ between objectives.
struct TrainingObjective {
  // Loss of one batch (with its context rows, empty when unconditional);
  // accumulates its gradient into the parameters, or writes it over them
  // when sets_gradient.
  std::function<Real(const Matrix& batch, const Matrix& context)> loss_and_gradient;
  // loss_and_gradient zeroes the gradients itself, so the loop does not
  // first (DataParallel zeroes the master's on its first thread while the
  // others copy the values, instead of in a pass of its own).
  bool sets_gradient = false;
  // Loss on the validation data (inference mode).
  std::function<Real()> validation_loss;
  // Optional: after a non-finite loss or gradient on this batch, where the
  // first non-finite value appeared and in how many rows (for example
  // "bijectors[1] (maf), forward pass, in 12 of 512 rows"); "" if unknown.
  std::function<std::string(const Matrix& batch, const Matrix& context)> locate_nonfinite;
  std::string loss_name = "nll";
};

// The shared loop: zero gradients, objective step, clip, schedule, optimizer
// step; validation every eval_every steps with early stopping that restores the
// best parameters; progress after every step. A non-finite training loss or
// gradient never reaches the optimizer: with on_nonfinite: stop the loop
// restores the last parameters known to be good (the best validated ones;
// without validation, those of the first finite step after the last
// evaluation point; else the starting ones) and raises
// NonFiniteTrainingError; with skip_batch the batch is dropped and counted in
// TrainReport::skipped_batches. `first_step`
// > 0 resumes: steps first_step .. options.steps-1 run, the schedule continues
// from there and mini-batches come from rng.derive(first_step); resuming with
// nothing left to train is an Error. `held`: the share of the training rows
// this process holds (DataSplits::train_begin, train_total), on the ranks of
// callbacks.ranks.
FLOWS_API TrainReport run_training_loop(const TrainingOptions& options, Optimizer& optimizer,
                                        const ParameterList& params, const Matrix& train,
                                        const Matrix& train_context,
                                        const TrainingObjective& objective, bool has_validation,
                                        Rng& rng, const TrainerCallbacks& callbacks,
                                        Index first_step = 0, HeldRows held = {});

// What a mini-batch trainer keeps in a checkpoint so that it can resume: the
// steps done ("steps_done") and the optimizer's state ("optimizer/...").
FLOWS_API void visit_training_state(Index& steps_done, Optimizer& optimizer,
                                    const ParameterList& params, StateVisitor& visitor);

}  // namespace flows
