#pragma once
#include <memory>

#include <flows/bijector.hpp>
#include <flows/config.hpp>
#include <flows/registry.hpp>

namespace flows::basic {

// Elementwise affine map with learnable shift b and log-scale s (1 x d each),
// read as "x is b plus e^s times a standard variable":
//   forward  z = (x − b) · e^{−s},   log|det ∂z/∂x| = −Σ_j s_j  (every row)
//   inverse  x = b + e^{s} · z,      log|det ∂x/∂z| = +Σ_j s_j
// so b and e^s are the data-side location and scale (what ActNorm sets).
class Affine : public Bijector {
 public:
  // `name` is used in error messages.
  Affine(Index dim, Real shift, Real log_scale, const char* name = "affine");

  Index dim() const override { return shift_.value.shape(1); }
  Transformed forward(const Matrix& x, const Matrix& context) const override;
  Transformed inverse(const Matrix& z, const Matrix& context) const override;
  void forward_train(const Matrix& x, const Matrix& context, Matrix& z, Vector& logdet) override;
  void backward(const Matrix& grad_z, const Vector& grad_logdet, Matrix& grad_x) override;
  ParameterList parameters() override { return {&shift_, &log_scale_}; }

 protected:
  Parameter shift_;      // b, named "shift"
  Parameter log_scale_;  // s, named "log_scale"
  const char* name_;

 private:
  Matrix z_;  // the last forward_train's output, for dL/ds
  bool recorded_ = false;
};

struct AffineOptions {
  Real shift = 0.0;      // initial b for every dimension
  Real log_scale = 0.0;  // initial s for every dimension (0: unit scale)

  static AffineOptions from(ConfigNode& node);
};

// Factory of `affine`.
std::unique_ptr<Bijector> make_affine(ConfigNode& node, const BuildContext& context);

}  // namespace flows::basic
