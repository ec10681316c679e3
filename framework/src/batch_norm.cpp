#include "flows/batch_norm.hpp"

#include <cmath>

#include "flows/batch_moments.hpp"
#include "flows/checks.hpp"
#include "flows/error.hpp"
#include "flows/log_scale.hpp"

namespace flows {

BatchNorm::BatchNorm(Index dim, Real momentum, Real epsilon)
    : Bijector("batch_norm", dim),
      log_gamma_("log_gamma", xt::zeros<Real>({Index(1), dim})),
      beta_("beta", xt::zeros<Real>({Index(1), dim})),
      momentum_(momentum),
      epsilon_(epsilon),
      running_mean_("running_mean", xt::zeros<Real>({Index(1), dim}), /*trainable=*/false),
      running_var_("running_var", xt::ones<Real>({Index(1), dim}), /*trainable=*/false) {}

// z = (x − m̄) / sqrt(v̄ + ε) ⊙ e^γ̂ + β with the running averages (γ̂: γ
// through the overflow guard of log_scale.hpp).
Transformed BatchNorm::forward_impl(const Matrix& x, const Matrix&) const {
  const Index n = x.shape(0), d = dim();
  Transformed out{Matrix({n, d}), xt::empty<Real>({n})};
  Real logdet = 0;
  for (Index j = 0; j < d; ++j) {
    const Real scale = std::exp(clamp_log_scale(log_gamma_.value(0, j))) /
                       std::sqrt(running_var_.value(0, j) + epsilon_);
    logdet += std::log(scale);
    for (Index i = 0; i < n; ++i)
      out.value(i, j) = (x(i, j) - running_mean_.value(0, j)) * scale + beta_.value(0, j);
  }
  out.logdet.fill(logdet);
  return out;
}

// x = (z − β) e^{−γ̂} sqrt(v̄ + ε) + m̄.
Transformed BatchNorm::inverse_impl(const Matrix& z, const Matrix&) const {
  const Index n = z.shape(0), d = dim();
  Transformed out{Matrix({n, d}), xt::empty<Real>({n})};
  Real logdet = 0;
  for (Index j = 0; j < d; ++j) {
    const Real scale = std::exp(-clamp_log_scale(log_gamma_.value(0, j))) *
                       std::sqrt(running_var_.value(0, j) + epsilon_);
    logdet += std::log(scale);
    for (Index i = 0; i < n; ++i)
      out.value(i, j) = (z(i, j) - beta_.value(0, j)) * scale + running_mean_.value(0, j);
  }
  out.logdet.fill(logdet);
  return out;
}

void BatchNorm::forward_train_impl(const Matrix& x, const Matrix&, Matrix& z, Vector& logdet) {
  const Index n = x.shape(0), d = dim();
  if (n == 0) throw DataError("batch_norm: forward_train needs at least one row");
  ensure(z, n, d);
  ensure(logdet, n);
  ensure(normalized_, n, d);
  ensure(inv_std_, 1, d);
  batch_moments(x, d, ranks_, moments_);
  const BatchMoments& moments = moments_;
  share_weight_ = static_cast<Real>(n) / static_cast<Real>(moments.rows);
  Real total = 0;
  for (Index j = 0; j < d; ++j) {
    const Real mean = moments.mean[j], var = moments.var[j];
    const Real inv_std = 1 / std::sqrt(var + epsilon_);
    const Real log_gamma = clamp_log_scale(log_gamma_.value(0, j));
    const Real gamma = std::exp(log_gamma);
    inv_std_(0, j) = inv_std;
    for (Index i = 0; i < n; ++i) {
      normalized_(i, j) = (x(i, j) - mean) * inv_std;
      z(i, j) = normalized_(i, j) * gamma + beta_.value(0, j);
    }
    total += log_gamma + std::log(inv_std);
    running_mean_.value(0, j) = (1 - momentum_) * running_mean_.value(0, j) + momentum_ * mean;
    running_var_.value(0, j) = (1 - momentum_) * running_var_.value(0, j) + momentum_ * var;
  }
  logdet.fill(total);
}

// With r = 1/sqrt(v + ε), x̂ = (x − m) r, g = dL/dz, s = dL/dlogdet, S = Σ_i s_i
// (per column; means over the n rows), γ̂ = γ clamped (log_scale.hpp) and c =
// ∂γ̂/∂γ (1 inside the clamp, 0 outside):
//   dL/dβ = Σ g,   dL/dγ = c (Σ g x̂ e^γ̂ + S),   dL/dx̂ = g e^γ̂,
//   dL/dx = r (dL/dx̂ − mean(dL/dx̂) − x̂ mean(dL/dx̂ ⊙ x̂)) − S r x̂ / n,
// the last term from −½ log(v + ε) in every row's logdet (∂v/∂x_i = 2(x_i − m)/n).
//
// On several ranks, rank k's loss is the mean over its own n_k rows, and
// the trainer weights its gradients by w_k = n_k / n before summing them
// (training_loop.cpp). The parameter gradients stay each rank's own (the
// trainer sums them). dL/dx needs the whole batch's Σ g, Σ g x̂ and S: they
// are Σ_k w_k (rank k's sums), and rank k's dL/dx is the formula above with
// those sums and 1/n_k for 1/n (its own loss's scale).
void BatchNorm::backward_impl(const Matrix& grad_z, const Vector& grad_logdet, Matrix& grad_x,
                              Matrix*) {
  const Index n = normalized_.shape(0), d = dim();
  ensure(grad_x, n, d);
  // Per column Σ g and Σ g x̂, then S: this rank's, then (weighted) the batch's.
  std::vector<Real>& own = own_sums_;
  own.assign(2 * d + 1, 0.0);
  for (Index i = 0; i < n; ++i) own[2 * d] += grad_logdet(i);
  for (Index j = 0; j < d; ++j)
    for (Index i = 0; i < n; ++i) {
      own[j] += grad_z(i, j);
      own[d + j] += grad_z(i, j) * normalized_(i, j);
    }
  std::vector<Real>& batch = batch_sums_;
  batch = own;
  if (ranks_ != nullptr && ranks_->size() > 1) {
    for (Real& v : batch) v *= share_weight_;
    sum_over_ranks(batch, ranks_);
  }
  const Real s_own = own[2 * d], s_total = batch[2 * d];
  const Real inv_n = 1 / static_cast<Real>(n);
  for (Index j = 0; j < d; ++j) {
    const Real gamma = std::exp(clamp_log_scale(log_gamma_.value(0, j)));
    beta_.grad(0, j) += own[j];
    log_gamma_.grad(0, j) +=
        clamp_log_scale_slope(log_gamma_.value(0, j)) * (own[d + j] * gamma + s_own);
    const Real r = inv_std_(0, j);
    const Real mean_dxhat = batch[j] * gamma * inv_n;
    const Real mean_dxhat_xhat = batch[d + j] * gamma * inv_n;
    for (Index i = 0; i < n; ++i) {
      const Real xhat = normalized_(i, j);
      grad_x(i, j) = r * (grad_z(i, j) * gamma - mean_dxhat - xhat * mean_dxhat_xhat) -
                     s_total * r * xhat * inv_n;
    }
  }
}

BatchNormOptions BatchNormOptions::from(ConfigNode& node) {
  BatchNormOptions o;
  node.read("momentum", o.momentum);
  node.read("epsilon", o.epsilon);
  node.expect(o.momentum > 0 && o.momentum <= 1, "momentum", "must be in (0, 1]");
  node.expect(o.epsilon > 0 && std::isfinite(o.epsilon), "epsilon", "must be > 0");
  node.finish();
  return o;
}

std::unique_ptr<Bijector> make_batch_norm(ConfigNode& node, const BuildContext& context) {
  const BatchNormOptions options = BatchNormOptions::from(node);
  return std::make_unique<BatchNorm>(context.dim, options.momentum, options.epsilon);
}

void BatchNorm::visit_state(StateVisitor& visitor) {
  const Matrix previous = running_var_.value;
  visit_parameters(parameters(), visitor);
  for (Index j = 0; j < running_var_.value.size(); ++j)
    if (!(running_var_.value.flat(j) > 0)) {
      const Real bad = running_var_.value.flat(j);
      running_var_.value = previous;
      throw DataError("batch_norm: loaded running variance of column " + std::to_string(j + 1) +
                      " is " + std::to_string(bad) + "; it must be > 0");
    }
}

}  // namespace flows
