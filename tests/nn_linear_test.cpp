#include "flows/nn/linear.hpp"

#include <gtest/gtest.h>

#include <cmath>

#include "flows/error.hpp"
#include "flows/rng.hpp"
#include "flows/testing/gradient_checker.hpp"

namespace {

using flows::Index;
using flows::Matrix;
using flows::Real;
using flows::nn::Linear;
using flows::testing::check_gradients;
using flows::testing::DifferentiableFunction;

// The layer as the gradient checker sees it; remembers the input for backward.
DifferentiableFunction as_function(Linear& layer, Matrix& last_x) {
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

// max |a - b| ≤ tol, same shapes.
bool near(const Matrix& a, const Matrix& b, Real tol = 1e-12) {
  if (a.shape() != b.shape()) return false;
  for (Index k = 0; k < a.size(); ++k)
    if (!(std::abs(a.flat(k) - b.flat(k)) <= tol)) return false;
  return true;
}

// y = x Wᵀ + b by loops.
Matrix naive_affine(const Matrix& x, const Matrix& w, const Matrix& b) {
  Matrix y({x.shape(0), w.shape(0)});
  for (Index i = 0; i < x.shape(0); ++i)
    for (Index o = 0; o < w.shape(0); ++o) {
      Real s = b(0, o);
      for (Index j = 0; j < x.shape(1); ++j) s += x(i, j) * w(o, j);
      y(i, o) = s;
    }
  return y;
}

TEST(Linear, ForwardMatchesHandComputedValue) {
  flows::Rng rng(0);
  Linear layer(3, 2, rng);
  layer.weight().value = Matrix{{1, 2, 3}, {4, 5, 6}};
  layer.bias().value = Matrix{{0.5, -1}};
  const Matrix x{{1, 0, -1}, {2, 1, 0}};
  Matrix y;
  layer.forward(x, y);
  // Row 0: (1 - 3 + 0.5, 4 - 6 - 1); row 1: (2 + 2 + 0.5, 8 + 5 - 1).
  const Matrix expected{{-1.5, -3}, {4.5, 12}};
  ASSERT_EQ(y.shape(), expected.shape());
  for (Index k = 0; k < y.size(); ++k) EXPECT_DOUBLE_EQ(y.flat(k), expected.flat(k));
  EXPECT_EQ(layer.infer(x), y);
}

TEST(Linear, BackwardMatchesHandComputedValue) {
  flows::Rng rng(0);
  Linear layer(3, 2, rng);
  layer.weight().value = Matrix{{1, 2, 3}, {4, 5, 6}};
  const Matrix x{{1, 0, -1}, {2, 1, 0}};
  const Matrix grad_y{{1, 0}, {0, 2}};
  Matrix grad_x;
  layer.backward(x, grad_y, grad_x);
  // dL/dx = dL/dy W; dL/dW = (dL/dy)ᵀ x; dL/db = column sums of dL/dy.
  EXPECT_EQ(grad_x, (Matrix{{1, 2, 3}, {8, 10, 12}}));
  EXPECT_EQ(layer.weight().grad, (Matrix{{1, 0, -1}, {4, 2, 0}}));
  EXPECT_EQ(layer.bias().grad, (Matrix{{1, 2}}));
}

TEST(Linear, InitialisationIsUniformWithinOneOverSqrtIn) {
  flows::Rng rng(3);
  Linear layer(16, 64, rng);
  EXPECT_EQ(layer.in_features(), 16u);
  EXPECT_EQ(layer.out_features(), 64u);
  EXPECT_EQ(layer.weight().value.shape(), (std::array<Index, 2>{64, 16}));
  EXPECT_EQ(layer.bias().value.shape(), (std::array<Index, 2>{1, 64}));
  const Real bound = 1 / std::sqrt(16.0);
  Real largest = 0;
  Real sum = 0;
  for (Real w : layer.weight().value) {
    EXPECT_LE(std::abs(w), bound);
    largest = std::max(largest, std::abs(w));
    sum += w;
  }
  for (Real b : layer.bias().value) EXPECT_LE(std::abs(b), bound);
  EXPECT_GT(largest, 0.9 * bound);                       // fills the interval
  EXPECT_LT(std::abs(sum / 1024), 0.05);                 // centred
  for (Real g : layer.weight().grad) EXPECT_EQ(g, 0.0);  // gradients start at zero
  flows::Rng same(3);
  EXPECT_EQ(Linear(16, 64, same).weight().value, layer.weight().value);  // seeded
}

TEST(Linear, GradientsMatchFiniteDifferences) {
  flows::Rng rng(1);
  Linear layer(5, 3, rng);
  Matrix last_x;
  const Matrix x = rng.normal(7, 5);
  const auto result = check_gradients(as_function(layer, last_x), x);
  EXPECT_TRUE(result.ok) << result.report;
}

TEST(Linear, BackwardAccumulatesParameterGradients) {
  flows::Rng rng(2);
  Linear layer(4, 3, rng);
  const Matrix x = rng.normal(6, 4);
  const Matrix grad_y = rng.normal(6, 3);
  Matrix y, grad_x;
  layer.forward(x, y);
  layer.backward(x, grad_y, grad_x);
  const Matrix dw = layer.weight().grad;
  const Matrix db = layer.bias().grad;
  const Matrix dx = grad_x;
  layer.backward(x, grad_y, grad_x);
  EXPECT_TRUE(near(layer.weight().grad, 2.0 * dw));
  EXPECT_TRUE(near(layer.bias().grad, 2.0 * db));
  EXPECT_EQ(grad_x, dx);  // the input gradient is written, not accumulated
}

TEST(Linear, InputOnlyBackwardLeavesParameterGradientsUntouched) {
  flows::Rng rng(4);
  Linear layer(4, 3, rng);
  const Matrix x = rng.normal(6, 4);
  const Matrix grad_y = rng.normal(6, 3);
  Matrix full, input_only;
  layer.backward(x, grad_y, full);
  flows::zero_grad(layer.parameters());
  layer.backward(x, grad_y, input_only, /*accumulate_param_grads=*/false);
  EXPECT_EQ(input_only, full);
  for (Real g : layer.weight().grad) EXPECT_EQ(g, 0.0);
  for (Real g : layer.bias().grad) EXPECT_EQ(g, 0.0);
}

TEST(Linear, HandlesSingleRowsSingleOutputsAndEmptyBatches) {
  // One row or one column gives xtensor a zero stride; BLAS must still see a
  // valid leading dimension.
  flows::Rng rng(5);
  Linear narrow(3, 1, rng);
  for (Index rows : {Index(1), Index(4)}) {
    const Matrix x = rng.normal(rows, 3);
    EXPECT_TRUE(near(narrow.infer(x), naive_affine(x, narrow.weight().value, narrow.bias().value)));
  }
  Linear wide(1, 5, rng);
  const Matrix column = rng.normal(4, 1);
  EXPECT_TRUE(
      near(wide.infer(column), naive_affine(column, wide.weight().value, wide.bias().value)));

  const Matrix empty({0, 1});
  Matrix y, grad_x;
  wide.forward(empty, y);
  EXPECT_EQ(y.shape(), (std::array<Index, 2>{0, 5}));
  wide.backward(empty, Matrix({0, 5}), grad_x);
  EXPECT_EQ(grad_x.shape(), (std::array<Index, 2>{0, 1}));
  for (Real g : wide.weight().grad) EXPECT_EQ(g, 0.0);
}

TEST(Linear, ReusedOutputBuffersKeepTheirStorage) {
  flows::Rng rng(6);
  Linear layer(8, 8, rng);
  const Matrix x = rng.normal(32, 8);
  Matrix y, grad_x;
  layer.forward(x, y);
  layer.backward(x, y, grad_x);
  const Real* y_data = y.data();
  const Real* grad_x_data = grad_x.data();
  layer.forward(x, y);
  layer.backward(x, y, grad_x);
  EXPECT_EQ(y.data(), y_data);
  EXPECT_EQ(grad_x.data(), grad_x_data);
}

TEST(Linear, WrongShapesAreErrors) {
  flows::Rng rng(7);
  Linear layer(3, 2, rng);
  Matrix y, grad_x;
  EXPECT_THROW(layer.forward(Matrix({4, 2}), y), flows::DataError);
  EXPECT_THROW(layer.backward(Matrix({4, 3}), Matrix({5, 2}), grad_x), flows::DataError);
  EXPECT_THROW(layer.backward(Matrix({4, 3}), Matrix({4, 3}), grad_x), flows::DataError);
  EXPECT_THROW(Linear(0, 2, rng), flows::ConfigError);
  EXPECT_THROW(Linear(2, 0, rng), flows::ConfigError);
}

}  // namespace
