#include "flows/training_loop.hpp"

#include <chrono>
#include <cmath>
#include <numeric>
#include <optional>

#include <fmt/format.h>

#include "flows/data_parallel.hpp"
#include "flows/error.hpp"

namespace flows {

void TrainingOptions::read_from(ConfigNode& node) {
  node.read("steps", steps);
  node.read("batch_size", batch_size);
  node.read("eval_every", eval_every);
  node.read("patience", patience);
  node.read("clip_grad_norm", clip_grad_norm);
  node.read("lr_schedule", lr_schedule.kind);
  node.read("warmup_steps", lr_schedule.warmup);
  node.read("min_lr", lr_schedule.min_lr);
  node.read("on_nonfinite", on_nonfinite);
  node.expect_one_of("on_nonfinite", on_nonfinite, {"stop", "skip_batch"});
  node.expect(steps > 0, "steps", "must be > 0");
  node.expect(batch_size > 0, "batch_size", "must be > 0");
  node.expect(clip_grad_norm >= 0, "clip_grad_norm", "must be >= 0");
  node.expect(lr_schedule.min_lr >= 0, "min_lr", "must be >= 0");
  node.expect_one_of("lr_schedule", lr_schedule.kind, {"constant", "cosine"});
}

std::shared_ptr<Optimizer> make_optimizer(ConfigNode& trainer_node, const BuildContext& context) {
  ConfigNode node = trainer_node.child("optimizer", /*optional=*/true);
  if (!node.has("type")) node.set("type", "adam");
  return context.registry->make<Optimizer>(node, context);
}

MinibatchSampler::MinibatchSampler(const Matrix& data, const Matrix& context, Index batch_size,
                                   Rng& rng, HeldRows held, Ranks* ranks)
    : data_(data),
      context_(context),
      rng_(rng),
      held_(held),
      ranks_(ranks),
      order_(held_.total > 0 ? held_.total : data.shape(0)) {
  const Index rows = order_.size();
  if (rows == 0) throw DataError("training data has no rows");
  if (held_.total > 0 && (ranks == nullptr || ranks->size() <= 1))
    throw Error(fmt::format(
        "the training data are this rank's share ({} of {} rows) but training has no ranks to "
        "share the batches with (TrainerCallbacks::ranks)",
        data.shape(0), held_.total));
  // A share may hold no rows: its context is then 0 x k, and k still counts.
  const Index context_cols = context.shape(1);
  if (context_cols != 0 && context.shape(0) != data.shape(0))
    throw DataError(fmt::format("the training data has {} rows but its context {}", data.shape(0),
                                context.shape(0)));
  if (held_.begin + data.shape(0) > rows)
    throw DataError(fmt::format("the training rows held, [{}, {}), are not rows of {}", held_.begin,
                                held_.begin + data.shape(0), rows));
  std::iota(order_.begin(), order_.end(), Index{0});
  batch_.resize({std::min(batch_size, rows), data.shape(1)});
  if (context_cols != 0) batch_context_.resize({batch_.shape(0), context_cols});
  shuffle();
}

void MinibatchSampler::shuffle() {
  // Fisher–Yates with the run's seeded generator.
  for (Index i = order_.size(); i > 1; --i) std::swap(order_[i - 1], order_[rng_.index(i)]);
  cursor_ = 0;
}

const Matrix& MinibatchSampler::next() {
  const Index rows = batch_.shape(0), cols = batch_.shape(1);
  const Index context_cols = batch_context_.size() ? batch_context_.shape(1) : 0;
  const Index first = held_.begin, last = held_.begin + data_.shape(0);
  for (Index r = 0; r < rows; ++r) {
    if (cursor_ == order_.size()) shuffle();
    const Index row = order_[cursor_++];
    Real* to = batch_.data() + r * cols;
    Real* context_to = context_cols ? batch_context_.data() + r * context_cols : nullptr;
    if (row < first || row >= last) {  // another rank's row
      std::fill(to, to + cols, Real(0));
      if (context_cols) std::fill(context_to, context_to + context_cols, Real(0));
      continue;
    }
    const Real* src = data_.data() + (row - first) * cols;
    std::copy(src, src + cols, to);
    if (context_cols) {
      const Real* c = context_.data() + (row - first) * context_cols;
      std::copy(c, c + context_cols, context_to);
    }
  }
  if (held_.total > 0) share_batch();
  return batch_;
}

void MinibatchSampler::share_batch() {
  // One reduction for the rows and their context. Each row is one rank's
  // and zeros on the others, so its sum is that row.
  const Index values = batch_.size(), context_values = batch_context_.size();
  shared_.resize(values + context_values);
  std::copy(batch_.begin(), batch_.end(), shared_.begin());
  std::copy(batch_context_.begin(), batch_context_.end(), shared_.begin() + values);
  const auto started = std::chrono::steady_clock::now();
  ranks_->sum(shared_.data(), shared_.size());
  sharing_seconds_ +=
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  std::copy(shared_.begin(), shared_.begin() + values, batch_.begin());
  std::copy(shared_.begin() + values, shared_.end(), batch_context_.begin());
}

namespace {

std::vector<Matrix> snapshot(const ParameterList& params) {
  std::vector<Matrix> values;
  values.reserve(params.size());
  for (const Parameter* p : params) values.push_back(p->value);
  return values;
}

void restore(const ParameterList& params, const std::vector<Matrix>& values) {
  for (std::size_t k = 0; k < params.size() && k < values.size(); ++k) params[k]->value = values[k];
}

// A rank's part of a step on several processes (issue 14): rank r computes
// rows rank_share(B, r, N) of the global batch of B rows, weights its loss
// and gradient by its share of the rows, and the sums over the ranks are
// the whole batch's: the same step as one process, up to summation order.
class RankShare {
 public:
  RankShare(Ranks& ranks, const ParameterList& params) : ranks_(ranks), params_(params) {
    Index values = 0;
    for (const Parameter* p : params_) values += p->size();
    flat_.resize(values + 1);  // the gradients, then the loss
  }

