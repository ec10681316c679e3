#pragma once
#include <memory>
#include <string>
#include <vector>

#include "flows/bijector.hpp"
#include "flows/export.hpp"

namespace flows {

// The composition f = f_K ∘ … ∘ f_1 of bijectors (data side first): forward
// runs the layers in order and adds their log-determinants,
//   log|det ∂f/∂x| = Σ_k log|det ∂f_k/∂(input of f_k)|,
// inverse runs them backwards, and the training pass stores each layer's
// output so that backward can hand dL/dz from layer to layer. Every layer
// gets the same context (unconditional layers ignore it) and adds its dL/dc.
// Flow is a chain and a base distribution; multi-layer bijectors (maf, the
// coupling and autoregressive stacks) are chains.
class FLOWS_API Chain final : public Bijector {
 public:
  // Every layer must have dimension `dim`; the conditional ones must agree on
  // their context width, which becomes the chain's. The state of layer k is
  // visited under "<state_prefix><k>/". With rename_parameters, layer k's
  // parameters are renamed "<k>.<name>" so that the chain's names are unique,
  // and its other state is visited under "<k>." (a Flow's chain keeps its
  // bijectors' names: its state is scoped by state_prefix).
  Chain(std::string name, Index dim, std::vector<std::shared_ptr<Bijector>> layers,
        std::string state_prefix = "layer", bool rename_parameters = true);

  const std::vector<std::shared_ptr<Bijector>>& layers() const { return layers_; }
  // Puts a layer at the front (the data standardization); names are not changed.
  void prepend(std::shared_ptr<Bijector> layer);

  ParameterList parameters() override { return parameters_; }
  void visit_state(StateVisitor& visitor) override;
  // Every layer's.
  bool rows_independent_in_training() const override;
  bool rows_independent_in_inference() const override;
  void share_batch_statistics(Ranks* ranks) override;  // every layer's

 private:
  Transformed forward_impl(const Matrix& x, const Matrix& context) const override;
  Transformed inverse_impl(const Matrix& z, const Matrix& context) const override;
  void forward_train_impl(const Matrix& x, const Matrix& context, Matrix& z,
                          Vector& logdet) override;
  void backward_impl(const Matrix& grad_z, const Vector& grad_logdet, Matrix& grad_x,
                     Matrix* grad_context) override;
  // Runs the layers (forward, or backwards for the inverse) on blocks of rows.
  Transformed run(const Matrix& input, const Matrix& context, bool inverse) const;
  void refresh();

  std::vector<std::shared_ptr<Bijector>> layers_;
  std::string state_prefix_;
  bool renamed_ = false;
  ParameterList parameters_;
  // Buffers of the training pass, reused across steps.
  std::vector<Matrix> outputs_;  // outputs_[k]: layer k's output (k < K−1)
  std::vector<Vector> logdets_;
  Matrix grad_a_, grad_b_;
};

// The context width shared by the conditional bijectors among `layers` (0 when
// none is conditional); ConfigError naming `who` when two disagree.
FLOWS_API Index shared_context_dim(const std::vector<std::shared_ptr<Bijector>>& layers,
                                   const std::string& who);

}  // namespace flows
