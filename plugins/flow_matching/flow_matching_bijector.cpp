#include "flow_matching_bijector.hpp"

#include <cmath>
#include <limits>

#include <flows/error.hpp>
#include <flows/rng.hpp>

namespace flows::flow_matching {

namespace {

void require_columns(const Matrix& m, Index dim, const char* what) {
  if (m.shape(1) != dim)
    throw DataError(std::string("flow_matching: ") + what + " has " + std::to_string(m.shape(1)) +
                    " columns but the bijector's dimension is " + std::to_string(dim));
}

}  // namespace

FlowMatchingOptions FlowMatchingOptions::from(ConfigNode& node) {
  FlowMatchingOptions o;
  o.field.read_from(node);
  node.read("divergence", o.divergence);
  node.read("probes", o.probes);
  node.read("probe", o.probe);
  node.read("sample_logdet", o.sample_logdet);
  node.expect_one_of("divergence", o.divergence, {"exact", "hutchinson"});
  node.expect_one_of("probe", o.probe, {"rademacher", "gaussian"});
  node.expect(o.probes > 0, "probes", "must be > 0");
  return o;
}

FlowMatchingBijector::FlowMatchingBijector(Index dim, const FlowMatchingOptions& options,
                                           std::shared_ptr<OdeSolver> solver, std::uint64_t seed)
    : options_(options),
      field_(dim, options.field, *std::make_unique<Rng>(seed)),
      solver_(std::move(solver)),
      probe_seed_(mix_seed(seed, 7)) {
  if (!solver_) throw Error("flow_matching: no ODE solver");
}

Transformed FlowMatchingBijector::transport(const Matrix& x, Real t0, Real t1, bool with_logdet,
                                            OdeStats* stats) const {
  const Index n = x.shape(0), d = dim();
  VelocityField::Evaluator evaluator(field_);
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

Transformed FlowMatchingBijector::forward(const Matrix& x, const Matrix&) const {
  require_columns(x, dim(), "input");
  return transport(x, 1.0, 0.0, true);
}

Transformed FlowMatchingBijector::inverse(const Matrix& z, const Matrix&) const {
  require_columns(z, dim(), "latent input");
  return transport(z, 0.0, 1.0, options_.sample_logdet);
}

void FlowMatchingBijector::forward_train(const Matrix& x, const Matrix& context, Matrix& z,
                                         Vector& logdet) {
  Transformed t = forward(x, context);
  z = std::move(t.value);
  logdet = std::move(t.logdet);
}

void FlowMatchingBijector::backward(const Matrix&, const Vector&, Matrix&) {
  throw Error(
      "flow_matching: maximum-likelihood training through the ODE is not supported (no gradient "
      "through the solve); train the velocity field with `trainer: {type: cfm}`");
}

std::unique_ptr<Bijector> make_flow_matching(ConfigNode& node, const BuildContext& context) {
  const FlowMatchingOptions options = FlowMatchingOptions::from(node);
  if (context.dim == 0) throw node.error("", "needs a data dimension of at least 1");
  if (!context.registry) throw node.error("solver", "no registry to build the ODE solver with");
  ConfigNode solver_node = node.child("solver", /*optional=*/true);
  if (!solver_node.has("type")) solver_node.set("type", "dopri5");
  std::shared_ptr<OdeSolver> solver = context.registry->make<OdeSolver>(solver_node, context);
  node.finish();
  return std::make_unique<FlowMatchingBijector>(context.dim, options, std::move(solver),
                                                context.seed);
}

}  // namespace flows::flow_matching
