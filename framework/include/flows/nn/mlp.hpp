#pragma once
#include <vector>

#include "flows/export.hpp"
#include "flows/nn/activation.hpp"
#include "flows/nn/linear.hpp"
#include "flows/nn/masked_linear.hpp"
#include "flows/parameter.hpp"
#include "flows/rng.hpp"
#include "flows/tensor.hpp"

namespace flows::nn {

// A multilayer perceptron: affine layers with the activation after every layer
// but the last,
//   h₀ = x,  hₖ = f(hₖ₋₁ Wₖᵀ + bₖ) for k < L,  y = h_{L-1} W_Lᵀ + b_L.
// Built either from sizes (Linear layers) or from one 0/1 mask per layer
// (MaskedLinear layers); with the masks of made_masks() it is a MADE.
//
// Inputs and outputs are float64; inside, the products and activations run in
// the network's precision (float32 or float64; see precision.hpp), and the
// parameters and their gradients stay float64.
//
// forward() records the activations backward() needs, in member buffers that
// are reused while the batch shape stays the same, so a training step does
// not allocate. infer() keeps no state; with a Workspace it reuses buffers.
class FLOWS_API MLP {
 public:
  // in → hidden[0] → … → hidden.back() → out; `hidden` may be empty (one
  // affine layer). All sizes must be positive (ConfigError).
  MLP(Index in, const std::vector<Index>& hidden, Index out, Activation activation, Rng& rng,
      Precision precision = Precision::float64);
  // One MaskedLinear per mask: masks[k] is out_k x in_k (the shape of layer
  // k's weight) and in_{k+1} = out_k (ConfigError otherwise).
  MLP(const std::vector<Matrix>& masks, Activation activation, Rng& rng,
      Precision precision = Precision::float64);

  Index in_features() const;
  Index out_features() const;
  Index num_layers() const { return masked() ? masked_.size() : dense_.size(); }
  bool masked() const { return !masked_.empty(); }
  const Activation& activation() const { return activation_; }
  Precision precision() const { return precision_; }

  // Training forward pass; records the activations for backward().
  void forward(const Matrix& x, Matrix& y);
  // For the last forward(): writes dL/dx into grad_x and, unless
  // accumulate_param_grads is false, *adds* dL/dθ to every layer's gradients.
  // With false it is a vector-Jacobian product with respect to the input only
  // (grad_yᵀ ∂y/∂x), e.g. for a divergence in a continuous flow.
  void backward(const Matrix& grad_y, Matrix& grad_x, bool accumulate_param_grads = true);

  // The buffers of one pass in the compute type T.
  template <class T>
  struct Buffers {
    std::vector<MatrixOf<T>> inputs, pre, grad;  // training record (see mlp.cpp)
    MatrixOf<T> out, grad_out, grad_in, h, a;
    std::vector<DenseCopy<T>> copies;  // infer's weight copies
  };
  // Buffers for infer(); reusable across calls of any batch size.
  struct Workspace {
    PerPrecision<Buffers> buffers;
  };
  // y for x, keeping no state.
  void infer(const Matrix& x, Matrix& y, Workspace& workspace) const;
  void infer(const Matrix& x, Matrix& y) const;
  Matrix infer(const Matrix& x) const;

  // layer0.weight, layer0.bias, layer1.weight, …; pointers stay valid while
  // this object lives where it is (a move keeps them: layers live on the heap).
  ParameterList parameters();
  // Layer k's parameters (e.g. to zero the last layer so a flow starts as the
  // identity).
  Parameter& weight(Index layer);
  Parameter& bias(Index layer);

 private:
  template <class F>
  void with_layer(Index k, F&& f);
  template <class F>
  void with_layer(Index k, F&& f) const;
  void name_parameters();
  template <class T>
  void forward_as(const Matrix& x, Matrix& y);
  template <class T>
  void backward_as(const Matrix& grad_y, Matrix& grad_x, bool accumulate_param_grads);
  template <class T>
  void infer_as(const Matrix& x, Matrix& y, Buffers<T>& b) const;

  std::vector<Linear> dense_;         // the layers when unmasked
  std::vector<MaskedLinear> masked_;  // the layers when masked
  Activation activation_;
  Precision precision_;

  // Training record of the last forward, in the network's precision.
  PerPrecision<Buffers> record_;
  bool recorded_ = false;
};

}  // namespace flows::nn
