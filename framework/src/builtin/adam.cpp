#include "adam.hpp"

#include <cmath>

#include <fmt/format.h>

namespace flows {

AdamOptions AdamOptions::from(ConfigNode& node) {
  AdamOptions o;
  node.read("lr", o.lr);
  node.read("beta1", o.beta1);
  node.read("beta2", o.beta2);
  node.read("eps", o.eps);
  node.read("weight_decay", o.weight_decay);
  node.expect(o.lr > 0, "lr", "must be > 0");
  node.expect(o.beta1 >= 0 && o.beta1 < 1, "beta1", "must be in [0, 1)");
  node.expect(o.beta2 >= 0 && o.beta2 < 1, "beta2", "must be in [0, 1)");
  node.expect(o.eps > 0, "eps", "must be > 0");
  node.expect(o.weight_decay >= 0, "weight_decay", "must be >= 0");
  node.finish();
  return o;
}

// Adam (Kingma & Ba 2015, Algorithm 1) with bias correction; weight decay is
// decoupled as in AdamW (Loshchilov & Hutter 2019).
void Adam::ensure_moments(const ParameterList& params) {
  if (m_.size() == params.size()) return;
  m_.clear();
  v_.clear();
  for (const Parameter* p : params) {
    m_.push_back(xt::zeros_like(p->value));
    v_.push_back(xt::zeros_like(p->value));
  }
  t_ = 0;
}

void Adam::visit_state(const ParameterList& params, StateVisitor& visitor) {
  ensure_moments(params);
  visit_count(visitor, "step", t_);
  for (std::size_t k = 0; k < params.size(); ++k) {
    visitor.tensor(fmt::format("m{}", k), m_[k]);
    visitor.tensor(fmt::format("v{}", k), v_[k]);
  }
}

void Adam::step(const ParameterList& params, Real lr) {
  ensure_moments(params);
  ++t_;
  const Real b1 = options_.beta1, b2 = options_.beta2;
  const Real correction1 = 1.0 - std::pow(b1, static_cast<Real>(t_));
  const Real correction2 = 1.0 - std::pow(b2, static_cast<Real>(t_));
  const Real step_size = lr / correction1;
  const Real decay = lr * options_.weight_decay;
  const Real eps = options_.eps;
  // Each array is its own (restrict) and every constant a local, so that the
  // loop is vectorized: it runs over every parameter each step.
  for (std::size_t k = 0; k < params.size(); ++k) {
    if (!params[k]->trainable) continue;
    Real* __restrict w = params[k]->value.data();
    const Real* __restrict g = params[k]->grad.data();
    Real* __restrict m = m_[k].data();
    Real* __restrict v = v_[k].data();
    const Index n = params[k]->value.size();
    for (Index i = 0; i < n; ++i) {
      const Real mi = b1 * m[i] + (1 - b1) * g[i];
      const Real vi = b2 * v[i] + (1 - b2) * g[i] * g[i];
      m[i] = mi;
      v[i] = vi;
      w[i] -= step_size * mi / (std::sqrt(vi / correction2) + eps) + decay * w[i];
    }
  }
}

}  // namespace flows
