#pragma once
#include <array>
#include <string>
#include <vector>

#include "flows/export.hpp"
#include "flows/tensor.hpp"

namespace flows {

// A trainable tensor and its gradient. Vectors are stored as 1 x n matrices so
// that optimizers see one type. Backward passes *accumulate* into grad.
struct FLOWS_API Parameter {
  std::string name;
  Matrix value;
  Matrix grad;
  // False for state that lives with the parameters but is not trained, such
  // as batch-norm running averages: optimizers skip it, while best-parameter
  // snapshots and checkpoints keep it together with the trained values.
  bool trainable = true;
  // Where a layer keeps the tensor in its own compute order (MaskedLinear in
  // a MADE): value.flat(k) and grad.flat(k) are entry saved_index[k] of the
  // tensor in its saved order, the one checkpoints and the layer's documented
  // layout use. Empty: the two orders are the same.
  std::vector<Index> saved_index;
  // With saved_index, when value keeps only some entries of the saved tensor
  // (MaskedLinear keeps its unmasked weights only, as one 1 x n row, so that
  // the optimizer and every other pass over the values skip the masked
  // ones): the saved tensor's rows and columns, whose unlisted entries are 0.
  // {0, 0}: the saved tensor has value's shape.
  std::array<Index, 2> saved_extent{0, 0};

  Parameter() = default;
  Parameter(std::string name_, Matrix value_, bool trainable_ = true);
  Index size() const { return value.size(); }
  // The shape of the tensor in its saved order (that of value unless
  // saved_extent is set).
  std::array<Index, 2> saved_shape() const;
  void zero_grad();
};

// `m` (the parameter's value, gradient or a tensor of their shape) in the
// saved order, and the reverse: writes `saved` into `m` in the kept order
// (entries the parameter does not keep are dropped).
FLOWS_API Matrix in_saved_order(const Parameter& p, const Matrix& m);
FLOWS_API void from_saved_order(const Parameter& p, const Matrix& saved, Matrix& m);

// Optimizers and checkers see only this list; its order is stable.
using ParameterList = std::vector<Parameter*>;

FLOWS_API void zero_grad(const ParameterList& params);
// Number of trainable values.
FLOWS_API Index parameter_count(const ParameterList& params);
// Euclidean norm of all gradients together; finite whenever every gradient
// is (no overflow of the sum of squares), NaN or inf otherwise.
FLOWS_API Real gradient_norm(const ParameterList& params);
// Appends `more` to `list`.
FLOWS_API void append(ParameterList& list, const ParameterList& more);

}  // namespace flows
