#pragma once
#include <vector>

#include "flows/export.hpp"
#include "flows/nn/dense.hpp"
#include "flows/parameter.hpp"
#include "flows/rng.hpp"
#include "flows/tensor.hpp"

namespace flows::nn {

// A Linear layer whose weight is multiplied by a fixed 0/1 mask M (out x in):
// y = x (W ⊙ M)ᵀ + b, the building block of MADE (Germain et al. 2015). The
// mask is applied to the weight in every forward and to the weight gradient in
// every backward, so masked entries of W never influence y and never receive
// gradient, whatever an optimizer or a checkpoint writes into them.
class FLOWS_API MaskedLinear {
 public:
  // The mask's shape (out x in) gives the layer's size; its entries must be 0
  // or 1 (ConfigError). W and b ~ U(-1/sqrt(in), 1/sqrt(in)) as in Linear,
  // with masked entries of W then set to 0.
  MaskedLinear(const Matrix& mask, Rng& rng);

  Index in_features() const { return mask_.shape(1); }
  Index out_features() const { return mask_.shape(0); }
  const Matrix& mask() const { return mask_; }

  // y = x (W ⊙ M)ᵀ + b, or y += x (W ⊙ M)ᵀ + b with accumulate, computed in
  // T (float or double). forward refreshes a member copy of W ⊙ M and b in T
  // (used again by backward); infer is const and writes that copy into
  // `copy` (a caller's buffer reused across calls) or allocates it.
  template <class T>
  void forward(const MatrixOf<T>& x, MatrixOf<T>& y, bool accumulate = false);
  template <class T>
  void infer(const MatrixOf<T>& x, MatrixOf<T>& y, DenseCopy<T>& copy,
             bool accumulate = false) const;
  // forward and then f in one pass, with f' at the same points into slope
  // (what a network's backward needs of f).
  template <class T>
  void forward(const MatrixOf<T>& x, MatrixOf<T>& y, const Activation& f, MatrixOf<T>& slope);
  // infer and then f in one pass: y = f(x (W ⊙ M)ᵀ + b), or f(x (W ⊙ M)ᵀ +
  // b + y) with accumulate, and f' into *slope when given (dense_layer_infer).
  template <class T>
  void infer(const MatrixOf<T>& x, MatrixOf<T>& y, DenseCopy<T>& copy, const Activation& f,
             bool accumulate = false, MatrixOf<T>* slope = nullptr) const;
  void infer(const Matrix& x, Matrix& y) const;
  Matrix infer(const Matrix& x) const;

  // Given the input x of the last forward and dL/dy: grad_x = dL/dy (W ⊙ M),
  // times *slope entry by entry when given (f' of the layer below, x's shape);
  // unless accumulate_param_grads is false, *adds* ((dL/dy)ᵀ x) ⊙ M to W's
  // (float64) gradient and Σ_rows dL/dy to b's.
  template <class T>
  void backward(const MatrixOf<T>& x, const MatrixOf<T>& grad_y, MatrixOf<T>& grad_x,
                bool accumulate_param_grads = true, const MatrixOf<T>* slope = nullptr);

  // Runs the layer with the columns of its input in the order `in_units`
  // (column j of x is input unit in_units[j]) and the columns of its output
  // in the order `out_units`; the mask keeps the units' own order. An empty
  // list keeps the units' own order. A MADE
  // orders its units by degree: its masks then become staircases, and the
  // products skip their empty blocks (plan_row_blocks). The weight and bias
  // are then kept in the compute order too (Parameter::saved_index maps them
  // back; in_saved_order gives their values or gradients in the units' order),
  // and when each row's mask is a prefix of ones the weight keeps those
  // prefixes only, row after row in one 1 x n row: the masked entries, half
  // of a MADE's, then cost the optimizer and the other passes over every
  // value nothing.
  void set_compute_order(std::vector<Index> in_units, std::vector<Index> out_units);
  // The row blocks of the mask in the compute order (one block when dense).
  const std::vector<RowBlock>& row_blocks() const { return blocks_; }

  Parameter& weight() { return weight_; }
  Parameter& bias() { return bias_; }
  const Parameter& weight() const { return weight_; }
  const Parameter& bias() const { return bias_; }
  ParameterList parameters() { return {&weight_, &bias_}; }

 private:
  // W ⊙ M and b in the compute order, in T.
  template <class T>
  void refresh(DenseCopy<T>& copy) const;
  // The start of weight row i (value or gradient) in the kept layout.
  Index row_start(Index i) const;
  // Error unless weight and bias (values or gradients) have the kept sizes.
  void check_kept_sizes(const Matrix& weight, const Matrix& bias, const char* what) const;

  Parameter weight_;
  Parameter bias_;
  Matrix mask_;
  // The compute order: both lists in full when reordered_, else both empty.
  bool reordered_ = false;
  std::vector<Index> in_units_, out_units_;
  Matrix ordered_mask_;  // the mask in the compute order (when reordered_)
  // When every row of ordered_mask_ is ones then zeros (a MADE's units
  // sorted by degree), the ones of each row; else empty, and the copies and
  // gradients go through the mask.
  std::vector<Index> leading_ones_;
  // With leading_ones_: where row i's prefix starts in the packed weight
  // (row_offsets_[out] is its size).
  std::vector<Index> row_offsets_;
  std::vector<RowBlock> blocks_;  // of the mask in the compute order
  PerPrecision<DenseCopy> copy_;  // W ⊙ M and b of the last forward
};

}  // namespace flows::nn
