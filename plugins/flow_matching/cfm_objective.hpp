#pragma once
#include <functional>
#include <string>
#include <vector>

#include <flows/data_parallel.hpp>
#include <flows/rng.hpp>
#include <flows/tensor.hpp>

#include "cfm_trainer.hpp"
#include "probability_path.hpp"
#include "velocity_field.hpp"

namespace flows::flow_matching {

// The regression objective of one cfm step (see CfmTrainer), with its draws
// and buffers: for data rows x1 with their (encoded) context rows c,
//   x0 from `noise`, optionally re-paired to x1 by minibatch optimal
//   transport (the context goes with x1), t ~ U(0, 1), x_t and u_t from the
//   probability path, each row's context replaced by ∅ with probability
//   context_dropout, and L = mean((v(x_t, t, c) − u_t)²) over all entries.
class CfmObjective {
 public:
  // Writes n noise rows x0 (the field's t = 0 end) using the given draws.
  using NoiseSource = std::function<void(Index n, Rng& rng, Matrix& x0)>;

  CfmObjective(const CfmOptions& options, VelocityField& field, NoiseSource noise);

  // Training on several threads (issue 12): the draws (noise, pairing, t,
  // dropout) stay on the whole batch, on the calling thread, so results do
  // not depend on the split but for summation order; then `parallel` cuts the
  // rows into blocks for the field's forward and backward passes: block 0 on
  // this objective's field, block b on replicas[b - 1] (the fields of flow
  // replicas, whose parameters `parallel` keeps equal to the field's).
  void set_parallel(DataParallel* parallel, std::vector<VelocityField*> replicas);

  // L, accumulating dL/dθ into the field's parameters; with grad_context
  // (rows and columns of `context`), dL/dc is *added* to it.
  Real loss_and_gradient(const Matrix& x1, const Matrix& context, Rng& rng,
                         Matrix* grad_context = nullptr);
  // L alone (inference pass of the field).
  Real loss(const Matrix& x1, const Matrix& context, Rng& rng);

  // After loss_and_gradient, for a non-finite loss or gradient: the rows of
  // that batch whose velocity (pass "forward pass") or, failing that, whose
  // input gradient ("backward pass") is not finite; pass is empty when all
  // rows are finite.
  struct NonFiniteRows {
    std::string pass;
    Index rows = 0;
  };
  NonFiniteRows nonfinite_rows() const;

 private:
  // Pairs x0 with x1 (re-ordering x1's rows, and the context rows with them),
  // draws x_t, u_t at random t and, with context dropout, the rows that get ∅.
  void prepare(const Matrix& x1, const Matrix& context, Rng& rng);
  // The loss share Σ (v − u)² / count of rows [begin, end) of the prepared
  // batch, accumulating dL/dθ into `field` (and dL/dc into the block's
  // grad_context when wanted).
  Real block_gradient(VelocityField& field, Index block, Index begin, Index end, Real count,
                      bool want_context);

  // The rows of one block and the field's buffers for them.
  struct Block {
    Matrix xt, context, v, grad_v, grad_x, grad_context;
    Vector t;
    std::vector<char> dropped;
  };

  const CfmOptions& options_;
  VelocityField& field_;
  NoiseSource noise_;
  ProbabilityPath path_;
  DataParallel* parallel_ = nullptr;
  std::vector<VelocityField*> replicas_;
  std::vector<Block> blocks_;
  Index blocks_used_ = 0;  // by the last loss_and_gradient
  Matrix x0_, paired_, paired_context_, xt_, ut_, v_, features_;
  const Matrix* target_ = nullptr;          // x1, or its rows in paired order
  const Matrix* target_context_ = nullptr;  // the context rows that go with them
  std::vector<Index> partner_;              // row i of the target is row partner_[i] of x1
  std::vector<char> dropped_;               // rows with ∅ (empty: none)
  Vector t_;
};

}  // namespace flows::flow_matching
