// Micro-benchmarks of the maf plugin's hot kernels (Google Benchmark), at the
// shapes of workload W1 (batch 512, width 64, D = 2):
//   build/tests/maf/maf_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only
// BLAS kernels: set OPENBLAS_CORETYPE (Haswell or Zen on AMD EPYC) and
// OPENBLAS_NUM_THREADS as for a run.
#include <benchmark/benchmark.h>

#include <memory>
#include <string>

#include <flows/bijector.hpp>
#include <flows/config.hpp>
#include <flows/flow.hpp>
#include <flows/nn/made.hpp>
#include <flows/nn/made_masks.hpp>
#include <flows/nn/masked_linear.hpp>
#include <flows/optimizer.hpp>
#include <flows/pipeline.hpp>
#include <flows/plugin_loader.hpp>
#include <flows/registry.hpp>
#include <flows/rng.hpp>

namespace {

using flows::Index;
using flows::Matrix;
using flows::Vector;

constexpr Index kBatch = 512;
constexpr Index kWidth = 64;
constexpr Index kDim = 2;

// A MADE hidden-to-hidden mask (64 x 64, degrees cycling through 1..D-1).
Matrix hidden_mask() {
  const auto degrees = flows::nn::hidden_degrees(kWidth, kDim);
  return flows::nn::hidden_mask(degrees, degrees);
}

void BM_MaskedLinearForward(benchmark::State& state) {
  flows::Rng rng(0);
  flows::nn::MaskedLinear layer(hidden_mask(), rng);
  const Matrix x = rng.normal(kBatch, kWidth);
  Matrix y;
  for (auto _ : state) {
    layer.forward(x, y);
    benchmark::DoNotOptimize(y.data());
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
}
BENCHMARK(BM_MaskedLinearForward);

void BM_MaskedLinearBackward(benchmark::State& state) {
  flows::Rng rng(0);
  flows::nn::MaskedLinear layer(hidden_mask(), rng);
  const Matrix x = rng.normal(kBatch, kWidth);
  const Matrix grad_y = rng.normal(kBatch, kWidth);
  Matrix y, grad_x;
  layer.forward(x, y);
  for (auto _ : state) {
    layer.backward(x, grad_y, grad_x);
    benchmark::DoNotOptimize(grad_x.data());
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
}
BENCHMARK(BM_MaskedLinearBackward);

flows::nn::MadeOptions w1_made() {
  flows::nn::MadeOptions o;
  o.hidden = {kWidth, kWidth};
  o.out_multiplier = 2;
  return o;
}

void BM_MadeForwardBackward(benchmark::State& state) {
  flows::Rng rng(0);
  flows::nn::Made made(flows::nn::natural_order(kDim), w1_made(), rng);
  const Matrix x = rng.normal(kBatch, kDim);
  const Matrix grad_y = rng.normal(kBatch, 2 * kDim);
  Matrix y, grad_x;
  for (auto _ : state) {
    made.forward(x, {}, y);
    made.backward(grad_y, grad_x);
    benchmark::DoNotOptimize(grad_x.data());
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
}
BENCHMARK(BM_MadeForwardBackward);

struct Plugin {
  flows::Registry registry;
  Plugin() {
    flows::register_builtins(registry);
    flows::load_plugin(FLOWS_PLUGIN_MAF, registry);
  }
  std::shared_ptr<flows::Bijector> make(const std::string& yaml) {
    auto node = flows::ConfigNode::parse(yaml, "bench");
    return registry.make<flows::Bijector>(node, flows::BuildContext{kDim, 0, 0, &registry});
  }
};

// One MAF layer (layers: 1), training forward and backward.
void BM_MafLayerForwardTrain(benchmark::State& state) {
  Plugin plugin;
  auto maf = plugin.make("{type: maf, layers: 1, hidden: [64, 64]}");
  flows::Rng rng(0);
  const Matrix x = rng.normal(kBatch, kDim);
  Matrix z;
  Vector logdet;
  for (auto _ : state) {
    maf->forward_train(x, Matrix(), z, logdet);
    benchmark::DoNotOptimize(z.data());
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
}
BENCHMARK(BM_MafLayerForwardTrain);

void BM_MafLayerForwardBackward(benchmark::State& state) {
  Plugin plugin;
  auto maf = plugin.make("{type: maf, layers: 1, hidden: [64, 64]}");
  flows::Rng rng(0);
  const Matrix x = rng.normal(kBatch, kDim);
  const Matrix grad_z = rng.normal(kBatch, kDim);
  const Vector grad_logdet = xt::ones<flows::Real>({kBatch});
  const Matrix none;
  Matrix z, grad_x;
  Vector logdet;
  for (auto _ : state) {
    maf->forward_train(x, none, z, logdet);
    maf->backward(grad_z, grad_logdet, grad_x);
    benchmark::DoNotOptimize(grad_x.data());
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
}
BENCHMARK(BM_MafLayerForwardBackward);

// The training step of W1 (configs/maf_moons.yaml): the flow's gradient on one
// batch of 512 rows (standardize + maf with 5 layers + base) and an Adam step.
// Batch sampling, validation and logging of the trainer are not included.
void BM_W1TrainStep(benchmark::State& state) {
  flows::Pipeline p =
      flows::Pipeline::load(std::string(FLOWS_SOURCE_DIR) + "/configs/maf_moons.yaml", {});
  auto node = flows::ConfigNode::parse("{type: adam, lr: 1.0e-3}", "bench");
  auto adam = p.registry->make<flows::Optimizer>(node, flows::BuildContext{kDim, 0, 0, nullptr});
  flows::Flow& flow = *p.model.flow;
  const flows::ParameterList params = flow.parameters();
  const Matrix batch = xt::view(p.data.train, xt::range(0, kBatch), xt::all());
  for (auto _ : state) {
    flows::zero_grad(params);
    benchmark::DoNotOptimize(flow.nll_gradient(batch));
    adam->step(params, 1e-3);
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
}
BENCHMARK(BM_W1TrainStep)->Unit(benchmark::kMillisecond);

// Density and sampling on 100,000 points with W1's (untrained) model.
void BM_W1LogProb100k(benchmark::State& state) {
  flows::Pipeline p =
      flows::Pipeline::load(std::string(FLOWS_SOURCE_DIR) + "/configs/maf_moons.yaml", {});
  flows::Rng rng(1);
  const Matrix x = rng.normal(100000, kDim);
  for (auto _ : state) benchmark::DoNotOptimize(p.model.flow->log_prob(x).data());
}
BENCHMARK(BM_W1LogProb100k)->Unit(benchmark::kMillisecond);

void BM_W1Sample100k(benchmark::State& state) {
  flows::Pipeline p =
      flows::Pipeline::load(std::string(FLOWS_SOURCE_DIR) + "/configs/maf_moons.yaml", {});
  flows::Rng rng(1);
  for (auto _ : state) benchmark::DoNotOptimize(p.model.flow->sample(100000, rng).data());
}
BENCHMARK(BM_W1Sample100k)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
