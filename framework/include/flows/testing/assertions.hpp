#pragma once
// Assertions shared by the contract suites (bijector_contract.hpp,
// transformer_contract.hpp) and usable in any test: entrywise closeness with
// a message naming the worst entry, finiteness, and log|det| of a matrix.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>
#include <string>
#include <utility>

#include "flows/error.hpp"
#include "flows/tensor.hpp"

namespace flows::testing {

// log|det A| of a square matrix by LU decomposition with partial pivoting
// (Golub & Van Loan, "Matrix Computations", alg. 3.4.1): det A = ±Π u_ii.
// A singular matrix gives −∞.
inline Real log_abs_det(Matrix a) {
  const Index n = a.shape(0);
  if (a.shape(1) != n) throw Error("log_abs_det: the matrix is not square");
  Real log_det = 0;
  for (Index k = 0; k < n; ++k) {
    Index pivot = k;
    for (Index i = k + 1; i < n; ++i)
      if (std::abs(a(i, k)) > std::abs(a(pivot, k))) pivot = i;
    if (a(pivot, k) == 0) return -std::numeric_limits<Real>::infinity();
    if (pivot != k)
      for (Index j = 0; j < n; ++j) std::swap(a(k, j), a(pivot, j));
    log_det += std::log(std::abs(a(k, k)));
    for (Index i = k + 1; i < n; ++i) {
      const Real factor = a(i, k) / a(k, k);
      for (Index j = k + 1; j < n; ++j) a(i, j) -= factor * a(k, j);
    }
  }
  return log_det;
}

// Passes when |actual − expected| ≤ tolerance · (1 + |expected|) entrywise;
// the message names the worst entry.
inline ::testing::AssertionResult all_near(const xt::xtensor<Real, 2>& actual,
                                           const xt::xtensor<Real, 2>& expected, Real tolerance,
                                           const std::string& what) {
  if (actual.shape() != expected.shape())
    return ::testing::AssertionFailure()
           << what << ": shape [" << actual.shape(0) << " x " << actual.shape(1) << "], expected ["
           << expected.shape(0) << " x " << expected.shape(1) << "]";
  Real worst = 0;
  Index worst_k = 0;
  for (Index k = 0; k < actual.size(); ++k) {
    const Real a = actual.flat(k);
    const Real e = expected.flat(k);
    // Equal infinities agree; NaN never does.
    const Real error = std::isfinite(a) && std::isfinite(e)
                           ? std::abs(a - e) / (1 + std::abs(e))
                           : (a == e ? 0 : std::numeric_limits<Real>::infinity());
    if (error > worst) {
      worst = error;
      worst_k = k;
    }
  }
  if (worst <= tolerance) return ::testing::AssertionSuccess();
  const Index cols = std::max<Index>(actual.shape(1), 1);
  std::ostringstream out;
  out.precision(12);
  out << what << ": entry [" << worst_k / cols << "," << worst_k % cols << "] is "
      << actual.flat(worst_k) << ", expected " << expected.flat(worst_k) << " (error " << worst
      << " > tolerance " << tolerance << ")";
  return ::testing::AssertionFailure() << out.str();
}

inline ::testing::AssertionResult all_near(const Vector& actual, const Vector& expected,
                                           Real tolerance, const std::string& what) {
  Matrix a({1, actual.size()});
  Matrix e({1, expected.size()});
  std::copy(actual.begin(), actual.end(), a.begin());
  std::copy(expected.begin(), expected.end(), e.begin());
  return all_near(a, e, tolerance, what);
}

inline ::testing::AssertionResult all_finite(const Matrix& m, const std::string& what) {
  for (Index k = 0; k < m.size(); ++k)
    if (!std::isfinite(m.flat(k)))
      return ::testing::AssertionFailure() << what << " has a non-finite entry at flat index " << k;
  return ::testing::AssertionSuccess();
}

inline ::testing::AssertionResult all_finite(const Vector& v, const std::string& what) {
  for (Index k = 0; k < v.size(); ++k)
    if (!std::isfinite(v(k)))
      return ::testing::AssertionFailure() << what << " has a non-finite entry at " << k;
  return ::testing::AssertionSuccess();
}

}  // namespace flows::testing
