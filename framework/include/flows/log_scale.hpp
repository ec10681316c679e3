#pragma once
// The guard on exponentiated log-scale parameters (the `affine` and `actnorm`
// bijectors, `batch_norm`'s log γ, `diagonal_normal`'s log σ). Each uses
// e^{ŝ} with
//   ŝ = clamp(s, −kMaxLogScale, kMaxLogScale),
// so that no value an optimizer or a checkpoint gives s overflows e^{±ŝ}
// (e^30 ≈ 1e13: far beyond the scale of standardized data, and far from the
// overflow of e^x at x ≈ 709 even after squaring). Inside the bound nothing
// changes; outside it the map does not depend on s, and ∂ŝ/∂s = 0 there, the
// true derivative of the clamped map. A NaN stays NaN, with slope 1, so it
// still reaches the loss and the gradients.
// (The affine *transformer*, whose log-scales are network outputs, bounds them
// smoothly with S tanh(r / S) instead; see affine_transformer.hpp.)
#include <algorithm>
#include <cmath>

#include "flows/tensor.hpp"

namespace flows {

inline constexpr Real kMaxLogScale = 30;

inline Real clamp_log_scale(Real s) {
  return std::clamp(s, -kMaxLogScale, kMaxLogScale);
}

// ∂ŝ/∂s: 1 inside the bound (and for NaN), 0 outside.
inline Real clamp_log_scale_slope(Real s) {
  return std::abs(s) > kMaxLogScale ? 0 : 1;
}

}  // namespace flows
