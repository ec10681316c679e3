#include "cfm_objective.hpp"

#include <algorithm>
#include <numeric>

#include <flows/checks.hpp>

#include "optimal_transport.hpp"

namespace flows::flow_matching {

namespace {

// Rows partner[i] of m, in order (m empty: stays empty).
void gather_rows(const Matrix& m, const std::vector<Index>& partner, Matrix& out) {
  if (m.size() == 0) {
    out = Matrix();
    return;
  }
  const Index cols = m.shape(1);
  ensure(out, partner.size(), cols);
  for (Index i = 0; i < partner.size(); ++i)
    std::copy_n(m.data() + partner[i] * cols, cols, out.data() + i * cols);
}

}  // namespace

CfmObjective::CfmObjective(const CfmOptions& options, VelocityField& field, NoiseSource noise)
    : options_(options),
      field_(field),
      noise_(std::move(noise)),
      path_(options.path == "vp" ? ProbabilityPath::Kind::vp : ProbabilityPath::Kind::straight,
            options.sigma_min) {}

void CfmObjective::prepare(const Matrix& x1, const Matrix& context, Rng& rng) {
  const Index n = x1.shape(0);
  noise_(n, rng, x0_);
  partner_.resize(n);
  std::iota(partner_.begin(), partner_.end(), Index(0));
  target_ = &x1;
  target_context_ = &context;
  if (options_.coupling == "ot") {
    const Matrix cost = squared_distances(x0_, x1);
    partner_ =
        options_.ot_solver == "sinkhorn"
            ? sinkhorn_pairing(cost, options_.sinkhorn_reg, options_.sinkhorn_iterations, rng)
            : linear_assignment(cost);
    gather_rows(x1, partner_, paired_);
    gather_rows(context, partner_, paired_context_);
    target_ = &paired_;
    target_context_ = &paired_context_;
  }
  t_.resize({n});
  for (Real& t : t_) t = rng.uniform();
  // No draws for dropout when there is none, so unconditional runs keep the
  // random stream they had.
  dropped_.clear();
  if (options_.context_dropout > 0 && field_.context_dim() > 0) {
    dropped_.resize(n);
    for (char& d : dropped_) d = rng.uniform() < options_.context_dropout;
  }
  path_.sample(x0_, *target_, t_, xt_, ut_);
}

// mean((v − u)²) over all entries; dL/dv = 2 (v − u) / (n d).
Real CfmObjective::loss_and_gradient(const Matrix& x1, const Matrix& context, Rng& rng,
                                     Matrix* grad_context) {
  prepare(x1, context, rng);
  field_.forward(xt_, t_, *target_context_, v_, dropped_);
  const Real count = static_cast<Real>(v_.size());
  ensure(grad_v_, v_.shape(0), v_.shape(1));
  Real loss = 0;
  for (Index k = 0; k < v_.size(); ++k) {
    const Real r = v_.flat(k) - ut_.flat(k);
    loss += r * r;
    grad_v_.flat(k) = 2 * r / count;
  }
  const Index k = field_.context_dim();
  if (!grad_context || k == 0) {
    field_.backward(grad_v_, grad_x_, true);
    return loss / count;
  }
  // The field saw the context rows in paired order: its row i is row partner[i].
  grad_paired_ = xt::zeros<Real>({x1.shape(0), k});
  field_.backward(grad_v_, grad_x_, true, &grad_paired_);
  for (Index i = 0; i < partner_.size(); ++i) {
    const Real* g = grad_paired_.data() + i * k;
    Real* out = grad_context->data() + partner_[i] * k;
    for (Index j = 0; j < k; ++j) out[j] += g[j];
  }
  return loss / count;
}

Real CfmObjective::loss(const Matrix& x1, const Matrix& context, Rng& rng) {
  prepare(x1, context, rng);
  field_.features(xt_, t_, *target_context_, dropped_, features_);
  field_.mlp().infer(features_, v_);
  Real loss = 0;
  for (Index k = 0; k < v_.size(); ++k) {
    const Real r = v_.flat(k) - ut_.flat(k);
    loss += r * r;
  }
  return loss / static_cast<Real>(v_.size());
}

}  // namespace flows::flow_matching
