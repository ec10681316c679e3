#pragma once
#include <functional>

#include "flows/export.hpp"
#include "flows/tensor.hpp"

namespace flows {

// dx/dt = f(x, t) for a whole batch: f writes dxdt (same shape as x).
using OdeSystem = std::function<void(const Matrix& x, Real t, Matrix& dxdt)>;

struct OdeStats {
  Index function_evaluations = 0;
  Index steps_accepted = 0;
  Index steps_rejected = 0;
};

// Integrates a batched state from t0 to t1 in place. Built by name (kind
// "ode_solver").
class FLOWS_API OdeSolver {
 public:
  virtual ~OdeSolver() = default;
  virtual OdeStats integrate(const OdeSystem& f, Matrix& x, Real t0, Real t1) const = 0;
};

}  // namespace flows
