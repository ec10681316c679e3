#pragma once
// Private to the SDK: the dense kernels Linear and MaskedLinear share. All
// matrices are contiguous row-major xt::xtensor, so BLAS reads them in place;
// outputs must already have their shapes.
#include "flows/rng.hpp"
#include "flows/tensor.hpp"

namespace flows::nn::detail {

// y = x wᵀ + b (w: out x in, b: 1 x out).
void affine_forward(const Matrix& x, const Matrix& w, const Matrix& b, Matrix& y);
// grad_x = grad_y w.
void affine_input_gradient(const Matrix& grad_y, const Matrix& w, Matrix& grad_x);
// grad_w = (grad_y)ᵀ x + beta grad_w.
void affine_weight_gradient(const Matrix& x, const Matrix& grad_y, Matrix& grad_w, Real beta);
// grad_b += Σ_rows grad_y.
void accumulate_bias_gradient(const Matrix& grad_y, Matrix& grad_b);
// Raises DataError unless x has `in` columns.
void check_input(const char* layer, const Matrix& x, Index in);
// Raises DataError unless x is n x in and grad_y is n x out.
void check_backward(const char* layer, const Matrix& x, const Matrix& grad_y, Index in, Index out);
// A parameter of shape rows x cols drawn from U(-bound, bound).
Matrix uniform_init(Index rows, Index cols, Real bound, Rng& rng);

}  // namespace flows::nn::detail
