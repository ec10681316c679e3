#include "flows/nn/masked_linear.hpp"

#include <cmath>
#include <string>

#include "flows/error.hpp"
#include "flows/nn/dense.hpp"

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
    : weight_("weight", uniform_init(checked_mask(mask).shape(0), mask.shape(1),
                                     1 / std::sqrt(Real(mask.shape(1))), rng)),
      bias_("bias", uniform_init(1, mask.shape(0), 1 / std::sqrt(Real(mask.shape(1))), rng)),
      mask_(mask),
      masked_weight_(weight_.value * mask_) {
  weight_.value = masked_weight_;
}

void MaskedLinear::update_masked_weight() {
  apply_mask(weight_.value, mask_, masked_weight_);
}

void MaskedLinear::forward(const Matrix& x, Matrix& y, bool accumulate) {
  check_input("MaskedLinear", x, in_features());
  update_masked_weight();
  if (!accumulate) y.resize({x.shape(0), out_features()});
  dense_forward(x, masked_weight_, bias_.value.data(), y, accumulate);
}

void MaskedLinear::infer(const Matrix& x, Matrix& y, Matrix& masked_weight, bool accumulate) const {
  check_input("MaskedLinear", x, in_features());
  apply_mask(weight_.value, mask_, masked_weight);
  if (!accumulate && (y.shape(0) != x.shape(0) || y.shape(1) != out_features()))
    y.resize({x.shape(0), out_features()});
  dense_forward(x, masked_weight, bias_.value.data(), y, accumulate);
}

void MaskedLinear::infer(const Matrix& x, Matrix& y) const {
  Matrix masked_weight;
  infer(x, y, masked_weight);
}

Matrix MaskedLinear::infer(const Matrix& x) const {
  Matrix y;
  infer(x, y);
  return y;
}

// y = x (W ⊙ M)ᵀ + b  ⇒  dL/dx = dL/dy (W ⊙ M),  dL/dW = ((dL/dy)ᵀ x) ⊙ M,
// dL/db = Σ_rows dL/dy. dL/dW accumulates straight into the gradient and the
// mask then zeroes its masked entries again (they held 0 before: nothing else
// writes there), saving a scratch matrix and a pass. W ⊙ M is the one the
// last forward used.
void MaskedLinear::backward(const Matrix& x, const Matrix& grad_y, Matrix& grad_x,
                            bool accumulate_param_grads) {
  check_backward("MaskedLinear", x, grad_y, in_features(), out_features());
  if (masked_weight_.shape() != mask_.shape()) update_masked_weight();
  if (grad_x.shape(0) != x.shape(0) || grad_x.shape(1) != in_features())
    grad_x.resize({x.shape(0), in_features()});
  dense_input_gradient(grad_y, masked_weight_, grad_x);
  if (!accumulate_param_grads) return;
  dense_weight_gradient(x, grad_y, weight_.grad, Real(1));
  xt::noalias(weight_.grad) *= mask_;
  accumulate_bias_gradient(grad_y, bias_.grad);
}

}  // namespace flows::nn
