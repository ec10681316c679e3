#pragma once
#include <cstdint>
#include <functional>
#include <string>

#include "flows/bijector.hpp"
#include "flows/export.hpp"
#include "flows/parameter.hpp"

namespace flows::testing {

// A function y = f(x; θ) with a hand-written backward, as the checker sees it.
struct DifferentiableFunction {
  // The training forward pass; may record what backward needs.
  std::function<Matrix(const Matrix& x)> forward;
  // For the last forward: given dL/dy returns dL/dx and *accumulates* dL/dθ
  // into params' gradients.
  std::function<Matrix(const Matrix& grad_y)> backward;
  ParameterList params;
};

struct GradientCheckOptions {
  Real step = 1e-6;                // central-difference step
  Real relative_tolerance = 1e-5;  // |a - n| / max(|a|, |n|, absolute_floor)
  Real absolute_floor = 1e-4;      // below this magnitude errors are judged absolutely (central
                                   // differences at step 1e-6 carry ~1e-10 round-off)
  std::uint64_t seed = 0;          // for the random projection of the output
};

struct GradientCheckResult {
  bool ok = false;
  Real worst_relative_error = 0;
  std::string worst_entry;  // e.g. "param 'weight'[3,1]" or "input[0,2]"
  std::string report;       // one line per checked tensor, readable
};

// Checks dL/dx and dL/dθ of L = Σ_ij r_ij y_ij (r random, fixed by seed)
// against central differences of the forward pass.
FLOWS_API GradientCheckResult check_gradients(const DifferentiableFunction& f, const Matrix& x,
                                              const GradientCheckOptions& options = {});

// The same for a bijector's training pass, with L = Σ r_ij z_ij + Σ s_i logdet_i:
// dL/dx and dL/dθ of an unconditional bijector (context_dim() = 0).
FLOWS_API GradientCheckResult check_bijector_gradients(Bijector& bijector, const Matrix& x,
                                                       const GradientCheckOptions& options = {});
// With a context c (n x context_dim(), or empty for an unconditional
// bijector): also dL/dc, which backward must *add* to grad_context; the
// report names the context's entries "context[i,j]".
FLOWS_API GradientCheckResult check_bijector_gradients(Bijector& bijector, const Matrix& x,
                                                       const Matrix& context,
                                                       const GradientCheckOptions& options = {});

// ∂f(x)/∂x for one row x (1 x d) by central differences: d_out x d.
FLOWS_API Matrix numerical_jacobian(const std::function<Matrix(const Matrix&)>& f, const Matrix& x,
                                    Real step = 1e-6);

}  // namespace flows::testing
