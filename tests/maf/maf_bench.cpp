// Micro-benchmarks of the maf plugin's hot kernels (Google Benchmark), at the
// shapes of workload W1 (batch 512, width 64, D = 2) and, for the MADE and the
// training step, of W4 (batch 128, MADE [256, 256], D = 64):
//   build/tests/maf/maf_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only
// Every benchmark reports allocs_per_iter and alloc_bytes_per_iter: the heap
// allocations (operator new and malloc & co., every thread) of one iteration
// in the steady state, by apps/bench/alloc_counter.hpp. FLOWS_ALLOC_TRACE=<name>
// (or `all`) prints the call stacks they come from. The W4 step also reports
// its dense FLOP rate (6·n·Σ in·out per step, masks not skipped).
#include <benchmark/benchmark.h>

#include <memory>
#include <string>

#include <flows/bijector.hpp>
#include <flows/config.hpp>
#include <flows/flow.hpp>
#include <flows/nn/activation.hpp>
#include <flows/nn/dense.hpp>
#include <flows/nn/made.hpp>
#include <flows/nn/made_masks.hpp>
#include <flows/nn/masked_linear.hpp>
#include <flows/optimizer.hpp>
#include <flows/pipeline.hpp>
#include <flows/plugin_loader.hpp>
#include <flows/precision.hpp>
#include <flows/registry.hpp>
#include <flows/rng.hpp>

#include "alloc_benchmark.hpp"

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

// One masked linear layer at W1's hidden shape (512 x 64 -> 64), computing in
// T (the precision a network of model.precision: float32 uses).
template <class T>
void BM_MaskedLinearForward(benchmark::State& state) {
  flows::Rng rng(0);
  flows::nn::MaskedLinear layer(hidden_mask(), rng);
  const flows::MatrixOf<T> x = xt::cast<T>(rng.normal(kBatch, kWidth));
  flows::MatrixOf<T> y;
  flows::bench::counted_loop(state, "MaskedLinearForward", [&] {
    layer.forward(x, y);
    benchmark::DoNotOptimize(y.data());
  });
  state.SetItemsProcessed(state.iterations() * kBatch);
}
BENCHMARK_TEMPLATE(BM_MaskedLinearForward, double)->UseRealTime();
BENCHMARK_TEMPLATE(BM_MaskedLinearForward, float)->UseRealTime();

template <class T>
void BM_MaskedLinearBackward(benchmark::State& state) {
  flows::Rng rng(0);
  flows::nn::MaskedLinear layer(hidden_mask(), rng);
  const flows::MatrixOf<T> x = xt::cast<T>(rng.normal(kBatch, kWidth));
  const flows::MatrixOf<T> grad_y = xt::cast<T>(rng.normal(kBatch, kWidth));
  flows::MatrixOf<T> y, grad_x;
  layer.forward(x, y);
  flows::bench::counted_loop(state, "MaskedLinearBackward", [&] {
    layer.backward(x, grad_y, grad_x);
    benchmark::DoNotOptimize(grad_x.data());
  });
  state.SetItemsProcessed(state.iterations() * kBatch);
}
BENCHMARK_TEMPLATE(BM_MaskedLinearBackward, double)->UseRealTime();
BENCHMARK_TEMPLATE(BM_MaskedLinearBackward, float)->UseRealTime();

