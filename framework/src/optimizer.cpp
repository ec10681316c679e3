#include "flows/optimizer.hpp"

#include <cmath>

namespace flows {

Real LearningRateSchedule::at(Real lr, Index step, Index total) const {
  if (warmup > 0 && step < warmup)
    return lr * static_cast<Real>(step + 1) / static_cast<Real>(warmup);
  if (kind == "cosine" && total > warmup) {
    Real progress = static_cast<Real>(step - warmup) / static_cast<Real>(total - warmup);
    progress = std::min<Real>(1.0, progress);
    return min_lr + 0.5 * (lr - min_lr) * (1.0 + std::cos(M_PI * progress));
  }
  return lr;
}

Real clip_gradient_norm(const ParameterList& params, Real max_norm) {
  const Real norm = gradient_norm(params);
  // A non-finite norm means a non-finite gradient: scaling would hide it
  // (to zeros or NaN), so it is left for the caller (the training loop stops
  // or skips the batch).
  if (max_norm > 0 && std::isfinite(norm) && norm > max_norm) {
    const Real scale = max_norm / norm;
    for (Parameter* p : params) p->grad *= scale;
  }
  return norm;
}

}  // namespace flows
