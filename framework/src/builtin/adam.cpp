#include "adam.hpp"

#include <cmath>

#include <fmt/format.h>

#include "flows/data_parallel.hpp"
#include "flows/threads.hpp"

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
  // sqrt(v / c2) = sqrt(v) / sqrt(c2): one division per value instead of two
  // (the divider bounds this loop, which runs over every parameter each step).
  const Real inv_sqrt_correction2 = 1.0 / std::sqrt(correction2);
  const Real decay = lr * options_.weight_decay;
  const Real eps = options_.eps;
  // Values [first, last) of parameter k. Each array is its own (restrict) and
  // every constant a local copy (not a capture by reference, which could
  // alias the arrays), so that the loop is vectorized.
  auto update = [=, this, &params](std::size_t k, Index first, Index last) {
    if (!params[k]->trainable) return;
    Real* __restrict w = params[k]->value.data();
    const Real* __restrict g = params[k]->grad.data();
    Real* __restrict m = m_[k].data();
    Real* __restrict v = v_[k].data();
    const Real beta1 = b1, beta2 = b2, size = step_size, scale = inv_sqrt_correction2,
               epsilon = eps, shrink = decay;
    for (Index i = first; i < last; ++i) {
      const Real mi = beta1 * m[i] + (1 - beta1) * g[i];
      const Real vi = beta2 * v[i] + (1 - beta2) * g[i] * g[i];
      m[i] = mi;
      v[i] = vi;
      w[i] -= size * mi / (std::sqrt(vi) * scale + epsilon) + shrink * w[i];
    }
  };
  Index values = 0;
  for (const Parameter* p : params) values += p->size();
  // Below this many values a thread's hand-off costs more than its share.
  // (With the workers spinning between tasks the hand-off is about a
  // microsecond: W1's 23k values on two threads gave a 1.8 % shorter step in
  // six alternating pairs of runs, against 2^15.)
  constexpr Index kValuesWorthAThread = Index{1} << 12;
  ThreadPool* threads = pool();
  if (!threads || threads->threads() < 2 || values < kValuesWorthAThread) {
    for (std::size_t k = 0; k < params.size(); ++k) update(k, 0, params[k]->size());
    return;
  }
  const Index parts = threads->threads();
  threads->run(parts, [&](Index t) {
    for_value_range(params, values * t / parts, values * (t + 1) / parts, update);
  });
}

}  // namespace flows