// One dense layer of an inference block (1024 rows, float32, relu) at the
// shapes of W1's and W2's MADEs: in -> out, through the fused kernel
// (fused:1, dense_layer_infer) or through BLAS and a separate activation pass
// (fused:0, what the layers ran before the kernel). Reports the FLOP rate.
void BM_DenseLayer(benchmark::State& state) {
  const Index rows = 1024, in = state.range(0), out = state.range(1);
  const bool fused = state.range(2) != 0;
  flows::Rng rng(0);
  flows::nn::DenseCopy<float> copy;
  copy.weight = xt::cast<float>(rng.normal(out, in));
  copy.bias = xt::cast<float>(rng.normal(1, out));
  const flows::MatrixOf<float> x = xt::cast<float>(rng.normal(rows, in));
  flows::MatrixOf<float> y({rows, out});
  const flows::nn::Activation relu(flows::nn::Activation::Kind::relu);
  flows::bench::counted_loop(state, "DenseLayer", [&] {
    if (fused) {
      flows::nn::dense_layer_infer(copy, nullptr, x, relu, y, false);
    } else {
      flows::nn::dense_forward(x, copy.weight, copy.bias.data(), y);
      relu.forward(y, y);
    }
    benchmark::DoNotOptimize(y.data());
  });
  state.counters["FLOP/s"] =
      benchmark::Counter(2.0 * rows * in * out * state.iterations(), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_DenseLayer)
    ->ArgNames({"in", "out", "fused"})
    ->ArgsProduct({{64}, {64, 46, 4}, {0, 1}})
    ->Args({2, 64, 0})
    ->Args({2, 64, 1})
    ->UseRealTime();

// Benchmarks with an argument `f32`: 0 computes the networks in float64, 1 in
// float32 (MadeOptions::precision, or model.precision for a pipeline).
flows::Precision precision_arg(const benchmark::State& state) {
  return state.range(0) ? flows::Precision::float32 : flows::Precision::float64;
}

flows::nn::MadeOptions made_options(Index width, flows::Precision precision) {
  flows::nn::MadeOptions o;
  o.hidden = {width, width};
  o.out_multiplier = 2;
  o.precision = precision;
  return o;
}

// One MADE forward and backward (parameter gradients included), as inside
// one MAF layer's training step: W1's shape (D 2, [64, 64], batch 512) and
// W4's (D 64, [256, 256], batch 128).
void MadeForwardBackward(benchmark::State& state, Index dim, Index width, Index batch,
                         const char* label) {
  flows::Rng rng(0);
  flows::nn::Made made(flows::nn::natural_order(dim), made_options(width, precision_arg(state)),
                       rng);
  const Matrix x = rng.normal(batch, dim);
  const Matrix grad_y = rng.normal(batch, 2 * dim);
  Matrix y, grad_x;
  flows::bench::counted_loop(state, label, [&] {
    made.forward(x, {}, y);
    made.backward(grad_y, grad_x);
    benchmark::DoNotOptimize(grad_x.data());
  });
  state.SetItemsProcessed(state.iterations() * batch);
}
void BM_MadeForwardBackward(benchmark::State& state) {
  MadeForwardBackward(state, kDim, kWidth, kBatch, "MadeForwardBackward");
}
BENCHMARK(BM_MadeForwardBackward)->ArgName("f32")->Arg(0)->Arg(1)->UseRealTime();
void BM_MadeForwardBackwardW4(benchmark::State& state) {
  MadeForwardBackward(state, 64, 256, 128, "MadeForwardBackwardW4");
}
BENCHMARK(BM_MadeForwardBackwardW4)
    ->ArgName("f32")
    ->Arg(0)
    ->Arg(1)
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

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
  const Matrix none;
  flows::bench::counted_loop(state, "MafLayerForwardTrain", [&] {
    maf->forward_train(x, none, z, logdet);
    benchmark::DoNotOptimize(z.data());
  });
  state.SetItemsProcessed(state.iterations() * kBatch);
}
BENCHMARK(BM_MafLayerForwardTrain)->UseRealTime();

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
  flows::bench::counted_loop(state, "MafLayerForwardBackward", [&] {
    maf->forward_train(x, none, z, logdet);
    maf->backward(grad_z, grad_logdet, grad_x);
    benchmark::DoNotOptimize(grad_x.data());
  });
  state.SetItemsProcessed(state.iterations() * kBatch);
}
BENCHMARK(BM_MafLayerForwardBackward)->UseRealTime();

