#include "flows/flow.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "flows/error.hpp"

namespace flows {

Flow::Flow(std::shared_ptr<BaseDistribution> base, std::vector<std::shared_ptr<Bijector>> chain)
    : base_(std::move(base)), chain_(std::move(chain)) {
  if (!base_) throw Error("Flow: no base distribution");
  for (std::size_t k = 0; k < chain_.size(); ++k)
    if (chain_[k]->dim() != base_->dim())
      throw Error(fmt::format("Flow: bijector {} has dimension {}, the base distribution {}", k,
                              chain_[k]->dim(), base_->dim()));
}

void Flow::prepend(std::shared_ptr<Bijector> bijector) {
  if (bijector->dim() != dim())
    throw Error(fmt::format("Flow: prepended bijector has dimension {}, the flow {}",
                            bijector->dim(), dim()));
  chain_.insert(chain_.begin(), std::move(bijector));
}

Vector Flow::log_prob(const Matrix& x, const Matrix& context) const {
  if (x.shape(1) != dim())
    throw DataError(
        fmt::format("the model has {} dimensions but the data has {} columns", dim(), x.shape(1)));
  Vector total = xt::zeros<Real>({x.shape(0)});
  Matrix current = x;
  for (const auto& bijector : chain_) {
    Transformed t = bijector->forward(current, context);
    total += t.logdet;
    current = std::move(t.value);
  }
  total += base_->log_prob(current, context);
  return total;
}

Real Flow::mean_nll(const Matrix& x, Index batch) const {
  const Index n = x.shape(0);
  if (n == 0) throw DataError("mean_nll: no rows");
  Real sum = 0;
  for (Index start = 0; start < n; start += batch) {
    const Index stop = std::min(n, start + batch);
    Matrix rows = xt::view(x, xt::range(start, stop), xt::all());
    Vector lp = log_prob(rows);
    for (Real v : lp) sum -= v;
  }
  return sum / static_cast<Real>(n);
}

Matrix Flow::sample(Index n, Rng& rng, const Matrix& context) const {
  Matrix current = base_->sample(n, context, rng);
  for (auto it = chain_.rbegin(); it != chain_.rend(); ++it)
    current = (*it)->inverse(current, context).value;
  return current;
}

Transformed Flow::sample_and_log_prob(Index n, Rng& rng, const Matrix& context) const {
  Matrix current = base_->sample(n, context, rng);
  Vector lp = base_->log_prob(current, context);
  for (auto it = chain_.rbegin(); it != chain_.rend(); ++it) {
    Transformed t = (*it)->inverse(current, context);
    lp -= t.logdet;
    current = std::move(t.value);
  }
  return {std::move(current), std::move(lp)};
}

// L = -(1/n) Σ_i [log p_z(z_i) + Σ_k logdet_k,i]; every logdet and the base
// log-density get the same weight -1/n per row.
Real Flow::nll_gradient(const Matrix& batch, const Matrix& context) {
  if (batch.shape(1) != dim())
    throw DataError(fmt::format("the model has {} dimensions but the batch has {} columns", dim(),
                                batch.shape(1)));
  const Index n = batch.shape(0);
  const std::size_t k_count = chain_.size();
  activations_.resize(k_count);
  logdets_.resize(k_count);
  const Matrix* input = &batch;
  for (std::size_t k = 0; k < k_count; ++k) {
    chain_[k]->forward_train(*input, context, activations_[k], logdets_[k]);
    input = &activations_[k];
  }
  log_prob_ = base_->log_prob(*input, context);
  Real sum = 0;
  for (Real v : log_prob_) sum += v;
  for (const Vector& ld : logdets_)
    for (Real v : ld) sum += v;

  const Real weight = -1.0 / static_cast<Real>(n);
  grad_logdet_.resize({n});
  std::fill(grad_logdet_.begin(), grad_logdet_.end(), weight);
  base_->log_prob_backward(*input, context, grad_logdet_, grad_a_);
  for (std::size_t k = k_count; k-- > 0;) {
    chain_[k]->backward(grad_a_, grad_logdet_, grad_b_);
    std::swap(grad_a_, grad_b_);
  }
  return -sum / static_cast<Real>(n);
}

ParameterList Flow::parameters() {
  ParameterList params = base_->parameters();
  for (auto& bijector : chain_) append(params, bijector->parameters());
  return params;
}

}  // namespace flows