  Real loss_and_gradient(const TrainingObjective& objective, const Matrix& batch,
                         const Matrix& context) {
    const Index rows = batch.shape(0);
    const auto [begin, end] = rank_share(rows, ranks_.rank(), ranks_.size());
    Real loss = 0;
    if (end > begin)
      loss = objective.loss_and_gradient(copy_rows(batch, begin, end, rows_),
                                         copy_rows(context, begin, end, context_rows_));
    else
      zero_grad(params_);  // no rows here: nothing of the last step may be summed
    const Real weight = static_cast<Real>(end - begin) / static_cast<Real>(rows);
    Real* out = flat_.data();
    for (const Parameter* p : params_)
      for (Real g : p->grad) *out++ = g * weight;
    *out = loss * weight;
    const auto started = std::chrono::steady_clock::now();
    ranks_.sum(flat_.data(), flat_.size());
    seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    const Real* in = flat_.data();
    for (Parameter* p : params_)
      for (Real& g : p->grad) g = *in++;
    return *in;
  }

  double seconds() const { return seconds_; }  // in the all-reduce so far

 private:
  Ranks& ranks_;
  const ParameterList& params_;
  double seconds_ = 0;
  Matrix rows_, context_rows_;
  std::vector<Real> flat_;
};

}  // namespace

TrainReport run_training_loop(const TrainingOptions& options, Optimizer& optimizer,
                              const ParameterList& params, const Matrix& train,
                              const Matrix& train_context, const TrainingObjective& objective,
                              bool has_validation, Rng& rng, const TrainerCallbacks& callbacks,
                              Index first_step, HeldRows held) {
  if (first_step >= options.steps)
    throw Error(
        fmt::format("nothing to train: training resumes at step {} and trainer.steps is {}; raise "
                    "trainer.steps to train further",
                    first_step, options.steps));
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  auto seconds = [&] { return std::chrono::duration<double>(Clock::now() - start).count(); };

  TrainReport report;
  report.loss_name = objective.loss_name;
  // A resumed run draws other batches than the first run's opening steps.
  Rng resumed_rng = rng.derive(first_step);
  MinibatchSampler sampler(train, train_context, options.batch_size,
                           first_step > 0 ? resumed_rng : rng, held, callbacks.ranks);
  Matrix prepared;  // the batch after callbacks.prepare_batch
  std::optional<RankShare> share;
  if (callbacks.ranks && callbacks.ranks->size() > 1) share.emplace(*callbacks.ranks, params);
  std::vector<Matrix> best = snapshot(params);
  bool have_best = false;
  // Without a validated best, what a non-finite step falls back to: the
  // parameters of the first step after each evaluation point whose loss and
  // gradient were finite (so at most eval_every steps old, and known good).
  std::vector<Matrix> last_good = best;
  Index last_good_step = first_step;
  bool last_good_due = true;
  Index evaluations_without_gain = 0;
  Index skipped_in_a_row = 0;
  Real loss_sum = 0;
  Index loss_count = 0;
  Progress progress;
  progress.total_steps = options.steps;

  auto evaluate = [&](Index step, Real lr) {
    CurvePoint point;
    point.step = step;
    point.train_loss = loss_count ? loss_sum / static_cast<Real>(loss_count) : NAN;
    point.lr = lr;
    loss_sum = 0;
    loss_count = 0;
    if (has_validation) {
      point.val_loss = objective.validation_loss();
      progress.val_loss = point.val_loss;
      if (std::isfinite(point.val_loss) && (!have_best || point.val_loss < report.best_val_loss)) {
        report.best_val_loss = point.val_loss;
        report.best_step = step;
        best = snapshot(params);
        have_best = true;
        evaluations_without_gain = 0;
      } else {
        ++evaluations_without_gain;
      }
    }
    last_good_due = true;
    point.seconds = seconds();
    report.curve.push_back(point);
  };

  report.first_step = first_step;
  report.steps = first_step;
  progress.step = first_step;
  for (Index step = first_step; step < options.steps; ++step) {
    const Real lr = options.lr_schedule.at(optimizer.learning_rate(), step, options.steps);
    if (!objective.sets_gradient) zero_grad(params);
    const Matrix* batch = &sampler.next();
    if (callbacks.prepare_batch) {
      prepared = *batch;
      callbacks.prepare_batch(prepared);
      batch = &prepared;
    }
    const Real loss = share ? share->loss_and_gradient(objective, *batch, sampler.context())
                            : objective.loss_and_gradient(*batch, sampler.context());
    // The norm is computed in every step anyway (clipping needs it): a
    // non-finite one is a non-finite gradient, and clipping leaves it alone.
    const Real norm = clip_gradient_norm(params, options.clip_grad_norm);
    const bool finite = std::isfinite(loss) && std::isfinite(norm);
    if (!finite) {
      std::string what =
          std::isfinite(loss)
              ? fmt::format("step {}: the loss is finite but the gradient is not", step + 1)
              : fmt::format("step {}: the training loss is {}", step + 1, loss);
      const std::string where = objective.locate_nonfinite
                                    ? objective.locate_nonfinite(*batch, sampler.context())
                                    : std::string();
      if (!where.empty()) what += "; the first non-finite value appeared in " + where;
      ++skipped_in_a_row;
      if (options.on_nonfinite == "skip_batch" && skipped_in_a_row < kMaxSkippedInARow) {
        if (report.skipped_batches++ == 0) report.first_skipped = what;
      } else {
        // The last parameters known to be good: the best validated ones,
        // else those of the last evaluation point, else the starting ones.
        // (Not the current ones: the step that just failed ran on them.)
        restore(params, have_best ? best : last_good);
        const std::string kept =
            have_best ? fmt::format("kept the parameters of step {} (the best validation loss)",
                                    report.best_step)
            : last_good_step > first_step
                ? fmt::format("kept the parameters after step {} (the last known good)",
                              last_good_step)
                : std::string("kept the parameters training started from");
        throw NonFiniteTrainingError(
            fmt::format(
                "training stopped at {}{}; {} (lower the learning rate or set "
                "trainer.clip_grad_norm{})",
                what,
                skipped_in_a_row > 1
                    ? fmt::format(", after {} non-finite batches in a row", skipped_in_a_row)
                    : "",
                kept,
                options.on_nonfinite == "stop" ? "; on_nonfinite: skip_batch skips such batches"
                                               : ""),
            step);
      }
    } else {
      skipped_in_a_row = 0;
      if (last_good_due && !have_best) {
        last_good = snapshot(params);
        last_good_step = step;
        last_good_due = false;
      }
      optimizer.step(params, lr);
      loss_sum += loss;
      ++loss_count;
    }
    report.steps = step + 1;

    const bool last = step + 1 == options.steps;
    if ((options.eval_every > 0 && (step + 1) % options.eval_every == 0) || last) {
      evaluate(step + 1, lr);
      if (options.patience > 0 && evaluations_without_gain >= options.patience && !last) {
        report.stopped_early = true;
      }
    }
    progress.step = step + 1;
    progress.loss = loss;
    progress.lr = lr;
    progress.seconds = seconds();
    if (callbacks.on_progress) callbacks.on_progress(progress);
    if (report.stopped_early) break;
    // Between steps, so the parameters are those of a whole step (issue 13).
    if (callbacks.should_stop && !last && callbacks.should_stop()) {
      report.interrupted = true;
      break;
    }
  }
  if (have_best) restore(params, best);
  report.seconds = seconds();
  if (share) report.allreduce_seconds = share->seconds() + sampler.sharing_seconds();
  return report;
}

void visit_training_state(Index& steps_done, Optimizer& optimizer, const ParameterList& params,
                          StateVisitor& visitor) {
  visit_count(visitor, "steps_done", steps_done);
  ScopedStateVisitor scoped(visitor, "optimizer/");
  optimizer.visit_state(params, scoped);
}

}  // namespace flows
