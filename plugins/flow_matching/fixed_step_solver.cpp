#include "fixed_step_solver.hpp"

#include <cmath>

#include <boost/array.hpp>
#include <boost/numeric/odeint/stepper/euler.hpp>
#include <boost/numeric/odeint/stepper/explicit_generic_rk.hpp>
#include <boost/numeric/odeint/stepper/runge_kutta4_classic.hpp>

#include <flows/error.hpp>

#include "matrix_odeint.hpp"

namespace flows::flow_matching {

namespace odeint = boost::numeric::odeint;

namespace {

using Euler = odeint::euler<Matrix, Real, Matrix, Real, MatrixAlgebra>;
using Rk4 = odeint::runge_kutta4_classic<Matrix, Real, Matrix, Real, MatrixAlgebra>;
using GenericRk2 = odeint::explicit_generic_rk<2, 2, Matrix, Real, Matrix, Real, MatrixAlgebra>;

// The explicit midpoint rule: k1 = f(t, x), k2 = f(t + h/2, x + h/2 k1),
// x ← x + h k2; Butcher tableau c = (0, 1/2), a21 = 1/2, b = (0, 1).
GenericRk2 make_midpoint_stepper() {
  const boost::array<Real, 1> a1 = {{0.5}};
  const GenericRk2::coef_a_type a(a1);
  const GenericRk2::coef_b_type b = {{0.0, 1.0}};
  const GenericRk2::coef_c_type c = {{0.0, 0.5}};
  return GenericRk2(a, b, c);
}

// Returns the number of evaluations of f.
template <class Stepper>
Index run_steps(Stepper& stepper, const OdeSystem& f, Matrix& x, Real t0, Real t1, Index steps) {
  const Real dt = (t1 - t0) / static_cast<Real>(steps);
  Index evaluations = 0;
  auto system = [&f, &evaluations](const Matrix& state, Matrix& dxdt, Real t) {
    ++evaluations;
    f(state, t, dxdt);
  };
  for (Index k = 0; k < steps; ++k) {
    // t from the step count, so that rounding does not accumulate.
    const Real t = t0 + static_cast<Real>(k) * dt;
    stepper.do_step(system, x, t, dt);
  }
  return evaluations;
}

}  // namespace

FixedStepOptions FixedStepOptions::from(ConfigNode& node) {
  FixedStepOptions o;
  node.read("steps", o.steps);
  node.expect(o.steps > 0, "steps", "must be > 0");
  node.finish();
  return o;
}

FixedStepSolver::FixedStepSolver(Method method, FixedStepOptions options)
    : method_(method), options_(options) {}

OdeStats FixedStepSolver::integrate(const OdeSystem& f, Matrix& x, Real t0, Real t1) const {
  if (!std::isfinite(t0) || !std::isfinite(t1))
    throw NumericalError("ODE solver: the time span must be finite");
  OdeStats stats;
  if (t0 == t1) return stats;
  const Index steps = options_.steps;
  switch (method_) {
    case Method::euler: {
      Euler stepper;
      stats.function_evaluations = run_steps(stepper, f, x, t0, t1, steps);
      break;
    }
    case Method::midpoint: {
      GenericRk2 stepper = make_midpoint_stepper();
      stats.function_evaluations = run_steps(stepper, f, x, t0, t1, steps);
      break;
    }
    case Method::rk4: {
      Rk4 stepper;
      stats.function_evaluations = run_steps(stepper, f, x, t0, t1, steps);
      break;
    }
  }
  for (Real v : x)
    if (!std::isfinite(v))
      throw NumericalError("ODE solver: the state became non-finite (the velocity field blew up)");
  stats.steps_accepted = steps;
  return stats;
}

std::unique_ptr<OdeSolver> make_euler(ConfigNode& node, const BuildContext&) {
  return std::make_unique<FixedStepSolver>(FixedStepSolver::Method::euler,
                                           FixedStepOptions::from(node));
}

std::unique_ptr<OdeSolver> make_midpoint(ConfigNode& node, const BuildContext&) {
  return std::make_unique<FixedStepSolver>(FixedStepSolver::Method::midpoint,
                                           FixedStepOptions::from(node));
}

std::unique_ptr<OdeSolver> make_rk4(ConfigNode& node, const BuildContext&) {
  return std::make_unique<FixedStepSolver>(FixedStepSolver::Method::rk4,
                                           FixedStepOptions::from(node));
}

}  // namespace flows::flow_matching
