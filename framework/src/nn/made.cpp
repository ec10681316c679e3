#include "flows/nn/made.hpp"

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>
#include <xtensor-blas/xblas.hpp>

#include "affine.hpp"
#include "flows/error.hpp"
#include "flows/nn/made_masks.hpp"

namespace flows::nn {

namespace {

// y = x wᵀ + b (accumulate false) or y += x wᵀ + b (true), every matrix
// contiguous row-major. The bias is written first and BLAS adds the product
// (beta = 1), which spares OpenBLAS's separate zeroing pass over y.
void affine(const Matrix& x, const Matrix& w, const Matrix& b, Matrix& y, bool accumulate) {
  const Index n = x.shape(0);
  const Index out = w.shape(0);
  if (n == 0) return;
  const Real* bias = b.data();
  Real* row = y.data();
  if (accumulate) {
    for (Index i = 0; i < n; ++i, row += out)
      for (Index j = 0; j < out; ++j) row[j] += bias[j];
  } else {
    for (Index i = 0; i < n; ++i, row += out) std::copy(bias, bias + out, row);
  }
  xt::blas::gemm(x, w, y, false, true, Real(1), Real(1));
}

// Resizes only when the shape changes, so reused buffers never reallocate.
void ensure(Matrix& m, Index rows, Index cols) {
  if (m.shape(0) != rows || m.shape(1) != cols) m.resize({rows, cols});
}

// h = f(a). ReLU, the common case, as a plain loop the compiler vectorizes
// (max with 0); the others through Activation.
void activate(const Activation& f, const Matrix& a, Matrix& h) {
  if (f.kind() != Activation::Kind::relu) {
    f.forward(a, h);
    return;
  }
  ensure(h, a.shape(0), a.shape(1));
  const Real* in = a.data();
  Real* out = h.data();
  const Index size = a.size();
  for (Index k = 0; k < size; ++k) out[k] = in[k] > Real(0) ? in[k] : Real(0);
}

// grad ← grad ⊙ f'(a) (relu' = 1 for a > 0, else 0, as Activation).
void activate_backward(const Activation& f, const Matrix& a, const Matrix& h, Matrix& grad) {
  if (f.kind() != Activation::Kind::relu) {
    f.backward(a, h, grad);
    return;
  }
  const Real* in = a.data();
  Real* g = grad.data();
  const Index size = a.size();
  for (Index k = 0; k < size; ++k) g[k] = in[k] > Real(0) ? g[k] : Real(0);
}

}  // namespace

void MadeOptions::read(ConfigNode& node, MadeOptions& options) {
  node.read("hidden", options.hidden);
  std::string activation = options.activation.name();
  node.read("activation", activation);
  node.read("residual_blocks", options.residual_blocks);
  node.expect(!options.hidden.empty(), "hidden", "needs at least one hidden layer width");
  for (Index width : options.hidden) node.expect(width > 0, "hidden", "widths must be positive");
  if (options.residual_blocks > 0)
    for (Index width : options.hidden)
      node.expect(width == options.hidden.front(), "hidden",
                  "with residual_blocks every width must be the same");
  try {
    options.activation = Activation::from_name(activation);
  } catch (const ConfigError& e) {
    throw node.error("activation", e.what());
  }
}

Made::Made(const std::vector<Index>& order, const MadeOptions& options, Rng& rng)
    : order_(order), options_(options) {
  check_order(order_);
  if (options_.hidden.empty()) throw ConfigError("MADE: needs at least one hidden layer");
  if (options_.out_multiplier == 0) throw ConfigError("MADE: out_multiplier must be positive");
  for (Index width : options_.hidden)
    if (width == 0) throw ConfigError("MADE: hidden widths must be positive");

  std::vector<Matrix> masks;
  std::vector<std::string> names;
  if (!residual()) {
    masks = made_masks(order_, options_.hidden, options_.out_multiplier);
    for (Index k = 0; k < options_.hidden.size(); ++k)
      names.push_back(k == 0 ? "input" : "hidden" + std::to_string(k));
    names.push_back("output");
  } else {
    const Index width = options_.hidden.front();
    for (Index w : options_.hidden)
      if (w != width)
        throw ConfigError("MADE: with residual blocks every hidden width must be the same");
    const std::vector<Index> in = input_degrees(order_);
    const std::vector<Index> hid = hidden_degrees(width, dim());
    masks.push_back(hidden_mask(in, hid));
    names.push_back("input");
    for (Index k = 0; k < options_.residual_blocks; ++k) {
      masks.push_back(hidden_mask(hid, hid));
      masks.push_back(hidden_mask(hid, hid));
      names.push_back("block" + std::to_string(k) + ".a");
      names.push_back("block" + std::to_string(k) + ".b");
    }
    masks.push_back(output_mask(hid, in, options_.out_multiplier));
    names.push_back("output");
  }

  layers_.resize(masks.size());
  for (Index k = 0; k < masks.size(); ++k) {
    Layer& layer = layers_[k];
    const Index out = masks[k].shape(0);
    const Index in = masks[k].shape(1);
    // nn.Linear's default U(-1/sqrt(in), 1/sqrt(in)) (fan-in counting masked
    // inputs, as nflows' MaskedLinear); the second layer of a residual block
    // starts in U(-1e-3, 1e-3) as in nflows' MaskedResidualBlock.
    const bool block_out = residual() && k > 0 && k + 1 < masks.size() && k % 2 == 0;
    const Real bound = block_out ? Real(1e-3) : 1 / std::sqrt(Real(in));
    Matrix w = detail::uniform_init(out, in, bound, rng);
    Matrix b = detail::uniform_init(1, out, bound, rng);
    if (k + 1 == masks.size() && options_.zero_output) {
      w.fill(0);
      b.fill(0);
    }
    layer.mask = std::move(masks[k]);
    w *= layer.mask;
    layer.weight = Parameter(names[k] + ".weight", std::move(w));
    layer.bias = Parameter(names[k] + ".bias", std::move(b));
    layer.masked = layer.weight.value;
  }
}

void Made::check_input(const Matrix& x) const {
  if (x.shape(1) != dim())
    throw DataError("MADE: the input has " + std::to_string(x.shape(1)) + " columns, expected " +
                    std::to_string(dim()));
}

// Plain:    pre_[k] = post_[k-1] W_kᵀ + b_k (post_[-1] = x), post_[k] = f(pre_[k])
//           (pre_ unused for ReLU).
// Residual: pre_[k] = h_k (k = 0..B), post_[k] = f(h_k); pre_[B+1+k] = v_k =
//           f(h_k) A_kᵀ + a_k, post_[B+1+k] = f(v_k); h_{k+1} = h_k + f(v_k) B_kᵀ + b_k.
void Made::forward(const Matrix& x, Matrix& y) {
  check_input(x);
  recorded_ = false;
  const Index n = x.shape(0);
  ensure(x_, n, dim());
  std::copy(x.begin(), x.end(), x_.begin());
  for (Layer& layer : layers_) xt::noalias(layer.masked) = layer.weight.value * layer.mask;
  const Activation& f = options_.activation;
  ensure(y, n, out_features());
  if (!residual()) {
    const Index hidden = layers_.size() - 1;
    pre_.resize(hidden);
    post_.resize(hidden);
    const Matrix* in = &x_;
    // ReLU keeps only its output: relu'(a) = 1 iff f(a) > 0, so backward reads
    // post_ and the recorded activations (what backward streams back from
    // memory) halve.
    const bool relu = f.kind() == Activation::Kind::relu;
    for (Index k = 0; k < hidden; ++k) {
      if (relu) {
        ensure(post_[k], n, layers_[k].mask.shape(0));
        affine(*in, layers_[k].masked, layers_[k].bias.value, post_[k], false);
        Real* h = post_[k].data();
        for (Index e = 0; e < post_[k].size(); ++e) h[e] = h[e] > Real(0) ? h[e] : Real(0);
      } else {
        ensure(pre_[k], n, layers_[k].mask.shape(0));
        affine(*in, layers_[k].masked, layers_[k].bias.value, pre_[k], false);
        activate(f, pre_[k], post_[k]);
      }
      in = &post_[k];
    }
    affine(*in, layers_.back().masked, layers_.back().bias.value, y, false);
  } else {
    const Index blocks = options_.residual_blocks;
    const Index width = options_.hidden.front();
    pre_.resize(2 * blocks + 1);
    post_.resize(2 * blocks + 1);
    for (Matrix& m : pre_) ensure(m, n, width);
    affine(x_, layers_[0].masked, layers_[0].bias.value, pre_[0], false);
    for (Index k = 0; k < blocks; ++k) {
      activate(f, pre_[k], post_[k]);
      Matrix& v = pre_[blocks + 1 + k];
      affine(post_[k], layers_[1 + 2 * k].masked, layers_[1 + 2 * k].bias.value, v, false);
      activate(f, v, post_[blocks + 1 + k]);
      std::copy(pre_[k].begin(), pre_[k].end(), pre_[k + 1].begin());
      affine(post_[blocks + 1 + k], layers_[2 + 2 * k].masked, layers_[2 + 2 * k].bias.value,
             pre_[k + 1], true);
    }
    activate(f, pre_[blocks], post_[blocks]);
    affine(post_[blocks], layers_.back().masked, layers_.back().bias.value, y, false);
  }
  recorded_ = true;
}

// Each masked layer y = x (W ⊙ M)ᵀ + b gives dL/dx = dL/dy (W ⊙ M),
// dL/dW = ((dL/dy)ᵀ x) ⊙ M and dL/db = Σ_rows dL/dy; an activation multiplies
// by f'(pre-activation); a residual connection adds its two paths' gradients.
void Made::backward(const Matrix& grad_y, Matrix& grad_x, bool accumulate_param_grads) {
  if (!recorded_) throw Error("MADE: backward without a preceding forward");
  const Index n = x_.shape(0);
  if (grad_y.shape(0) != n || grad_y.shape(1) != out_features())
    throw DataError("MADE: backward got dL/dy of shape [" + std::to_string(grad_y.shape(0)) +
                    " x " + std::to_string(grad_y.shape(1)) + "], expected [" + std::to_string(n) +
                    " x " + std::to_string(out_features()) + "]");
  const Activation& f = options_.activation;
  // One layer: grad_in = grad_out (W ⊙ M), and the parameter gradients.
  auto layer_backward = [&](Layer& layer, const Matrix& in, const Matrix& grad_out,
                            Matrix& grad_in) {
    ensure(grad_in, n, layer.mask.shape(1));
    if (n > 0) xt::blas::gemm(grad_out, layer.masked, grad_in, false, false);
    if (!accumulate_param_grads) return;
    // dL/dW accumulates straight into the gradient, then the mask zeroes its
    // masked entries again (they held 0 before: nothing else writes there),
    // saving a scratch matrix and a pass.
    if (n > 0) xt::blas::gemm(grad_out, in, layer.weight.grad, true, false, Real(1), Real(1));
    xt::noalias(layer.weight.grad) *= layer.mask;
    detail::accumulate_bias_gradient(grad_out, layer.bias.grad);
  };

  grad_.resize(3);
  if (!residual()) {
    const Index hidden = layers_.size() - 1;
    const Matrix* upstream = &grad_y;
    for (Index k = hidden; k > 0; --k) {
      Matrix& g = grad_[k % 2];
      layer_backward(layers_[k], post_[k - 1], *upstream, g);
      const bool relu = f.kind() == Activation::Kind::relu;
      activate_backward(f, relu ? post_[k - 1] : pre_[k - 1], post_[k - 1], g);
      upstream = &g;
    }
    layer_backward(layers_[0], x_, *upstream, grad_x);
  } else {
    const Index blocks = options_.residual_blocks;
    Matrix& grad_h = grad_[0];
    Matrix& grad_w = grad_[1];
    layer_backward(layers_.back(), post_[blocks], grad_y, grad_h);
    activate_backward(f, pre_[blocks], post_[blocks], grad_h);
    for (Index k = blocks; k-- > 0;) {
      // h_{k+1} = h_k + f(v_k) B_kᵀ + b_k,  v_k = f(h_k) A_kᵀ + a_k.
      layer_backward(layers_[2 + 2 * k], post_[blocks + 1 + k], grad_h, grad_w);
      activate_backward(f, pre_[blocks + 1 + k], post_[blocks + 1 + k], grad_w);
      Matrix& grad_u = grad_[2];
      layer_backward(layers_[1 + 2 * k], post_[k], grad_w, grad_u);
      activate_backward(f, pre_[k], post_[k], grad_u);
      xt::noalias(grad_h) += grad_u;
    }
    layer_backward(layers_[0], x_, grad_h, grad_x);
  }
}

void Made::infer(const Matrix& x, Matrix& y, Workspace& ws) const {
  check_input(x);
  const Index n = x.shape(0);
  ws.weights.resize(layers_.size());
  for (Index k = 0; k < layers_.size(); ++k) {
    ensure(ws.weights[k], layers_[k].mask.shape(0), layers_[k].mask.shape(1));
    xt::noalias(ws.weights[k]) = layers_[k].weight.value * layers_[k].mask;
  }
  const Activation& f = options_.activation;
  ensure(y, n, out_features());
  if (!residual()) {
    const Index hidden = layers_.size() - 1;
    const Matrix* in = &x;
    for (Index k = 0; k < hidden; ++k) {
      ensure(ws.a, n, layers_[k].mask.shape(0));
      affine(*in, ws.weights[k], layers_[k].bias.value, ws.a, false);
      activate(f, ws.a, ws.h);
      in = &ws.h;
    }
    affine(*in, ws.weights.back(), layers_.back().bias.value, y, false);
  } else {
    const Index width = options_.hidden.front();
    ensure(ws.h, n, width);
    ensure(ws.b, n, width);
    affine(x, ws.weights[0], layers_[0].bias.value, ws.h, false);
    for (Index k = 0; k < options_.residual_blocks; ++k) {
      activate(f, ws.h, ws.a);
      affine(ws.a, ws.weights[1 + 2 * k], layers_[1 + 2 * k].bias.value, ws.b, false);
      activate(f, ws.b, ws.a);
      affine(ws.a, ws.weights[2 + 2 * k], layers_[2 + 2 * k].bias.value, ws.h, true);
    }
    activate(f, ws.h, ws.a);
    affine(ws.a, ws.weights.back(), layers_.back().bias.value, y, false);
  }
}

void Made::infer(const Matrix& x, Matrix& y) const {
  Workspace ws;
  infer(x, y, ws);
}

Matrix Made::infer(const Matrix& x) const {
  Matrix y;
  infer(x, y);
  return y;
}

ParameterList Made::parameters() {
  ParameterList list;
  list.reserve(2 * layers_.size());
  for (Layer& layer : layers_) {
    list.push_back(&layer.weight);
    list.push_back(&layer.bias);
  }
  return list;
}

Parameter& Made::output_weight() {
  return layers_.back().weight;
}
Parameter& Made::output_bias() {
  return layers_.back().bias;
}

// Reachability through the masks: plain layers multiply, residual blocks add
// the identity path (I + M_B M_A).
Matrix Made::connectivity() const {
  auto product = [](const Matrix& a, const Matrix& b) {
    Matrix c = xt::zeros<Real>({a.shape(0), b.shape(1)});
    for (Index i = 0; i < a.shape(0); ++i)
      for (Index k = 0; k < a.shape(1); ++k)
        if (a(i, k) != 0)
          for (Index j = 0; j < b.shape(1); ++j) c(i, j) += a(i, k) * b(k, j);
    return c;
  };
  Matrix reach = layers_[0].mask;  // hidden x D
  if (!residual()) {
    for (Index k = 1; k < layers_.size(); ++k) reach = product(layers_[k].mask, reach);
  } else {
    for (Index k = 0; k < options_.residual_blocks; ++k) {
      const Matrix through =
          product(layers_[2 + 2 * k].mask, product(layers_[1 + 2 * k].mask, reach));
      reach = reach + through;
    }
    reach = product(layers_.back().mask, reach);
  }
  for (Real& v : reach) v = v > 0 ? 1 : 0;
  return reach;
}

}  // namespace flows::nn
