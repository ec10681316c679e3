#pragma once
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <flows/bijector.hpp>
#include <flows/config.hpp>
#include <flows/nn/made.hpp>
#include <flows/registry.hpp>

namespace flows::maf {

// The `maf` and `iaf` bijectors: `layers` masked autoregressive affine layers
// (masked_affine.hpp), the ordering of each layer reversed (or redrawn) from
// the one before, optionally with batch normalisation between layers, as ONE
// bijector (a chain inside): forward runs the layers in order and adds their
// log-determinants, inverse runs them backwards. As in zuko's MAF, changing the
// MADE ordering from layer to layer replaces explicit permutations of the data.
class AutoregressiveStack final : public Bijector {
 public:
  // `name` ("maf", "iaf") prefixes error messages; each layer's parameters are
  // renamed "<k>.<name>" with k its position in the chain.
  AutoregressiveStack(std::vector<std::unique_ptr<Bijector>> layers, std::string name);

  Index dim() const override { return layers_.front()->dim(); }
  Transformed forward(const Matrix& x, const Matrix& context) const override;
  Transformed inverse(const Matrix& z, const Matrix& context) const override;
  void forward_train(const Matrix& x, const Matrix& context, Matrix& z, Vector& logdet) override;
  void backward(const Matrix& grad_z, const Vector& grad_logdet, Matrix& grad_x) override;
  ParameterList parameters() override { return parameters_; }
  // Parameters, and each MADE layer's ordering as structure ("<k>.order").
  void visit_state(StateVisitor& visitor) override;

  const std::vector<std::unique_ptr<Bijector>>& layers() const { return layers_; }

 private:
  std::vector<std::unique_ptr<Bijector>> layers_;
  std::string name_;
  ParameterList parameters_;
  // Buffers of the training pass, reused across steps.
  std::vector<Matrix> outputs_;  // outputs_[k]: layer k's output (k < K−1)
  std::vector<Vector> logdets_;  // per layer
  Matrix grad_a_, grad_b_;
  Index recorded_rows_ = 0;
  bool recorded_ = false;
};

struct AutoregressiveOptions {
  Index layers = 5;  // autoregressive layers in the stack, ≥ 1
  // The MADE of every layer: hidden (widths, default [64, 64]), activation
  // (relu), residual_blocks (0).
  nn::MadeOptions made;
  std::string order = "natural";    // ordering of the first layer: natural, reversed, random
  std::string permute = "reverse";  // from one layer to the next: reverse, random, none
  bool batch_norm = false;          // batch_norm bijector between consecutive layers
  Real batch_norm_momentum = 0.1;   // its running-average momentum, in (0, 1]
  Real batch_norm_epsilon = 1e-5;   // its variance offset, > 0
  Real log_scale_bound = 5.0;       // B in α = B tanh(r / B): |α| < B, > 0
  bool identity_init = false;       // MADE output layers start at zero: each layer is the identity
  // Seed of random orderings and initial weights; absent: the build context's.
  std::optional<Index> seed;

  static AutoregressiveOptions from(ConfigNode& node);
};

// Factories of `maf` (forward = density direction, one pass per layer) and
// `iaf` (the same layers inverted: sampling is one pass per layer).
std::unique_ptr<Bijector> make_maf(ConfigNode& node, const BuildContext& context);
std::unique_ptr<Bijector> make_iaf(ConfigNode& node, const BuildContext& context);

}  // namespace flows::maf
