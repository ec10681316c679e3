#pragma once
#include <memory>
#include <string>
#include <vector>

#include "flows/config.hpp"
#include "flows/distribution.hpp"
#include "flows/export.hpp"
#include "flows/nn/activation.hpp"
#include "flows/nn/mlp.hpp"
#include "flows/rng.hpp"

namespace flows {

struct BuildContext;

// A conditional base density whose mean and log-scale are functions of the
// (encoded) context e, as nflows' ConditionalDiagonalNormal:
//   p(z | e) = N(z; μ(e), diag σ(e)²),   [μ(e) | log σ(e)] = MLP(e),
// a network from context_dim inputs to 2·dim outputs (μ first). Its last
// layer starts at zero, so before training p(z | e) = N(0, I) for every e.
class FLOWS_API ConditionalDiagonalNormal : public BaseDistribution {
 public:
  struct Options {
    std::vector<Index> hidden{64};    // widths of the hidden layers; [] is a linear map of e
    std::string activation = "relu";  // between hidden layers (nn::Activation names)
    Precision precision = Precision::float64;  // what the network computes in

    // Reads `hidden` and `activation` and finishes the node (ConfigError on a bad value).
    static Options from(ConfigNode& node);
  };

  // dim ≥ 1 and context_dim ≥ 1 (ConfigError otherwise); rng draws the
  // hidden layers' initial weights.
  ConditionalDiagonalNormal(Index dim, Index context_dim, const Options& options, Rng& rng);

  Index dim() const override { return dim_; }
  Index context_dim() const override { return context_dim_; }
  // context: one row per row of z, context_dim() columns (DataError otherwise).
  Vector log_prob(const Matrix& z, const Matrix& context) const override;
  // context: n rows.
  Matrix sample(Index n, const Matrix& context, Rng& rng) const override;
  void log_prob_backward(const Matrix& z, const Matrix& context, const Vector& grad_log_prob,
                         Matrix& grad_z, Matrix* grad_context) override;
  ParameterList parameters() override { return network_.parameters(); }

  // μ and log σ for each context row (n x dim each), as log_prob sees them.
  void mean_and_log_scale(const Matrix& context, Matrix& mean, Matrix& log_scale) const;
  nn::MLP& network() { return network_; }

 private:
  void check_context(const Matrix& context, Index rows, const char* call) const;

  Index dim_;
  Index context_dim_;
  nn::MLP network_;
  Matrix out_, grad_out_, grad_context_;  // training buffers
};

// Factory of `conditional_diagonal_normal`: ConfigError when the model has no
// context (context.context_dim == 0), naming the data's context_columns.
FLOWS_API std::unique_ptr<BaseDistribution> make_conditional_diagonal_normal(
    ConfigNode& node, const BuildContext& context);

}  // namespace flows
