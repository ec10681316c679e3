#include "rows.hpp"

namespace flows::app {

Matrix cycled_rows(const Matrix& m, Index n) {
  Matrix out = xt::empty<Real>({n, m.shape(1)});
  for (Index i = 0; i < n; ++i) xt::row(out, i) = xt::row(m, i % m.shape(0));
  return out;
}

Matrix side_by_side(const Matrix& a, const Matrix& b) {
  Matrix out = xt::empty<Real>({a.shape(0), a.shape(1) + b.shape(1)});
  xt::view(out, xt::all(), xt::range(0, a.shape(1))) = a;
  xt::view(out, xt::all(), xt::range(a.shape(1), a.shape(1) + b.shape(1))) = b;
  return out;
}

Matrix first_rows(const Matrix& m, Index rows) {
  if (m.shape(0) <= rows) return m;
  Matrix out = xt::empty<Real>({rows, m.shape(1)});
  for (Index i = 0; i < rows; ++i) xt::row(out, i) = xt::row(m, i * m.shape(0) / rows);
  return out;
}

}  // namespace flows::app
