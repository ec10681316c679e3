// Speed of the spline plugin's bijectors on the W2 shape (2-D moons, batch
// 512, 5 layers, 8 bins, hidden [64, 64]): one training step (forward,
// backward and an Adam update), sampling and log_prob of 100,000 points, and
// the spline transform alone. Not a test; run
//   build/tests/spline/spline_bench
// Every benchmark reports allocs_per_iter and alloc_bytes_per_iter: the heap
// allocations (operator new and malloc & co., every thread) of one iteration
// in the steady state (apps/bench/alloc_counter.hpp); FLOWS_ALLOC_TRACE=<name>
// (or `all`) prints the call stacks they come from.
#include <benchmark/benchmark.h>

#include <memory>
#include <string>

#include <flows/config.hpp>
#include <flows/data/toys.hpp>
#include <flows/flow.hpp>
#include <flows/normal.hpp>
#include <flows/plugin_loader.hpp>
#include <flows/registry.hpp>
#include <flows/rng.hpp>

#include "alloc_benchmark.hpp"
#include "rational_quadratic_spline.hpp"

namespace {

using flows::Index;
using flows::Matrix;
using flows::Real;

flows::Registry& registry() {
  static flows::Registry* r = [] {
    auto* reg = new flows::Registry;
    flows::register_builtins(*reg);
    flows::load_plugin(FLOWS_PLUGIN_SPLINE, *reg);
    return reg;
  }();
  return *r;
}

const char* kYaml[] = {
    "{type: nsf_autoregressive, layers: 5, bins: 8, hidden: [64, 64]}",
    "{type: nsf_coupling, layers: 5, bins: 8, hidden: [64, 64]}",
    "{type: affine_coupling, layers: 5, hidden: [64, 64]}",
};

// Standardized moons, as the pipeline feeds the flow.
Matrix moons(Index n, std::uint64_t seed) {
  flows::Rng rng(seed);
  Matrix x = flows::make_toy("moons", n, 0.05, rng);
  for (Index j = 0; j < 2; ++j) {
    Real mean = 0, sq = 0;
    for (Index i = 0; i < n; ++i) mean += x(i, j);
    mean /= Real(n);
    for (Index i = 0; i < n; ++i) sq += (x(i, j) - mean) * (x(i, j) - mean);
    const Real sd = std::sqrt(sq / Real(n));
    for (Index i = 0; i < n; ++i) x(i, j) = (x(i, j) - mean) / sd;
  }
  return x;
}

std::shared_ptr<flows::Flow> make_flow(const char* yaml) {
  flows::ConfigNode node = flows::ConfigNode::parse(yaml, "bench");
  auto bijector = registry().make<flows::Bijector>(node, flows::BuildContext{2, 0, 0, &registry()});
  return std::make_shared<flows::Flow>(std::make_shared<flows::StandardNormal>(2),
                                       std::vector<std::shared_ptr<flows::Bijector>>{bijector});
}

void TrainStep(benchmark::State& state) {
  auto flow = make_flow(kYaml[state.range(0)]);
  state.SetLabel(kYaml[state.range(0)]);
  const Matrix data = moons(512 * 16, 1);
  flows::ConfigNode adam_node = flows::ConfigNode::parse("{type: adam, lr: 1.0e-3}", "bench");
  auto adam =
      registry().make<flows::Optimizer>(adam_node, flows::BuildContext{2, 0, 0, &registry()});
  const flows::ParameterList params = flow->parameters();
  std::vector<Matrix> batches;
  for (Index b = 0; b < 16; ++b)
    batches.push_back(xt::view(data, xt::range(512 * b, 512 * (b + 1)), xt::all()));
  Index step = 0;
  flows::bench::counted_loop(state, "TrainStep", [&] {
    flows::zero_grad(params);
    benchmark::DoNotOptimize(flow->nll_gradient(batches[step++ % 16]));
    adam->step(params, 1e-3);
  });
}

void Sample100k(benchmark::State& state) {
  auto flow = make_flow(kYaml[state.range(0)]);
  state.SetLabel(kYaml[state.range(0)]);
  flows::Rng rng(2);
  flows::bench::counted_loop(state, "Sample100k",
                             [&] { benchmark::DoNotOptimize(flow->sample(100000, rng)); });
}

void LogProb100k(benchmark::State& state) {
  auto flow = make_flow(kYaml[state.range(0)]);
  state.SetLabel(kYaml[state.range(0)]);
  const Matrix x = moons(100000, 3);
  flows::bench::counted_loop(state, "LogProb100k",
                             [&] { benchmark::DoNotOptimize(flow->log_prob(x)); });
}

// The spline alone on a W2 layer's shape: 512 rows x 2 columns, 8 bins,
// forward with cache then backward.
void SplineForwardBackward(benchmark::State& state) {
  const flows::spline::RationalQuadraticSpline spline{flows::spline::SplineOptions{}};
  const Index n = 512, d = 2, P = spline.params_per_dim();
  flows::Rng rng(4);
  const Matrix x = rng.normal(n, d);
  const Matrix theta = rng.normal(n, P * d);
  Matrix y = x, gx = x, gtheta = theta;
  const Matrix gy = rng.normal(n, d);
  flows::Vector logdet = xt::zeros<Real>({n}), gl = xt::ones<Real>({n});
  std::vector<Real> cache(n * d * spline.cache_size());
  const std::vector<Index> cols{0, 1};
  const flows::ColumnSet set{cols.data(), d, d, 0};
  flows::bench::counted_loop(state, "SplineForwardBackward", [&] {
    spline.forward(x, y, logdet, set, theta, cache.data());
    spline.backward(cache.data(), gy, gl, set, gx, gtheta);
    benchmark::DoNotOptimize(gtheta.data());
  });
  state.SetItemsProcessed(state.iterations() * n * d);
}

BENCHMARK(SplineForwardBackward)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(TrainStep)->DenseRange(0, 2)->Unit(benchmark::kMillisecond)->MinTime(2.0)->UseRealTime();
BENCHMARK(Sample100k)->DenseRange(0, 2)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(LogProb100k)->DenseRange(0, 2)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

int main(int argc, char** argv) {
  return flows::bench::run_benchmarks(argc, argv);
}
