#pragma once
#include "flows/export.hpp"
#include "flows/parameter.hpp"
#include "flows/state.hpp"
#include "flows/tensor.hpp"

namespace flows {

// The result of transforming a batch: the values and log|det J| per row.
struct Transformed {
  Matrix value;
  Vector logdet;
};

// An invertible map between data space (x) and latent space (z). "forward" is
// the normalizing direction x -> z, as in nflows and TensorFlow Probability:
//   log p_x(x) = log p_z(f(x)) + log|det ∂f/∂x|.
// `context` is an optional conditioning matrix (one row per sample, empty when
// unconditional); bijectors that are not conditional ignore it.
class FLOWS_API Bijector {
 public:
  virtual ~Bijector() = default;

  virtual Index dim() const = 0;

  // Inference, no state kept, safe to call from several threads at once
  // (Flow runs row blocks in parallel). forward: z = f(x) and log|det ∂f/∂x|.
  virtual Transformed forward(const Matrix& x, const Matrix& context) const = 0;
  // x = f⁻¹(z) and log|det ∂f⁻¹/∂z| (the negative of forward's at x).
  virtual Transformed inverse(const Matrix& z, const Matrix& context) const = 0;

  // Training: the forward pass in training mode (batch statistics, data-
  // dependent initialisation), recording what backward needs. z and logdet
  // are resized as needed, so callers can reuse them across steps.
  virtual void forward_train(const Matrix& x, const Matrix& context, Matrix& z, Vector& logdet) = 0;
  // For the last forward_train: given dL/dz and dL/dlogdet, writes dL/dx into
  // grad_x and *accumulates* dL/dθ into parameters()' gradients.
  virtual void backward(const Matrix& grad_z, const Vector& grad_logdet, Matrix& grad_x) = 0;

  virtual ParameterList parameters() = 0;

  // Saves or restores everything that, with the options, defines this
  // bijector (checkpoints). The default visits parameters(); bijectors with
  // other state (a permutation) or structure drawn from the seed (orderings)
  // override it, call visit_parameters, and validate after loading.
  virtual void visit_state(StateVisitor& visitor);
};

}  // namespace flows
