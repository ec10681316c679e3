#include "flow_matching_bijector.hpp"

#include <cmath>
#include <limits>

#include <flows/error.hpp>
#include <flows/rng.hpp>

namespace flows::flow_matching {

FlowMatchingOptions FlowMatchingOptions::from(ConfigNode& node) {
  FlowMatchingOptions o;
  o.field.read_from(node);
  node.read("divergence", o.divergence);
  node.read("probes", o.probes);
  node.read("probe", o.probe);
  node.read("sample_logdet", o.sample_logdet);
  node.read("guidance", o.guidance);
  node.expect_one_of("divergence", o.divergence, {"exact", "hutchinson"});
  node.expect_one_of("probe", o.probe, {"rademacher", "gaussian"});
  node.expect(o.probes > 0, "probes", "must be > 0");
  node.expect(std::isfinite(o.guidance), "guidance", "must be a finite number");
  return o;
}

FlowMatchingBijector::FlowMatchingBijector(Index dim, Index context_dim,
                                           const FlowMatchingOptions& options,
                                           std::shared_ptr<OdeSolver> solver, std::uint64_t seed)
    : RegressionFittedBijector("flow_matching", dim, context_dim, "cfm"),
      options_(options),
      field_(dim, context_dim, options.field, *std::make_unique<Rng>(seed)),
      solver_(std::move(solver)),
      probe_seed_(mix_seed(seed, 7)) {
  if (!solver_) throw Error("flow_matching: no ODE solver");
}

void FlowMatchingBijector::visit_state(StateVisitor& visitor) {
  visit_parameters(parameters(), visitor);
  if (context_dim() == 0) return;  // unconditional checkpoints keep their old layout
  Matrix p = {{context_dropout_}};
  visitor.tensor("context_dropout", p);
  if (!(p(0, 0) >= 0 && p(0, 0) < 1))
    throw DataError("flow_matching: the saved context_dropout is " + std::to_string(p(0, 0)) +
                    ", not a probability in [0, 1)");
  context_dropout_ = p(0, 0);
}

Transformed FlowMatchingBijector::transport(const Matrix& x, const Matrix& context, Real t0,
                                            Real t1, bool with_logdet, OdeStats* stats) const {
  if (options_.guidance != 0 && context_dropout_ <= 0)
    throw ConfigError(
        "flow_matching: guidance: " + std::to_string(options_.guidance) +
        " needs a velocity field trained on the null context, and this one was not; train it "
        "with trainer: {type: cfm, context_dropout: p} (p > 0, e.g. 0.1) or set guidance: 0");
  const Index n = x.shape(0), d = dim();
  VelocityField::Evaluator evaluator(field_, context, options_.guidance);
  Transformed out;
  OdeStats solve_stats;
  if (!with_logdet) {
    out.value = x;
    solve_stats =
        solver_->integrate([&evaluator](const Matrix& state, Real t,
                                        Matrix& dxdt) { evaluator.velocity(state, t, dxdt); },
                           out.value, t0, t1);
    out.logdet = xt::empty<Real>({n});
    std::fill(out.logdet.begin(), out.logdet.end(), std::numeric_limits<Real>::quiet_NaN());
  } else {
    // Hutchinson's probes are drawn once per solve, from a fixed seed, so the
    // map is deterministic and smooth in x.
    std::vector<Matrix> probes;
    if (options_.divergence == "hutchinson") {
      Rng rng(probe_seed_);
      for (Index k = 0; k < options_.probes; ++k) {
        Matrix eps = rng.normal(n, d);
        if (options_.probe == "rademacher")
          for (Real& e : eps) e = e < 0 ? Real(-1) : Real(1);
        probes.push_back(std::move(eps));
      }
    }
    Matrix state = xt::zeros<Real>({n, d + 1});
    for (Index i = 0; i < n; ++i)
      for (Index j = 0; j < d; ++j) state(i, j) = x(i, j);
    Matrix position({n, d}), velocity;
    Vector divergence;
    const bool exact = probes.empty();
    auto system = [&](const Matrix& s, Real t, Matrix& dsdt) {
      const Index rows = s.shape(0);
      for (Index i = 0; i < rows; ++i)
        for (Index j = 0; j < d; ++j) position(i, j) = s(i, j);
      if (exact)
        evaluator.velocity_and_divergence(position, t, velocity, divergence);
      else
        evaluator.velocity_and_divergence_estimate(position, t, probes, velocity, divergence);
      dsdt.resize(s.shape());
      for (Index i = 0; i < rows; ++i) {
        for (Index j = 0; j < d; ++j) dsdt(i, j) = velocity(i, j);
        dsdt(i, d) = divergence(i);
      }
    };
    solve_stats = solver_->integrate(system, state, t0, t1);
    out.value = xt::empty<Real>({n, d});
    out.logdet = xt::empty<Real>({n});
    for (Index i = 0; i < n; ++i) {
      for (Index j = 0; j < d; ++j) out.value(i, j) = state(i, j);
      out.logdet(i) = state(i, d);
    }
  }
  if (stats) *stats = solve_stats;
  return out;
}

Transformed FlowMatchingBijector::forward_impl(const Matrix& x, const Matrix& context) const {
  return transport(x, context, 1.0, 0.0, true);
}

Transformed FlowMatchingBijector::inverse_impl(const Matrix& z, const Matrix& context) const {
  return transport(z, context, 0.0, 1.0, options_.sample_logdet);
}

std::unique_ptr<Bijector> make_flow_matching(ConfigNode& node, const BuildContext& context) {
  const FlowMatchingOptions options = FlowMatchingOptions::from(node);
  if (!context.registry) throw node.error("solver", "no registry to build the ODE solver with");
  ConfigNode solver_node = node.child("solver", /*optional=*/true);
  if (!solver_node.has("type")) solver_node.set("type", "dopri5");
  std::shared_ptr<OdeSolver> solver = context.registry->make<OdeSolver>(solver_node, context);
  node.finish();
  if (options.guidance != 0 && context.context_dim == 0)
    throw node.error("guidance", "needs a conditional model (the data has no context columns)");
  return std::make_unique<FlowMatchingBijector>(context.dim, context.context_dim, options,
                                                std::move(solver), context.seed);
}

}  // namespace flows::flow_matching
