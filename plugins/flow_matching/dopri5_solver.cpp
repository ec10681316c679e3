#include "dopri5_solver.hpp"

#include <algorithm>
#include <cmath>
#include <utility>

#include <fmt/format.h>
#include <boost/numeric/odeint/stepper/runge_kutta_dopri5.hpp>

#include <flows/error.hpp>

#include "matrix_odeint.hpp"

namespace flows::flow_matching {

namespace odeint = boost::numeric::odeint;

namespace {

using Stepper = odeint::runge_kutta_dopri5<Matrix, Real, Matrix, Real, MatrixAlgebra>;

// ‖v / (atol + rtol max(|x0|, |x1|))‖ in the solver's norm, the scaled
// values written to `out` (which may be v itself). With x1 = x0 it scales the
// starting-step estimates; with a step's start and end it is the step's error
// ratio (Hairer, Nørsett & Wanner, II.4, eq. 4.10-4.11), accepted when at
// most 1. The norm counts a non-finite value as infinitely wrong.
Real scaled_norm(const MatrixAlgebra& algebra, const Matrix& v, const Matrix& x0, const Matrix& x1,
                 Real atol, Real rtol, Matrix& out) {
  out.resize(v.shape());
  for (Index k = 0; k < v.size(); ++k)
    out.flat(k) = v.flat(k) / (atol + rtol * std::max(std::abs(x0.flat(k)), std::abs(x1.flat(k))));
  return algebra.norm_inf(out);
}

// The next step's size over this one's (Hairer, Nørsett & Wanner, II.4, eq.
// 4.13, with the error of the order-4 embedded solution): 0.9 ratio^(-1/5),
// kept within [0.2, 10], and never below 1 after an accepted step.
Real step_factor(Real ratio, bool accepted) {
  if (ratio == 0) return 10;
  const Real factor = std::clamp(Real(0.9) * std::pow(ratio, Real(-0.2)), Real(0.2), Real(10));
  return accepted ? std::max(factor, Real(1)) : factor;
}

}  // namespace

Dopri5Options Dopri5Options::from(ConfigNode& node) {
  Dopri5Options o;
  node.read("rtol", o.rtol);
  node.read("atol", o.atol);
  node.read("first_step", o.first_step);
  node.read("max_steps", o.max_steps);
  node.read("min_step", o.min_step);
  node.read("norm", o.norm);
  node.read("error_estimate", o.error_estimate);
  node.expect(o.rtol >= 0 && std::isfinite(o.rtol), "rtol", "must be a finite number >= 0");
  // Each component's error is measured against atol + rtol |x|. With atol = 0
  // that scale is 0 wherever x is 0, and the log-determinant column of every
  // density solve starts at exactly 0 (as does any data value 0): the error
  // ratio is inf or 0/0 there, and every step is rejected.
  node.expect(o.atol > 0 && std::isfinite(o.atol), "atol",
              "must be a finite number > 0 (a purely relative tolerance has no scale where the "
              "state is 0, as the log-determinant is at the start of every solve)");
  node.expect(o.first_step >= 0 && std::isfinite(o.first_step), "first_step",
              "must be a finite number >= 0 (0: automatic)");
  node.expect(o.max_steps > 0, "max_steps", "must be > 0");
  node.expect(o.min_step >= 0 && std::isfinite(o.min_step), "min_step",
              "must be a finite number >= 0");
  node.expect_one_of("norm", o.norm, {"rms", "max"});
  node.expect_one_of("error_estimate", o.error_estimate, {"dormand_prince", "shampine"});
  node.finish();
  return o;
}

Dopri5Solver::Dopri5Solver(Dopri5Options options) : options_(std::move(options)) {}

OdeStats Dopri5Solver::integrate(const OdeSystem& f, Matrix& x, Real t0, Real t1) const {
  if (!std::isfinite(t0) || !std::isfinite(t1))
    throw NumericalError("dopri5: the time span must be finite");
  OdeStats stats;
  if (t0 == t1 || x.size() == 0) return stats;
  const Real direction = t1 > t0 ? 1 : -1;
  const Real span = std::abs(t1 - t0);
  const Real atol = options_.atol, rtol = options_.rtol;

  MatrixAlgebra algebra;
  algebra.rms = options_.norm == "rms";
  auto system = [&f, &stats](const Matrix& state, Matrix& dxdt, Real t) {
    ++stats.function_evaluations;
    dxdt.resize(state.shape());
    f(state, t, dxdt);
  };

  Matrix dxdt(x.shape()), x_new(x.shape()), dxdt_new(x.shape()), buffer;
  system(x, dxdt, t0);

  Real h = options_.first_step;
  if (h == 0) {
    // Starting step size (Hairer, Nørsett & Wanner, "Solving ODEs I", II.4,
    // p. 169): h0 from ‖x0‖ / ‖f0‖, then a second-derivative estimate from one
    // explicit Euler step, h1 = (0.01 / max(d1, d2))^(1/5), h = min(100 h0, h1).
    const Real d0 = scaled_norm(algebra, x, x, x, atol, rtol, buffer);
    const Real d1 = scaled_norm(algebra, dxdt, x, x, atol, rtol, buffer);
    const Real h0 = (d0 < 1e-5 || d1 < 1e-5) ? 1e-6 : 0.01 * d0 / d1;
    xt::noalias(x_new) = x + (direction * h0) * dxdt;
    system(x_new, dxdt_new, t0 + direction * h0);
    xt::noalias(buffer) = dxdt_new - dxdt;
    const Real d2 = scaled_norm(algebra, buffer, x, x, atol, rtol, buffer) / h0;
    const Real d12 = std::max(d1, d2);
    const Real h1 = d12 <= 1e-15 ? std::max(1e-6, h0 * 1e-3) : std::pow(0.01 / d12, 1.0 / 5.0);
    h = std::min(100 * h0, h1);
    if (!std::isfinite(h) || h <= 0) h = 1e-6;
  }
  h = std::min(h, span);

  // odeint's stepper estimates the error with Dormand and Prince's embedded
  // order-4 weights; Shampine's (1986) give exactly 2/3 of that estimate.
  const Real error_scale = options_.error_estimate == "shampine" ? Real(2) / Real(3) : Real(1);
  Stepper stepper(algebra);
  Matrix error(x.shape());
  Real t = t0;
  Real dt = direction * h;
  while (true) {
    if (stats.steps_accepted + stats.steps_rejected >= options_.max_steps)
      throw NumericalError(fmt::format(
          "dopri5: reached max_steps = {} at t = {} of [{}, {}] ({} accepted, {} rejected); "
          "raise max_steps or loosen rtol/atol",
          options_.max_steps, t, t0, t1, stats.steps_accepted, stats.steps_rejected));
    // The last step lands on t1 exactly.
    const bool last = direction * (t + dt - t1) >= 0;
    const Real step = last ? t1 - t : dt;
    stepper.do_step(system, x, dxdt, t, x_new, dxdt_new, step, error);
    const Real ratio = error_scale * scaled_norm(algebra, error, x, x_new, atol, rtol, error);
    const bool accepted = ratio <= 1;
    dt = step * step_factor(ratio, accepted);
    if (accepted) {
      ++stats.steps_accepted;
      t += step;
      std::swap(x, x_new);
      std::swap(dxdt, dxdt_new);
      if (last) break;
    } else {
      ++stats.steps_rejected;
    }
    // A collapsing step (a singularity, a non-finite field, stiffness) is an
    // error, not an endless loop; a short final stretch before t1 is fine.
    if (std::abs(dt) < options_.min_step && std::abs(t1 - t) > options_.min_step)
      throw NumericalError(fmt::format(
          "dopri5: the step size fell to {:.3g} (min_step {:.3g}) at t = {} of [{}, {}] "
          "({} accepted, {} rejected steps); the velocity field is too stiff or not finite there",
          std::abs(dt), options_.min_step, t, t0, t1, stats.steps_accepted, stats.steps_rejected));
  }
  for (Real v : x)
    if (!std::isfinite(v))
      throw NumericalError("dopri5: the state became non-finite (the velocity field blew up)");
  return stats;
}

std::unique_ptr<OdeSolver> make_dopri5(ConfigNode& node, const BuildContext&) {
  return std::make_unique<Dopri5Solver>(Dopri5Options::from(node));
}

}  // namespace flows::flow_matching
