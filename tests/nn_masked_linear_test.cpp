#include "flows/nn/masked_linear.hpp"

#include <gtest/gtest.h>

#include <cmath>

#include "flows/error.hpp"
#include "flows/rng.hpp"
#include "flows/state.hpp"
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

// plan_row_blocks ends each block at the last column its rows use, and keeps
// one block when cutting would save less than an eighth of the work.
TEST(RowBlocks, StaircaseMasksAreCutAndDenseOnesAreNot) {
  Matrix stair({64, 40});
  for (Index i = 0; i < 64; ++i)
    for (Index j = 0; j < 40; ++j) stair(i, j) = j < (i * 40) / 64 + 1 ? 1 : 0;
  const auto blocks = flows::nn::plan_row_blocks(stair, 32);
  ASSERT_EQ(blocks.size(), 2u);
  EXPECT_EQ(blocks[0].row_begin, 0u);
  EXPECT_EQ(blocks[0].row_end, 32u);
  EXPECT_EQ(blocks[0].col_end, (31u * 40) / 64 + 1);
  EXPECT_EQ(blocks[1].row_end, 64u);
  EXPECT_EQ(blocks[1].col_end, 40u);
  const auto dense = flows::nn::plan_row_blocks(xt::ones<Real>({64, 40}), 32);
  ASSERT_EQ(dense.size(), 1u);
  EXPECT_EQ(dense[0].col_end, 40u);
}

// A staircase mask (unit r of the output sees the first r/2 + 1 inputs), with
// the units given in a scrambled order, so that the layer must reorder them
// to find the staircase.
struct Scrambled {
  Matrix mask;
  std::vector<Index> in_units, out_units;  // the order that shows the staircase
};
Scrambled scrambled_staircase(Index out, Index in, flows::Rng& rng) {
  auto shuffled = [&rng](Index n) {
    std::vector<Index> p(n);
    for (Index k = 0; k < n; ++k) p[k] = k;
    for (Index k = n; k > 1; --k) std::swap(p[k - 1], p[rng.index(k)]);
    return p;
  };
  Scrambled s{Matrix({out, in}), shuffled(in), shuffled(out)};
  for (Index i = 0; i < out; ++i)
    for (Index j = 0; j < in; ++j)
      s.mask(s.out_units[i], s.in_units[j]) = j < (i * in) / out + 1 ? 1 : 0;
  return s;
}

Matrix columns(const Matrix& m, const std::vector<Index>& units) {
  Matrix out({m.shape(0), units.size()});
  for (Index i = 0; i < m.shape(0); ++i)
    for (Index j = 0; j < units.size(); ++j) out(i, j) = m(i, units[j]);
  return out;
}

// In a compute order the layer gives the same numbers as in its own order,
// with the columns reordered.
void expect_compute_order_matches_own_order(const Scrambled& s, flows::Rng& rng) {
  const Index out = s.mask.shape(0), in = s.mask.shape(1);
  MaskedLinear own(s.mask, rng);
  MaskedLinear ordered = own;
  ordered.set_compute_order(s.in_units, s.out_units);
  EXPECT_EQ(own.row_blocks().size(), 1u);
  EXPECT_EQ(ordered.row_blocks().size(), 3u);
  const Matrix x = rng.normal(7, in), grad_y = rng.normal(7, out);
  Matrix y, y_ordered, grad_x, grad_x_ordered;
  own.forward(x, y);
  ordered.forward(columns(x, s.in_units), y_ordered);
  const Matrix expected = columns(y, s.out_units);
  for (Index k = 0; k < y.size(); ++k) EXPECT_NEAR(y_ordered.flat(k), expected.flat(k), 1e-13);
  own.backward(x, grad_y, grad_x);
  ordered.backward(columns(x, s.in_units), columns(grad_y, s.out_units), grad_x_ordered);
  const Matrix expected_grad_x = columns(grad_x, s.in_units);
  for (Index k = 0; k < grad_x.size(); ++k)
    EXPECT_NEAR(grad_x_ordered.flat(k), expected_grad_x.flat(k), 1e-13);
  // The ordered layer keeps its parameters in the compute order; in the
  // units' order they are the own layer's.
  const Matrix weight_grad = flows::in_saved_order(ordered.weight(), ordered.weight().grad);
  const Matrix bias_grad = flows::in_saved_order(ordered.bias(), ordered.bias().grad);
  for (Index k = 0; k < s.mask.size(); ++k)
    EXPECT_NEAR(weight_grad.flat(k), own.weight().grad.flat(k), 1e-12);
  for (Index k = 0; k < own.bias().grad.size(); ++k)
    EXPECT_NEAR(bias_grad.flat(k), own.bias().grad.flat(k), 1e-12);
  EXPECT_EQ(flows::in_saved_order(ordered.weight(), ordered.weight().value), own.weight().value);
  EXPECT_EQ(flows::in_saved_order(ordered.bias(), ordered.bias().value), own.bias().value);
}

