#pragma once
// Training on every core (issue 12): the gradient of one mini-batch computed
// on row blocks, one per thread, each on its own copy of the model.
#include <algorithm>
#include <functional>
#include <vector>

#include "flows/export.hpp"
#include "flows/parameter.hpp"
#include "flows/threads.hpp"

namespace flows {

// Below this many rows per block a thread costs more than it saves: the
// matrix products of a block get too thin to run at speed, and the two
// synchronizations and the gradient reduction of a step stay. A batch of
// fewer than 2 × this many rows trains on one thread.
inline constexpr Index kMinRowsPerTrainingBlock = 64;

// Threads a training step of `batch_rows` rows uses: thread_count(), but no
// block smaller than kMinRowsPerTrainingBlock; at least 1.
FLOWS_API Index training_threads(Index batch_rows);

// The gradient of a mini-batch, computed on contiguous row blocks in
// parallel. Block 0 runs on the calling thread and accumulates into the
// master's gradients; block b > 0 runs on thread b with replica b, a model
// built like the master whose parameters are the master's (a bijector keeps
// its training records in members, so two threads cannot share one model).
// Then the replicas' gradients are added into the master's in the fixed
// order 1, 2, …, so that for a given thread count and batch the result never
// depends on timing; it differs from one thread's only by summation order.
class FLOWS_API DataParallel {
 public:
  // master: the parameters a step's gradient is for; replicas[b - 1]: the
  // same list (names, shapes, order) of replica b. Error when they differ.
  DataParallel(ParameterList master, std::vector<ParameterList> replicas);

  Index threads() const { return pool_.threads(); }
  // The step's threads, for the other passes over every value of a step
  // (the optimizer's update).
  ThreadPool& pool() { return pool_; }
  // Blocks for a batch of `rows` rows: at most threads(), none smaller than
  // kMinRowsPerTrainingBlock, at least 1.
  Index blocks(Index rows) const;

  // One step's gradient of `rows` rows, written over the master's: the
  // master's gradients are zeroed (on the first thread, while the others
  // copy), every replica gets the master's parameter values and zero
  // gradients, then gradient(b, begin, end) runs
  // block b of B = blocks(rows), rows [begin, end) = [rows·b/B,
  // rows·(b+1)/B), on thread b (on the master for b = 0, on
  // replica b otherwise) and returns its share of the loss; the shares are
  // summed in block order, and the replicas' gradients reduced into the
  // master's (and zeroed as they are read, for the next step). Copies and
  // the reduction are split over the threads too. With
  // one block it is zero_grad(master) and gradient(0, 0, rows).
  Real run(Index rows, FunctionRef<Real(Index block, Index begin, Index end)> gradient);

 private:
  ParameterList master_;
  std::vector<ParameterList> replicas_;
  ThreadPool pool_;
  std::vector<Real> losses_;
  // The replicas' gradients are zero: the reduction of the last step zeroed
  // each value as it read it (false until one has run to its end, so that a
  // step cut short by an error starts the next from a zeroing).
  bool replica_grads_zero_ = false;
};

// fn(parameter k, first, last) for the parameter values with flat indices
// [begin, end) of the parameters laid end to end: how thread t of T takes
// its equal share of a pass over every value.
template <class Fn>
void for_value_range(const ParameterList& params, Index begin, Index end, const Fn& fn) {
  Index offset = 0;
  for (std::size_t k = 0; k < params.size() && offset < end; ++k) {
    const Index size = params[k]->size();
    const Index lo = std::max(begin, offset), hi = std::min(end, offset + size);
    if (lo < hi) fn(k, lo - offset, hi - offset);
    offset += size;
  }
}

// Rows [begin, end) of m into out (reusing its buffer); an empty m gives an
// empty out. Returns out.
FLOWS_API const Matrix& copy_rows(const Matrix& m, Index begin, Index end, Matrix& out);

}  // namespace flows
