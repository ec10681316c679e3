#include "flows/optimizer.hpp"

#include <gtest/gtest.h>

#include <cmath>

#include "flows/registry.hpp"
#include "flows/rng.hpp"
#include "flows/threads.hpp"

namespace flows {
namespace {

std::shared_ptr<Optimizer> make(Registry& registry, const std::string& yaml) {
  ConfigNode node = ConfigNode::parse(yaml, "o.yaml");
  return registry.make<Optimizer>(node, BuildContext{1, 0, 0, &registry});
}

// Minimizes Σ (w - target)² with the given optimizer; returns the final w.
Matrix minimize_quadratic(Optimizer& optimizer, Index steps, Real lr) {
  Parameter w("w", Matrix{{3.0, -2.0}});
  const Matrix target = {{0.5, 1.5}};
  ParameterList params = {&w};
  for (Index s = 0; s < steps; ++s) {
    w.zero_grad();
    w.grad = 2.0 * (w.value - target);
    optimizer.step(params, lr);
  }
  return w.value;
}

TEST(Adam, FirstStepMovesEachWeightByLearningRate) {
  Registry registry;
  register_builtins(registry);
  auto adam = make(registry, "{type: adam, lr: 0.1}");
  Parameter w("w", Matrix{{1.0, 1.0}});
  w.grad = Matrix{{5.0, -0.01}};
  ParameterList params = {&w};
  adam->step(params, 0.1);
  // With bias correction the first update is lr · g/|g| (up to eps).
  EXPECT_NEAR(w.value(0, 0), 0.9, 1e-6);
  EXPECT_NEAR(w.value(0, 1), 1.1, 1e-4);
}

// The trainer lends Adam its threads for large updates (more than 2^15
// values): each value's update is the same whoever computes it, so three
// steps on two threads give bitwise what one thread gives, with parameters
// of uneven sizes (the shares cut inside them) and one not trainable.
TEST(Adam, AnUpdateOnLentThreadsIsBitwiseTheUpdateOnOne) {
  Registry registry;
  register_builtins(registry);
  Rng rng(7);
  auto fresh = [&rng] {
    std::vector<Parameter> params;
    params.emplace_back("a", rng.normal(300, 101));
    params.emplace_back("b", rng.normal(1, 7));
    params.emplace_back("c", rng.normal(60, 333));
    params[1].trainable = false;
    return params;
  };
  const std::vector<Parameter> start = fresh();
  std::vector<Parameter> one = start, two = start;
  std::vector<Matrix> grads;
  for (int s = 0; s < 3; ++s)
    for (const Parameter& p : one) grads.push_back(rng.normal(p.value.shape(0), p.value.shape(1)));
  auto train = [&](std::vector<Parameter>& params, ThreadPool* pool) {
    auto adam = make(registry, "{type: adam, lr: 0.01, weight_decay: 0.1}");
    ThreadsLent lent(*adam, pool);
    ParameterList list;
    for (Parameter& p : params) list.push_back(&p);
    for (std::size_t s = 0, g = 0; s < 3; ++s) {
      for (Parameter& p : params) p.grad = grads[g++];
      adam->step(list, 0.01);
    }
  };
  ThreadPool pool(2);
  train(one, nullptr);
  train(two, &pool);
  ASSERT_GT(one[0].size() + one[2].size(), Index{1} << 15);
  for (std::size_t k = 0; k < one.size(); ++k) EXPECT_EQ(one[k].value, two[k].value) << one[k].name;
  EXPECT_NE(two[0].value, start[0].value);  // trained
  EXPECT_EQ(two[1].value, start[1].value);  // not trainable: left alone
}

TEST(Adam, ConvergesOnAQuadratic) {
  Registry registry;
  register_builtins(registry);
  auto adam = make(registry, "{type: adam, lr: 0.05}");
  Matrix w = minimize_quadratic(*adam, 2000, 0.05);
  EXPECT_NEAR(w(0, 0), 0.5, 1e-3);
  EXPECT_NEAR(w(0, 1), 1.5, 1e-3);
}

TEST(Optimizer, NonTrainableParametersAreNeverUpdated) {
  Registry registry;
  register_builtins(registry);
  for (const char* yaml : {"{type: adam, lr: 0.1}", "{type: sgd, lr: 0.1, weight_decay: 0.5}"}) {
    auto optimizer = make(registry, yaml);
    Parameter state("running_mean", Matrix{{1.0, 2.0}}, /*trainable=*/false);
    state.grad = Matrix{{3.0, -3.0}};
    ParameterList params = {&state};
    optimizer->step(params, 0.1);
    EXPECT_EQ(state.value, (Matrix{{1.0, 2.0}})) << yaml;
    EXPECT_EQ(parameter_count(params), 0u);
  }
}

TEST(Sgd, StepIsMinusLearningRateTimesGradient) {
  Registry registry;
  register_builtins(registry);
  auto sgd = make(registry, "{type: sgd, lr: 0.1}");
  Parameter w("w", Matrix{{1.0}});
  w.grad = Matrix{{2.0}};
  ParameterList params = {&w};
  sgd->step(params, 0.1);
  EXPECT_DOUBLE_EQ(w.value(0, 0), 0.8);
}

TEST(Sgd, MomentumConvergesOnAQuadratic) {
  Registry registry;
  register_builtins(registry);
  auto sgd = make(registry, "{type: sgd, lr: 0.05, momentum: 0.9}");
  Matrix w = minimize_quadratic(*sgd, 500, 0.05);
  EXPECT_NEAR(w(0, 0), 0.5, 1e-6);
  EXPECT_NEAR(w(0, 1), 1.5, 1e-6);
}

TEST(Optimizer, OutOfRangeOptionNamesTheKey) {
  Registry registry;
  register_builtins(registry);
  try {
    make(registry, "{type: adam, beta1: 1.5}");
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("beta1: must be in [0, 1)"), std::string::npos)
        << e.what();
  }
}

TEST(LearningRateSchedule, CosineRunsFromPeakToFloor) {
  LearningRateSchedule s;
  s.kind = "cosine";
  s.min_lr = 0.01;
  EXPECT_DOUBLE_EQ(s.at(1.0, 0, 100), 1.0);
  EXPECT_NEAR(s.at(1.0, 50, 100), 0.505, 1e-12);
  EXPECT_NEAR(s.at(1.0, 100, 100), 0.01, 1e-12);
}

TEST(LearningRateSchedule, WarmupIsLinearThenConstant) {
  LearningRateSchedule s;
  s.warmup = 4;
  EXPECT_DOUBLE_EQ(s.at(2.0, 0, 10), 0.5);
  EXPECT_DOUBLE_EQ(s.at(2.0, 3, 10), 2.0);
  EXPECT_DOUBLE_EQ(s.at(2.0, 9, 10), 2.0);
}

TEST(ClipGradientNorm, ScalesToTheLimitAndReportsTheNorm) {
  Parameter a("a", Matrix{{0.0, 0.0}}), b("b", Matrix{{0.0}});
  a.grad = Matrix{{3.0, 0.0}};
  b.grad = Matrix{{4.0}};
  ParameterList params = {&a, &b};
  EXPECT_DOUBLE_EQ(clip_gradient_norm(params, 1.0), 5.0);
  EXPECT_NEAR(gradient_norm(params), 1.0, 1e-9);
  EXPECT_NEAR(a.grad(0, 0), 0.6, 1e-9);
  // Under the limit nothing changes.
  EXPECT_NEAR(clip_gradient_norm(params, 10.0), 1.0, 1e-9);
  EXPECT_NEAR(b.grad(0, 0), 0.8, 1e-9);
}

// The norm is summed in interleaved lanes: every value counts once, whatever
// the sizes (tails shorter than a lane, a parameter of one value).
TEST(GradientNorm, CountsEveryValueOnceWhateverTheSizes) {
  Rng rng(3);
  std::vector<Parameter> params;
  for (Index size : {1, 7, 8, 9, 1000, 13})
    params.emplace_back("p" + std::to_string(size), Matrix(xt::zeros<Real>({Index{1}, size})));
  ParameterList list;
  long double exact = 0;
  for (Parameter& p : params) {
    p.grad = rng.normal(1, p.size());
    for (Real g : p.grad) exact += static_cast<long double>(g) * g;
    list.push_back(&p);
  }
  EXPECT_NEAR(gradient_norm(list), std::sqrt(static_cast<Real>(exact)), 1e-13);
  // The last value of the whole lane blocks of a parameter counts too.
  const Real g = params[4].grad(0, 999);
  params[4].grad(0, 999) = g + 10;
  exact += static_cast<long double>(g + 10) * (g + 10) - static_cast<long double>(g) * g;
  EXPECT_NEAR(gradient_norm(list), std::sqrt(static_cast<Real>(exact)), 1e-13);
}

// Issue 15: Σ g² overflows for g = 1e200, and the old clipping scaled every
// gradient by max_norm / inf = 0.
TEST(ClipGradientNorm, AnOverflowingSquaredNormStillScalesInsteadOfZeroing) {
  Parameter a("a", Matrix{{0.0, 0.0}});
  a.grad = Matrix{{3e200, -4e200}};
  ParameterList params = {&a};
  EXPECT_DOUBLE_EQ(gradient_norm(params), 5e200);
  EXPECT_DOUBLE_EQ(clip_gradient_norm(params, 1.0), 5e200);
  EXPECT_NEAR(a.grad(0, 0), 0.6, 1e-12);
  EXPECT_NEAR(a.grad(0, 1), -0.8, 1e-12);
}

// A NaN or infinite gradient gives a NaN or infinite norm and is not
// rescaled, so the caller sees it (the training loop stops or skips).
TEST(ClipGradientNorm, ANonFiniteGradientIsReportedAndLeftAsItIs) {
  Parameter a("a", Matrix{{0.0, 0.0}});
  a.grad = Matrix{{NAN, 1.0}};
  ParameterList params = {&a};
  EXPECT_TRUE(std::isnan(clip_gradient_norm(params, 1.0)));
  EXPECT_EQ(a.grad(0, 1), 1.0);
  a.grad = Matrix{{-INFINITY, 1.0}};
  EXPECT_EQ(clip_gradient_norm(params, 1.0), INFINITY);
  EXPECT_EQ(a.grad(0, 1), 1.0);
}

}  // namespace
}  // namespace flows
