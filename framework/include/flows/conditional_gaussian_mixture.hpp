#pragma once
#include <memory>
#include <string>
#include <vector>

#include "flows/config.hpp"
#include "flows/distribution.hpp"
#include "flows/export.hpp"
#include "flows/nn/mlp.hpp"
#include "flows/rng.hpp"

namespace flows {

struct BuildContext;

// A mixture of K diagonal Gaussians whose weights, means and scales depend on
// the (encoded) context e, a mixture density network as the base of a
// conditional flow (Bishop 1994, "Mixture Density Networks"; the MAF paper's
// MoG base, Papamakarios et al. 2017, made conditional):
//   p(z | e) = Σ_k π_k(e) N(z; μ_k(e), diag σ_k(e)²),   π(e) = softmax(a(e)),
// with [a | μ | log σ] (K + 2Kd columns) = MLP(e). The MLP's last layer starts
// with zero weights and the biases of an unconditional mixture (equal
// weights, means drawn from N(0, init_spread²), log σ = log_scale), so it
// starts as `gaussian_mixture` does for every context.
class FLOWS_API ConditionalGaussianMixture : public BaseDistribution {
 public:
  struct Options {
    Precision precision = Precision::float64;  // what the network computes in
    Index components = 5;                      // K ≥ 1
    Real init_spread = 1.0;           // spread of the initial means (> 0 breaks the symmetry)
    Real log_scale = 0.0;             // initial log σ of every component and dimension
    std::vector<Index> hidden{64};    // hidden widths of the network; [] is linear in e
    std::string activation = "relu";  // between hidden layers (nn::Activation names)

    // Reads the keys above and finishes the node.
    static Options from(ConfigNode& node);
  };

  // dim ≥ 1 and context_dim ≥ 1 (ConfigError otherwise).
  ConditionalGaussianMixture(Index dim, Index context_dim, const Options& options, Rng& rng);

  Index dim() const override { return dim_; }
  Index context_dim() const override { return context_dim_; }
  Index components() const { return components_; }
  Vector log_prob(const Matrix& z, const Matrix& context) const override;
  // Each row: a component k ~ π(e), then μ_k(e) + σ_k(e) ⊙ ε.
  Matrix sample(Index n, const Matrix& context, Rng& rng) const override;
  void log_prob_backward(const Matrix& z, const Matrix& context, const Vector& grad_log_prob,
                         Matrix& grad_z, Matrix* grad_context) override;
  ParameterList parameters() override { return network_.parameters(); }

  // The mixture's parameters for each context row: [a | μ | log σ].
  Matrix mixture_parameters(const Matrix& context) const;

 private:
  void check_context(const Matrix& context, Index rows, const char* call) const;
  // log π_k + log N_k(z_i) of row i, component k (n x K), from row parameters.
  Matrix component_log_probs(const Matrix& z, const Matrix& params) const;

  Index dim_, context_dim_, components_;
  nn::MLP network_;
  Matrix out_, grad_out_, grad_context_;  // training buffers
};

// Factory of `conditional_gaussian_mixture`; ConfigError without a context.
FLOWS_API std::unique_ptr<BaseDistribution> make_conditional_gaussian_mixture(
    ConfigNode& node, const BuildContext& context);

}  // namespace flows
