#include "velocity_field.hpp"

#include <cmath>

#include <xsimd/xsimd.hpp>
#include <xtensor-blas/xblas.hpp>

#include <flows/error.hpp>

namespace flows::flow_matching {

namespace {

constexpr Real kPi = 3.14159265358979323846;

// C = A B for A n x k and B k x m.
void multiply(const Matrix& a, const Matrix& b, Matrix& c) {
  c.resize({a.shape(0), b.shape(1)});
  if (a.shape(0) == 0) return;
  xt::blas::gemm(a, b, c, false, false);
}

// y = x Wᵀ + b: y starts as the bias rows and BLAS adds the product (beta =
// 1), one pass over y fewer than zeroing and adding b afterwards.
void affine(const Matrix& x, const Matrix& w, const Real* bias, Matrix& y) {
  const Index n = x.shape(0), out = w.shape(0);
  y.resize({n, out});
  Real* p = y.data();
  for (Index i = 0; i < n; ++i, p += out) std::copy(bias, bias + out, p);
  if (n == 0) return;
  xt::blas::gemm(x, w, y, false, true, Real(1), Real(1));
}

// h = f(a) and, when `derivative` is given, f'(a), in one vectorized pass
// (the formulas of nn::Activation; SELU from Klambauer et al. 2017, eq. 2).
void activate(const nn::Activation& activation, const Matrix& a, Matrix& h, Matrix* derivative) {
  using Batch = xsimd::batch<Real>;
  constexpr Index width = Batch::size;
  constexpr Real kSeluScale = 1.0507009873554804934193349852946;
  constexpr Real kSeluAlpha = 1.6732632423543772848170429916717;
  h.resize(a.shape());
  if (derivative) derivative->resize(a.shape());
  const Index n = a.size();
  const Real* pa = a.data();
  Real* ph = h.data();
  Real* pd = derivative ? derivative->data() : nullptr;
  using Kind = nn::Activation::Kind;
  const Kind kind = activation.kind();
  Index k = 0;
  if (kind == Kind::selu || kind == Kind::elu || kind == Kind::relu || kind == Kind::tanh ||
      kind == Kind::silu) {
    const Real scale = kind == Kind::selu ? kSeluScale : 1;
    const Real alpha = kind == Kind::selu ? kSeluAlpha : 1;
    const Batch zero(Real(0)), one(Real(1)), lambda(scale), lambda_alpha(scale * alpha);
    for (; k + width <= n; k += width) {
      const Batch x = Batch::load_unaligned(pa + k);
      Batch y, dy;
      switch (kind) {
        case Kind::selu:
        case Kind::elu:
          // f = λ x (x > 0), λα (eˣ − 1) else; f' = λ, or f + λα.
          y = xsimd::select(x > zero, lambda * x, lambda_alpha * xsimd::expm1(xsimd::min(x, zero)));
          dy = xsimd::select(x > zero, lambda, y + lambda_alpha);
          break;
        case Kind::relu:
          y = xsimd::max(x, zero);
          dy = xsimd::select(x > zero, one, zero);
          break;
        case Kind::tanh:
          y = xsimd::tanh(x);
          dy = one - y * y;
          break;
        default: {  // silu: σ = 1 / (1 + e⁻ˣ), f = x σ, f' = σ (1 + x (1 − σ))
          const Batch sigma = one / (one + xsimd::exp(-x));
          y = x * sigma;
          dy = sigma * (one + x * (one - sigma));
          break;
        }
      }
      y.store_unaligned(ph + k);
      if (pd) dy.store_unaligned(pd + k);
    }
  }
  for (; k < n; ++k) {
    ph[k] = activation.value(pa[k]);
    if (pd) pd[k] = activation.derivative(pa[k]);
  }
}

}  // namespace

void VelocityFieldOptions::read_from(ConfigNode& node) {
  node.read("hidden", hidden);
  node.read("activation", activation);
  node.read("time_frequencies", time_frequencies);
  for (Index h : hidden) node.expect(h > 0, "hidden", "every width must be > 0");
  node.expect_one_of("activation", activation, nn::Activation::names());
  node.expect(time_frequencies <= 32, "time_frequencies", "must be at most 32");
}

VelocityField::VelocityField(Index dim, const VelocityFieldOptions& options, Rng& rng)
    : dim_(dim),
      frequencies_(options.time_frequencies),
      mlp_(dim + 1 + 2 * options.time_frequencies, options.hidden, dim,
           nn::Activation::from_name(options.activation), rng),
      params_(mlp_.parameters()) {
  if (dim == 0) throw ConfigError("flow_matching: the data dimension must be at least 1");
}

void VelocityField::embed_time(Real t, Real* out) const {
  out[0] = t;
  Real omega = kPi;
  for (Index k = 0; k < frequencies_; ++k, omega *= 2) {
    out[1 + 2 * k] = std::sin(omega * t);
    out[2 + 2 * k] = std::cos(omega * t);
  }
}

void VelocityField::features(const Matrix& x, const Vector& t, Matrix& out) const {
  if (x.shape(1) != dim_)
    throw DataError("flow_matching: the input has " + std::to_string(x.shape(1)) +
                    " columns but the velocity field's dimension is " + std::to_string(dim_));
  if (t.size() != x.shape(0)) throw DataError("flow_matching: one time per row is needed");
  const Index n = x.shape(0), width = input_features();
  out.resize({n, width});
  for (Index i = 0; i < n; ++i) {
    Real* row = out.data() + i * width;
    const Real* xi = x.data() + i * dim_;
    for (Index j = 0; j < dim_; ++j) row[j] = xi[j];
    embed_time(t(i), row + dim_);
  }
}

void VelocityField::forward(const Matrix& x, const Vector& t, Matrix& v) {
  features(x, t, features_);
  mlp_.forward(features_, v);
}

// The features are [x, e(t)], so dL/dx is the first d columns of dL/d(features).
void VelocityField::backward(const Matrix& grad_v, Matrix& grad_x, bool accumulate_param_grads) {
  mlp_.backward(grad_v, grad_features_, accumulate_param_grads);
  const Index n = grad_features_.shape(0), width = input_features();
  grad_x.resize({n, dim_});
  for (Index i = 0; i < n; ++i)
    for (Index j = 0; j < dim_; ++j) grad_x(i, j) = grad_features_.data()[i * width + j];
}

VelocityField::Evaluator::Evaluator(const VelocityField& field)
    : field_(field), layers_(field.params_.size() / 2) {
  for (Index k = 0; k < layers_; ++k) {
    weight_.push_back(&field.params_[2 * k]->value);
    bias_.push_back(&field.params_[2 * k + 1]->value);
  }
  const Matrix& w0 = *weight_[0];
  const Index h0 = w0.shape(0), d = field.dim_, e = w0.shape(1) - d;
  w0x_.resize({h0, d});
  w0x_t_.resize({d, h0});
  w0t_.resize({h0, e});
  for (Index r = 0; r < h0; ++r) {
    for (Index j = 0; j < d; ++j) w0x_t_(j, r) = w0x_(r, j) = w0(r, j);
    for (Index j = 0; j < e; ++j) w0t_(r, j) = w0(r, d + j);
  }
  embedding_.resize(e);
  c0_.resize(h0);
  pre_.resize(layers_);
  act_.resize(layers_);
  deriv_.resize(layers_);
  grad_.resize(layers_);
}

// Layer 0 acts on [x, e(t)] with one t for the batch, so its time columns
// fold into the bias: a_0 = x W_0xᵀ + (b_0 + W_0t e(t)).
void VelocityField::Evaluator::forward(const Matrix& x, Real t, Matrix& v, bool derivatives) {
  if (x.shape(1) != field_.dim_)
    throw DataError("flow_matching: the input has " + std::to_string(x.shape(1)) +
                    " columns but the velocity field's dimension is " +
                    std::to_string(field_.dim_));
  field_.embed_time(t, embedding_.data());
  const Matrix& b0 = *bias_[0];
  for (Index r = 0; r < c0_.size(); ++r) {
    Real s = b0(0, r);
    for (Index j = 0; j < embedding_.size(); ++j) s += w0t_(r, j) * embedding_[j];
    c0_[r] = s;
  }
  const nn::Activation& activation = field_.mlp_.activation();
  const Index last = layers_ - 1;
  affine(x, w0x_, c0_.data(), last == 0 ? v : pre_[0]);
  for (Index k = 0; k < last; ++k) {
    activate(activation, pre_[k], act_[k], derivatives ? &deriv_[k] : nullptr);
    affine(act_[k], *weight_[k + 1], bias_[k + 1]->data(), k + 1 == last ? v : pre_[k + 1]);
  }
}

void VelocityField::Evaluator::velocity(const Matrix& x, Real t, Matrix& v) {
  forward(x, t, v, false);
}

// g holds dL/da_{L-2} for one or more stacked copies of the batch (rows
// b·n + r); each hidden layer k maps dL/da_k to dL/da_{k-1} = (dL/da_k W_k) ⊙
// f'(a_{k-1}), the same f' for every copy.
void VelocityField::Evaluator::backpropagate_hidden(Matrix& g) {
  for (Index k = layers_ - 2; k > 0; --k) {
    multiply(g, *weight_[k], grad_[k]);
    const Matrix& deriv = deriv_[k - 1];
    const Index n = deriv.shape(0), width = deriv.shape(1), rows = grad_[k].shape(0);
    for (Index row = 0; row < rows; ++row) {
      Real* gr = grad_[k].data() + row * width;
      const Real* dr = deriv.data() + (row % n) * width;
      for (Index j = 0; j < width; ++j) gr[j] *= dr[j];
    }
    std::swap(g, grad_[k]);
  }
}

// div v = Σ_i e_iᵀ (∂v/∂x) e_i: one vector-Jacobian product per output i. For
// output i, dL/dh_{L-1} is row i of the last weight, so the first product is
// elementwise; the d products are stacked into one matrix (d·n rows) so each
// hidden layer is one BLAS call; the input layer contributes ∂a_0/∂x_i =
// W_0[:, i].
void VelocityField::Evaluator::velocity_and_divergence(const Matrix& x, Real t, Matrix& v,
                                                       Vector& divergence) {
  forward(x, t, v, true);
  const Index n = x.shape(0), d = field_.dim_;
  divergence.resize({n});
  std::fill(divergence.begin(), divergence.end(), Real(0));
  if (layers_ == 1) {
    Real trace = 0;
    for (Index i = 0; i < d; ++i) trace += w0x_(i, i);
    std::fill(divergence.begin(), divergence.end(), trace);
    return;
  }
  const Matrix& w_last = *weight_[layers_ - 1];
  const Matrix& d_last = deriv_[layers_ - 2];
  const Index width = d_last.shape(1);
  Matrix& g = grad_[0];
  g.resize({d * n, width});
  for (Index i = 0; i < d; ++i) {
    const Real* w_row = w_last.data() + i * width;
    for (Index r = 0; r < n; ++r) {
      const Real* dr = d_last.data() + r * width;
      Real* gr = g.data() + (i * n + r) * width;
      for (Index j = 0; j < width; ++j) gr[j] = dr[j] * w_row[j];
    }
  }
  backpropagate_hidden(g);
  // Block i of g is dL/da_0 for output i; the diagonal entry is g · W_0[:, i].
  const Index h0 = g.shape(1);
  for (Index i = 0; i < d; ++i) {
    const Real* column = w0x_t_.data() + i * h0;
    for (Index r = 0; r < n; ++r) {
      const Real* gr = g.data() + (i * n + r) * h0;
      Real s = 0;
      for (Index j = 0; j < h0; ++j) s += gr[j] * column[j];
      divergence(r) += s;
    }
  }
}

void VelocityField::Evaluator::velocity_and_divergence_estimate(const Matrix& x, Real t,
                                                                const std::vector<Matrix>& probes,
                                                                Matrix& v, Vector& divergence) {
  if (probes.empty()) throw Error("flow_matching: Hutchinson's estimator needs probes");
  forward(x, t, v, true);
  const Index n = x.shape(0), d = field_.dim_;
  divergence.resize({n});
  std::fill(divergence.begin(), divergence.end(), Real(0));
  Matrix& g = grad_[0];
  for (const Matrix& eps : probes) {
    if (eps.shape(0) != n || eps.shape(1) != d)
      throw Error("flow_matching: a Hutchinson probe does not match the batch");
    if (layers_ == 1) {
      // v = x W_0xᵀ + c: εᵀ ∂v/∂x = ε W_0x.
      multiply(eps, w0x_, input_grad_);
    } else {
      // εᵀ ∂v/∂h_{L-1} = ε W_{L-1}, then through the hidden layers to
      // dL/da_0, and εᵀ ∂v/∂x = (dL/da_0) W_0x.
      multiply(eps, *weight_[layers_ - 1], g);
      xt::noalias(g) *= deriv_[layers_ - 2];
      backpropagate_hidden(g);
      multiply(g, w0x_, input_grad_);
    }
    for (Index r = 0; r < n; ++r) {
      Real s = 0;
      for (Index j = 0; j < d; ++j) s += input_grad_(r, j) * eps(r, j);
      divergence(r) += s;
    }
  }
  divergence /= static_cast<Real>(probes.size());
}

}  // namespace flows::flow_matching
