#include "sgd.hpp"

namespace flows {

SgdOptions SgdOptions::from(ConfigNode& node) {
  SgdOptions o;
  node.read("lr", o.lr);
  node.read("momentum", o.momentum);
  node.read("weight_decay", o.weight_decay);
  node.expect(o.lr > 0, "lr", "must be > 0");
  node.expect(o.momentum >= 0 && o.momentum < 1, "momentum", "must be in [0, 1)");
  node.expect(o.weight_decay >= 0, "weight_decay", "must be >= 0");
  node.finish();
  return o;
}

void Sgd::ensure_velocity(const ParameterList& params) {
  if (velocity_.size() == params.size()) return;
  velocity_.clear();
  for (const Parameter* p : params) velocity_.push_back(xt::zeros_like(p->value));
}

void Sgd::visit_state(const ParameterList& params, StateVisitor& visitor) {
  ensure_velocity(params);
  for (std::size_t k = 0; k < params.size(); ++k)
    visitor.tensor("velocity" + std::to_string(k), velocity_[k]);
}

void Sgd::step(const ParameterList& params, Real lr) {
  ensure_velocity(params);
  for (std::size_t k = 0; k < params.size(); ++k) {
    if (!params[k]->trainable) continue;
    Real* w = params[k]->value.data();
    const Real* g = params[k]->grad.data();
    Real* v = velocity_[k].data();
    for (Index i = 0; i < params[k]->value.size(); ++i) {
      const Real grad = g[i] + options_.weight_decay * w[i];
      v[i] = options_.momentum * v[i] + grad;
      w[i] -= lr * v[i];
    }
  }
}

}  // namespace flows
