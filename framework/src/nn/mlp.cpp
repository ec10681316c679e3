#include "flows/nn/mlp.hpp"

#include <string>
#include <utility>

#include "flows/error.hpp"

namespace flows::nn {

template <class F>
void MLP::with_layer(Index k, F&& f) {
  if (masked())
    f(masked_[k]);
  else
    f(dense_[k]);
}

template <class F>
void MLP::with_layer(Index k, F&& f) const {
  if (masked())
    f(masked_[k]);
  else
    f(dense_[k]);
}

MLP::MLP(Index in, const std::vector<Index>& hidden, Index out, Activation activation, Rng& rng,
         Precision precision)
    : activation_(activation), precision_(precision) {
  std::vector<Index> sizes{in};
  sizes.insert(sizes.end(), hidden.begin(), hidden.end());
  sizes.push_back(out);
  for (Index s : sizes)
    if (s == 0) throw ConfigError("MLP: input, hidden and output sizes must be positive");
  dense_.reserve(sizes.size() - 1);
  for (Index k = 0; k + 1 < sizes.size(); ++k) dense_.emplace_back(sizes[k], sizes[k + 1], rng);
  name_parameters();
}

MLP::MLP(const std::vector<Matrix>& masks, Activation activation, Rng& rng, Precision precision)
    : activation_(activation), precision_(precision) {
  if (masks.empty()) throw ConfigError("MLP: needs at least one mask");
  for (Index k = 1; k < masks.size(); ++k)
    if (masks[k].shape(1) != masks[k - 1].shape(0))
      throw ConfigError("MLP: mask " + std::to_string(k) + " has " +
                        std::to_string(masks[k].shape(1)) + " inputs but mask " +
                        std::to_string(k - 1) + " has " + std::to_string(masks[k - 1].shape(0)) +
                        " outputs");
  masked_.reserve(masks.size());
  for (const Matrix& mask : masks) masked_.emplace_back(mask, rng);
  name_parameters();
}

void MLP::name_parameters() {
  for (Index k = 0; k < num_layers(); ++k) {
    weight(k).name = "layer" + std::to_string(k) + ".weight";
    bias(k).name = "layer" + std::to_string(k) + ".bias";
  }
}

Index MLP::in_features() const {
  return masked() ? masked_.front().in_features() : dense_.front().in_features();
}

Index MLP::out_features() const {
  return masked() ? masked_.back().out_features() : dense_.back().out_features();
}

// The record in T: inputs[k] is layer k's input (inputs[0] = x in T), pre[k]
// layer k's output before the activation (k < L-1), out the last layer's
// output; grad[k] = dL/d(inputs[k]) for k ≥ 1.
template <class T>
void MLP::forward_as(const Matrix& x, Matrix& y) {
  Buffers<T>& r = record_.get<T>();
  const Index layers = num_layers();
  r.inputs.resize(layers);
  r.pre.resize(layers - 1);
  convert(x, r.inputs[0]);
  for (Index k = 0; k + 1 < layers; ++k) {
    with_layer(k, [&](auto& layer) { layer.forward(r.inputs[k], r.pre[k]); });
    activation_.forward(r.pre[k], r.inputs[k + 1]);
  }
  with_layer(layers - 1, [&](auto& layer) { layer.forward(r.inputs[layers - 1], r.out); });
  convert(r.out, y);
}

void MLP::forward(const Matrix& x, Matrix& y) {
  recorded_ = false;
  if (precision_ == Precision::float32)
    forward_as<float>(x, y);
  else
    forward_as<double>(x, y);
  recorded_ = true;
}

// Backpropagation through y = h_{L-1} W_Lᵀ + b_L, hₖ = f(aₖ): layer k maps
// dL/d(output) to dL/d(input), and the activation scales it by f'(aₖ) in place.
template <class T>
void MLP::backward_as(const Matrix& grad_y, Matrix& grad_x, bool accumulate_param_grads) {
  Buffers<T>& r = record_.get<T>();
  const Index layers = num_layers();
  r.grad.resize(layers);
  convert(grad_y, r.grad_out);
  const MatrixOf<T>* upstream = &r.grad_out;
  for (Index k = layers - 1; k > 0; --k) {
    with_layer(k, [&](auto& layer) {
      layer.backward(r.inputs[k], *upstream, r.grad[k], accumulate_param_grads);
    });
    activation_.backward(r.pre[k - 1], r.inputs[k], r.grad[k]);
    upstream = &r.grad[k];
  }
  with_layer(0, [&](auto& layer) {
    layer.backward(r.inputs[0], *upstream, r.grad_in, accumulate_param_grads);
  });
  convert(r.grad_in, grad_x);
}

void MLP::backward(const Matrix& grad_y, Matrix& grad_x, bool accumulate_param_grads) {
  if (!recorded_) throw Error("MLP: backward without a preceding forward");
  if (precision_ == Precision::float32)
    backward_as<float>(grad_y, grad_x, accumulate_param_grads);
  else
    backward_as<double>(grad_y, grad_x, accumulate_param_grads);
}

template <class T>
void MLP::infer_as(const Matrix& x, Matrix& y, Buffers<T>& b) const {
  const Index layers = num_layers();
  b.copies.resize(layers);
  convert(x, b.h);
  for (Index k = 0; k + 1 < layers; ++k) {
    with_layer(k, [&](const auto& layer) { layer.infer(b.h, b.a, b.copies[k], activation_); });
    std::swap(b.a, b.h);
  }
  with_layer(layers - 1, [&](const auto& layer) { layer.infer(b.h, b.out, b.copies[layers - 1]); });
  convert(b.out, y);
}

void MLP::infer(const Matrix& x, Matrix& y, Workspace& ws) const {
  if (precision_ == Precision::float32)
    infer_as<float>(x, y, ws.buffers.get<float>());
  else
    infer_as<double>(x, y, ws.buffers.get<double>());
}

void MLP::infer(const Matrix& x, Matrix& y) const {
  Workspace ws;
  infer(x, y, ws);
}

Matrix MLP::infer(const Matrix& x) const {
  Matrix y;
  infer(x, y);
  return y;
}

ParameterList MLP::parameters() {
  ParameterList list;
  list.reserve(2 * num_layers());
  for (Index k = 0; k < num_layers(); ++k) {
    list.push_back(&weight(k));
    list.push_back(&bias(k));
  }
  return list;
}

Parameter& MLP::weight(Index layer) {
  if (layer >= num_layers()) throw Error("MLP: no layer " + std::to_string(layer));
  return masked() ? masked_[layer].weight() : dense_[layer].weight();
}

Parameter& MLP::bias(Index layer) {
  if (layer >= num_layers()) throw Error("MLP: no layer " + std::to_string(layer));
  return masked() ? masked_[layer].bias() : dense_[layer].bias();
}

}  // namespace flows::nn
