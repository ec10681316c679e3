#include "flows/nn/linear.hpp"

#include <cmath>
#include <string>

#include "flows/error.hpp"

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

template <class T>
void Linear::forward(const MatrixOf<T>& x, MatrixOf<T>& y) {
  DenseCopy<T>& copy = copy_.get<T>();
  infer(x, y, copy);
}

template <class T>
void Linear::infer(const MatrixOf<T>& x, MatrixOf<T>& y, DenseCopy<T>& copy) const {
  infer(x, y, copy, Activation(Activation::Kind::identity));
}

template <class T>
void Linear::infer(const MatrixOf<T>& x, MatrixOf<T>& y, DenseCopy<T>& copy,
                   const Activation& f) const {
  check_input("Linear", x, in_features());
  copy.refresh(weight_, bias_, nullptr);
  dense_layer_infer(copy, nullptr, x, f, y, false);
}

void Linear::infer(const Matrix& x, Matrix& y) const {
  DenseCopy<Real> copy;
  infer(x, y, copy);
}

Matrix Linear::infer(const Matrix& x) const {
  Matrix y;
  infer(x, y);
  return y;
}

// y = x Wᵀ + b  ⇒  dL/dx = dL/dy W,  dL/dW = (dL/dy)ᵀ x,  dL/db = Σ_rows dL/dy.
template <class T>
void Linear::backward(const MatrixOf<T>& x, const MatrixOf<T>& grad_y, MatrixOf<T>& grad_x,
                      bool accumulate_param_grads) {
  check_backward("Linear", x, grad_y, in_features(), out_features());
  DenseCopy<T>& copy = copy_.get<T>();
  if (copy.weight.shape() != weight_.value.shape()) copy.refresh(weight_, bias_, nullptr);
  dense_layer_backward(copy, weight_, bias_, nullptr, x, grad_y, grad_x, accumulate_param_grads);
}

#define FLOWS_LINEAR(T)                                                                  \
  template void Linear::forward<T>(const MatrixOf<T>&, MatrixOf<T>&);                    \
  template void Linear::infer<T>(const MatrixOf<T>&, MatrixOf<T>&, DenseCopy<T>&) const; \
  template void Linear::infer<T>(const MatrixOf<T>&, MatrixOf<T>&, DenseCopy<T>&,        \
                                 const Activation&) const;                               \
  template void Linear::backward<T>(const MatrixOf<T>&, const MatrixOf<T>&, MatrixOf<T>&, bool);
FLOWS_LINEAR(float)
FLOWS_LINEAR(double)
#undef FLOWS_LINEAR

}  // namespace flows::nn
