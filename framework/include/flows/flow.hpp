#pragma once
#include <memory>
#include <string>
#include <vector>

#include "flows/bijector.hpp"
#include "flows/chain.hpp"
#include "flows/context_encoder.hpp"
#include "flows/distribution.hpp"
#include "flows/export.hpp"
#include "flows/rng.hpp"

namespace flows {

// A normalizing flow: a chain of bijectors from data x to latent z, and a base
// density on z. With z = f_K ∘ … ∘ f_1 (x),
//   log p(x) = log p_z(z) + Σ_k log|det ∂f_k/∂(input of f_k)|.
// A conditional flow p(x | c) has a context encoder: the context c (one row
// per sample) is standardized, optionally embedded, and the result e reaches
// every conditional bijector and a conditional base: log p(x | c) =
// log p_z(z | e) + Σ_k log|det ∂f_k(·; e)/∂(input)|.
class FLOWS_API Flow {
 public:
  // With a context encoder, the chain's and the base's context width (where
  // they read one) must be the encoder's output width.
  Flow(std::shared_ptr<BaseDistribution> base, std::vector<std::shared_ptr<Bijector>> chain,
       std::shared_ptr<ContextEncoder> context = nullptr);

  Index dim() const { return base_->dim(); }
  // Raw context columns the model reads (0: unconditional).
  Index context_dim() const { return context_ ? context_->columns() : 0; }
  BaseDistribution& base() { return *base_; }
  const std::vector<std::shared_ptr<Bijector>>& chain() const { return chain_->layers(); }
  ContextEncoder* context_encoder() { return context_.get(); }
  // Puts a bijector at the front of the chain (the data standardization).
  void prepend(std::shared_ptr<Bijector> bijector);
  // Layers put in front by prepend (the data layers): chain()[k] is the
  // model's bijectors[k - data_layers()].
  Index data_layers() const { return data_layers_; }
  // Whether a training mini-batch may be cut into row blocks (see
  // Bijector::rows_independent_in_training): every bijector's answer.
  bool rows_independent_in_training() const { return chain_->rows_independent_in_training(); }
  // Whether inference rows are independent (Bijector::
  // rows_independent_in_inference): every bijector's answer. When not,
  // batches are cut only at multiples of kInferenceRowGroup.
  bool rows_independent_in_inference() const { return chain_->rows_independent_in_inference(); }
  // Inference batches (and the shares of ranks) are cut on multiples of this
  // many rows: kInferenceRowGroup when a bijector solves groups of rows
  // together, else 256 (rows are independent; the results of a row do not
  // depend on where the batch is cut, and 256 rows is the smallest block
  // worth a thread).
  Index row_granule() const { return rows_independent_in_inference() ? 256 : kInferenceRowGroup; }
  // Bijector::share_batch_statistics for every bijector of the chain.
  void share_batch_statistics(Ranks* ranks) { chain_->share_batch_statistics(ranks); }

  // log p(x | c) per row; context has one row per row of x (or is empty for
  // an unconditional model). Inference (log_prob, sample) splits large
  // batches into row blocks run on thread_count() threads (threads.hpp:
  // $FLOWS_NUM_THREADS, the pipeline's `threads:`, else every core); the
  // results do not depend on the thread count.
  Vector log_prob(const Matrix& x, const Matrix& context = {}) const;
  // Mean negative log-likelihood of x, evaluated in batches of `batch` rows.
  Real mean_nll(const Matrix& x, const Matrix& context = {}, Index batch = 8192) const;
  // z ~ p_z, x = f⁻¹(z). A conditional model takes n context rows, or one
  // row that every sample shares.
  Matrix sample(Index n, Rng& rng, const Matrix& context = {}) const;
  // Rows [begin, end) of sample(n, rng, context), inverting only those: the
  // base draws of all n rows are made, so that each process of a job can
  // compute its own rows of one sample (0 <= begin <= end <= n).
  Matrix sample_rows(Index n, Rng& rng, const Matrix& context, Index begin, Index end) const;
  // Samples and their log p(x | c), from one pass: log p(x) = log p_z(z) - Σ logdet of inverses.
  Transformed sample_and_log_prob(Index n, Rng& rng, const Matrix& context = {}) const;

  // The training pass of the whole chain on one mini-batch: returns the mean
  // NLL and *accumulates* its gradient into parameters(). Zeroing gradients and
  // stepping the optimizer are the caller's, so that an all-reduce can sit
  // between them. With total_rows > 0 the batch is one row block of a
  // mini-batch of total_rows rows: the loss and gradient are the block's
  // share −(1/total_rows) Σ_block log p, so the blocks' sum is the mean over
  // the mini-batch (training on several threads).
  Real nll_gradient(const Matrix& batch, const Matrix& context = {}, Index total_rows = 0);

  // Where a batch first turns non-finite in the training pass (issue 15): the
  // layers run one by one, forward then backward, and the first layer whose
  // output, log-determinant, input gradient or parameter gradients is
  // non-finite for a row whose input was finite is named. Parameter values
  // and gradients are left as they were. `what` is empty when all is finite.
  struct NonFinite {
    std::string what;  // "bijectors[2] (maf), forward pass", "the base distribution", …
    Index rows = 0;    // rows of the batch it made non-finite (0: parameter gradients only)
  };
  NonFinite find_nonfinite(const Matrix& batch, const Matrix& context = {});

  // The context the chain and the base see for raw context rows (the
  // encoder's output; empty for an unconditional model). DataError when the
  // context does not fit the model (see check_context).
  Matrix encode_context(const Matrix& context, Index rows) const;
  // DataError unless `context` fits the model for `rows` rows of data: n x
  // context_dim() for a conditional model, empty for an unconditional one.
  void check_context(const Matrix& context, Index rows) const;

  // Encoder parameters first, then the base's, then each bijector's in chain order.
  ParameterList parameters();
  // Saves or restores the state of the context encoder ("context/..."), the
  // base ("base/...") and every bijector ("bijector<k>/..." in chain order).
  void visit_state(StateVisitor& visitor);

 private:
  Vector log_prob_rows(const Matrix& x, const Matrix& encoded) const;
  Transformed sample_and_log_prob(Index n, Rng& rng, const Matrix& context, bool with_log_prob,
                                  Index begin, Index end) const;

  std::shared_ptr<BaseDistribution> base_;
  std::shared_ptr<Chain> chain_;
  std::shared_ptr<ContextEncoder> context_;
  Index data_layers_ = 0;
  // Buffers of the training pass, kept to avoid reallocating every step.
  Matrix z_, grad_z_, grad_x_, grad_context_;
  Vector logdet_, grad_logdet_, log_prob_;
};

}  // namespace flows
