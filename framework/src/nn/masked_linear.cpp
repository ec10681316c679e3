#include "flows/nn/masked_linear.hpp"

#include <algorithm>
#include <cmath>
#include <string>

#include <fmt/format.h>

#include "flows/checks.hpp"
#include "flows/error.hpp"

namespace flows::nn {

namespace {

const Matrix& checked_mask(const Matrix& mask) {
  if (mask.shape(0) == 0 || mask.shape(1) == 0)
    throw ConfigError("MaskedLinear: the mask must have at least one row and one column");
  for (Real m : mask)
    if (m != Real(0) && m != Real(1))
      throw ConfigError("MaskedLinear: mask entries must be 0 or 1, found " + std::to_string(m));
  return mask;
}

}  // namespace

// Rows per block of a blocked product: about the width of the kernels' panels,
// so that each product stays efficient while the staircase's tail is cut.
constexpr Index kRowsPerBlock = 32;

// Initialised as nn.Linear (U(-1/sqrt(in), 1/sqrt(in)), fan-in counting masked
// inputs too, as nflows' MaskedLinear does), then masked.
MaskedLinear::MaskedLinear(const Matrix& mask, Rng& rng)
    : weight_("weight", uniform_init(checked_mask(mask).shape(0), mask.shape(1),
                                     1 / std::sqrt(Real(mask.shape(1))), rng)),
      bias_("bias", uniform_init(1, mask.shape(0), 1 / std::sqrt(Real(mask.shape(1))), rng)),
      mask_(mask),
      blocks_{RowBlock{0, mask.shape(0), mask.shape(1)}} {
  xt::noalias(weight_.value) *= mask_;
}

namespace {

// `units` as a compute order of `count` units: empty when it is the units' own
// order; ConfigError unless it is a permutation of 0..count-1.
std::vector<Index> checked_order(std::vector<Index> units, Index count, const char* side) {
  if (units.empty()) return units;
  std::vector<bool> seen(count, false);
  bool identity = units.size() == count;
  for (Index k = 0; k < units.size() && identity; ++k) identity = units[k] == k;
  if (units.size() != count)
    throw ConfigError(std::string("MaskedLinear: the ") + side + " order lists " +
                      std::to_string(units.size()) + " units, expected " + std::to_string(count));
  for (Index u : units) {
    if (u >= count || seen[u])
      throw ConfigError(std::string("MaskedLinear: the ") + side +
                        " order must list each unit once");
    seen[u] = true;
  }
  if (identity) units.clear();
  return units;
}

Index unit(const std::vector<Index>& order, Index k) {
  return order.empty() ? k : order[k];
}

}  // namespace

void MaskedLinear::set_compute_order(std::vector<Index> in_units, std::vector<Index> out_units) {
  // Back to the units' own order first, so that a second call starts afresh.
  for (Parameter* p : {&weight_, &bias_}) {
    p->value = in_saved_order(*p, p->value);
    p->grad = in_saved_order(*p, p->grad);
    p->saved_index.clear();
    p->saved_extent = {0, 0};
  }

  in_units_ = checked_order(std::move(in_units), in_features(), "input");
  out_units_ = checked_order(std::move(out_units), out_features(), "output");
  reordered_ = !in_units_.empty() || !out_units_.empty();
  const Index out = out_features(), in = in_features();
  if (reordered_) {
    // Both lists in full, so the loops below index without a branch.
    for (auto* units : {&in_units_, &out_units_}) {
      const Index count = units == &in_units_ ? in : out;
      if (units->empty())
        for (Index k = 0; k < count; ++k) units->push_back(k);
    }
  }
  ordered_mask_ = Matrix({out, in});
  for (Index i = 0; i < out; ++i)
    for (Index j = 0; j < in; ++j)
      ordered_mask_(i, j) = mask_(unit(out_units_, i), unit(in_units_, j));
  blocks_ = plan_row_blocks(ordered_mask_, kRowsPerBlock);
  leading_ones_.clear();
  row_offsets_.clear();
  if (reordered_) {
    // Sorted by degree, a MADE's mask rows are prefixes of ones: the copies
    // then take each row's prefix and need not read the mask.
    bool prefixes = true;
    Index kept = 0;
    for (Index i = 0; i < out && prefixes; ++i) {
      Index ones = 0;
      while (ones < in && ordered_mask_(i, ones) == Real(1)) ++ones;
      for (Index j = ones; j < in && prefixes; ++j) prefixes = ordered_mask_(i, j) == Real(0);
      leading_ones_.push_back(ones);
      kept += ones;
    }
    if (!prefixes || kept == 0) leading_ones_.clear();
    // The parameters themselves are kept in the compute order, so that each
    // step's copy into the compute type and the gradient's way back are
    // contiguous row prefixes, not gathers and scatters (visit_parameters
    // saves and loads them in the units' order). Of a staircase's weight
    // only the prefixes are kept.
    for (Index i = 0; i < out; ++i) {
      const Index row_end = leading_ones_.empty() ? in : leading_ones_[i];
      if (!leading_ones_.empty()) row_offsets_.push_back(weight_.saved_index.size());
      for (Index j = 0; j < row_end; ++j)
        weight_.saved_index.push_back(out_units_[i] * in + in_units_[j]);
    }
    if (!leading_ones_.empty()) {
      row_offsets_.push_back(weight_.saved_index.size());
      weight_.saved_extent = {out, in};
    }
    bias_.saved_index = out_units_;
    for (Parameter* p : {&weight_, &bias_}) {
      const Matrix value = p->value, grad = p->grad;
      from_saved_order(*p, value, p->value);
      from_saved_order(*p, grad, p->grad);
    }
  }
  if (!reordered_) ordered_mask_ = Matrix();
  copy_ = {};  // the copies follow the new order at the next pass
}

Index MaskedLinear::row_start(Index i) const {
  return row_offsets_.empty() ? i * in_features() : row_offsets_[i];
}

// The loops index the kept layout without bounds: a weight or bias written
// in place with another size (say, the saved shape) is an error instead.
void MaskedLinear::check_kept_sizes(const Matrix& weight, const Matrix& bias,
                                    const char* what) const {
  const Index kept = row_offsets_.empty() ? out_features() * in_features() : row_offsets_.back();
  if (weight.size() != kept || bias.size() != out_features())
    throw Error(fmt::format(
        "MaskedLinear '{}': its weight holds {} {} and its bias {}, but the layer keeps {} and {} "
        "in its compute order (write saved-order tensors through from_saved_order)",
        weight_.name, weight.size(), what, bias.size(), kept, out_features()));
}

// W ⊙ M and b in the compute order, in T. Reordered, the parameters already
// are in that order (set_compute_order) and the mask is ordered_mask_.
template <class T>
void MaskedLinear::refresh(DenseCopy<T>& copy) const {
  if (!reordered_) {
    copy.refresh(weight_, bias_, &mask_);
    return;
  }
  const Index out = out_features(), in = in_features();
  check_kept_sizes(weight_.value, bias_.value, "values");
  ensure(copy.weight, out, in);
  ensure(copy.bias, 1, out);
  // Only the row blocks: the products never read past a block's col_end.
  for (const RowBlock& b : blocks_)
    for (Index i = b.row_begin; i < b.row_end; ++i) {
      const Real* source = weight_.value.data() + row_start(i);
      T* row = copy.weight.data() + i * in;
      if (!leading_ones_.empty()) {
        const Index ones = std::min(leading_ones_[i], b.col_end);
        for (Index j = 0; j < ones; ++j) row[j] = static_cast<T>(source[j]);
        std::fill(row + ones, row + b.col_end, T(0));
        continue;
      }
      const Real* mask = ordered_mask_.data() + i * in;
      for (Index j = 0; j < b.col_end; ++j) row[j] = static_cast<T>(source[j] * mask[j]);
    }
  for (Index i = 0; i < out; ++i) copy.bias(0, i) = static_cast<T>(bias_.value(0, i));
}

template <class T>
void MaskedLinear::forward(const MatrixOf<T>& x, MatrixOf<T>& y, bool accumulate) {
  DenseCopy<T>& copy = copy_.get<T>();
  infer(x, y, copy, accumulate);
}

template <class T>
void MaskedLinear::forward(const MatrixOf<T>& x, MatrixOf<T>& y, const Activation& f,
                           MatrixOf<T>& slope) {
  infer(x, y, copy_.get<T>(), f, false, &slope);
}

template <class T>
void MaskedLinear::infer(const MatrixOf<T>& x, MatrixOf<T>& y, DenseCopy<T>& copy,
                         bool accumulate) const {
  infer(x, y, copy, Activation(Activation::Kind::identity), accumulate);
}

template <class T>
void MaskedLinear::infer(const MatrixOf<T>& x, MatrixOf<T>& y, DenseCopy<T>& copy,
                         const Activation& f, bool accumulate, MatrixOf<T>* slope) const {
  check_input("MaskedLinear", x, in_features());
  refresh(copy);
  dense_layer_infer(copy, &blocks_, x, f, y, accumulate, slope);
}

void MaskedLinear::infer(const Matrix& x, Matrix& y) const {
  DenseCopy<Real> copy;
  infer(x, y, copy);
}

Matrix MaskedLinear::infer(const Matrix& x) const {
  Matrix y;
  infer(x, y);
  return y;
}

// y = x (W ⊙ M)ᵀ + b  ⇒  dL/dx = dL/dy (W ⊙ M),  dL/dW = ((dL/dy)ᵀ x) ⊙ M,
// dL/db = Σ_rows dL/dy. The weight gradient is masked as it joins W's
// gradient, so masked entries of W never receive any; it is read inside the
// row blocks only, since everything outside them is masked.
template <class T>
void MaskedLinear::backward(const MatrixOf<T>& x, const MatrixOf<T>& grad_y, MatrixOf<T>& grad_x,
                            bool accumulate_param_grads, const MatrixOf<T>* slope) {
  check_backward("MaskedLinear", x, grad_y, in_features(), out_features());
  DenseCopy<T>& copy = copy_.get<T>();
  if (copy.weight.shape() != mask_.shape()) refresh(copy);
  const Index n = x.shape(0), in = in_features();
  if (slope && (slope->shape(0) != n || slope->shape(1) != in))
    throw DataError(
        fmt::format("MaskedLinear: backward got a slope of shape [{} x {}], expected "
                    "[{} x {}]",
                    slope->shape(0), slope->shape(1), n, in));
  ensure(grad_x, n, in);
  dense_layer_input_gradient(copy, &blocks_, grad_y, grad_x, slope);
  if (!accumulate_param_grads) return;
  dense_layer_weight_gradient(copy, &blocks_, x, grad_y);
  if (!reordered_) {
    for (const RowBlock& b : blocks_)
      for (Index i = b.row_begin; i < b.row_end; ++i) {
        const T* g = copy.grad_weight.data() + i * in;
        const Real* mask = mask_.data() + i * in;
        Real* target = weight_.grad.data() + i * in;
        for (Index j = 0; j < b.col_end; ++j) target[j] += mask[j] * static_cast<Real>(g[j]);
      }
    accumulate_bias_gradient(grad_y, bias_.grad);
    return;
  }
  // Reordered: the parameters are in the compute order, as the gradient is.
  check_kept_sizes(weight_.grad, bias_.grad, "gradients");
  for (const RowBlock& b : blocks_)
    for (Index i = b.row_begin; i < b.row_end; ++i) {
      const T* g = copy.grad_weight.data() + i * in;
      Real* target = weight_.grad.data() + row_start(i);
      if (!leading_ones_.empty()) {  // the row's mask is its prefix of ones
        const Index ones = std::min(leading_ones_[i], b.col_end);
        for (Index j = 0; j < ones; ++j) target[j] += static_cast<Real>(g[j]);
        continue;
      }
      const Real* mask = ordered_mask_.data() + i * in;
      for (Index j = 0; j < b.col_end; ++j) target[j] += mask[j] * static_cast<Real>(g[j]);
    }
  accumulate_bias_gradient(grad_y, bias_.grad);
}

#define FLOWS_MASKED_LINEAR(T)                                                                  \
  template void MaskedLinear::forward<T>(const MatrixOf<T>&, MatrixOf<T>&, bool);               \
  template void MaskedLinear::forward<T>(const MatrixOf<T>&, MatrixOf<T>&, const Activation&,   \
                                         MatrixOf<T>&);                                         \
  template void MaskedLinear::infer<T>(const MatrixOf<T>&, MatrixOf<T>&, DenseCopy<T>&, bool)   \
      const;                                                                                    \
  template void MaskedLinear::infer<T>(const MatrixOf<T>&, MatrixOf<T>&, DenseCopy<T>&,         \
                                       const Activation&, bool, MatrixOf<T>*) const;            \
  template void MaskedLinear::backward<T>(const MatrixOf<T>&, const MatrixOf<T>&, MatrixOf<T>&, \
                                          bool, const MatrixOf<T>*);
FLOWS_MASKED_LINEAR(float)
FLOWS_MASKED_LINEAR(double)
#undef FLOWS_MASKED_LINEAR

}  // namespace flows::nn
