#pragma once
// The dense kernels every network of the SDK and its plugins runs on: Linear,
// MaskedLinear, MLP, MADE, the coupling networks and flow matching's velocity
// field. All matrices are contiguous row-major xt::xtensor, so BLAS reads
// them in place; outputs must already have their shapes (see ensure()). Each
// kernel exists for the two compute types T = float (SGEMM) and T = double
// (DGEMM), instantiated in dense.cpp; see precision.hpp for what runs in
// which.
#include <vector>

#include "flows/export.hpp"
#include "flows/nn/activation.hpp"
#include "flows/parameter.hpp"
#include "flows/precision.hpp"
#include "flows/rng.hpp"
#include "flows/tensor.hpp"

namespace flows::nn {

// y = x wᵀ + b, or y += x wᵀ + b with accumulate (w: out x in; bias: `out`
// values, or null for none). The bias is written first and BLAS adds the
// product (beta = 1), which spares a separate zeroing pass over y.
template <class T>
FLOWS_API void dense_forward(const MatrixOf<T>& x, const MatrixOf<T>& w, const T* bias,
                             MatrixOf<T>& y, bool accumulate = false);
// grad_x = grad_y w (or += with accumulate).
template <class T>
FLOWS_API void dense_input_gradient(const MatrixOf<T>& grad_y, const MatrixOf<T>& w,
                                    MatrixOf<T>& grad_x, bool accumulate = false);
// grad_w = grad_yᵀ x + beta grad_w.
template <class T>
FLOWS_API void dense_weight_gradient(const MatrixOf<T>& x, const MatrixOf<T>& grad_y,
                                     MatrixOf<T>& grad_w, T beta);
// grad_b += Σ_rows grad_y, summed in double whatever T is.
template <class T>
FLOWS_API void accumulate_bias_gradient(const MatrixOf<T>& grad_y, Matrix& grad_b);
// out = w ⊙ mask in T (resized to w's shape); without a mask, w converted.
template <class T>
FLOWS_API void masked_copy(const Matrix& w, const Matrix* mask, MatrixOf<T>& out);
// grad += g (⊙ mask): a weight gradient computed in T added to the float64
// gradient of the parameter.
template <class T>
FLOWS_API void add_weight_gradient(const MatrixOf<T>& g, const Matrix* mask, Matrix& grad);

// Rows [row_begin, row_end) of a weight (output units of a layer) whose
// entries are all zero from column col_end on: their product reads only the
// first col_end columns of the input. A MADE's masks, with units ordered by
// degree, are staircases, so most of their zero entries fall in such tails.
struct RowBlock {
  Index row_begin, row_end, col_end;
};

// A small dense layer's weight, packed for the fused kernel
// small_dense_forward. Transposed: panels of output columns, each panel's
// inputs as contiguous rows of SIMD vectors (zero-padded), read only up to
// the last input any of the panel's columns uses. Narrow (at most half a
// vector of outputs): the rows of W, zero-padded to whole vectors, for dot
// products along the inputs.
template <class T>
struct PackedDense {
  struct Panel {
    Index column_begin = 0, columns = 0;  // output columns [begin, begin + columns)
    Index vectors = 0;                    // SIMD vectors per input row
    Index inputs = 0;                     // inputs read: the panel's weight is zero past them
    Index offset = 0;                     // of the panel's first entry in `values`
  };
  Index in = 0, out = 0;
  bool narrow = false;
  Index row_stride = 0;  // narrow: `in` rounded up to whole vectors
  // Narrow: the inputs each output reads (its block's col_end). Inputs past
  // them never enter its sum, as in BLAS's blocked product, so that a masked
  // weight times an input that is not finite cannot make it NaN.
  std::vector<Index> row_inputs;
  std::vector<Panel> panels;  // transposed only
  std::vector<T> values;      // transposed: per panel, inputs x (vectors x SIMD width)
                              // entries; narrow: out x row_stride
  std::vector<T> bias;        // transposed: `out` values padded to the last panel's
                              // width; narrow: repeated for each row of a vector
  // From w (out x in, row-major) and bias (out values or null). With blocks,
  // the rows of w are zero past their block's col_end, and entries there are
  // never read.
  FLOWS_API void pack(const MatrixOf<T>& w, const T* bias, const std::vector<RowBlock>* blocks);
  // From w (out x in) transposed, with no bias: the layer x ↦ x w, whose
  // product with dL/dy is a layer's input gradient. Entries of w outside
  // `blocks` (null: none) are never read and pack as zeros.
  FLOWS_API void pack_transposed(const MatrixOf<T>& w, const std::vector<RowBlock>* blocks);
  // Replaces the bias (`out` values) of a packed layer.
  FLOWS_API void set_bias(const T* bias);
};
// Whether the fused kernel should run a layer of this size: its packed weight
// must stay in the first-level cache, beyond which BLAS's blocking wins.
template <class T>
FLOWS_API bool small_dense_suits(Index in, Index out);
// y = f(x Wᵀ + b), or y = f(x Wᵀ + b + y) with accumulate, in one pass per
// block of rows with the sums in registers (x: n x in; y: n x out, already of
// that shape), and f' at the same points into *slope (resized) when given.
// The activation's values are those of Activation::forward.
template <class T>
FLOWS_API void small_dense_forward(const MatrixOf<T>& x, const PackedDense<T>& packed,
                                   const Activation& f, MatrixOf<T>& y, bool accumulate,
                                   MatrixOf<T>* slope = nullptr);

// A dense layer's weight (⊙ its mask) and bias in the compute type T, copied
// from the float64 parameters before each pass (the copy costs one read of
// the weights, against a batch's worth of multiply-adds in the product), and
// the layer's weight gradient in T before it joins the float64 gradient.
template <class T>
struct DenseCopy {
  MatrixOf<T> weight;  // out x in
  MatrixOf<T> bias;    // 1 x out
  MatrixOf<T> grad_weight;
  PackedDense<T> packed;             // for inference through small_dense_forward
  PackedDense<T> packed_transposed;  // for small_dense_input_gradient
  FLOWS_API void refresh(const Parameter& w, const Parameter& b, const Matrix* mask);
};

// y = x Wᵀ + b (or y += with accumulate) with the copy's weight and bias; y
// is resized unless accumulating.
template <class T>
FLOWS_API void dense_layer_forward(const DenseCopy<T>& copy, const MatrixOf<T>& x, MatrixOf<T>& y,
                                   bool accumulate);
// y = f(x Wᵀ + b), or f(x Wᵀ + b + y) with accumulate, for inference: the
// fused kernel where small_dense_suits the layer (packing the copy's weight
// into copy.packed), else the BLAS product (blocked_forward with blocks) and
// then f; f' into *slope when given. y is resized unless accumulating.
template <class T>
FLOWS_API void dense_layer_infer(DenseCopy<T>& copy, const std::vector<RowBlock>* blocks,
                                 const MatrixOf<T>& x, const Activation& f, MatrixOf<T>& y,
                                 bool accumulate, MatrixOf<T>* slope = nullptr);
// The backward pass of a small layer (small_dense_suits) through the same
// fused kernel: grad_x = (grad_y W) ⊙ slope, or grad_y W without a slope,
// with `transposed` W packed by pack_transposed; grad_x must have its shape
// (n x in). The slope is f' of the layer below, so its multiplication costs
// no pass of its own.
template <class T>
FLOWS_API void small_dense_input_gradient(const PackedDense<T>& transposed,
                                          const MatrixOf<T>& grad_y, MatrixOf<T>& grad_x,
                                          const MatrixOf<T>* slope);
// Whether small_dense_weight_gradient takes a layer of this size: small, and
// its input a whole number of SIMD vectors wide.
template <class T>
FLOWS_API bool small_weight_gradient_suits(Index in, Index out);
// grad_w = grad_yᵀ x inside `blocks` (null: all of grad_w; the rest is not
// written), the sums over the batch's rows kept in registers.
template <class T>
FLOWS_API void small_dense_weight_gradient(const MatrixOf<T>& x, const MatrixOf<T>& grad_y,
                                           const std::vector<RowBlock>* blocks,
                                           MatrixOf<T>& grad_w);
// A layer's backward products with the copy's weight (zero outside `blocks`;
// null: none), on the fused kernels where the layer is small and on BLAS
// (one product per row block) otherwise, as dense_layer_infer chooses for
// the forward pass: grad_x = (grad_y W) ⊙ slope (or grad_y W without a
// slope; grad_x of its shape n x in), and copy.grad_weight = grad_yᵀ x inside
// the blocks (resized to W's shape).
template <class T>
FLOWS_API void dense_layer_input_gradient(DenseCopy<T>& copy, const std::vector<RowBlock>* blocks,
                                          const MatrixOf<T>& grad_y, MatrixOf<T>& grad_x,
                                          const MatrixOf<T>* slope = nullptr);
template <class T>
FLOWS_API void dense_layer_weight_gradient(DenseCopy<T>& copy, const std::vector<RowBlock>* blocks,
                                           const MatrixOf<T>& x, const MatrixOf<T>& grad_y);
// grad_x = grad_y W and, with accumulate_params, adds (grad_yᵀ x) ⊙ mask to
// w.grad and Σ_rows grad_y to b.grad (in float64), through the two above.
template <class T>
FLOWS_API void dense_layer_backward(DenseCopy<T>& copy, Parameter& w, Parameter& b,
                                    const Matrix* mask, const MatrixOf<T>& x,
                                    const MatrixOf<T>& grad_y, MatrixOf<T>& grad_x,
                                    bool accumulate_params);

// Cuts the rows of a 0/1 mask into blocks of about `rows_per_block` rows, each
// ending at the last column its rows use. One block of the whole matrix when
// that would save less than an eighth of the multiply-adds (a dense product is
// faster than several smaller ones).
FLOWS_API std::vector<RowBlock> plan_row_blocks(const Matrix& mask, Index rows_per_block);
// dense_forward, dense_input_gradient and dense_weight_gradient (beta = 0) for
// a weight that is zero outside `blocks`: one product per block. The weight
// gradient is written inside the blocks only.
template <class T>
FLOWS_API void blocked_forward(const MatrixOf<T>& x, const MatrixOf<T>& w, const T* bias,
                               const std::vector<RowBlock>& blocks, MatrixOf<T>& y,
                               bool accumulate);
template <class T>
FLOWS_API void blocked_input_gradient(const MatrixOf<T>& grad_y, const MatrixOf<T>& w,
                                      const std::vector<RowBlock>& blocks, MatrixOf<T>& grad_x);
template <class T>
FLOWS_API void blocked_weight_gradient(const MatrixOf<T>& x, const MatrixOf<T>& grad_y,
                                       const std::vector<RowBlock>& blocks, MatrixOf<T>& grad_w);

// out = w ⊙ mask (resized to w's shape).
FLOWS_API void apply_mask(const Matrix& w, const Matrix& mask, Matrix& out);
// A parameter of shape rows x cols drawn from U(-bound, bound).
FLOWS_API Matrix uniform_init(Index rows, Index cols, Real bound, Rng& rng);
// Raises DataError unless x has `in` columns; `layer` names the caller.
FLOWS_API void check_input(const char* layer, Index columns, Index in);
template <class T>
void check_input(const char* layer, const MatrixOf<T>& x, Index in) {
  check_input(layer, x.shape(1), in);
}
// Raises DataError unless x is n x in and grad_y is n x out.
FLOWS_API void check_backward(const char* layer, Index x_rows, Index x_cols, Index grad_rows,
                              Index grad_cols, Index in, Index out);
template <class T>
void check_backward(const char* layer, const MatrixOf<T>& x, const MatrixOf<T>& grad_y, Index in,
                    Index out) {
  check_backward(layer, x.shape(0), x.shape(1), grad_y.shape(0), grad_y.shape(1), in, out);
}

}  // namespace flows::nn
