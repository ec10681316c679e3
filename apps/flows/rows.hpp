#pragma once
// Rows picked and put together for the stages' outputs.
#include "flows/tensor.hpp"

namespace flows::app {

// Rows i mod m.shape(0), i < n: n context rows cycled from the held-out ones.
Matrix cycled_rows(const Matrix& m, Index n);

// [a | b], columns side by side (same rows).
Matrix side_by_side(const Matrix& a, const Matrix& b);

// At most `rows` rows of m, evenly spaced (deterministic).
Matrix first_rows(const Matrix& m, Index rows);

}  // namespace flows::app
