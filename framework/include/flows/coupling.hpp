#pragma once
#include <memory>
#include <string>
#include <vector>

#include "flows/bijector.hpp"
#include "flows/config.hpp"
#include "flows/diagnostics.hpp"
#include "flows/export.hpp"
#include "flows/nn/activation.hpp"
#include "flows/nn/mlp.hpp"
#include "flows/registry.hpp"
#include "flows/rng.hpp"
#include "flows/transformer.hpp"

namespace flows {

// One coupling layer (Dinh, Krueger & Bengio 2015; Dinh, Sohl-Dickstein &
// Bengio 2017, "Density estimation using Real NVP", sec. 3.2-3.4): the
// columns split into a conditioning set A and a transformed set B, and
//   z_A = x_A,   z_B = τ(x_B; θ(x_A, c)),   log|det| = Σ_{j∈B} log τ'(x_j),
// with θ an MLP of x_A concatenated with the context c. The inverse is as
// cheap: θ depends on x_A = z_A only. With nothing to condition on (a 1-D
// flow without context) θ is a learned constant row: an unconditional
// elementwise transform.
class FLOWS_API CouplingLayer final : public Bijector, public Diagnosable {
 public:
  CouplingLayer(std::string name, Index dim, std::vector<Index> conditioning,
                std::vector<Index> transformed, Index context_dim, const std::vector<Index>& hidden,
                nn::Activation activation, std::shared_ptr<const Transformer> transformer,
                bool identity_init, Rng& rng, Precision precision = Precision::float64);

  const std::vector<Index>& conditioning() const { return cond_; }
  const std::vector<Index>& transformed() const { return trans_; }

  // With a bounded transformer (the spline): the share of the transformed
  // columns outside [-B, B] and the bound covering them.
  std::vector<Finding> diagnose(const Matrix& x, const Matrix& context) const override;

  ParameterList parameters() override;
  // Parameters, and the column split as structure.
  void visit_state(StateVisitor& visitor) override;

 private:
  Transformed forward_impl(const Matrix& x, const Matrix& context) const override;
  Transformed inverse_impl(const Matrix& z, const Matrix& context) const override;
  void forward_train_impl(const Matrix& x, const Matrix& context, Matrix& z,
                          Vector& logdet) override;
  void backward_impl(const Matrix& grad_z, const Vector& grad_logdet, Matrix& grad_x,
                     Matrix* grad_context) override;
  // [x_A, c]: the network's input.
  void gather(const Matrix& x, const Matrix& context, Matrix& out) const;
  void parameters_of(const Matrix& input, Matrix& theta) const;
  ColumnSet column_set() const;

  std::vector<Index> cond_, trans_;
  std::shared_ptr<const Transformer> transformer_;
  std::unique_ptr<nn::MLP> net_;  // null when there is no input: then constant_ is θ
  Parameter constant_;
  // Training buffers, reused while the batch size stays the same.
  Matrix input_, theta_, grad_theta_, grad_input_;
  std::vector<Real> cache_;
};

// The keys every coupling flow shares (coupling, nsf_coupling, affine_coupling).
struct FLOWS_API CouplingOptions {
  Index layers = 5;                   // coupling layers (masks alternate between them)
  std::vector<Index> hidden{64, 64};  // hidden widths of each layer's network
  std::string activation = "relu";    // nonlinearity between hidden layers
  // Each network's last layer starts at zero with the transformer's identity
  // parameters as biases, so the stack starts as the identity map.
  bool identity_init = true;
  // Which columns the first layer transforms; the next layer swaps the two
  // sets. halves: the second half of the columns, and from the second pair
  // of layers on, halves of a random permutation (D ≥ 3); alternate: the odd
  // columns (RealNVP's checkerboard in 1-D); random: a random half per pair;
  // or an explicit list of 0/1 per column (1 = transformed in the first layer).
  std::string mask = "halves";
  std::vector<Index> explicit_mask;

  // Reads and checks the keys above, without finish().
  static CouplingOptions read(ConfigNode& node);
};

// `options.layers` coupling layers with `transformer` as one Chain named `name`.
FLOWS_API std::unique_ptr<Bijector> make_coupling_stack(
    const std::string& name, const CouplingOptions& options,
    std::shared_ptr<const Transformer> transformer, const BuildContext& context);

// Factory of `coupling`: CouplingOptions and `transformer: {type: …}` (affine by default).
FLOWS_API std::unique_ptr<Bijector> make_coupling(ConfigNode& node, const BuildContext& context);

}  // namespace flows
