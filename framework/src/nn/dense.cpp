#include "flows/nn/dense.hpp"

#include <algorithm>
#include <string>
#include <xtensor-blas/xblas.hpp>

#include "flows/error.hpp"

namespace flows::nn {

// A batch of zero rows skips BLAS, whose leading dimensions would be invalid.

template <class T>
void dense_forward(const MatrixOf<T>& x, const MatrixOf<T>& w, const T* bias, MatrixOf<T>& y,
                   bool accumulate) {
  const Index n = x.shape(0), out = w.shape(0);
  if (n == 0) return;
  T* row = y.data();
  if (bias) {
    if (accumulate)
      for (Index i = 0; i < n; ++i, row += out)
        for (Index j = 0; j < out; ++j) row[j] += bias[j];
    else
      for (Index i = 0; i < n; ++i, row += out) std::copy(bias, bias + out, row);
  }
  const bool add = accumulate || bias != nullptr;
  xt::blas::gemm(x, w, y, false, true, T(1), add ? T(1) : T(0));
}

template <class T>
void dense_input_gradient(const MatrixOf<T>& grad_y, const MatrixOf<T>& w, MatrixOf<T>& grad_x,
                          bool accumulate) {
  if (grad_y.shape(0) == 0) return;
  xt::blas::gemm(grad_y, w, grad_x, false, false, T(1), accumulate ? T(1) : T(0));
}

template <class T>
void dense_weight_gradient(const MatrixOf<T>& x, const MatrixOf<T>& grad_y, MatrixOf<T>& grad_w,
                           T beta) {
  if (x.shape(0) == 0) {
    if (beta == T(0)) std::fill(grad_w.begin(), grad_w.end(), T(0));
    return;
  }
  xt::blas::gemm(grad_y, x, grad_w, true, false, T(1), beta);
}

template <class T>
void accumulate_bias_gradient(const MatrixOf<T>& grad_y, Matrix& grad_b) {
  const Index n = grad_y.shape(0), out = grad_y.shape(1);
  Real* db = grad_b.data();
  const T* row = grad_y.data();
  for (Index i = 0; i < n; ++i, row += out)
    for (Index j = 0; j < out; ++j) db[j] += row[j];
}

template <class T>
void masked_copy(const Matrix& w, const Matrix* mask, MatrixOf<T>& out) {
  if (out.shape() != w.shape()) out.resize(w.shape());
  const Index size = w.size();
  const Real* pw = w.data();
  T* po = out.data();
  if (mask) {
    const Real* pm = mask->data();
    for (Index k = 0; k < size; ++k) po[k] = static_cast<T>(pw[k] * pm[k]);
  } else {
    for (Index k = 0; k < size; ++k) po[k] = static_cast<T>(pw[k]);
  }
}

template <class T>
void add_weight_gradient(const MatrixOf<T>& g, const Matrix* mask, Matrix& grad) {
  const Index size = g.size();
  const T* pg = g.data();
  Real* pd = grad.data();
  if (mask) {
    const Real* pm = mask->data();
    for (Index k = 0; k < size; ++k) pd[k] += pm[k] * static_cast<Real>(pg[k]);
  } else {
    for (Index k = 0; k < size; ++k) pd[k] += static_cast<Real>(pg[k]);
  }
}

template <class T>
void DenseCopy<T>::refresh(const Parameter& w, const Parameter& b, const Matrix* mask) {
  masked_copy(w.value, mask, weight);
  masked_copy(b.value, nullptr, bias);
}

template <class T>
void dense_layer_forward(const DenseCopy<T>& copy, const MatrixOf<T>& x, MatrixOf<T>& y,
                         bool accumulate) {
  const Index n = x.shape(0), out = copy.weight.shape(0);
  if (!accumulate && (y.shape(0) != n || y.shape(1) != out)) y.resize({n, out});
  dense_forward(x, copy.weight, copy.bias.data(), y, accumulate);
}

// y = x (W ⊙ M)ᵀ + b  ⇒  dL/dx = dL/dy (W ⊙ M),  dL/dW = ((dL/dy)ᵀ x) ⊙ M,
// dL/db = Σ_rows dL/dy.
template <class T>
void dense_layer_backward(DenseCopy<T>& copy, Parameter& w, Parameter& b, const Matrix* mask,
                          const MatrixOf<T>& x, const MatrixOf<T>& grad_y, MatrixOf<T>& grad_x,
                          bool accumulate_params) {
  const Index n = x.shape(0), in = copy.weight.shape(1);
  if (grad_x.shape(0) != n || grad_x.shape(1) != in) grad_x.resize({n, in});
  dense_input_gradient(grad_y, copy.weight, grad_x);
  if (!accumulate_params) return;
  if (copy.grad_weight.shape() != copy.weight.shape()) copy.grad_weight.resize(copy.weight.shape());
  dense_weight_gradient(x, grad_y, copy.grad_weight, T(0));
  add_weight_gradient(copy.grad_weight, mask, w.grad);
  accumulate_bias_gradient(grad_y, b.grad);
}

#define FLOWS_DENSE_KERNELS(T)                                                                     \
  template void dense_forward<T>(const MatrixOf<T>&, const MatrixOf<T>&, const T*, MatrixOf<T>&,   \
                                 bool);                                                            \
  template void dense_input_gradient<T>(const MatrixOf<T>&, const MatrixOf<T>&, MatrixOf<T>&,      \
                                        bool);                                                     \
  template void dense_weight_gradient<T>(const MatrixOf<T>&, const MatrixOf<T>&, MatrixOf<T>&, T); \
  template void accumulate_bias_gradient<T>(const MatrixOf<T>&, Matrix&);                          \
  template void masked_copy<T>(const Matrix&, const Matrix*, MatrixOf<T>&);                        \
  template void add_weight_gradient<T>(const MatrixOf<T>&, const Matrix*, Matrix&);                \
  template struct DenseCopy<T>;                                                                    \
  template void dense_layer_forward<T>(const DenseCopy<T>&, const MatrixOf<T>&, MatrixOf<T>&,      \
                                       bool);                                                      \
  template void dense_layer_backward<T>(DenseCopy<T>&, Parameter&, Parameter&, const Matrix*,      \
                                        const MatrixOf<T>&, const MatrixOf<T>&, MatrixOf<T>&,      \
                                        bool);
FLOWS_DENSE_KERNELS(float)
FLOWS_DENSE_KERNELS(double)
#undef FLOWS_DENSE_KERNELS

void apply_mask(const Matrix& w, const Matrix& mask, Matrix& out) {
  if (out.shape() != w.shape()) out.resize(w.shape());
  xt::noalias(out) = w * mask;
}

Matrix uniform_init(Index rows, Index cols, Real bound, Rng& rng) {
  Matrix m({rows, cols});
  for (Real& v : m) v = bound * (2 * rng.uniform() - 1);
  return m;
}

void check_input(const char* layer, Index columns, Index in) {
  if (columns != in)
    throw DataError(std::string(layer) + ": the input has " + std::to_string(columns) +
                    " columns, expected " + std::to_string(in));
}

void check_backward(const char* layer, Index x_rows, Index x_cols, Index grad_rows, Index grad_cols,
                    Index in, Index out) {
  check_input(layer, x_cols, in);
  if (grad_rows != x_rows || grad_cols != out)
    throw DataError(std::string(layer) + ": the output gradient is " + std::to_string(grad_rows) +
                    " x " + std::to_string(grad_cols) + ", expected " + std::to_string(x_rows) +
                    " x " + std::to_string(out));
}

}  // namespace flows::nn
