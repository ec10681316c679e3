#include "flows/nn/masked_linear.hpp"

#include <gtest/gtest.h>

#include <cmath>

#include "flows/error.hpp"
#include "flows/rng.hpp"
#include "flows/testing/gradient_checker.hpp"

namespace {

using flows::Index;
using flows::Matrix;
using flows::Real;
using flows::nn::MaskedLinear;
using flows::testing::check_gradients;
using flows::testing::DifferentiableFunction;

DifferentiableFunction as_function(MaskedLinear& layer, Matrix& last_x) {
  DifferentiableFunction f;
  f.forward = [&layer, &last_x](const Matrix& x) {
    last_x = x;
    Matrix y;
    layer.forward(x, y);
    return y;
  };
  f.backward = [&layer, &last_x](const Matrix& grad_y) {
    Matrix grad_x;
    layer.backward(last_x, grad_y, grad_x);
    return grad_x;
  };
  f.params = layer.parameters();
  return f;
}

// A 0/1 mask with about half the entries set, and at least one of each.
Matrix random_mask(Index out, Index in, flows::Rng& rng) {
  Matrix mask({out, in});
  for (Real& m : mask) m = rng.uniform() < 0.5 ? 1 : 0;
  mask(0, 0) = 1;
  mask(out - 1, in - 1) = 0;
  return mask;
}

TEST(MaskedLinear, ForwardIgnoresMaskedWeights) {
  flows::Rng rng(0);
  const Matrix mask{{1, 0, 1}, {0, 1, 1}};
  MaskedLinear layer(mask, rng);
  EXPECT_EQ(layer.in_features(), 3u);
  EXPECT_EQ(layer.out_features(), 2u);
  // Masked entries set to values that would show if they leaked through.
  layer.weight().value = Matrix{{1, 100, 3}, {100, 5, 6}};
  layer.bias().value = Matrix{{0.5, -1}};
  const Matrix x{{1, 2, -1}, {2, 1, 0}};
  Matrix y;
  layer.forward(x, y);
  // Row 0: (1 - 3 + 0.5, 10 - 6 - 1); row 1: (2 + 0 + 0.5, 5 + 0 - 1).
  const Matrix expected{{-1.5, 3}, {2.5, 4}};
  ASSERT_EQ(y.shape(), expected.shape());
  for (Index k = 0; k < y.size(); ++k) EXPECT_DOUBLE_EQ(y.flat(k), expected.flat(k));
  EXPECT_EQ(layer.infer(x), y);
}

TEST(MaskedLinear, InitialWeightsAreZeroWhereMasked) {
  flows::Rng rng(1);
  const Matrix mask = random_mask(16, 12, rng);
  MaskedLinear layer(mask, rng);
  const Real bound = 1 / std::sqrt(12.0);
  for (Index k = 0; k < mask.size(); ++k) {
    if (mask.flat(k) == 0)
      EXPECT_EQ(layer.weight().value.flat(k), 0.0);
    else
      EXPECT_LE(std::abs(layer.weight().value.flat(k)), bound);
  }
}

TEST(MaskedLinear, GradientsMatchFiniteDifferences) {
  flows::Rng rng(2);
  MaskedLinear layer(random_mask(4, 6, rng), rng);
  Matrix last_x;
  const auto result = check_gradients(as_function(layer, last_x), rng.normal(5, 6));
  EXPECT_TRUE(result.ok) << result.report;
}

TEST(MaskedLinear, MaskedWeightsReceiveNoGradient) {
  flows::Rng rng(3);
  const Matrix mask = random_mask(5, 7, rng);
  MaskedLinear layer(mask, rng);
  layer.weight().value = rng.normal(5, 7);  // masked entries nonzero on purpose
  const Matrix x = rng.normal(9, 7);
  Matrix y, grad_x;
  layer.forward(x, y);
  layer.backward(x, rng.normal(9, 5), grad_x);
  for (Index k = 0; k < mask.size(); ++k) {
    if (mask.flat(k) == 0)
      EXPECT_EQ(layer.weight().grad.flat(k), 0.0);
    else
      EXPECT_NE(layer.weight().grad.flat(k), 0.0);
  }
}

TEST(MaskedLinear, BackwardAccumulatesParameterGradients) {
  flows::Rng rng(4);
  MaskedLinear layer(random_mask(3, 4, rng), rng);
  const Matrix x = rng.normal(6, 4);
  const Matrix grad_y = rng.normal(6, 3);
  Matrix y, grad_x;
  layer.forward(x, y);
  layer.backward(x, grad_y, grad_x);
  const Matrix dw = layer.weight().grad;
  const Matrix db = layer.bias().grad;
  const Matrix dx = grad_x;
  layer.backward(x, grad_y, grad_x);
  for (Index k = 0; k < dw.size(); ++k)
    EXPECT_NEAR(layer.weight().grad.flat(k), 2 * dw.flat(k), 1e-12);
  for (Index k = 0; k < db.size(); ++k)
    EXPECT_NEAR(layer.bias().grad.flat(k), 2 * db.flat(k), 1e-12);
  EXPECT_EQ(grad_x, dx);

  flows::zero_grad(layer.parameters());
  Matrix input_only;
  layer.backward(x, grad_y, input_only, /*accumulate_param_grads=*/false);
  EXPECT_EQ(input_only, dx);
  for (Real g : layer.weight().grad) EXPECT_EQ(g, 0.0);
  for (Real g : layer.bias().grad) EXPECT_EQ(g, 0.0);
}

TEST(MaskedLinear, InvalidMasksAreConfigErrors) {
  flows::Rng rng(5);
  EXPECT_THROW(MaskedLinear(Matrix{{1, 0.5}}, rng), flows::ConfigError);
  EXPECT_THROW(MaskedLinear(Matrix({0, 3}), rng), flows::ConfigError);
  MaskedLinear layer(Matrix{{1, 0}}, rng);
  Matrix y;
  EXPECT_THROW(layer.forward(Matrix({2, 3}), y), flows::DataError);
}

}  // namespace
