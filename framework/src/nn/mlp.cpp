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

MLP::MLP(Index in, const std::vector<Index>& hidden, Index out, Activation activation, Rng& rng)
    : activation_(activation) {
  std::vector<Index> sizes{in};
  sizes.insert(sizes.end(), hidden.begin(), hidden.end());
  sizes.push_back(out);
  for (Index s : sizes)
    if (s == 0) throw ConfigError("MLP: input, hidden and output sizes must be positive");
  dense_.reserve(sizes.size() - 1);
  for (Index k = 0; k + 1 < sizes.size(); ++k) dense_.emplace_back(sizes[k], sizes[k + 1], rng);
  name_parameters();
}

MLP::MLP(const std::vector<Matrix>& masks, Activation activation, Rng& rng)
    : activation_(activation) {
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

void MLP::forward(const Matrix& x, Matrix& y) {
  const Index layers = num_layers();
  inputs_.resize(layers);
  pre_.resize(layers - 1);
  inputs_[0].resize(x.shape());
  xt::noalias(inputs_[0]) = x;
  recorded_ = false;
  for (Index k = 0; k + 1 < layers; ++k) {
    with_layer(k, [&](auto& layer) { layer.forward(inputs_[k], pre_[k]); });
    activation_.forward(pre_[k], inputs_[k + 1]);
  }
  with_layer(layers - 1, [&](auto& layer) { layer.forward(inputs_[layers - 1], y); });
  recorded_ = true;
}

// Backpropagation through y = h_{L-1} W_Lᵀ + b_L, hₖ = f(aₖ): layer k maps
// dL/d(output) to dL/d(input), and the activation scales it by f'(aₖ) in place.
void MLP::backward(const Matrix& grad_y, Matrix& grad_x, bool accumulate_param_grads) {
  if (!recorded_) throw Error("MLP: backward without a preceding forward");
  const Index layers = num_layers();
  grad_.resize(layers);
  const Matrix* upstream = &grad_y;
  for (Index k = layers - 1; k > 0; --k) {
    with_layer(k, [&](auto& layer) {
      layer.backward(inputs_[k], *upstream, grad_[k], accumulate_param_grads);
    });
    activation_.backward(pre_[k - 1], inputs_[k], grad_[k]);
    upstream = &grad_[k];
  }
  with_layer(0, [&](auto& layer) {
    layer.backward(inputs_[0], *upstream, grad_x, accumulate_param_grads);
  });
}

void MLP::infer(const Matrix& x, Matrix& y, Workspace& ws) const {
  const Index layers = num_layers();
  const Matrix* in = &x;
  for (Index k = 0; k + 1 < layers; ++k) {
    with_layer(k, [&](const auto& layer) { layer.infer(*in, ws.a); });
    activation_.forward(ws.a, ws.a);  // in place
    std::swap(ws.a, ws.h);
    in = &ws.h;
  }
  with_layer(layers - 1, [&](const auto& layer) { layer.infer(*in, y); });
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
