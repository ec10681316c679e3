#include "flows/nn/masked_linear.hpp"

#include <cmath>
#include <string>

#include "affine.hpp"
#include "flows/error.hpp"

namespace flows::nn {

namespace {

const Matrix& checked_mask(const Matrix& mask) {
  if (mask.shape(0) == 0 || mask.shape(1) == 0)
    throw ConfigError("MaskedLinear: the mask must have at least one row and one column");
  for (Real m : mask)
    if (m != Real(0) && m != Real(1))
      throw ConfigError("MaskedLinear: mask entries must be 0 or 1, found " + std::to_string(m));
  return mask;
}

}  // namespace

// Initialised as nn.Linear (U(-1/sqrt(in), 1/sqrt(in)), fan-in counting masked
// inputs too, as nflows' MaskedLinear does), then masked.
MaskedLinear::MaskedLinear(const Matrix& mask, Rng& rng)
    : weight_("weight", detail::uniform_init(checked_mask(mask).shape(0), mask.shape(1),
                                             1 / std::sqrt(Real(mask.shape(1))), rng)),
      bias_("bias",
            detail::uniform_init(1, mask.shape(0), 1 / std::sqrt(Real(mask.shape(1))), rng)),
      mask_(mask),
      masked_weight_(weight_.value * mask_),
      weight_grad_(xt::zeros_like(mask_)) {
  weight_.value = masked_weight_;
}

void MaskedLinear::update_masked_weight() {
  masked_weight_.resize(mask_.shape());
  xt::noalias(masked_weight_) = weight_.value * mask_;
}

void MaskedLinear::forward(const Matrix& x, Matrix& y) {
  detail::check_input("MaskedLinear", x, in_features());
  update_masked_weight();
  y.resize({x.shape(0), out_features()});
  detail::affine_forward(x, masked_weight_, bias_.value, y);
}

void MaskedLinear::infer(const Matrix& x, Matrix& y) const {
  detail::check_input("MaskedLinear", x, in_features());
  const Matrix w = weight_.value * mask_;
  y.resize({x.shape(0), out_features()});
  detail::affine_forward(x, w, bias_.value, y);
}

Matrix MaskedLinear::infer(const Matrix& x) const {
  Matrix y;
  infer(x, y);
  return y;
}

// y = x (W ⊙ M)ᵀ + b  ⇒  dL/dx = dL/dy (W ⊙ M),  dL/dW = ((dL/dy)ᵀ x) ⊙ M,
// dL/db = Σ_rows dL/dy.
void MaskedLinear::backward(const Matrix& x, const Matrix& grad_y, Matrix& grad_x,
                            bool accumulate_param_grads) {
  detail::check_backward("MaskedLinear", x, grad_y, in_features(), out_features());
  update_masked_weight();
  grad_x.resize({x.shape(0), in_features()});
  detail::affine_input_gradient(grad_y, masked_weight_, grad_x);
  if (!accumulate_param_grads) return;
  weight_grad_.resize(mask_.shape());
  detail::affine_weight_gradient(x, grad_y, weight_grad_, Real(0));
  xt::noalias(weight_.grad) += weight_grad_ * mask_;
  detail::accumulate_bias_gradient(grad_y, bias_.grad);
}

}  // namespace flows::nn
