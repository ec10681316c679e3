#include "flows/nn/linear.hpp"

#include <cmath>
#include <string>

#include "flows/error.hpp"
#include "flows/nn/dense.hpp"

namespace flows::nn {

namespace {

Index checked_size(Index n, const char* what) {
  if (n == 0) throw ConfigError(std::string("Linear: ") + what + " must be positive");
  return n;
}

}  // namespace

// PyTorch's nn.Linear default (kaiming_uniform with a = sqrt(5)) amounts to
// W, b ~ U(-1/sqrt(in), 1/sqrt(in)).
Linear::Linear(Index in, Index out, Rng& rng)
    : weight_("weight",
              uniform_init(checked_size(out, "out_features"), checked_size(in, "in_features"),
                           1 / std::sqrt(Real(in)), rng)),
      bias_("bias", uniform_init(1, out, 1 / std::sqrt(Real(in)), rng)) {}

void Linear::infer(const Matrix& x, Matrix& y) const {
  check_input("Linear", x, in_features());
  y.resize({x.shape(0), out_features()});
  dense_forward(x, weight_.value, bias_.value.data(), y);
}

Matrix Linear::infer(const Matrix& x) const {
  Matrix y;
  infer(x, y);
  return y;
}

// y = x Wᵀ + b  ⇒  dL/dx = dL/dy W,  dL/dW = (dL/dy)ᵀ x,  dL/db = Σ_rows dL/dy.
void Linear::backward(const Matrix& x, const Matrix& grad_y, Matrix& grad_x,
                      bool accumulate_param_grads) {
  check_backward("Linear", x, grad_y, in_features(), out_features());
  grad_x.resize({x.shape(0), in_features()});
  dense_input_gradient(grad_y, weight_.value, grad_x);
  if (!accumulate_param_grads) return;
  dense_weight_gradient(x, grad_y, weight_.grad, Real(1));
  accumulate_bias_gradient(grad_y, bias_.grad);
}

}  // namespace flows::nn
