#include "cfm_objective.hpp"

#include <algorithm>
#include <cmath>
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

void CfmObjective::set_parallel(DataParallel* parallel, std::vector<VelocityField*> replicas) {
  parallel_ = parallel;
  replicas_ = std::move(replicas);
}

// mean((v − u)²) over all entries; dL/dv = 2 (v − u) / (n d).
Real CfmObjective::loss_and_gradient(const Matrix& x1, const Matrix& context, Rng& rng,
                                     Matrix* grad_context) {
  prepare(x1, context, rng);
  const Index n = x1.shape(0), k = field_.context_dim();
  const Real count = static_cast<Real>(n * field_.dim());
  const bool want_context = grad_context && k > 0;
  Real loss = 0;
  blocks_.resize(parallel_ ? parallel_->threads() : 1);
  blocks_used_ = parallel_ ? parallel_->blocks(n) : 1;
  if (parallel_)
    loss = parallel_->run(n, [&](Index b, Index begin, Index end) {
      return block_gradient(b == 0 ? field_ : *replicas_[b - 1], b, begin, end, count,
                            want_context);
    });
  else
    loss = block_gradient(field_, 0, 0, n, count, want_context);
  if (!want_context) return loss;
  // The field saw the context rows in paired order: row i of the batch is
  // row partner[i] of x1.
  for (Index b = 0; b < blocks_used_; ++b) {
    const Index begin = n * b / blocks_used_;
    const Matrix& g = blocks_[b].grad_context;
    for (Index i = 0; i < g.shape(0); ++i) {
      const Real* from = g.data() + i * k;
      Real* out = grad_context->data() + partner_[begin + i] * k;
      for (Index j = 0; j < k; ++j) out[j] += from[j];
    }
  }
  return loss;
}

Real CfmObjective::block_gradient(VelocityField& field, Index block, Index begin, Index end,
                                  Real count, bool want_context) {
  Block& w = blocks_[block];
  const Index n = xt_.shape(0), d = field.dim();
  // One block of the whole batch reads the batch itself.
  const bool whole = begin == 0 && end == n;
  const Matrix& xt = whole ? xt_ : copy_rows(xt_, begin, end, w.xt);
  const Matrix& c = whole ? *target_context_ : copy_rows(*target_context_, begin, end, w.context);
  if (!whole) {
    ensure(w.t, end - begin);
    std::copy(t_.begin() + begin, t_.begin() + end, w.t.begin());
    w.dropped.assign(dropped_.empty() ? dropped_.end() : dropped_.begin() + begin,
                     dropped_.empty() ? dropped_.end() : dropped_.begin() + end);
  }
  field.forward(xt, whole ? t_ : w.t, c, w.v, whole ? dropped_ : w.dropped);
  ensure(w.grad_v, w.v.shape(0), w.v.shape(1));
  const Real* u = ut_.data() + begin * d;
  Real loss = 0;
  for (Index i = 0; i < w.v.size(); ++i) {
    const Real r = w.v.flat(i) - u[i];
    loss += r * r;
    w.grad_v.flat(i) = 2 * r / count;
  }
  if (want_context) {
    w.grad_context = xt::zeros<Real>({end - begin, field.context_dim()});
    field.backward(w.grad_v, w.grad_x, true, &w.grad_context);
  } else {
    field.backward(w.grad_v, w.grad_x, true);
  }
  return loss / count;
}

CfmObjective::NonFiniteRows CfmObjective::nonfinite_rows() const {
  auto count = [&](auto member) {
    Index rows = 0;
    for (Index b = 0; b < blocks_used_; ++b) {
      const Matrix& m = blocks_[b].*member;
      const Index cols = m.shape(0) ? m.size() / m.shape(0) : 0;
      for (Index i = 0; i < m.shape(0); ++i)
        rows += std::any_of(m.data() + i * cols, m.data() + (i + 1) * cols,
                            [](Real v) { return !std::isfinite(v); });
    }
    return rows;
  };
  if (const Index rows = count(&Block::v)) return {"forward pass", rows};
  if (const Index rows = count(&Block::grad_x)) return {"backward pass", rows};
  return {};
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
