#pragma once
// An Activation over one SIMD batch, shared by Activation::forward and the
// fused dense kernel (small_dense.cpp), so that both give the same values.
#include <type_traits>
#include <xsimd/xsimd.hpp>

#include "flows/nn/activation.hpp"

namespace flows::nn::detail {

// SELU's fixed point constants (Klambauer et al. 2017, "Self-Normalizing Neural
// Networks", eq. 14).
constexpr Real kSeluScale = 1.0507009873554804934193349852946;
constexpr Real kSeluAlpha = 1.6732632423543772848170429916717;
// ELU's α (Clevert et al. 2016 use α = 1).
constexpr Real kEluAlpha = 1.0;

// fn(std::integral_constant<Kind, kind>{}): code compiled per activation kind
// called for a kind known at run time.
template <class F>
decltype(auto) with_kind(Activation::Kind kind, F&& fn) {
  using Kind = Activation::Kind;
  switch (kind) {
    case Kind::identity:
      return fn(std::integral_constant<Kind, Kind::identity>{});
    case Kind::relu:
      return fn(std::integral_constant<Kind, Kind::relu>{});
    case Kind::tanh:
      return fn(std::integral_constant<Kind, Kind::tanh>{});
    case Kind::elu:
      return fn(std::integral_constant<Kind, Kind::elu>{});
    case Kind::selu:
      return fn(std::integral_constant<Kind, Kind::selu>{});
    case Kind::silu:
      break;
  }
  return fn(std::integral_constant<Kind, Kind::silu>{});
}

template <class T>
class ActivationBatch {
 public:
  using Batch = xsimd::batch<T>;
  using Kind = Activation::Kind;

  explicit ActivationBatch(Activation f)
      : kind_(f.kind()),
        lambda_(static_cast<T>(kind_ == Kind::selu ? kSeluScale : 1)),
        lambda_alpha_(static_cast<T>(kind_ == Kind::selu ? kSeluScale * kSeluAlpha : kEluAlpha)) {}

  // f(x), and f'(x) into *dy when dy is given.
  Batch operator()(Batch x, Batch* dy = nullptr) const {
    return with_kind(kind_, [&](auto k) { return apply<decltype(k)::value>(x, dy); });
  }

  // The same for a kind known where it is called (it must be this one's): the
  // fused kernel's epilogue, unrolled over its registers, needs no branch.
  template <Kind K>
  Batch apply(Batch x, Batch* dy) const {
    const Batch zero(T(0)), one(T(1));
    if constexpr (K == Kind::identity) {
      if (dy) *dy = one;
      return x;
    } else if constexpr (K == Kind::relu) {
      if (dy) *dy = xsimd::select(x > zero, one, zero);
      return xsimd::max(x, zero);
    } else if constexpr (K == Kind::tanh) {
      const Batch y = xsimd::tanh(x);
      if (dy) *dy = one - y * y;
      return y;
    } else if constexpr (K == Kind::selu || K == Kind::elu) {
      // SELU and ELU share one branch: f = λ x (x > 0), λα (eˣ − 1) else;
      // f' = λ, or f + λα. eˣ − 1 rather than expm1(x): xsimd's expm1 costs
      // twice its exp (W3's SELU field spent a fifth of its time there), and
      // for x ≤ 0 the difference is an absolute error below one ulp of 1.
      const Batch y = xsimd::select(x > zero, lambda_ * x,
                                    lambda_alpha_ * (xsimd::exp(xsimd::min(x, zero)) - one));
      if (dy) *dy = xsimd::select(x > zero, lambda_, y + lambda_alpha_);
      return y;
    } else {  // silu: σ = 1 / (1 + e⁻ˣ), f = x σ, f' = σ (1 + x (1 − σ))
      const Batch sigma = one / (one + xsimd::exp(-x));
      if (dy) *dy = sigma * (one + x * (one - sigma));
      return x * sigma;
    }
  }

 private:
  Kind kind_;
  Batch lambda_, lambda_alpha_;
};

}  // namespace flows::nn::detail
