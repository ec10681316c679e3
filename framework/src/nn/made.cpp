#include "flows/nn/made.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>
#include <utility>

#include "flows/checks.hpp"
#include "flows/error.hpp"
#include "flows/nn/dense.hpp"
#include "flows/nn/made_masks.hpp"

namespace flows::nn {

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

namespace {

// The units 0..n-1 sorted by degree, ties kept in their own order.
std::vector<Index> units_by_degree(const std::vector<Index>& degrees) {
  std::vector<Index> units(degrees.size());
  std::iota(units.begin(), units.end(), Index(0));
  std::stable_sort(units.begin(), units.end(),
                   [&](Index a, Index b) { return degrees[a] < degrees[b]; });
  return units;
}

// `units`, or nothing when it is the units' own order.
std::vector<Index> identity_or(std::vector<Index> units) {
  for (Index k = 0; k < units.size(); ++k)
    if (units[k] != k) return units;
  return {};
}

// position[u] = the k with units[k] = u; empty for the identity.
std::vector<Index> positions_of(const std::vector<Index>& units) {
  std::vector<Index> position(units.size());
  for (Index k = 0; k < units.size(); ++k) position[units[k]] = k;
  return position;
}

void append_units(std::vector<Index>& to, const std::vector<Index>& more) {
  to.insert(to.end(), more.begin(), more.end());
}

}  // namespace

Made::Made(const std::vector<Index>& order, const MadeOptions& options, Rng& rng)
    : order_(order), options_(options) {
  check_order(order_);
  if (options_.hidden.empty()) throw ConfigError("MADE: needs at least one hidden layer");
  if (options_.out_multiplier == 0) throw ConfigError("MADE: out_multiplier must be positive");
  for (Index width : options_.hidden)
    if (width == 0) throw ConfigError("MADE: hidden widths must be positive");

  // Context columns have degree 0: every hidden unit (degree ≥ 0) sees them.
  const bool conditional = options_.context_features > 0;
  std::vector<Index> in = input_degrees(order_);
  in.resize(dim() + options_.context_features, 0);
  std::vector<Matrix> masks;
  std::vector<std::string> names;
  // levels[k] holds the degrees of layer k's inputs, levels[k + 1] of its outputs.
  std::vector<std::vector<Index>> levels{in};
  if (!residual()) {
    std::vector<Index> below = in;
    for (Index k = 0; k < options_.hidden.size(); ++k) {
      const std::vector<Index> degrees = hidden_degrees(options_.hidden[k], dim(), conditional);
      masks.push_back(hidden_mask(below, degrees));
      names.push_back(k == 0 ? "input" : "hidden" + std::to_string(k));
      levels.push_back(degrees);
      below = degrees;
    }
    masks.push_back(output_mask(below, input_degrees(order_), options_.out_multiplier));
    names.push_back("output");
  } else {
    const Index width = options_.hidden.front();
    for (Index w : options_.hidden)
      if (w != width)
        throw ConfigError("MADE: with residual blocks every hidden width must be the same");
    const std::vector<Index> hid = hidden_degrees(width, dim(), conditional);
    masks.push_back(hidden_mask(in, hid));
    names.push_back("input");
    for (Index k = 0; k < options_.residual_blocks; ++k) {
      masks.push_back(hidden_mask(hid, hid));
      masks.push_back(hidden_mask(hid, hid));
      names.push_back("block" + std::to_string(k) + ".a");
      names.push_back("block" + std::to_string(k) + ".b");
    }
    masks.push_back(output_mask(hid, input_degrees(order_), options_.out_multiplier));
    names.push_back("output");
    levels.resize(masks.size(), hid);
  }
  // Output b·D + i has the degree of input i (its mask is strict: > rather than ≥).
  std::vector<Index> out_degrees;
  for (Index b = 0; b < options_.out_multiplier; ++b)
    append_units(out_degrees, input_degrees(order_));
  levels.push_back(out_degrees);

  for (Index k = 0; k < masks.size(); ++k) {
    // nn.Linear's default U(-1/sqrt(in), 1/sqrt(in)) (fan-in counting masked
    // inputs, as nflows' MaskedLinear); the second layer of a residual block
    // starts in U(-1e-3, 1e-3) as in nflows' MaskedResidualBlock.
    auto layer = std::make_unique<MaskedLinear>(masks[k], rng);
    const bool block_out = residual() && k > 0 && k + 1 < masks.size() && k % 2 == 0;
    const bool last = k + 1 == masks.size();
    if (block_out || (last && options_.zero_output)) {
      const Real bound = last ? Real(0) : Real(1e-3);
      layer->weight().value = uniform_init(masks[k].shape(0), masks[k].shape(1), bound, rng);
      layer->bias().value = uniform_init(1, masks[k].shape(0), bound, rng);
      xt::noalias(layer->weight().value) *= masks[k];
    }
    layer->weight().name = names[k] + ".weight";
    layer->bias().name = names[k] + ".bias";
    layers_.push_back(std::move(layer));
  }
  // Every layer computes with its units sorted by degree: each mask is then a
  // staircase (unit r sees a prefix of the units below it), whose empty
  // blocks the products skip. Between layers the activations stay in that
  // order; only the input and the output are reordered, as they are copied
  // into and out of the compute type.
  std::vector<std::vector<Index>> sorted;
  for (const std::vector<Index>& degrees : levels) sorted.push_back(units_by_degree(degrees));
  for (Index k = 0; k < layers_.size(); ++k)
    layers_[k]->set_compute_order(sorted[k], sorted[k + 1]);
  input_units_ = identity_or(sorted.front());
  output_units_ = identity_or(sorted.back());
  input_positions_ = positions_of(input_units_);
  output_positions_ = positions_of(output_units_);
}

template <class T>
void Made::join_input(const Matrix& x, const Matrix& context, MatrixOf<T>& input) const {
  const Index d = dim(), c = options_.context_features, n = x.shape(0);
  check_input("MADE", x, d);
  if (c > 0 && (context.shape(0) != n || context.shape(1) != c))
    throw DataError("MADE: the context is [" + std::to_string(context.shape(0)) + " x " +
                    std::to_string(context.shape(1)) + "], expected [" + std::to_string(n) + " x " +
                    std::to_string(c) + "]");
  if (c == 0 && input_units_.empty()) {
    convert(x, input);
    return;
  }
  ensure(input, n, d + c);
  for (Index i = 0; i < n; ++i) {
    T* row = input.data() + i * (d + c);
    const Real* xi = x.data() + i * d;
    const Real* ci = c > 0 ? context.data() + i * c : nullptr;
    for (Index j = 0; j < d + c; ++j) {
      const Index u = input_units_.empty() ? j : input_units_[j];
      row[j] = static_cast<T>(u < d ? xi[u] : ci[u - d]);
    }
  }
}

template <class T>
void Made::output_to(const MatrixOf<T>& computed, Matrix& y) const {
  if (output_units_.empty()) {
    convert(computed, y);
    return;
  }
  const Index n = computed.shape(0), k = computed.shape(1);
  ensure(y, n, k);
  // Written in order, read through the inverse: a vectorized loop then
  // gathers, where writing through the permutation would scatter (slow on
  // AVX-512 processors, a tenth of a MADE's forward pass on Zen 4).
  const Index* position = output_positions_.data();
  for (Index i = 0; i < n; ++i) {
    const T* from = computed.data() + i * k;
    Real* to = y.data() + i * k;
    for (Index u = 0; u < k; ++u) to[u] = static_cast<Real>(from[position[u]]);
  }
}

// The record: out[k] is slot k's activation f(a) and slope[k] = f'(a).
// Plain:    slot k = hidden layer k: a_k = out[k-1] W_kᵀ + b_k (out[-1] = input).
// Residual: hidden[k] = h_k (k = 0..B), slot k (k ≤ B) holds f(h_k), slot
//           B+1+k holds f(v_k), v_k = f(h_k) A_kᵀ + a_k, and
//           h_{k+1} = h_k + f(v_k) B_kᵀ + b_k.
template <class T>
void Made::forward_as(const Matrix& x, const Matrix& context, Matrix& y) {
  Buffers<T>& r = record_.get<T>();
  join_input(x, context, r.input);
  const Index n = x.shape(0);
  const Activation& f = options_.activation;
  ensure(r.y, n, out_features());
  if (!residual()) {
    const Index hidden = layers_.size() - 1;
    r.out.resize(hidden);
    r.slope.resize(hidden);
    const MatrixOf<T>* in = &r.input;
    for (Index k = 0; k < hidden; ++k) {
      ensure(r.out[k], n, layer(k).out_features());
      layer(k).forward(*in, r.out[k], f, r.slope[k]);
      in = &r.out[k];
    }
    layer(hidden).forward(*in, r.y);
  } else {
    const Index blocks = options_.residual_blocks;
    const Index width = options_.hidden.front();
    r.hidden.resize(blocks + 1);
    r.out.resize(2 * blocks + 1);
    r.slope.resize(2 * blocks + 1);
    for (MatrixOf<T>& m : r.hidden) ensure(m, n, width);
    layer(0).forward(r.input, r.hidden[0]);
    for (Index k = 0; k < blocks; ++k) {
      f.forward(r.hidden[k], r.out[k], &r.slope[k]);
      MatrixOf<T>& v = r.out[blocks + 1 + k];
      ensure(v, n, width);
      layer(1 + 2 * k).forward(r.out[k], v, f, r.slope[blocks + 1 + k]);
      std::copy(r.hidden[k].begin(), r.hidden[k].end(), r.hidden[k + 1].begin());
      layer(2 + 2 * k).forward(v, r.hidden[k + 1], /*accumulate=*/true);
    }
    f.forward(r.hidden[blocks], r.out[blocks], &r.slope[blocks]);
    layer(layers_.size() - 1).forward(r.out[blocks], r.y);
  }
  output_to(r.y, y);
}

void Made::forward(const Matrix& x, const Matrix& context, Matrix& y) {
  recorded_ = false;
  if (options_.precision == Precision::float32)
    forward_as<float>(x, context, y);
  else
    forward_as<double>(x, context, y);
  recorded_ = true;
}

// Each masked layer backpropagates itself (MaskedLinear::backward); an
// activation multiplies by f'(a); a residual connection adds its two paths'
// gradients; the input layer's gradient splits into dL/dx and dL/dc.
template <class T>
void Made::backward_as(const Matrix& grad_y, Matrix& grad_x, Matrix* grad_context,
                       bool accumulate_param_grads) {
  Buffers<T>& r = record_.get<T>();
  const Index n = r.input.shape(0);
  if (grad_y.shape(0) != n || grad_y.shape(1) != out_features())
    throw DataError("MADE: backward got dL/dy of shape [" + std::to_string(grad_y.shape(0)) +
                    " x " + std::to_string(grad_y.shape(1)) + "], expected [" + std::to_string(n) +
                    " x " + std::to_string(out_features()) + "]");
  if (output_units_.empty()) {
    convert(grad_y, r.grad_y);
  } else {
    const Index k = out_features();
    ensure(r.grad_y, n, k);
    const Index* units = output_units_.data();
    for (Index i = 0; i < n; ++i) {
      const Real* from = grad_y.data() + i * k;
      T* to = r.grad_y.data() + i * k;
      for (Index j = 0; j < k; ++j) to[j] = static_cast<T>(from[units[j]]);
    }
  }
  const bool acc = accumulate_param_grads;
  const Index last = layers_.size() - 1;
  MatrixOf<T>* g = &r.grad_a;
  MatrixOf<T>* spare = &r.grad_b;
  if (!residual()) {
    const Index hidden = last;
    const MatrixOf<T>* upstream = &r.grad_y;
    for (Index k = hidden; k > 0; --k) {
      layer(k).backward(r.out[k - 1], *upstream, *g, acc, &r.slope[k - 1]);
      upstream = g;
      std::swap(g, spare);
    }
    layer(0).backward(r.input, *upstream, r.grad_input, acc);
  } else {
    const Index blocks = options_.residual_blocks;
    MatrixOf<T>& grad_h = r.grad_a;
    MatrixOf<T>& grad_w = r.grad_b;
    layer(last).backward(r.out[blocks], r.grad_y, grad_h, acc, &r.slope[blocks]);
    for (Index k = blocks; k-- > 0;) {
      // h_{k+1} = h_k + f(v_k) B_kᵀ + b_k,  v_k = f(h_k) A_kᵀ + a_k.
      layer(2 + 2 * k).backward(r.out[blocks + 1 + k], grad_h, grad_w, acc,
                                &r.slope[blocks + 1 + k]);
      layer(1 + 2 * k).backward(r.out[k], grad_w, r.grad_c, acc, &r.slope[k]);
      xt::noalias(grad_h) += r.grad_c;
    }
    layer(0).backward(r.input, grad_h, r.grad_input, acc);
  }
  const Index d = dim(), c = options_.context_features;
  ensure(grad_x, n, d);
  // Read through the inverse of the input order (a gather; see output_to).
  const Index* position = input_positions_.empty() ? nullptr : input_positions_.data();
  for (Index i = 0; i < n; ++i) {
    const T* row = r.grad_input.data() + i * (d + c);
    Real* gx = grad_x.data() + i * d;
    for (Index u = 0; u < d; ++u) gx[u] = static_cast<Real>(row[position ? position[u] : u]);
    if (!grad_context) continue;
    Real* gc = grad_context->data() + i * c;
    for (Index u = d; u < d + c; ++u)
      gc[u - d] += static_cast<Real>(row[position ? position[u] : u]);
  }
}

void Made::backward(const Matrix& grad_y, Matrix& grad_x, Matrix* grad_context,
                    bool accumulate_param_grads) {
  if (!recorded_) throw Error("MADE: backward without a preceding forward");
  if (options_.precision == Precision::float32)
    backward_as<float>(grad_y, grad_x, grad_context, accumulate_param_grads);
  else
    backward_as<double>(grad_y, grad_x, grad_context, accumulate_param_grads);
}

template <class T>
void Made::infer_as(const Matrix& x, const Matrix& context, Matrix& y, Buffers<T>& b) const {
  join_input(x, context, b.input);
  const Index n = x.shape(0);
  b.copies.resize(layers_.size());
  const Activation& f = options_.activation;
  ensure(b.y, n, out_features());
  const Index last = layers_.size() - 1;
  if (!residual()) {
    const MatrixOf<T>* in = &b.input;
    for (Index k = 0; k < last; ++k) {
      ensure(b.h, n, layer(k).out_features());
      layer(k).infer(*in, b.h, b.copies[k], f);
      std::swap(b.h, b.a);
      in = &b.a;
    }
    layer(last).infer(*in, b.y, b.copies[last]);
  } else {
    const Index width = options_.hidden.front();
    ensure(b.h, n, width);
    ensure(b.b, n, width);
    layer(0).infer(b.input, b.h, b.copies[0]);
    for (Index k = 0; k < options_.residual_blocks; ++k) {
      f.forward(b.h, b.a);
      layer(1 + 2 * k).infer(b.a, b.b, b.copies[1 + 2 * k], f);
      layer(2 + 2 * k).infer(b.b, b.h, b.copies[2 + 2 * k], /*accumulate=*/true);
    }
    f.forward(b.h, b.a);
    layer(last).infer(b.a, b.y, b.copies[last]);
  }
  output_to(b.y, y);
}

void Made::infer(const Matrix& x, const Matrix& context, Matrix& y, Workspace& ws) const {
  if (options_.precision == Precision::float32)
    infer_as<float>(x, context, y, ws.buffers.get<float>());
  else
    infer_as<double>(x, context, y, ws.buffers.get<double>());
}

Matrix Made::infer(const Matrix& x, const Matrix& context) const {
  Workspace ws;
  Matrix y;
  infer(x, context, y, ws);
  return y;
}

ParameterList Made::parameters() {
  ParameterList list;
  list.reserve(2 * layers_.size());
  for (auto& layer : layers_) append(list, layer->parameters());
  return list;
}

Parameter& Made::output_weight() {
  return layers_.back()->weight();
}
Parameter& Made::output_bias() {
  return layers_.back()->bias();
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
  Matrix reach = layers_[0]->mask();  // hidden x D
  if (!residual()) {
    for (Index k = 1; k < layers_.size(); ++k) reach = product(layers_[k]->mask(), reach);
  } else {
    for (Index k = 0; k < options_.residual_blocks; ++k) {
      const Matrix through =
          product(layers_[2 + 2 * k]->mask(), product(layers_[1 + 2 * k]->mask(), reach));
      reach = reach + through;
    }
    reach = product(layers_.back()->mask(), reach);
  }
  for (Real& v : reach) v = v > 0 ? 1 : 0;
  return reach;
}

}  // namespace flows::nn
