#include "flows/nn/masked_linear.hpp"

#include <cmath>
#include <string>

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
    : weight_("weight", uniform_init(checked_mask(mask).shape(0), mask.shape(1),
                                     1 / std::sqrt(Real(mask.shape(1))), rng)),
      bias_("bias", uniform_init(1, mask.shape(0), 1 / std::sqrt(Real(mask.shape(1))), rng)),
      mask_(mask) {
  xt::noalias(weight_.value) *= mask_;
}

template <class T>
void MaskedLinear::forward(const MatrixOf<T>& x, MatrixOf<T>& y, bool accumulate) {
  check_input("MaskedLinear", x, in_features());
  DenseCopy<T>& copy = copy_.get<T>();
  copy.refresh(weight_, bias_, &mask_);
  dense_layer_forward(copy, x, y, accumulate);
}

template <class T>
void MaskedLinear::infer(const MatrixOf<T>& x, MatrixOf<T>& y, DenseCopy<T>& copy,
                         bool accumulate) const {
  check_input("MaskedLinear", x, in_features());
  copy.refresh(weight_, bias_, &mask_);
  dense_layer_forward(copy, x, y, accumulate);
}

void MaskedLinear::infer(const Matrix& x, Matrix& y) const {
  DenseCopy<Real> copy;
  infer(x, y, copy);
}

Matrix MaskedLinear::infer(const Matrix& x) const {
  Matrix y;
  infer(x, y);
  return y;
}

// The weight gradient is masked as it joins W's gradient, so masked entries
// of W never receive any.
template <class T>
void MaskedLinear::backward(const MatrixOf<T>& x, const MatrixOf<T>& grad_y, MatrixOf<T>& grad_x,
                            bool accumulate_param_grads) {
  check_backward("MaskedLinear", x, grad_y, in_features(), out_features());
  DenseCopy<T>& copy = copy_.get<T>();
  if (copy.weight.shape() != mask_.shape()) copy.refresh(weight_, bias_, &mask_);
  dense_layer_backward(copy, weight_, bias_, &mask_, x, grad_y, grad_x, accumulate_param_grads);
}

#define FLOWS_MASKED_LINEAR(T)                                                                  \
  template void MaskedLinear::forward<T>(const MatrixOf<T>&, MatrixOf<T>&, bool);               \
  template void MaskedLinear::infer<T>(const MatrixOf<T>&, MatrixOf<T>&, DenseCopy<T>&, bool)   \
      const;                                                                                    \
  template void MaskedLinear::backward<T>(const MatrixOf<T>&, const MatrixOf<T>&, MatrixOf<T>&, \
                                          bool);
FLOWS_MASKED_LINEAR(float)
FLOWS_MASKED_LINEAR(double)
#undef FLOWS_MASKED_LINEAR

}  // namespace flows::nn
