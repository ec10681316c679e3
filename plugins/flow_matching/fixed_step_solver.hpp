#pragma once
#include <memory>
#include <string>

#include <flows/config.hpp>
#include <flows/ode_solver.hpp>
#include <flows/registry.hpp>

namespace flows::flow_matching {

// The explicit fixed-step Runge–Kutta methods (Hairer, Nørsett & Wanner,
// "Solving Ordinary Differential Equations I", II.1): euler (order 1, one
// evaluation per step), midpoint (order 2, two) and the classical rk4 (order 4,
// four). Each is an odeint stepper driven for exactly `steps` equal steps.
struct FixedStepOptions {
  Index steps = 100;  // equal steps from t0 to t1

  static FixedStepOptions from(ConfigNode& node);
};

class FixedStepSolver : public OdeSolver {
 public:
  enum class Method { euler, midpoint, rk4 };

  FixedStepSolver(Method method, FixedStepOptions options);
  OdeStats integrate(const OdeSystem& f, Matrix& x, Real t0, Real t1) const override;

  Method method() const { return method_; }
  const FixedStepOptions& options() const { return options_; }

 private:
  Method method_;
  FixedStepOptions options_;
};

std::unique_ptr<OdeSolver> make_euler(ConfigNode& node, const BuildContext& context);
std::unique_ptr<OdeSolver> make_midpoint(ConfigNode& node, const BuildContext& context);
std::unique_ptr<OdeSolver> make_rk4(ConfigNode& node, const BuildContext& context);

}  // namespace flows::flow_matching
