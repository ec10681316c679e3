#include "flow_matching_bijector.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include <flows/error.hpp>
#include <flows/rng.hpp>
#include <flows/streams.hpp>

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
      probe_seed_(substream(seed, Substream::hutchinson_probes)) {
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

namespace {

// The key of a row's Hutchinson probe: the seed mixed with the bits of the
// row's starting values and (when given) its context row, so that a row gets
// the same probe wherever it sits in a batch and however the batch is cut,
// while different rows get independent probes.
std::uint64_t probe_key(std::uint64_t seed, const Matrix& x, const Matrix* context, Index row) {
  std::uint64_t key = seed;
  auto mix = [&key](const Real* values, Index count) {
    for (Index j = 0; j < count; ++j) {
      std::uint64_t bits;
      std::memcpy(&bits, values + j, sizeof bits);
      key = mix_seed(key, bits);
    }
  };
  mix(x.data() + row * x.shape(1), x.shape(1));
  if (context) mix(context->data() + row * context->shape(1), context->shape(1));
  return key;
}

// A uniform number in [0, 1) from the top 53 bits.
Real unit_uniform(std::uint64_t bits) {
  return static_cast<Real>(bits >> 11) * 0x1.0p-53;
}

// Entry `entry` of the probes keyed by `key`, from the counter-based
// SplitMix64 stream mix_seed(key, ·): ±1 with equal probability, or a
// standard normal by the Box–Muller transform (Box & Muller 1958, "A Note on
// the Generation of Random Normal Deviates"), ε = sqrt(−2 ln u₁) cos(2π u₂).
Real probe_entry(std::uint64_t key, Index entry, bool gaussian) {
  const std::uint64_t a = mix_seed(key, 2 * entry);
  if (!gaussian) return (a >> 63) ? Real(1) : Real(-1);
  const Real u1 = 1 - unit_uniform(a);  // in (0, 1]
  const Real u2 = unit_uniform(mix_seed(key, 2 * entry + 1));
  return std::sqrt(-2 * std::log(u1)) * std::cos(2 * M_PI * u2);
}

}  // namespace

// Rows are solved in groups of kInferenceRowGroup at fixed offsets: an
// adaptive solver's step sizes are shared by the rows it integrates at once,
// and Flow and Chain cut batches only at these offsets (bijector.hpp), so a
// row's result depends on the data alone, not on the thread count.
Transformed FlowMatchingBijector::transport(const Matrix& x, const Matrix& context, Real t0,
                                            Real t1, bool with_logdet, OdeStats* stats) const {
  if (options_.guidance != 0 && context_dropout_ <= 0)
    throw ConfigError(
        "flow_matching: guidance: " + std::to_string(options_.guidance) +
        " needs a velocity field trained on the null context, and this one was not; train it "
        "with trainer: {type: cfm, context_dropout: p} (p > 0, e.g. 0.1) or set guidance: 0");
  const Index n = x.shape(0), d = dim();
  if (n <= kInferenceRowGroup) return solve_group(x, context, t0, t1, with_logdet, stats);
  Transformed out{Matrix({n, d}), xt::empty<Real>({n})};
  OdeStats total;
  for (Index begin = 0; begin < n; begin += kInferenceRowGroup) {
    const Index end = std::min(n, begin + kInferenceRowGroup);
    const Matrix rows = xt::view(x, xt::range(begin, end), xt::all());
    Matrix c;
    if (context_dim() > 0) c = xt::view(context, xt::range(begin, end), xt::all());
    OdeStats part_stats;
    const Transformed part = solve_group(rows, c, t0, t1, with_logdet, &part_stats);
    std::copy(part.value.begin(), part.value.end(), out.value.data() + begin * d);
    std::copy(part.logdet.begin(), part.logdet.end(), out.logdet.data() + begin);
    total.function_evaluations += part_stats.function_evaluations;
    total.steps_accepted += part_stats.steps_accepted;
    total.steps_rejected += part_stats.steps_rejected;
  }
  if (stats) *stats = total;
  return out;
}

Transformed FlowMatchingBijector::solve_group(const Matrix& x, const Matrix& context, Real t0,
                                              Real t1, bool with_logdet, OdeStats* stats) const {
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
    // Hutchinson's probes are fixed for the whole solve and keyed by each
    // row (probe_key), so the map is deterministic. An unconditional field
    // ignores any context it is given, and so do its keys.
    std::vector<Matrix> probes;
    if (options_.divergence == "hutchinson") {
      const bool gaussian = options_.probe == "gaussian";
      const Matrix* keyed_context = context_dim() > 0 ? &context : nullptr;
      probes.assign(options_.probes, Matrix({n, d}));
      for (Index i = 0; i < n; ++i) {
        const std::uint64_t key = probe_key(probe_seed_, x, keyed_context, i);
        for (Index k = 0; k < options_.probes; ++k)
          for (Index j = 0; j < d; ++j) probes[k](i, j) = probe_entry(key, k * d + j, gaussian);
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
  FlowMatchingOptions options = FlowMatchingOptions::from(node);
  options.field.precision = context.precision;
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
