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

// Column sums in registers: 64 columns at a time are summed in T over 64
// rows, then added to the float64 gradient. Adding each row straight into
// the gradient chains every row's add behind the previous row's store.
template <class T>
void accumulate_bias_gradient(const MatrixOf<T>& grad_y, Matrix& grad_b) {
  constexpr Index kCols = 64, kRows = 64;
  const Index n = grad_y.shape(0), out = grad_y.shape(1);
  Real* db = grad_b.data();
  const T* y = grad_y.data();
  Index j0 = 0;
  for (; j0 + kCols <= out; j0 += kCols)
    for (Index i0 = 0; i0 < n; i0 += kRows) {
      T sum[kCols] = {};
      for (Index i = i0; i < std::min(n, i0 + kRows); ++i) {
        const T* row = y + i * out + j0;
        for (Index j = 0; j < kCols; ++j) sum[j] += row[j];
      }
      for (Index j = 0; j < kCols; ++j) db[j0 + j] += sum[j];
    }
  for (Index i = 0; i < n; ++i)
    for (Index j = j0; j < out; ++j) db[j] += y[i * out + j];
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
  dense_layer_input_gradient(copy, nullptr, grad_y, grad_x);
  if (!accumulate_params) return;
  dense_layer_weight_gradient(copy, nullptr, x, grad_y);
  add_weight_gradient(copy.grad_weight, mask, w.grad);
  accumulate_bias_gradient(grad_y, b.grad);
}

namespace {

// C = alpha op(A) op(B) + beta C on row-major sub-matrices (leading
// dimensions lda, ldb, ldc), through the BLAS that xtensor-blas calls.
template <class T>
void gemm_rows(bool trans_a, bool trans_b, Index m, Index n, Index k, const T* a, Index lda,
               const T* b, Index ldb, T beta, T* c, Index ldc) {
  using I = xt::blas_index_t;
  if (m == 0 || n == 0) return;
  if (k == 0) {  // an empty product: only the scaling of C
    for (Index i = 0; i < m; ++i)
      for (Index j = 0; j < n; ++j) c[i * ldc + j] = beta == T(0) ? T(0) : beta * c[i * ldc + j];
    return;
  }
  cxxblas::gemm<I>(cxxblas::StorageOrder::RowMajor,
                   trans_a ? cxxblas::Transpose::Trans : cxxblas::Transpose::NoTrans,
                   trans_b ? cxxblas::Transpose::Trans : cxxblas::Transpose::NoTrans, I(m), I(n),
                   I(k), T(1), a, I(lda), b, I(ldb), beta, c, I(ldc));
}

}  // namespace

std::vector<RowBlock> plan_row_blocks(const Matrix& mask, Index rows_per_block) {
  const Index rows = mask.shape(0), cols = mask.shape(1);
  const Index step = std::max<Index>(rows_per_block, 1);
  auto extent = [&](Index i) {  // one past the row's last nonzero column
    for (Index j = cols; j > 0; --j)
      if (mask(i, j - 1) != 0) return j;
    return Index(0);
  };
  std::vector<RowBlock> blocks;
  Index used = 0;  // multiply-adds per input row with the blocks
  for (Index begin = 0; begin < rows;) {
    // A run of rows without inputs (a MADE's outputs for its first input,
    // which see no hidden unit) is a block of its own: only its bias is
    // computed.
    const bool empty = extent(begin) == 0;
    Index end = begin, col_end = 0;
    for (; end < rows && end - begin < step; ++end) {
      const Index e = extent(end);
      if ((e == 0) != empty) break;
      col_end = std::max(col_end, e);
    }
    blocks.push_back({begin, end, col_end});
    used += (end - begin) * col_end;
    begin = end;
  }
  if (8 * used > 7 * rows * cols) return {RowBlock{0, rows, cols}};
  return blocks;
}

template <class T>
void blocked_forward(const MatrixOf<T>& x, const MatrixOf<T>& w, const T* bias,
                     const std::vector<RowBlock>& blocks, MatrixOf<T>& y, bool accumulate) {
  const Index n = x.shape(0), in = w.shape(1), out = w.shape(0);
  if (n == 0) return;
  if (bias) {
    T* row = y.data();
    for (Index i = 0; i < n; ++i, row += out)
      for (Index j = 0; j < out; ++j) row[j] = accumulate ? row[j] + bias[j] : bias[j];
  }
  const T beta = accumulate || bias ? T(1) : T(0);
  for (const RowBlock& b : blocks)
    gemm_rows<T>(false, true, n, b.row_end - b.row_begin, b.col_end, x.data(), in,
                 w.data() + b.row_begin * in, in, beta, y.data() + b.row_begin, out);
}

template <class T>
void blocked_input_gradient(const MatrixOf<T>& grad_y, const MatrixOf<T>& w,
                            const std::vector<RowBlock>& blocks, MatrixOf<T>& grad_x) {
  const Index n = grad_y.shape(0), in = w.shape(1), out = w.shape(0);
  if (n == 0) return;
  // When the first block sees every input, its product overwrites dL/dx;
  // otherwise every block adds to zeros.
  const bool first_writes_all = !blocks.empty() && blocks.front().col_end == in;
  if (!first_writes_all) std::fill(grad_x.begin(), grad_x.end(), T(0));
  for (std::size_t k = 0; k < blocks.size(); ++k) {
    const RowBlock& b = blocks[k];
    const T beta = k == 0 && first_writes_all ? T(0) : T(1);
    gemm_rows<T>(false, false, n, b.col_end, b.row_end - b.row_begin, grad_y.data() + b.row_begin,
                 out, w.data() + b.row_begin * in, in, beta, grad_x.data(), in);
  }
}

template <class T>
void blocked_weight_gradient(const MatrixOf<T>& x, const MatrixOf<T>& grad_y,
                             const std::vector<RowBlock>& blocks, MatrixOf<T>& grad_w) {
  const Index n = x.shape(0), in = grad_w.shape(1), out = grad_w.shape(0);
  for (const RowBlock& b : blocks) {
    if (n == 0) {
      for (Index i = b.row_begin; i < b.row_end; ++i)
        std::fill(grad_w.data() + i * in, grad_w.data() + i * in + b.col_end, T(0));
      continue;
    }
    gemm_rows<T>(true, false, b.row_end - b.row_begin, b.col_end, n, grad_y.data() + b.row_begin,
                 out, x.data(), in, T(0), grad_w.data() + b.row_begin * in, in);
  }
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
                                        bool);                                                     \
  template void blocked_forward<T>(const MatrixOf<T>&, const MatrixOf<T>&, const T*,               \
                                   const std::vector<RowBlock>&, MatrixOf<T>&, bool);              \
  template void blocked_input_gradient<T>(const MatrixOf<T>&, const MatrixOf<T>&,                  \
                                          const std::vector<RowBlock>&, MatrixOf<T>&);             \
  template void blocked_weight_gradient<T>(const MatrixOf<T>&, const MatrixOf<T>&,                 \
                                           const std::vector<RowBlock>&, MatrixOf<T>&);
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