// One training step of a pipeline's flow on one batch of its training rows
// (standardize + maf + base): zero the gradients, forward_train and backward
// through the chain (Flow::nll_gradient), and an Adam step. The trainer's
// batch sampling, validation and logging are not included; neither are the
// training threads of the trainer (this is one thread's step).
void TrainStep(benchmark::State& state, const std::string& config, Index batch, const char* label) {
  const std::string precision = flows::precision_name(precision_arg(state));
  flows::Pipeline p = flows::Pipeline::load(std::string(FLOWS_SOURCE_DIR) + "/" + config,
                                            {"model.precision=" + precision});
  const Index dim = p.data.train.shape(1);
  auto node = flows::ConfigNode::parse("{type: adam, lr: 1.0e-3}", "bench");
  auto adam = p.registry->make<flows::Optimizer>(node, flows::BuildContext{dim, 0, 0, nullptr});
  flows::Flow& flow = *p.model.flow;
  const flows::ParameterList params = flow.parameters();
  const Matrix rows = xt::view(p.data.train, xt::range(0, batch), xt::all());
  // Dense FLOP of the step: 6·n·Σ in·out over the MADE weight matrices.
  double multiply_adds = 0;
  for (const flows::Parameter* param : params)
    if (param->name.size() >= 6 && param->name.compare(param->name.size() - 6, 6, "weight") == 0 &&
        param->value.dimension() == 2 && param->value.shape(0) > 1 && param->value.shape(1) > 1)
      multiply_adds += static_cast<double>(param->value.size());
  flows::bench::counted_loop(state, label, [&] {
    flows::zero_grad(params);
    benchmark::DoNotOptimize(flow.nll_gradient(rows));
    adam->step(params, 1e-3);
  });
  state.SetItemsProcessed(state.iterations() * batch);
  state.counters["FLOP/s"] = benchmark::Counter(6.0 * static_cast<double>(batch) * multiply_adds,
                                                benchmark::Counter::kIsIterationInvariantRate);
}

// W1 (configs/maf_moons.yaml): batch 512, 5 layers of MADE [64, 64], D = 2.
void BM_W1TrainStep(benchmark::State& state) {
  TrainStep(state, "configs/maf_moons.yaml", kBatch, "W1TrainStep");
}
BENCHMARK(BM_W1TrainStep)
    ->ArgName("f32")
    ->Arg(0)
    ->Arg(1)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// W4 (configs/maf_gaussians64.yaml): batch 128, 5 layers of MADE [256, 256], D = 64.
void BM_W4TrainStep(benchmark::State& state) {
  TrainStep(state, "configs/maf_gaussians64.yaml", 128, "W4TrainStep");
}
BENCHMARK(BM_W4TrainStep)
    ->ArgName("f32")
    ->Arg(0)
    ->Arg(1)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// Density and sampling on 100,000 points with W1's (untrained) model.
void BM_W1LogProb100k(benchmark::State& state) {
  flows::Pipeline p =
      flows::Pipeline::load(std::string(FLOWS_SOURCE_DIR) + "/configs/maf_moons.yaml", {});
  flows::Rng rng(1);
  const Matrix x = rng.normal(100000, kDim);
  flows::bench::counted_loop(state, "W1LogProb100k",
                             [&] { benchmark::DoNotOptimize(p.model.flow->log_prob(x).data()); });
}
BENCHMARK(BM_W1LogProb100k)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_W1Sample100k(benchmark::State& state) {
  flows::Pipeline p =
      flows::Pipeline::load(std::string(FLOWS_SOURCE_DIR) + "/configs/maf_moons.yaml", {});
  flows::Rng rng(1);
  flows::bench::counted_loop(state, "W1Sample100k", [&] {
    benchmark::DoNotOptimize(p.model.flow->sample(100000, rng).data());
  });
}
BENCHMARK(BM_W1Sample100k)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

int main(int argc, char** argv) {
  return flows::bench::run_benchmarks(argc, argv);
}
