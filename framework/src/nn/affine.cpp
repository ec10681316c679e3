#include "affine.hpp"

#include <string>
#include <xtensor-blas/xblas.hpp>

#include "flows/error.hpp"

namespace flows::nn::detail {

// BLAS reads the row-major xtensors in place (view_eval returns them
// unchanged); a batch of zero rows skips BLAS, whose leading dimensions would
// be invalid.

void affine_forward(const Matrix& x, const Matrix& w, const Matrix& b, Matrix& y) {
  const Index n = x.shape(0);
  const Index out = w.shape(0);
  if (n == 0) return;
  xt::blas::gemm(x, w, y, false, true);
  const Real* bias = b.data();
  Real* row = y.data();
  for (Index i = 0; i < n; ++i, row += out)
    for (Index j = 0; j < out; ++j) row[j] += bias[j];
}

void affine_input_gradient(const Matrix& grad_y, const Matrix& w, Matrix& grad_x) {
  if (grad_y.shape(0) == 0) return;
  xt::blas::gemm(grad_y, w, grad_x, false, false);
}

void affine_weight_gradient(const Matrix& x, const Matrix& grad_y, Matrix& grad_w, Real beta) {
  if (x.shape(0) == 0) {
    if (beta == Real(0)) std::fill(grad_w.begin(), grad_w.end(), Real(0));
    return;
  }
  xt::blas::gemm(grad_y, x, grad_w, true, false, Real(1), beta);
}

void accumulate_bias_gradient(const Matrix& grad_y, Matrix& grad_b) {
  const Index n = grad_y.shape(0);
  const Index out = grad_y.shape(1);
  Real* db = grad_b.data();
  const Real* row = grad_y.data();
  for (Index i = 0; i < n; ++i, row += out)
    for (Index j = 0; j < out; ++j) db[j] += row[j];
}

void check_input(const char* layer, const Matrix& x, Index in) {
  if (x.shape(1) != in)
    throw DataError(std::string(layer) + ": the input has " + std::to_string(x.shape(1)) +
                    " columns, expected " + std::to_string(in));
}

void check_backward(const char* layer, const Matrix& x, const Matrix& grad_y, Index in, Index out) {
  check_input(layer, x, in);
  if (grad_y.shape(0) != x.shape(0) || grad_y.shape(1) != out)
    throw DataError(std::string(layer) + ": the output gradient is " +
                    std::to_string(grad_y.shape(0)) + " x " + std::to_string(grad_y.shape(1)) +
                    ", expected " + std::to_string(x.shape(0)) + " x " + std::to_string(out));
}

Matrix uniform_init(Index rows, Index cols, Real bound, Rng& rng) {
  Matrix m({rows, cols});
  for (Real& v : m) v = bound * (2 * rng.uniform() - 1);
  return m;
}

}  // namespace flows::nn::detail
