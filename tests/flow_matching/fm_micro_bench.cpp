// Micro-benchmarks of the flow_matching plugin (Google Benchmark) at the
// shapes of workload W3: a velocity MLP on [x, t] (D = 2, no time features)
// with 3 hidden layers of 64 SELU units. Not a test; run
//   build/tests/flow_matching/fm_micro_bench --benchmark_repetitions=3
// Each benchmark reports allocs_per_iter and alloc_bytes_per_iter, the heap
// allocations of one iteration in the steady state (apps/bench/alloc_counter.hpp);
// FLOWS_ALLOC_TRACE=<name> prints where they come from.
//
//   Velocity/n            one evaluation v(x, t) through VelocityField::Evaluator on n rows:
//                         one stage of an ODE step (Flow solves 10,000 points as row blocks
//                         on its threads: 5,000 rows each on 2 cores)
//   VelocityDivergence/n  v and its exact divergence (one stage of the NLL solve)
//   Rk4Solve/steps        a whole sampling solve of 5,000 rows with `rk4` and that many steps,
//                         through the plugin: allocs(steps = 101) − allocs(steps = 1), over
//                         100, is the allocations of one ODE step
//   CfmTrainStep          one cfm training step at batch 256: noise from the base, t, the
//                         straight path, forward and backward of the field, and an Adam step
#include <benchmark/benchmark.h>

#include <memory>
#include <string>

#include <flows/config.hpp>
#include <flows/normal.hpp>
#include <flows/optimizer.hpp>
#include <flows/plugin_loader.hpp>
#include <flows/registry.hpp>
#include <flows/rng.hpp>

#include "alloc_benchmark.hpp"
#include "cfm_objective.hpp"
#include "cfm_trainer.hpp"
#include "fm_test_support.hpp"
#include "velocity_field.hpp"

namespace {

using flows::Index;
using flows::Matrix;
using flows::Real;
using flows::flow_matching::VelocityField;

constexpr Index kDim = 2;

flows::flow_matching::VelocityFieldOptions w3_field() {
  flows::flow_matching::VelocityFieldOptions o;
  o.hidden = {64, 64, 64};
  o.activation = "selu";
  o.time_frequencies = 0;
  return o;
}

void Velocity(benchmark::State& state) {
  const Index n = state.range(0);
  flows::Rng rng(0);
  VelocityField field(kDim, 0, w3_field(), rng);
  VelocityField::Evaluator evaluator(field);
  const Matrix x = rng.normal(n, kDim);
  Matrix v;
  Real t = 0.25;
  flows::bench::counted_loop(state, "Velocity", [&] {
    evaluator.velocity(x, t, v);
    benchmark::DoNotOptimize(v.data());
  });
  state.SetItemsProcessed(state.iterations() * n);
}
BENCHMARK(Velocity)->Arg(256)->Arg(5000)->Unit(benchmark::kMicrosecond)->UseRealTime();

void VelocityDivergence(benchmark::State& state) {
  const Index n = state.range(0);
  flows::Rng rng(0);
  VelocityField field(kDim, 0, w3_field(), rng);
  VelocityField::Evaluator evaluator(field);
  const Matrix x = rng.normal(n, kDim);
  Matrix v;
  flows::Vector divergence;
  flows::bench::counted_loop(state, "VelocityDivergence", [&] {
    evaluator.velocity_and_divergence(x, 0.25, v, divergence);
    benchmark::DoNotOptimize(divergence.data());
  });
  state.SetItemsProcessed(state.iterations() * n);
}
BENCHMARK(VelocityDivergence)->Arg(1000)->Unit(benchmark::kMicrosecond)->UseRealTime();

using fm_test::registry;

void Rk4Solve(benchmark::State& state) {
  const Index steps = state.range(0), n = 5000;
  flows::ConfigNode node = flows::ConfigNode::parse(
      "{type: flow_matching, hidden: [64, 64, 64], activation: selu, time_frequencies: 0, "
      "sample_logdet: false, solver: {type: rk4, steps: " +
          std::to_string(steps) + "}}",
      "bench");
  auto bijector =
      registry().make<flows::Bijector>(node, flows::BuildContext{kDim, 0, 7, &registry()});
  flows::Rng rng(1);
  const Matrix z = rng.normal(n, kDim);
  flows::bench::counted_loop(state, "Rk4Solve",
                             [&] { benchmark::DoNotOptimize(bijector->inverse(z).value.data()); });
  state.SetItemsProcessed(state.iterations() * n);
}
BENCHMARK(Rk4Solve)->Arg(1)->Arg(101)->Unit(benchmark::kMillisecond)->UseRealTime();

void CfmTrainStep(benchmark::State& state) {
  const Index batch = 256;
  flows::Rng rng(0);
  VelocityField field(kDim, 0, w3_field(), rng);
  flows::flow_matching::CfmOptions options;  // straight path, σ_min 0, independent coupling
  flows::StandardNormal base(kDim);
  // The noise as the cfm trainer draws it: from the flow's base distribution.
  flows::flow_matching::CfmObjective objective(options, field,
                                               [&base](Index n, flows::Rng& draws, Matrix& x0) {
                                                 base.sample_into(n, Matrix(), draws, x0);
                                               });
  flows::ConfigNode adam_node = flows::ConfigNode::parse("{type: adam, lr: 1.0e-3}", "bench");
  auto adam =
      registry().make<flows::Optimizer>(adam_node, flows::BuildContext{kDim, 0, 0, &registry()});
  const flows::ParameterList params = field.parameters();
  const Matrix x1 = rng.normal(batch, kDim);
  const Matrix none;
  flows::Rng draws(3);
  flows::bench::counted_loop(state, "CfmTrainStep", [&] {
    flows::zero_grad(params);
    benchmark::DoNotOptimize(objective.loss_and_gradient(x1, none, draws));
    adam->step(params, 1e-3);
  });
  state.SetItemsProcessed(state.iterations() * batch);
}
BENCHMARK(CfmTrainStep)->Unit(benchmark::kMicrosecond)->UseRealTime();

}  // namespace

int main(int argc, char** argv) {
  return flows::bench::run_benchmarks(argc, argv);
}
