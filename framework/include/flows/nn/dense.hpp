#pragma once
// The dense kernels every network of the SDK and its plugins runs on: Linear,
// MaskedLinear, MLP, MADE, the coupling networks and flow matching's velocity
// field. All matrices are contiguous row-major xt::xtensor, so BLAS reads
// them in place; outputs must already have their shapes (see ensure()).
#include "flows/export.hpp"
#include "flows/rng.hpp"
#include "flows/tensor.hpp"

namespace flows::nn {

// y = x wᵀ + b, or y += x wᵀ + b with accumulate (w: out x in; bias: `out`
// values, or null for none). The bias is written first and BLAS adds the
// product (beta = 1), which spares a separate zeroing pass over y.
FLOWS_API void dense_forward(const Matrix& x, const Matrix& w, const Real* bias, Matrix& y,
                             bool accumulate = false);
// grad_x = grad_y w (or += with accumulate).
FLOWS_API void dense_input_gradient(const Matrix& grad_y, const Matrix& w, Matrix& grad_x,
                                    bool accumulate = false);
// grad_w = grad_yᵀ x + beta grad_w.
FLOWS_API void dense_weight_gradient(const Matrix& x, const Matrix& grad_y, Matrix& grad_w,
                                     Real beta);
// grad_b += Σ_rows grad_y.
FLOWS_API void accumulate_bias_gradient(const Matrix& grad_y, Matrix& grad_b);
// out = w ⊙ mask (resized to w's shape).
FLOWS_API void apply_mask(const Matrix& w, const Matrix& mask, Matrix& out);
// A parameter of shape rows x cols drawn from U(-bound, bound).
FLOWS_API Matrix uniform_init(Index rows, Index cols, Real bound, Rng& rng);
// Raises DataError unless x has `in` columns; `layer` names the caller.
FLOWS_API void check_input(const char* layer, const Matrix& x, Index in);
// Raises DataError unless x is n x in and grad_y is n x out.
FLOWS_API void check_backward(const char* layer, const Matrix& x, const Matrix& grad_y, Index in,
                              Index out);

}  // namespace flows::nn
