#include "flows/nn/made_masks.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "flows/error.hpp"
#include "flows/nn/mlp.hpp"
#include "flows/rng.hpp"
#include "flows/testing/gradient_checker.hpp"

namespace {

using flows::Index;
using flows::Matrix;
using flows::Real;
using flows::nn::Activation;
using flows::nn::made_masks;
using flows::nn::MLP;
using Order = std::vector<Index>;

TEST(MadeMasks, OrdersArePermutationsInTheirOwnSense) {
  EXPECT_EQ(flows::nn::natural_order(4), (Order{0, 1, 2, 3}));
  EXPECT_EQ(flows::nn::reversed_order(4), (Order{3, 2, 1, 0}));
  flows::Rng a(11), b(11);
  const Order random = flows::nn::random_order(20, a);
  EXPECT_EQ(random, flows::nn::random_order(20, b));  // seeded
  EXPECT_NE(random, flows::nn::natural_order(20));
  EXPECT_NO_THROW(flows::nn::check_order(random));
  flows::Rng c(0);
  EXPECT_EQ(flows::nn::make_order("reversed", 3, c), (Order{2, 1, 0}));
  EXPECT_EQ(flows::nn::input_degrees(Order{2, 0, 1}), (Order{3, 1, 2}));
}

TEST(MadeMasks, InvalidOrdersAndNamesAreConfigErrors) {
  EXPECT_THROW(flows::nn::check_order(Order{0, 0, 1}), flows::ConfigError);
  EXPECT_THROW(flows::nn::check_order(Order{1, 2, 3}), flows::ConfigError);
  EXPECT_THROW(flows::nn::check_order(Order{}), flows::ConfigError);
  EXPECT_THROW(made_masks(Order{0, 2}, {4}), flows::ConfigError);
  EXPECT_THROW(made_masks(Order{0, 1}, {0}), flows::ConfigError);
  EXPECT_THROW(made_masks(Order{0, 1}, {4}, 0), flows::ConfigError);
  flows::Rng rng(0);
  try {
    flows::nn::make_order("reverse", 3, rng);
    FAIL() << "expected a ConfigError";
  } catch (const flows::ConfigError& e) {
    const std::string message = e.what();
    for (const std::string& name : flows::nn::order_names())
      EXPECT_NE(message.find(name), std::string::npos) << message;
  }
}

TEST(MadeMasks, HiddenDegreesCycleThroughOneToDMinusOne) {
  EXPECT_EQ(flows::nn::hidden_degrees(7, 3), (Order{1, 2, 1, 2, 1, 2, 1}));
  EXPECT_EQ(flows::nn::hidden_degrees(3, 5), (Order{1, 2, 3}));
  EXPECT_EQ(flows::nn::hidden_degrees(3, 2), (Order{1, 1, 1}));
  EXPECT_EQ(flows::nn::hidden_degrees(2, 1), (Order{0, 0}));
}

TEST(MadeMasks, MasksFollowTheDegreeRules) {
  const Order order{1, 3, 0, 2};
  const Order inputs = flows::nn::input_degrees(order);  // {2, 4, 1, 3}
  const std::vector<Matrix> masks = made_masks(order, {6, 5}, 3);
  ASSERT_EQ(masks.size(), 3u);
  EXPECT_EQ(masks[0].shape(), (std::array<Index, 2>{6, 4}));
  EXPECT_EQ(masks[1].shape(), (std::array<Index, 2>{5, 6}));
  EXPECT_EQ(masks[2].shape(), (std::array<Index, 2>{12, 5}));
  const Order h1 = flows::nn::hidden_degrees(6, 4);
  const Order h2 = flows::nn::hidden_degrees(5, 4);
  for (Index j = 0; j < 6; ++j)
    for (Index i = 0; i < 4; ++i) EXPECT_EQ(masks[0](j, i), h1[j] >= inputs[i] ? 1 : 0);
  for (Index j = 0; j < 5; ++j)
    for (Index i = 0; i < 6; ++i) EXPECT_EQ(masks[1](j, i), h2[j] >= h1[i] ? 1 : 0);
  // Output unit b·D + d belongs to dimension d, in each of the 3 blocks.
  for (Index b = 0; b < 3; ++b)
    for (Index d = 0; d < 4; ++d)
      for (Index i = 0; i < 5; ++i) EXPECT_EQ(masks[2](b * 4 + d, i), inputs[d] > h2[i] ? 1 : 0);
  // The first dimension in the order (d = 2) sees no hidden unit.
  for (Index i = 0; i < 5; ++i) EXPECT_EQ(masks[2](2, i), 0);
}

TEST(MadeMasks, ConnectivityIsStrictlyTriangularInTheOrder) {
  const Order order{2, 0, 3, 1};
  const Matrix allowed = flows::nn::autoregressive_connectivity(order);
  // Rows and columns sorted by position in the order: strictly lower triangular.
  Order by_position(4);
  for (Index i = 0; i < 4; ++i) by_position[order[i]] = i;
  for (Index p = 0; p < 4; ++p)
    for (Index q = 0; q < 4; ++q) EXPECT_EQ(allowed(by_position[p], by_position[q]), q < p ? 1 : 0);
}

// The MADE property, measured: ∂y/∂x of the masked MLP by central differences
// is exactly zero where output dimension i may not depend on input j
// (order[j] ≥ order[i]), in every output block, and nonzero wherever it may.
void expect_autoregressive(const Order& order, const std::vector<Index>& hidden,
                           Index out_multiplier, const std::string& activation) {
  const Index dim = order.size();
  flows::Rng rng(42);
  const MLP made(made_masks(order, hidden, out_multiplier), Activation::from_name(activation), rng);
  ASSERT_EQ(made.out_features(), out_multiplier * dim);
  const Matrix x = rng.normal(1, dim);
  const Matrix jacobian =
      flows::testing::numerical_jacobian([&made](const Matrix& in) { return made.infer(in); }, x);
  const Matrix allowed = flows::nn::autoregressive_connectivity(order);
  Index nonzero = 0;
  for (Index b = 0; b < out_multiplier; ++b)
    for (Index i = 0; i < dim; ++i)
      for (Index j = 0; j < dim; ++j) {
        const Real entry = jacobian(b * dim + i, j);
        if (allowed(i, j) == 0) {
          EXPECT_EQ(entry, 0.0) << "block " << b << ": output " << i << " depends on input " << j;
        } else {
          EXPECT_GT(std::abs(entry), 1e-9)
              << "block " << b << ": output " << i << " ignores input " << j;
          ++nonzero;
        }
      }
  EXPECT_EQ(nonzero, out_multiplier * dim * (dim - 1) / 2);
}

TEST(MadeMasks, JacobianIsAutoregressiveForEveryOrdering) {
  flows::Rng rng(7);
  const std::vector<std::pair<std::string, Order>> orders{
      {"natural", flows::nn::natural_order(5)},
      {"reversed", flows::nn::reversed_order(5)},
      {"random", flows::nn::random_order(5, rng)},
      {"explicit", Order{2, 0, 4, 1, 3}},
  };
  for (const auto& [name, order] : orders)
    for (Index k : {Index(1), Index(2), Index(3)}) {
      SCOPED_TRACE(name + " order, out_multiplier " + std::to_string(k));
      expect_autoregressive(order, {16, 16}, k, "tanh");
      expect_autoregressive(order, {}, k, "tanh");  // one masked layer
    }
}

TEST(MadeMasks, AutoregressiveWithEveryActivation) {
  for (const std::string& name : Activation::names()) {
    SCOPED_TRACE(name);
    flows::Rng rng(3);
    const Order order = flows::nn::random_order(4, rng);
    const Index dim = order.size();
    const MLP made(made_masks(order, {12}, 2), Activation::from_name(name), rng);
    const Matrix jacobian = flows::testing::numerical_jacobian(
        [&made](const Matrix& in) { return made.infer(in); }, rng.normal(1, dim));
    const Matrix allowed = flows::nn::autoregressive_connectivity(order);
    Real allowed_magnitude = 0;
    for (Index b = 0; b < 2; ++b)
      for (Index i = 0; i < dim; ++i)
        for (Index j = 0; j < dim; ++j) {
          if (allowed(i, j) == 0)
            EXPECT_EQ(jacobian(b * dim + i, j), 0.0);
          else
            allowed_magnitude += std::abs(jacobian(b * dim + i, j));
        }
    EXPECT_GT(allowed_magnitude, 1e-6);  // relu may zero some entries, not all
  }
}

TEST(MadeMasks, SingleDimensionDependsOnNothing) {
  const std::vector<Matrix> masks = made_masks(Order{0}, {4, 4}, 2);
  flows::Rng rng(1);
  const MLP made(masks, Activation::from_name("relu"), rng);
  const Matrix y1 = made.infer(Matrix{{-3.0}});
  const Matrix y2 = made.infer(Matrix{{5.0}});
  EXPECT_EQ(y1, y2);
  for (Real m : masks[0]) EXPECT_EQ(m, 0.0);
}

}  // namespace
