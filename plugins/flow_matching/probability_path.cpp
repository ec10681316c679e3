#include "probability_path.hpp"

#include <cmath>

#include <flows/error.hpp>

namespace flows::flow_matching {

void ProbabilityPath::sample(const Matrix& x0, const Matrix& x1, const Vector& t, Matrix& xt,
                             Matrix& ut) const {
  if (x0.shape() != x1.shape() || t.size() != x0.shape(0))
    throw DataError("probability path: x0, x1 and t do not match");
  const Index n = x0.shape(0), d = x0.shape(1);
  xt.resize({n, d});
  ut.resize({n, d});
  constexpr Real kHalfPi = 1.57079632679489661923;
  for (Index i = 0; i < n; ++i) {
    Real a, b, da, db;  // x_t = a x0 + b x1, u_t = da x0 + db x1
    if (kind_ == Kind::straight) {
      a = 1 - (1 - sigma_min_) * t(i);
      b = t(i);
      da = -(1 - sigma_min_);
      db = 1;
    } else {
      a = std::cos(kHalfPi * t(i));
      b = std::sin(kHalfPi * t(i));
      da = -kHalfPi * b;
      db = kHalfPi * a;
    }
    for (Index j = 0; j < d; ++j) {
      xt(i, j) = a * x0(i, j) + b * x1(i, j);
      ut(i, j) = da * x0(i, j) + db * x1(i, j);
    }
  }
}

}  // namespace flows::flow_matching
