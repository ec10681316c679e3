#pragma once
// Buffer helpers every bijector needs (plugins share them through the SDK);
// argument checks live in Bijector's public calls.
#include <string>

#include "flows/error.hpp"
#include "flows/tensor.hpp"

namespace flows {

// Resizes only when the shape changes, so buffers reused across steps never
// reallocate.
template <class T>
inline void ensure(MatrixOf<T>& m, Index rows, Index cols) {
  if (m.shape(0) != rows || m.shape(1) != cols) m.resize({rows, cols});
}
inline void ensure(Vector& v, Index rows) {
  if (v.size() != rows) v.resize({rows});
}

}  // namespace flows
