#pragma once
#include <memory>

#include <flows/config.hpp>
#include <flows/ode_solver.hpp>
#include <flows/registry.hpp>

namespace flows::flow_matching {

struct Dopri5Options {
  Real rtol = 1e-5;          // relative tolerance
  Real atol = 1e-5;          // absolute tolerance, > 0
  Real first_step = 0;       // initial step size |h0| (0: chosen from f, Hairer's II.4 rule)
  Index max_steps = 10000;   // accepted + rejected steps before a NumericalError
  Real min_step = 1e-12;     // a step size below this (away from t1) is a NumericalError
  std::string norm = "rms";  // error norm over the whole batch: rms | max
  // The embedded order-4 solution whose difference from the order-5 one is
  // the error estimate: dormand_prince (Dormand & Prince 1980, as Hairer's
  // DOPRI5, scipy and MATLAB) or shampine (Shampine 1986, as torchdiffeq),
  // whose estimate is exactly 2/3 of the former's, so it takes the steps
  // dormand_prince takes at 1.5x the tolerances.
  std::string error_estimate = "dormand_prince";

  static Dopri5Options from(ConfigNode& node);
};

// The Dormand–Prince 5(4) pair with FSAL (Dormand & Prince 1980): odeint's
// runge_kutta_dopri5 stepper under the step-size control of Hairer, Nørsett &
// Wanner, "Solving ODEs I", II.4 (error scaled by atol + rtol max(|x0|, |x1|),
// steps grown at most 10x and shrunk at most 5x, an accepted step never
// shrunk; the constants torchdiffeq uses), in a loop that counts evaluations,
// clips the last step onto t1, and fails with NumericalError instead of
// looping when the step collapses or the budget runs out. Integrates
// backwards when t1 < t0.
class Dopri5Solver : public OdeSolver {
 public:
  explicit Dopri5Solver(Dopri5Options options);
  OdeStats integrate(const OdeSystem& f, Matrix& x, Real t0, Real t1) const override;
  const Dopri5Options& options() const { return options_; }

 private:
  Dopri5Options options_;
};

std::unique_ptr<OdeSolver> make_dopri5(ConfigNode& node, const BuildContext& context);

}  // namespace flows::flow_matching
