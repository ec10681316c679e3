#pragma once
#include <memory>
#include <vector>

#include "flows/bijector.hpp"
#include "flows/distribution.hpp"
#include "flows/export.hpp"
#include "flows/rng.hpp"

namespace flows {

// A normalizing flow: a chain of bijectors from data x to latent z, and a base
// density on z. With z = f_K ∘ … ∘ f_1 (x),
//   log p(x) = log p_z(z) + Σ_k log|det ∂f_k/∂(input of f_k)|.
class FLOWS_API Flow {
 public:
  Flow(std::shared_ptr<BaseDistribution> base, std::vector<std::shared_ptr<Bijector>> chain);

  Index dim() const { return base_->dim(); }
  BaseDistribution& base() { return *base_; }
  const std::vector<std::shared_ptr<Bijector>>& chain() const { return chain_; }
  // Puts a bijector at the front of the chain (the data standardization).
  void prepend(std::shared_ptr<Bijector> bijector);

  // log p(x) per row. Inference (log_prob, sample) splits large batches into
  // row blocks run on $FLOWS_NUM_THREADS threads (default: every core).
  Vector log_prob(const Matrix& x, const Matrix& context = {}) const;
  // Mean negative log-likelihood of x, evaluated in batches of `batch` rows.
  Real mean_nll(const Matrix& x, Index batch = 8192) const;
  // z ~ p_z, x = f⁻¹(z).
  Matrix sample(Index n, Rng& rng, const Matrix& context = {}) const;
  // Samples and their log p(x), from one pass: log p(x) = log p_z(z) - Σ logdet of inverses.
  Transformed sample_and_log_prob(Index n, Rng& rng, const Matrix& context = {}) const;

  // The training pass of the whole chain on one mini-batch: returns the mean
  // NLL and *accumulates* its gradient into parameters(). Zeroing gradients and
  // stepping the optimizer are the caller's, so that an all-reduce can sit
  // between them.
  Real nll_gradient(const Matrix& batch, const Matrix& context = {});

  // Base parameters first, then each bijector's in chain order.
  ParameterList parameters();
  // Saves or restores the state of the base ("base/...") and of every
  // bijector ("bijector<k>/..." in chain order).
  void visit_state(StateVisitor& visitor);

 private:
  Vector log_prob_rows(const Matrix& x, const Matrix& context) const;
  Transformed sample_and_log_prob(Index n, Rng& rng, const Matrix& context,
                                  bool with_log_prob) const;

  std::shared_ptr<BaseDistribution> base_;
  std::vector<std::shared_ptr<Bijector>> chain_;
  // Buffers of the training pass, kept to avoid reallocating every step.
  std::vector<Matrix> activations_;
  std::vector<Vector> logdets_;
  Matrix grad_a_, grad_b_;
  Vector grad_logdet_, log_prob_;
};

}  // namespace flows
