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

  static Dopri5Options from(ConfigNode& node);
};

// The Dormand–Prince 5(4) pair with FSAL and step-size control (Dormand &
// Prince 1980; Hairer, Nørsett & Wanner, "Solving ODEs I", II.4-5): odeint's
// runge_kutta_dopri5 and controlled_runge_kutta (error scaled by atol + rtol
// |x|, steps grown at most 5x and shrunk at most 5x), driven by a loop here
// that counts evaluations, clips the last step onto t1, and fails with
// NumericalError instead of looping when the step collapses or the budget runs
// out. Integrates backwards when t1 < t0.
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
