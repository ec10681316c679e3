#pragma once
#include <memory>

#include <flows/bijector.hpp>
#include <flows/config.hpp>
#include <flows/diagnostics.hpp>
#include <flows/registry.hpp>

namespace flows::basic {

// Elementwise affine map with learnable shift b and log-scale s (1 x d each),
// read as "x is b plus e^s times a standard variable":
//   forward  z = (x − b) · e^{−s},   log|det ∂z/∂x| = −Σ_j s_j  (every row)
//   inverse  x = b + e^{s} · z,      log|det ∂x/∂z| = +Σ_j s_j
// so b and e^s are the data-side location and scale (what ActNorm sets).
// s enters through the overflow guard clamp(s, ±kMaxLogScale) of
// flows/log_scale.hpp (nothing changes for |s| ≤ 30).
class Affine : public Bijector, public Diagnosable {
 public:
  // `name` is used in error messages.
  Affine(Index dim, Real shift, Real log_scale, const char* name = "affine");

  ParameterList parameters() override { return {&shift_, &log_scale_}; }

  // The ratio of the largest to the smallest scale e^{ŝ_j} (fails above
  // kScaleRatioThreshold), and whether a log-scale sits at the clamp ±30,
  // where its gradient is 0 and it can no longer move.
  std::vector<Finding> diagnose(const Matrix& x, const Matrix& context) const override;

 protected:
  // ActNorm runs its initialisation first, then this.
  void forward_train_impl(const Matrix& x, const Matrix& context, Matrix& z,
                          Vector& logdet) override;

  Parameter shift_;      // b, named "shift"
  Parameter log_scale_;  // s, named "log_scale"

 private:
  Transformed forward_impl(const Matrix& x, const Matrix& context) const override;
  Transformed inverse_impl(const Matrix& z, const Matrix& context) const override;
  void backward_impl(const Matrix& grad_z, const Vector& grad_logdet, Matrix& grad_x,
                     Matrix* grad_context) override;

  Matrix z_;  // the last forward_train's output, for dL/ds
};

struct AffineOptions {
  Real shift = 0.0;      // initial b for every dimension
  Real log_scale = 0.0;  // initial s for every dimension (0: unit scale)

  static AffineOptions from(ConfigNode& node);
};

// Factory of `affine`.
std::unique_ptr<Bijector> make_affine(ConfigNode& node, const BuildContext& context);

}  // namespace flows::basic
