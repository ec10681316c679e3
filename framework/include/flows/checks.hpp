#pragma once
// Argument checks every bijector needs (plugins share them through the SDK).
#include <string>

#include "flows/error.hpp"
#include "flows/tensor.hpp"

namespace flows {

// Raises DataError unless `m` has `dim` columns; `who` names the bijector and
// `what` the argument.
inline void require_columns(const Matrix& m, Index dim, const char* who, const char* what) {
  if (m.shape(1) != dim)
    throw DataError(std::string(who) + ": " + what + " has " + std::to_string(m.shape(1)) +
                    " columns but the bijector's dimension is " + std::to_string(dim));
}

// Raises Error unless backward's arguments match the last forward_train.
inline void require_backward_shapes(const Matrix& grad_z, const Vector& grad_logdet, Index rows,
                                    Index dim, bool recorded, const char* who) {
  if (!recorded) throw Error(std::string(who) + ": backward called before forward_train");
  if (grad_z.shape(0) != rows || grad_z.shape(1) != dim || grad_logdet.size() != rows)
    throw Error(std::string(who) + ": backward got dL/dz of shape [" +
                std::to_string(grad_z.shape(0)) + " x " + std::to_string(grad_z.shape(1)) +
                "] and " + std::to_string(grad_logdet.size()) +
                " log-determinant gradients, but the last forward_train had [" +
                std::to_string(rows) + " x " + std::to_string(dim) + "]");
}

// Resizes only when the shape changes, so buffers reused across steps never
// reallocate.
inline void ensure(Matrix& m, Index rows, Index cols) {
  if (m.shape(0) != rows || m.shape(1) != cols) m.resize({rows, cols});
}
inline void ensure(Vector& v, Index rows) {
  if (v.size() != rows) v.resize({rows});
}

}  // namespace flows
