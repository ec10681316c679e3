#pragma once
#include "flows/export.hpp"
#include "flows/nn/dense.hpp"
#include "flows/parameter.hpp"
#include "flows/rng.hpp"
#include "flows/tensor.hpp"

namespace flows::nn {

// A fully connected layer, y = x Wᵀ + b, with W of shape out x in (as in
// PyTorch's nn.Linear) and b of shape 1 x out; x is n x in, one row per sample.
//
// A layer keeps no record of its input: backward() takes the x of the forward
// pass, as mlpack's layers do, so that containers that hold their activations
// anyway (MLP) copy nothing. Outputs are resized only when their shape
// changes, so calls with reused buffers do not allocate.
class FLOWS_API Linear {
 public:
  // W and b ~ U(-1/sqrt(in), 1/sqrt(in)), PyTorch's default initialisation.
  // in and out must be positive (ConfigError).
  Linear(Index in, Index out, Rng& rng);

  Index in_features() const { return weight_.value.shape(1); }
  Index out_features() const { return weight_.value.shape(0); }

  // y = x Wᵀ + b, computed in T (float or double) from a T copy of W and b
  // refreshed here; backward uses the copy of the last forward.
  template <class T>
  void forward(const MatrixOf<T>& x, MatrixOf<T>& y);
  // y = x Wᵀ + b keeping no state: the T copy goes into `copy` (a caller's
  // buffer reused across calls).
  template <class T>
  void infer(const MatrixOf<T>& x, MatrixOf<T>& y, DenseCopy<T>& copy) const;
  // infer and then f in one pass: y = f(x Wᵀ + b) (dense_layer_infer).
  template <class T>
  void infer(const MatrixOf<T>& x, MatrixOf<T>& y, DenseCopy<T>& copy, const Activation& f) const;
  void infer(const Matrix& x, Matrix& y) const;
  Matrix infer(const Matrix& x) const;

  // Given the input x of the forward pass and dL/dy, writes dL/dx = dL/dy W
  // into grad_x and, unless accumulate_param_grads is false, *adds*
  // dL/dW = (dL/dy)ᵀ x and dL/db = Σ_rows dL/dy to the parameters' (float64)
  // gradients.
  template <class T>
  void backward(const MatrixOf<T>& x, const MatrixOf<T>& grad_y, MatrixOf<T>& grad_x,
                bool accumulate_param_grads = true);

  Parameter& weight() { return weight_; }
  Parameter& bias() { return bias_; }
  const Parameter& weight() const { return weight_; }
  const Parameter& bias() const { return bias_; }
  // {weight, bias}; pointers stay valid while this object lives where it is.
  ParameterList parameters() { return {&weight_, &bias_}; }

 private:
  Parameter weight_;
  Parameter bias_;
  PerPrecision<DenseCopy> copy_;  // of the last forward
};

}  // namespace flows::nn
