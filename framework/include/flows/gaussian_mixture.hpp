#pragma once
#include <memory>

#include "flows/config.hpp"
#include "flows/distribution.hpp"
#include "flows/export.hpp"
#include "flows/rng.hpp"

namespace flows {

struct BuildContext;

// A mixture of K diagonal Gaussians as the base density (the MAF paper's
// "MAF MoG", Papamakarios et al. 2017, Sec. 3.3 and 4):
//   p(z) = Σ_k π_k N(z; μ_k, diag σ_k²),   π = softmax(logits),
// with trainable logits (1 x K), means (K x d) and log-scales (K x d).
// log_prob uses log-sum-exp over the components; the gradients are by hand
// with the responsibilities r_k(z) = π_k N_k(z) / p(z):
//   ∂log p/∂z_j = −Σ_k r_k u_kj / σ_kj,   u_kj = (z_j − μ_kj)/σ_kj,
//   ∂log p/∂μ_kj = r_k u_kj / σ_kj,  ∂log p/∂log σ_kj = r_k (u_kj² − 1),
//   ∂log p/∂logit_k = r_k − π_k.
// Unconditional (context_dim() = 0): a conditional mixture is not built.
class FLOWS_API GaussianMixture : public BaseDistribution {
 public:
  struct Options {
    Index components = 5;  // K ≥ 1
    Real init_spread =
        1.0;  // the initial means are N(0, init_spread²) draws (> 0 breaks the symmetry)
    Real log_scale = 0.0;  // initial log σ of every component and dimension

    // Reads components, init_spread, log_scale and finishes the node.
    static Options from(ConfigNode& node);
  };

  // rng draws the initial means; every weight starts at 1/K.
  GaussianMixture(Index dim, const Options& options, Rng& rng);

  Index dim() const override { return means_.value.shape(1); }
  Index context_dim() const override { return 0; }
  Index components() const { return means_.value.shape(0); }
  Vector log_prob(const Matrix& z, const Matrix& context) const override;
  // Each row: a component k ~ π, then μ_k + σ_k ⊙ ε.
  Matrix sample(Index n, const Matrix& context, Rng& rng) const override;
  void log_prob_backward(const Matrix& z, const Matrix& context, const Vector& grad_log_prob,
                         Matrix& grad_z, Matrix* grad_context) override;
  ParameterList parameters() override { return {&logits_, &means_, &log_scales_}; }

  // The mixture weights π (1 x K).
  Matrix weights() const;
  Parameter& logits() { return logits_; }
  Parameter& means() { return means_; }
  Parameter& log_scales() { return log_scales_; }

 private:
  // log π_k + log N_k(z_i) for every row and component (n x K).
  Matrix component_log_probs(const Matrix& z) const;

  Parameter logits_;
  Parameter means_;
  Parameter log_scales_;
};

// log Σ_c exp(a_c) over the k values at a (the mixtures' log-sum-exp).
FLOWS_API Real log_sum_exp(const Real* a, Index k);

// Factory of `gaussian_mixture` (keys: components, init_spread, log_scale).
FLOWS_API std::unique_ptr<BaseDistribution> make_gaussian_mixture(ConfigNode& node,
                                                                  const BuildContext& context);

}  // namespace flows
