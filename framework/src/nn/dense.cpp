#include "flows/nn/dense.hpp"

#include <algorithm>
#include <string>
#include <xtensor-blas/xblas.hpp>

#include "flows/error.hpp"

namespace flows::nn {

// A batch of zero rows skips BLAS, whose leading dimensions would be invalid.

void dense_forward(const Matrix& x, const Matrix& w, const Real* bias, Matrix& y,
                   bool accumulate) {
  const Index n = x.shape(0), out = w.shape(0);
  if (n == 0) return;
  Real* row = y.data();
  if (bias) {
    if (accumulate)
      for (Index i = 0; i < n; ++i, row += out)
        for (Index j = 0; j < out; ++j) row[j] += bias[j];
    else
      for (Index i = 0; i < n; ++i, row += out) std::copy(bias, bias + out, row);
  }
  const bool add = accumulate || bias != nullptr;
  xt::blas::gemm(x, w, y, false, true, Real(1), add ? Real(1) : Real(0));
}

void dense_input_gradient(const Matrix& grad_y, const Matrix& w, Matrix& grad_x,
                          bool accumulate) {
  if (grad_y.shape(0) == 0) return;
  xt::blas::gemm(grad_y, w, grad_x, false, false, Real(1), accumulate ? Real(1) : Real(0));
}

void dense_weight_gradient(const Matrix& x, const Matrix& grad_y, Matrix& grad_w, Real beta) {
  if (x.shape(0) == 0) {
    if (beta == Real(0)) std::fill(grad_w.begin(), grad_w.end(), Real(0));
    return;
  }
  xt::blas::gemm(grad_y, x, grad_w, true, false, Real(1), beta);
}

void accumulate_bias_gradient(const Matrix& grad_y, Matrix& grad_b) {
  const Index n = grad_y.shape(0), out = grad_y.shape(1);
  Real* db = grad_b.data();
  const Real* row = grad_y.data();
  for (Index i = 0; i < n; ++i, row += out)
    for (Index j = 0; j < out; ++j) db[j] += row[j];
}

void apply_mask(const Matrix& w, const Matrix& mask, Matrix& out) {
  if (out.shape() != w.shape()) out.resize(w.shape());
  xt::noalias(out) = w * mask;
}

Matrix uniform_init(Index rows, Index cols, Real bound, Rng& rng) {
  Matrix m({rows, cols});
  for (Real& v : m) v = bound * (2 * rng.uniform() - 1);
  return m;
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

}  // namespace flows::nn
