#pragma once
#include "flows/export.hpp"
#include "flows/parameter.hpp"
#include "flows/rng.hpp"
#include "flows/state.hpp"
#include "flows/tensor.hpp"

namespace flows {

// The latent density p_z of a flow, or p_z(z | c) for a conditional one.
// `context` is the conditioning matrix (one row per sample, context_dim()
// columns); unconditional distributions (context_dim() = 0) ignore it.
class FLOWS_API BaseDistribution {
 public:
  virtual ~BaseDistribution() = default;

  virtual Index dim() const = 0;
  virtual Index context_dim() const = 0;
  // log p_z(z), one value per row.
  virtual Vector log_prob(const Matrix& z, const Matrix& context) const = 0;
  virtual Matrix sample(Index n, const Matrix& context, Rng& rng) const = 0;
  // log_prob and sample into a caller's buffer (resized when its shape
  // differs), so that a training step reuses it; the defaults call the two
  // above, and a distribution overrides them to allocate nothing.
  virtual void log_prob_into(const Matrix& z, const Matrix& context, Vector& out) const {
    out = log_prob(z, context);
  }
  virtual void sample_into(Index n, const Matrix& context, Rng& rng, Matrix& out) const {
    out = sample(n, context, rng);
  }
  // Training: given w = dL/dlog_prob per row, writes dL/dz into grad_z and
  // accumulates dL/dθ into the parameters' gradients; when grad_context is
  // not null (conditional distributions only), *adds* dL/dc to it.
  virtual void log_prob_backward(const Matrix& z, const Matrix& context,
                                 const Vector& grad_log_prob, Matrix& grad_z,
                                 Matrix* grad_context) = 0;
  virtual ParameterList parameters() = 0;
  // Checkpoints: the default visits parameters().
  virtual void visit_state(StateVisitor& visitor);
};

}  // namespace flows