// Checkpoints hold the parameters in the units' order whatever the compute
// order, and loading one puts them back into the compute order.
TEST(MaskedLinear, ParametersInAComputeOrderAreSavedAndLoadedInTheUnitsOrder) {
  flows::Rng rng(9);
  const Scrambled s = scrambled_staircase(48, 24, rng);
  MaskedLinear own(s.mask, rng);
  MaskedLinear ordered = own;
  ordered.set_compute_order(s.in_units, s.out_units);
  ASSERT_NE(ordered.weight().value, own.weight().value);  // kept in another order
  flows::TensorStore store;
  flows::StateSaver saver(store);
  flows::visit_parameters(ordered.parameters(), saver);
  ASSERT_EQ(store.entries.size(), 2u);
  EXPECT_EQ(store.entries[0].value, own.weight().value);
  EXPECT_EQ(store.entries[1].value, own.bias().value);

  MaskedLinear loaded(s.mask, rng);  // other values
  loaded.set_compute_order(s.in_units, s.out_units);
  flows::StateLoader loader(store, "test");
  flows::visit_parameters(loaded.parameters(), loader);
  EXPECT_EQ(loaded.weight().value, ordered.weight().value);
  EXPECT_EQ(loaded.bias().value, ordered.bias().value);

  // A second compute order starts from the units' order, not from the first.
  loaded.set_compute_order({}, {});
  EXPECT_EQ(loaded.weight().value, own.weight().value);
  EXPECT_TRUE(loaded.weight().saved_index.empty());
}

// A staircase in the compute order: each row's mask is a prefix of ones,
// which the copies take without reading the mask. The products run on
// several row blocks.
TEST(MaskedLinear, ComputeOrderReordersColumnsAndSkipsEmptyBlocks) {
  flows::Rng rng(6);
  expect_compute_order_matches_own_order(scrambled_staircase(96, 48, rng), rng);
}

// A hole inside a row's ones: that row is not a prefix, so the copies go
// through the mask, with the same numbers.
TEST(MaskedLinear, AComputeOrderMaskWithAHoleGoesThroughTheMask) {
  flows::Rng rng(6);
  Scrambled s = scrambled_staircase(96, 48, rng);
  ASSERT_EQ(s.mask(s.out_units[90], s.in_units[1]), 1.0);
  s.mask(s.out_units[90], s.in_units[1]) = 0;
  expect_compute_order_matches_own_order(s, rng);
}

TEST(MaskedLinear, BlockedGradientsMatchFiniteDifferences) {
  flows::Rng rng(7);
  const Scrambled s = scrambled_staircase(64, 20, rng);
  MaskedLinear layer(s.mask, rng);
  layer.set_compute_order(s.in_units, s.out_units);
  ASSERT_GT(layer.row_blocks().size(), 1u);
  Matrix last_x;
  const auto result = check_gradients(as_function(layer, last_x), rng.normal(5, 20));
  EXPECT_TRUE(result.ok) << result.report;
  // A staircase keeps its unmasked weights only: a saved tensor whose masked
  // entries hold values loads without them, and they get no gradient.
  Index ones = 0;
  for (Real m : s.mask) ones += m == 1.0 ? 1 : 0;
  ASSERT_EQ(layer.weight().size(), ones);
  const Matrix noisy = rng.normal(64, 20);
  flows::from_saved_order(layer.weight(), noisy, layer.weight().value);
  EXPECT_EQ(flows::in_saved_order(layer.weight(), layer.weight().value), Matrix(noisy * s.mask));
  Matrix y, grad_x;
  flows::zero_grad(layer.parameters());
  layer.forward(rng.normal(3, 20), y);
  layer.backward(rng.normal(3, 20), rng.normal(3, 64), grad_x);
  const Matrix grad = flows::in_saved_order(layer.weight(), layer.weight().grad);
  for (Index k = 0; k < s.mask.size(); ++k) {
    if (s.mask.flat(k) == 0) {
      EXPECT_EQ(grad.flat(k), 0.0);
    }
  }
  // A weight of the saved shape written in place is an error, not a read of
  // the wrong entries.
  const Matrix kept = layer.weight().value;
  layer.weight().value = noisy;
  EXPECT_THROW(layer.forward(rng.normal(3, 20), y), flows::Error);
  layer.weight().value = kept;
  layer.forward(rng.normal(3, 20), y);
  layer.weight().grad = noisy;  // so is a gradient of the saved shape
  EXPECT_THROW(layer.backward(rng.normal(3, 20), rng.normal(3, 64), grad_x), flows::Error);
}

TEST(MaskedLinear, ComputeOrdersMustBePermutations) {
  flows::Rng rng(8);
  MaskedLinear layer(Matrix{{1, 0, 1}, {0, 1, 1}}, rng);
  EXPECT_THROW(layer.set_compute_order({0, 1}, {}), flows::ConfigError);
  EXPECT_THROW(layer.set_compute_order({0, 0, 2}, {}), flows::ConfigError);
  EXPECT_THROW(layer.set_compute_order({}, {1, 2}), flows::ConfigError);
  layer.set_compute_order({2, 0, 1}, {1, 0});
  EXPECT_EQ(layer.row_blocks().size(), 1u);
}

}  // namespace
