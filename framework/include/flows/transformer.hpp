#pragma once
#include "flows/export.hpp"
#include "flows/tensor.hpp"

namespace flows {

// Which columns of a batch a transformer acts on, and where their parameters
// sit in the conditioner's output. Column cols[j] of the data uses parameter p
// from column p * stride + offset + j of the parameter matrix, so one layout
// serves couplings (stride = count, offset 0) and MADE's blocks (stride = D;
// all columns with offset 0, or one column i with offset i).
struct ColumnSet {
  const Index* cols = nullptr;  // data columns, `count` of them
  Index count = 0;
  Index stride = 0;  // distance between a column's successive parameters
  Index offset = 0;  // parameter column of cols[0]'s first parameter
};

// A transformer in the sense of zuko and of Papamakarios et al. 2021
// ("Normalizing Flows for Probabilistic Modeling and Inference", sec. 3.1):
// a strictly increasing elementwise map y = τ(x; θ) whose parameters θ come,
// per element, from a conditioner (coupling network or MADE). It knows
// nothing about where θ comes from. Built by name (registry kind
// "transformer"): `affine` in the SDK, `rational_quadratic` in the spline
// plugin, or a plugin author's own.
class FLOWS_API Transformer {
 public:
  virtual ~Transformer() = default;

  // Number of unconstrained parameters per transformed element.
  virtual Index params_per_dim() const = 0;
  // Reals recorded per element by a forward with a cache, for backward.
  virtual Index cache_size() const = 0;
  // The unconstrained value of parameter p that makes τ the identity (a
  // conditioner whose last layer is zero outputs its biases, set to these).
  virtual Real identity_value(Index p) const = 0;

  // out(:, cols) = τ(in(:, cols)); logdet += Σ_cols log τ'. Other columns of
  // out are left as they are (out may be in). With `cache` non-null, records
  // cache_size() reals per element (element e = row · count + j).
  virtual void forward(const Matrix& in, Matrix& out, Vector& logdet, const ColumnSet& set,
                       const Matrix& params, Real* cache) const = 0;
  // out(:, cols) = τ⁻¹(in(:, cols)); logdet += Σ_cols log (τ⁻¹)'.
  virtual void inverse(const Matrix& in, Matrix& out, Vector& logdet, const ColumnSet& set,
                       const Matrix& params) const = 0;
  // For the forward that filled `cache`: with g = dL/dy (grad_out's columns
  // cols) and γ = dL/dlogdet per row, writes dL/dx = g τ' + γ ∂log τ'/∂x into
  // grad_in(:, cols) and dL/dθ into grad_params (overwriting the set's
  // parameter columns). grad_in may be grad_out.
  virtual void backward(const Real* cache, const Matrix& grad_out, const Vector& grad_logdet,
                        const ColumnSet& set, Matrix& grad_in, Matrix& grad_params) const = 0;
};

}  // namespace flows
