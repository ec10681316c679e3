#pragma once
// Boost.Odeint on the batch Matrix: the state of every solver is one n x d
// xtensor (a whole batch at once). Odeint needs three things of a state type:
// that it can be resized like another state (its steppers keep buffers of the
// state's shape), and an algebra that applies the stepper's operations to it
// and measures an error. The Matrix is a contiguous range, so odeint's
// range_algebra applies every operation; MatrixAlgebra only adds the choice of
// error norm.
#include <cmath>
#include <limits>

#include <boost/numeric/odeint/algebra/range_algebra.hpp>
#include <boost/numeric/odeint/util/is_resizeable.hpp>
#include <boost/numeric/odeint/util/resize.hpp>
#include <boost/numeric/odeint/util/same_size.hpp>

#include <flows/tensor.hpp>

namespace boost::numeric::odeint {

template <>
struct is_resizeable<flows::Matrix> {
  typedef boost::true_type type;
  static const bool value = type::value;
};

template <>
struct same_size_impl<flows::Matrix, flows::Matrix> {
  static bool same_size(const flows::Matrix& a, const flows::Matrix& b) {
    return a.shape() == b.shape();
  }
};

template <>
struct resize_impl<flows::Matrix, flows::Matrix> {
  static void resize(flows::Matrix& a, const flows::Matrix& b) { a.resize(b.shape()); }
};

}  // namespace boost::numeric::odeint

namespace flows::flow_matching {

// range_algebra with a selectable error norm. The dopri5 solver scales each
// component's error estimate by its tolerance and asks the algebra for
// norm_inf of the result (the name odeint's algebras give it); here that norm
// is either the maximum (every component within tolerance) or the root mean
// square over all components (Hairer, Nørsett & Wanner, "Solving Ordinary
// Differential Equations I", II.4, eq. 4.11; also torchdiffeq's default),
// which treats the rows solved together as one system, as torchdiffeq does.
struct MatrixAlgebra : boost::numeric::odeint::range_algebra {
  bool rms = true;

  Real norm_inf(const Matrix& s) const {
    const Real* p = s.data();
    const Index n = s.size();
    if (n == 0) return 0;
    if (rms) {
      Real sum = 0;
      for (Index k = 0; k < n; ++k) sum += p[k] * p[k];
      const Real norm = std::sqrt(sum / static_cast<Real>(n));
      return std::isfinite(norm) ? norm : std::numeric_limits<Real>::infinity();
    }
    Real worst = 0;
    for (Index k = 0; k < n; ++k) {
      const Real a = std::abs(p[k]);
      // NaN compares false: a broken step counts as infinitely wrong, so the
      // controller rejects it instead of accepting NaN.
      if (!(a <= worst)) worst = std::isnan(a) ? std::numeric_limits<Real>::infinity() : a;
    }
    return worst;
  }
};

}  // namespace flows::flow_matching
