#pragma once
#include <string>

#include "flows/export.hpp"
#include "flows/parameter.hpp"
#include "flows/state.hpp"

namespace flows {

class ThreadPool;  // threads.hpp

// Updates parameters from their gradients. Built by name (kind "optimizer").
// The learning rate is passed each step so that a schedule can drive it.
class FLOWS_API Optimizer {
 public:
  virtual ~Optimizer() = default;
  // The learning rate from the optimizer's options (the schedule's peak).
  virtual Real learning_rate() const = 0;
  // One update of every parameter in `params` (same list, same order each call).
  virtual void step(const ParameterList& params, Real lr) = 0;
  // Saves or restores the optimizer's state for `params` (moments, step
  // count), so that training resumes where it stopped. Default: no state.
  virtual void visit_state(const ParameterList& params, StateVisitor& visitor);

  // Threads step() may spread a large update over (a trainer lends its
  // training pool while it trains on several threads, and takes it back with
  // nullptr). Each value's update must not depend on how the values are split.
  void use_threads(ThreadPool* pool) { pool_ = pool; }

 protected:
  ThreadPool* pool() const { return pool_; }

 private:
  ThreadPool* pool_ = nullptr;
};

// Lends a pool to an optimizer for the lifetime of this object.
class ThreadsLent {
 public:
  ThreadsLent(Optimizer& optimizer, ThreadPool* pool) : optimizer_(optimizer) {
    optimizer_.use_threads(pool);
  }
  ~ThreadsLent() { optimizer_.use_threads(nullptr); }
  ThreadsLent(const ThreadsLent&) = delete;
  ThreadsLent& operator=(const ThreadsLent&) = delete;

 private:
  Optimizer& optimizer_;
};

// Learning rate at `step` (0-based) of `total`: constant, or cosine decay from
// lr to min_lr (Loshchilov & Hutter 2017, SGDR without restarts), both after a
// linear warm-up of `warmup` steps.
struct LearningRateSchedule {
  std::string kind = "constant";  // constant | cosine
  Index warmup = 0;               // linear warm-up steps from 0 to lr
  Real min_lr = 0.0;              // floor of the cosine decay
  FLOWS_API Real at(Real lr, Index step, Index total) const;
};

// Scales all gradients so their joint norm is at most max_norm (no-op when
// max_norm <= 0). Returns the norm before clipping (gradient_norm: no
// overflow); a non-finite gradient gives a non-finite norm and is left
// unscaled for the caller to see.
FLOWS_API Real clip_gradient_norm(const ParameterList& params, Real max_norm);

}  // namespace flows
