#include "affine.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include <flows/log_scale.hpp>

namespace flows::basic {

Affine::Affine(Index dim, Real shift, Real log_scale, const char* name)
    : Bijector(name, dim),
      shift_("shift", Matrix({1, dim}, shift)),
      log_scale_("log_scale", Matrix({1, dim}, log_scale)) {}

namespace {

// ŝ: the log-scales through the overflow guard of log_scale.hpp.
Matrix clamped(const Matrix& log_scale) {
  Matrix s = log_scale;
  for (Real& v : s) v = clamp_log_scale(v);
  return s;
}

}  // namespace

// z = (x − b) · e^{−ŝ}; log|det| = −Σ_j ŝ_j.
Transformed Affine::forward_impl(const Matrix& x, const Matrix&) const {
  const Matrix s = clamped(log_scale_.value);
  Transformed out;
  out.value = (x - shift_.value) * xt::exp(-s);
  out.logdet = xt::zeros<Real>({x.shape(0)}) - xt::sum(s)();
  return out;
}

std::vector<Finding> Affine::diagnose(const Matrix&, const Matrix&) const {
  const Matrix s = clamped(log_scale_.value);
  const Real top = *std::max_element(s.begin(), s.end());
  const Real bottom = *std::min_element(s.begin(), s.end());
  const double ratio = std::exp(top - bottom);
  Finding f{"scale ratio max/min", ratio, kScaleRatioThreshold, ratio <= kScaleRatioThreshold, ""};
  const bool clamped_at_bound = std::any_of(log_scale_.value.begin(), log_scale_.value.end(),
                                            [](Real v) { return std::abs(v) >= kMaxLogScale; });
  if (!f.ok || clamped_at_bound) {
    char text[240];
    std::snprintf(text, sizeof text,
                  "scales e^s from %.3g to %.3g%s: the columns' scales differ too much for one "
                  "layer (standardize the data, or lower the learning rate)",
                  std::exp(bottom), std::exp(top),
                  clamped_at_bound ? ", a log-scale at the clamp |s| = 30 (gradient 0)" : "");
    f.advice = text;
    f.ok = f.ok && !clamped_at_bound;
  }
  return {f};
}

// x = b + e^{ŝ} · z; log|det| = +Σ_j ŝ_j.
Transformed Affine::inverse_impl(const Matrix& z, const Matrix&) const {
  const Matrix s = clamped(log_scale_.value);
  Transformed out;
  out.value = shift_.value + z * xt::exp(s);
  out.logdet = xt::zeros<Real>({z.shape(0)}) + xt::sum(s)();
  return out;
}

void Affine::forward_train_impl(const Matrix& x, const Matrix&, Matrix& z, Vector& logdet) {
  const Matrix s = clamped(log_scale_.value);
  z = (x - shift_.value) * xt::exp(-s);
  logdet = xt::zeros<Real>({x.shape(0)}) - xt::sum(s)();
  z_ = z;
}

// With g = dL/dz, γ = dL/dlogdet and c_j = ∂ŝ_j/∂s_j (1 inside the clamp, 0
// outside):
//   dL/dx_ij = g_ij e^{−ŝ_j}
//   dL/db_j  = −Σ_i g_ij e^{−ŝ_j}
//   dL/ds_j  = −c_j (Σ_i g_ij z_ij + Σ_i γ_i)   (∂z_ij/∂ŝ_j = −z_ij, ∂logdet_i/∂ŝ_j = −1)
void Affine::backward_impl(const Matrix& grad_z, const Vector& grad_logdet, Matrix& grad_x,
                           Matrix*) {
  const Matrix inv_scale = xt::exp(-clamped(log_scale_.value));
  grad_x = grad_z * inv_scale;
  const Real sum_grad_logdet = xt::sum(grad_logdet)();
  const Index rows = grad_z.shape(0);
  for (Index j = 0; j < dim(); ++j) {
    Real sum_g = 0;
    Real sum_gz = 0;
    for (Index i = 0; i < rows; ++i) {
      sum_g += grad_z(i, j);
      sum_gz += grad_z(i, j) * z_(i, j);
    }
    shift_.grad(0, j) -= sum_g * inv_scale(0, j);
    log_scale_.grad(0, j) -=
        clamp_log_scale_slope(log_scale_.value(0, j)) * (sum_gz + sum_grad_logdet);
  }
}

AffineOptions AffineOptions::from(ConfigNode& node) {
  AffineOptions o;
  node.read("shift", o.shift);
  node.read("log_scale", o.log_scale);
  node.expect(std::isfinite(o.shift), "shift", "must be a finite number");
  node.expect(std::isfinite(o.log_scale) && std::abs(o.log_scale) <= 30, "log_scale",
              "must be a finite number in [-30, 30]");
  node.finish();
  return o;
}

std::unique_ptr<Bijector> make_affine(ConfigNode& node, const BuildContext& context) {
  const AffineOptions options = AffineOptions::from(node);
  return std::make_unique<Affine>(context.dim, options.shift, options.log_scale);
}

}  // namespace flows::basic
