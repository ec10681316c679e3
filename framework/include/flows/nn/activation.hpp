#pragma once
#include <string>
#include <vector>

#include "flows/export.hpp"
#include "flows/precision.hpp"
#include "flows/tensor.hpp"

namespace flows::nn {

// An elementwise nonlinearity h = f(a), chosen by name:
//   identity  f(a) = a
//   relu      f(a) = max(a, 0)                       (f'(0) taken as 0)
//   tanh      f(a) = tanh(a)
//   elu       f(a) = a if a > 0, else α (exp(a) - 1), α = 1
//   selu      f(a) = λ a if a > 0, else λ α (exp(a) - 1), λ ≈ 1.0507, α ≈ 1.6733
//   silu      f(a) = a σ(a), σ the logistic sigmoid (also called swish)
// A small value type: copy it freely.
class FLOWS_API Activation {
 public:
  enum class Kind { identity, relu, tanh, elu, selu, silu };

  explicit Activation(Kind kind = Kind::relu) : kind_(kind) {}
  // An unknown name is a ConfigError listing the valid ones.
  static Activation from_name(const std::string& name);
  // Every name from_name accepts, in the order above.
  static const std::vector<std::string>& names();

  Kind kind() const { return kind_; }
  const std::string& name() const;

  // f(a) and f'(a) for one value.
  Real value(Real a) const;
  Real derivative(Real a) const;

  // h = f(a) elementwise and, when `derivative` is given, f'(a) in the same
  // vectorized pass (xsimd); outputs are resized to a's shape; h may be a (in
  // place). For T = float and T = double.
  template <class T>
  void forward(const MatrixOf<T>& a, MatrixOf<T>& h, MatrixOf<T>* derivative = nullptr) const;
  // Backward through h = f(a) in place: grad ← grad ⊙ f'(a). Takes both the
  // pre-activation a and the output h of the forward pass, since some
  // derivatives are cheapest from h (tanh: 1 - h²).
  template <class T>
  void backward(const MatrixOf<T>& a, const MatrixOf<T>& h, MatrixOf<T>& grad) const;

 private:
  Kind kind_;
};

}  // namespace flows::nn
