#include "flows/nn/mlp.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "flows/error.hpp"
#include "flows/nn/made_masks.hpp"
#include "flows/rng.hpp"
#include "flows/testing/gradient_checker.hpp"

namespace {

using flows::Index;
using flows::Matrix;
using flows::Real;
using flows::nn::Activation;
using flows::nn::MLP;
using flows::testing::check_gradients;
using flows::testing::DifferentiableFunction;

DifferentiableFunction as_function(MLP& mlp) {
  DifferentiableFunction f;
  f.forward = [&mlp](const Matrix& x) {
    Matrix y;
    mlp.forward(x, y);
    return y;
  };
  f.backward = [&mlp](const Matrix& grad_y) {
    Matrix grad_x;
    mlp.backward(grad_y, grad_x);
    return grad_x;
  };
  f.params = mlp.parameters();
  return f;
}

TEST(MLP, ForwardMatchesHandComputedValue) {
  flows::Rng rng(0);
  MLP mlp(2, {2}, 1, Activation::from_name("relu"), rng);
  mlp.weight(0).value = Matrix{{1, -1}, {2, 1}};
  mlp.bias(0).value = Matrix{{0, -1}};
  mlp.weight(1).value = Matrix{{3, -2}};
  mlp.bias(1).value = Matrix{{0.5}};
  const Matrix x{{1, 2}, {3, 1}};
  // Row 0: a = (-1, 3), h = (0, 3), y = -6 + 0.5. Row 1: a = (2, 6), h = (2, 6), y = 6 - 12 + 0.5.
  Matrix y;
  mlp.forward(x, y);
  ASSERT_EQ(y.shape(), (std::array<Index, 2>{2, 1}));
  EXPECT_DOUBLE_EQ(y(0, 0), -5.5);
  EXPECT_DOUBLE_EQ(y(1, 0), -5.5);
  EXPECT_EQ(mlp.infer(x), y);

  // Backward by hand for dL/dy = 1: dL/dh = (3, -2), times relu'(a).
  Matrix grad_x;
  mlp.backward(Matrix{{1}, {1}}, grad_x);
  // Row 0: dL/da = (0, -2), dL/dx = (0,-2) W₀ = (-4, -2). Row 1: (3, -2) W₀ = (-1, -5).
  EXPECT_EQ(grad_x, (Matrix{{-4, -2}, {-1, -5}}));
  EXPECT_EQ(mlp.weight(1).grad, (Matrix{{2, 9}}));  // Σ_rows h
  EXPECT_EQ(mlp.bias(1).grad, (Matrix{{2}}));
}

TEST(MLP, GradientsMatchFiniteDifferencesForEveryActivation) {
  for (const std::string& name : Activation::names()) {
    SCOPED_TRACE(name);
    flows::Rng rng(1);
    MLP mlp(3, {8, 6}, 4, Activation::from_name(name), rng);
    const auto result = check_gradients(as_function(mlp), rng.normal(5, 3));
    EXPECT_TRUE(result.ok) << result.report;
  }
}

TEST(MLP, MaskedGradientsMatchFiniteDifferencesForEveryActivation) {
  for (const std::string& name : Activation::names()) {
    SCOPED_TRACE(name);
    flows::Rng rng(2);
    MLP made(flows::nn::made_masks(flows::nn::random_order(4, rng), {9, 7}, 2),
             Activation::from_name(name), rng);
    EXPECT_TRUE(made.masked());
    const auto result = check_gradients(as_function(made), rng.normal(5, 4));
    EXPECT_TRUE(result.ok) << result.report;
  }
}

TEST(MLP, BackwardAccumulatesParameterGradients) {
  flows::Rng rng(3);
  MLP mlp(3, {5, 5}, 2, Activation::from_name("tanh"), rng);
  const Matrix x = rng.normal(4, 3);
  const Matrix grad_y = rng.normal(4, 2);
  Matrix y, grad_x;
  mlp.forward(x, y);
  mlp.backward(grad_y, grad_x);
  std::vector<Matrix> once;
  for (const flows::Parameter* p : mlp.parameters()) once.push_back(p->grad);
  const Matrix dx = grad_x;
  mlp.backward(grad_y, grad_x);
  const auto params = mlp.parameters();
  for (Index i = 0; i < params.size(); ++i)
    for (Index k = 0; k < once[i].size(); ++k)
      EXPECT_NEAR(params[i]->grad.flat(k), 2 * once[i].flat(k), 1e-12) << params[i]->name;
  EXPECT_EQ(grad_x, dx);
}

TEST(MLP, InputOnlyBackwardIsTheVectorJacobianProduct) {
  flows::Rng rng(4);
  MLP mlp(3, {6}, 2, Activation::from_name("silu"), rng);
  const Matrix x = rng.normal(1, 3);
  Matrix y, vjp;
  mlp.forward(x, y);
  const Matrix v{{0.3, -1.2}};
  mlp.backward(v, vjp, /*accumulate_param_grads=*/false);
  for (const flows::Parameter* p : mlp.parameters())
    for (Real g : p->grad) EXPECT_EQ(g, 0.0) << p->name;
  const Matrix jacobian =
      flows::testing::numerical_jacobian([&mlp](const Matrix& in) { return mlp.infer(in); }, x);
  for (Index j = 0; j < 3; ++j)
    EXPECT_NEAR(vjp(0, j), v(0, 0) * jacobian(0, j) + v(0, 1) * jacobian(1, j), 1e-8);
}

TEST(MLP, TrainingStepReusesItsBuffers) {
  flows::Rng rng(5);
  MLP mlp(4, {16, 16}, 8, Activation::from_name("relu"), rng);
  const Matrix x = rng.normal(32, 4);
  Matrix y, grad_x;
  mlp.forward(x, y);
  mlp.backward(y, grad_x);
  const Real* y_data = y.data();
  const Real* grad_x_data = grad_x.data();
  mlp.forward(x, y);
  mlp.backward(y, grad_x);
  EXPECT_EQ(y.data(), y_data);
  EXPECT_EQ(grad_x.data(), grad_x_data);
}

TEST(MLP, ParametersAreNamedPerLayer) {
  flows::Rng rng(6);
  MLP mlp(3, {4, 5}, 2, Activation::from_name("elu"), rng);
  EXPECT_EQ(mlp.num_layers(), 3u);
  EXPECT_EQ(mlp.in_features(), 3u);
  EXPECT_EQ(mlp.out_features(), 2u);
  EXPECT_FALSE(mlp.masked());
  const auto params = mlp.parameters();
  ASSERT_EQ(params.size(), 6u);
  EXPECT_EQ(params[0]->name, "layer0.weight");
  EXPECT_EQ(params[5]->name, "layer2.bias");
  EXPECT_EQ(params[2]->value.shape(), (std::array<Index, 2>{5, 4}));
  EXPECT_EQ(flows::parameter_count(params), 3u * 4 + 4 + 4 * 5 + 5 + 5 * 2 + 2);
  MLP moved = std::move(mlp);
  EXPECT_EQ(moved.parameters()[0], params[0]);  // layers stay where they were
}

TEST(MLP, NoHiddenLayersIsOneAffineLayer) {
  flows::Rng rng(7);
  MLP mlp(3, {}, 2, Activation::from_name("tanh"), rng);
  ASSERT_EQ(mlp.num_layers(), 1u);
  const Matrix x = rng.normal(4, 3);
  const Matrix y = mlp.infer(x);
  for (Index i = 0; i < 4; ++i)
    for (Index o = 0; o < 2; ++o) {
      Real s = mlp.bias(0).value(0, o);
      for (Index j = 0; j < 3; ++j) s += x(i, j) * mlp.weight(0).value(o, j);
      EXPECT_NEAR(y(i, o), s, 1e-12);  // no activation on the output
    }
  const auto result = check_gradients(as_function(mlp), x);
  EXPECT_TRUE(result.ok) << result.report;
}

TEST(MLP, InvalidConstructionAndMisuseAreErrors) {
  flows::Rng rng(8);
  const Activation relu = Activation::from_name("relu");
  EXPECT_THROW(MLP(3, {4, 0}, 2, relu, rng), flows::ConfigError);
  EXPECT_THROW(MLP(0, {4}, 2, relu, rng), flows::ConfigError);
  EXPECT_THROW(MLP(std::vector<Matrix>{}, relu, rng), flows::ConfigError);
  EXPECT_THROW(MLP(std::vector<Matrix>{Matrix({4, 3}), Matrix({2, 5})}, relu, rng),
               flows::ConfigError);
  MLP mlp(3, {4}, 2, relu, rng);
  Matrix grad_x, y;
  EXPECT_THROW(mlp.backward(Matrix({1, 2}), grad_x), flows::Error);
  EXPECT_THROW(mlp.forward(Matrix({1, 4}), y), flows::DataError);
  EXPECT_THROW(mlp.weight(2), flows::Error);
}

}  // namespace
