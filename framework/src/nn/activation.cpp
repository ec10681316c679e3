#include "flows/nn/activation.hpp"

#include <algorithm>
#include <cmath>
#include <xsimd/xsimd.hpp>
#include <xtensor/xmath.hpp>
#include <xtensor/xoperation.hpp>

#include "activation_batch.hpp"
#include "flows/config.hpp"
#include "flows/error.hpp"

namespace flows::nn {

using detail::kEluAlpha;
using detail::kSeluAlpha;
using detail::kSeluScale;

const std::vector<std::string>& Activation::names() {
  static const std::vector<std::string> all{"identity", "relu", "tanh", "elu", "selu", "silu"};
  return all;
}

Activation Activation::from_name(const std::string& name) {
  const auto& all = names();
  for (std::size_t k = 0; k < all.size(); ++k)
    if (all[k] == name) return Activation(static_cast<Kind>(k));
  std::string list;
  for (const auto& n : all) list += (list.empty() ? "" : ", ") + n;
  const std::string hint = closest_match(name, all);
  throw ConfigError("unknown activation '" + name + "'; valid names: " + list +
                    (hint.empty() ? "" : " (did you mean '" + hint + "'?)"));
}

const std::string& Activation::name() const {
  return names()[static_cast<std::size_t>(kind_)];
}

// ReLU (Nair & Hinton 2010); ELU (Clevert, Unterthiner & Hochreiter 2016);
// SELU (Klambauer et al. 2017); SiLU a σ(a) (Hendrycks & Gimpel 2016, Elfwing
// et al. 2018; "swish" in Ramachandran et al. 2017).
Real Activation::value(Real a) const {
  switch (kind_) {
    case Kind::identity:
      return a;
    case Kind::relu:
      return a > 0 ? a : Real(0);
    case Kind::tanh:
      return std::tanh(a);
    case Kind::elu:
      return a > 0 ? a : kEluAlpha * std::expm1(a);
    case Kind::selu:
      return kSeluScale * (a > 0 ? a : kSeluAlpha * std::expm1(a));
    case Kind::silu:
      return a / (1 + std::exp(-a));
  }
  return a;
}

// tanh' = 1 - tanh²; elu' = α eᵃ for a ≤ 0; silu' = σ(a) (1 + a (1 - σ(a))).
Real Activation::derivative(Real a) const {
  switch (kind_) {
    case Kind::identity:
      return 1;
    case Kind::relu:
      return a > 0 ? 1 : 0;
    case Kind::tanh: {
      const Real t = std::tanh(a);
      return 1 - t * t;
    }
    case Kind::elu:
      return a > 0 ? 1 : kEluAlpha * std::exp(a);
    case Kind::selu:
      return a > 0 ? kSeluScale : kSeluScale * kSeluAlpha * std::exp(a);
    case Kind::silu: {
      const Real s = 1 / (1 + std::exp(-a));
      return s * (1 + a * (1 - s));
    }
  }
  return 1;
}

// One xsimd pass computes f and, when asked, f' (ActivationBatch); the tail
// that does not fill a SIMD batch goes through value() and derivative().
template <class T>
void Activation::forward(const MatrixOf<T>& a, MatrixOf<T>& h, MatrixOf<T>* derivative) const {
  using Batch = xsimd::batch<T>;
  constexpr Index width = Batch::size;
  if (h.shape() != a.shape()) h.resize(a.shape());
  if (derivative && derivative->shape() != a.shape()) derivative->resize(a.shape());
  const Index n = a.size();
  const T* pa = a.data();
  T* ph = h.data();
  T* pd = derivative ? derivative->data() : nullptr;
  Index k = 0;
  if (kind_ == Kind::identity) {
    if (ph != pa) std::copy(pa, pa + n, ph);
    if (pd) std::fill(pd, pd + n, T(1));
    return;
  }
  const detail::ActivationBatch<T> f(*this);
  for (; k + width <= n; k += width) {
    Batch dy;
    const Batch y = f(Batch::load_unaligned(pa + k), pd ? &dy : nullptr);
    y.store_unaligned(ph + k);
    if (pd) dy.store_unaligned(pd + k);
  }
  for (; k < n; ++k) {
    const Real a_k = pa[k];  // read before writing: h may be a
    ph[k] = static_cast<T>(value(a_k));
    if (pd) pd[k] = static_cast<T>(this->derivative(a_k));
  }
}

// The derivatives from the output where that is cheaper: tanh' = 1 - h²;
// for a ≤ 0, elu' = h + α and selu' = h + λα; with s = σ(a) and h = a s,
// silu' = s + a s (1 - s) = s (1 - h) + h, one exp per entry.
template <class T>
void Activation::backward(const MatrixOf<T>& a, const MatrixOf<T>& h, MatrixOf<T>& grad) const {
  if (grad.shape() != a.shape() || h.shape() != a.shape())
    throw DataError("Activation " + name() + ": backward needs a, h and grad of one shape");
  const T lambda = static_cast<T>(kSeluScale),
          lambda_alpha = static_cast<T>(kSeluScale * kSeluAlpha);
  switch (kind_) {
    case Kind::identity:
      break;
    case Kind::relu:
      xt::noalias(grad) = xt::where(a > T(0), grad, T(0));
      break;
    case Kind::tanh:
      xt::noalias(grad) = grad * (T(1) - h * h);
      break;
    case Kind::elu:
      xt::noalias(grad) = grad * xt::where(a > T(0), T(1), h + static_cast<T>(kEluAlpha));
      break;
    case Kind::selu:
      xt::noalias(grad) = grad * xt::where(a > T(0), lambda, h + lambda_alpha);
      break;
    case Kind::silu:
      xt::noalias(grad) = grad * (T(1) / (T(1) + xt::exp(-a)) * (T(1) - h) + h);
      break;
  }
}

template void Activation::forward<float>(const MatrixOf<float>&, MatrixOf<float>&,
                                         MatrixOf<float>*) const;
template void Activation::forward<double>(const MatrixOf<double>&, MatrixOf<double>&,
                                          MatrixOf<double>*) const;
template void Activation::backward<float>(const MatrixOf<float>&, const MatrixOf<float>&,
                                          MatrixOf<float>&) const;
template void Activation::backward<double>(const MatrixOf<double>&, const MatrixOf<double>&,
                                           MatrixOf<double>&) const;

}  // namespace flows::nn
