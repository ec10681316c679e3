#pragma once
#include <flows/tensor.hpp>

namespace flows::spline {

// Which columns of a batch an elementwise transform acts on, and where their
// parameters sit in the conditioner's output. Column cols[j] of the data uses
// parameter p from column p * stride + offset + j of the parameter matrix, so
// one layout serves couplings (stride = count, offset 0) and MADE's blocks
// (stride = D; all columns with offset 0, or one column i with offset i).
struct ColumnSet {
  const Index* cols = nullptr;  // data columns, `count` of them
  Index count = 0;
  Index stride = 0;  // distance between a column's successive parameters
  Index offset = 0;  // parameter column of cols[0]'s first parameter
};

// A monotone elementwise map y = τ(x; θ) whose parameters θ come per element
// from a conditioner: the transformer of a coupling or autoregressive layer
// (the rational-quadratic spline, the affine map of RealNVP).
class ElementwiseTransform {
 public:
  virtual ~ElementwiseTransform() = default;

  // Number of unconstrained parameters per transformed element.
  virtual Index params_per_dim() const = 0;
  // Reals recorded per element by forward_train for backward.
  virtual Index cache_size() const = 0;
  // The unconstrained value of parameter p that makes τ the identity (with a
  // zero last layer, the conditioner outputs its biases).
  virtual Real identity_value(Index p) const = 0;

  // out(:, cols) = τ(in(:, cols)); logdet += Σ_cols log τ'. Other columns of
  // out are left as they are. With `cache` non-null, records cache_size()
  // reals per element (element e = row · count + j).
  virtual void forward(const Matrix& in, Matrix& out, Vector& logdet, const ColumnSet& set,
                       const Matrix& params, Real* cache) const = 0;
  // out(:, cols) = τ⁻¹(in(:, cols)); logdet += Σ_cols log (τ⁻¹)'.
  virtual void inverse(const Matrix& in, Matrix& out, Vector& logdet, const ColumnSet& set,
                       const Matrix& params) const = 0;
  // For the forward that filled `cache`: with g = dL/dy (grad_out's columns
  // cols) and γ = dL/dlogdet, writes dL/dx into grad_in(:, cols) and dL/dθ
  // into grad_params (overwriting the set's parameter columns).
  virtual void backward(const Real* cache, const Matrix& grad_out, const Vector& grad_logdet,
                        const ColumnSet& set, Matrix& grad_in, Matrix& grad_params) const = 0;
};

}  // namespace flows::spline
