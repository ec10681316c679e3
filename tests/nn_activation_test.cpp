#include "flows/nn/activation.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "flows/error.hpp"
#include "flows/rng.hpp"
#include "flows/testing/gradient_checker.hpp"

namespace {

using flows::Index;
using flows::Matrix;
using flows::Real;
using flows::nn::Activation;
using flows::testing::check_gradients;
using flows::testing::DifferentiableFunction;

constexpr Real kLambda = 1.0507009873554804934193349852946;
constexpr Real kAlpha = 1.6732632423543772848170429916717;

TEST(Activation, ValuesMatchHandComputedOnes) {
  const Real e1 = std::exp(-1.0);
  struct Case {
    const char* name;
    Real a;
    Real expected;
  };
  const Case cases[] = {
      {"identity", -2.5, -2.5},    {"relu", -1.0, 0.0},
      {"relu", 2.0, 2.0},          {"tanh", 0.5, std::tanh(0.5)},
      {"elu", 2.0, 2.0},           {"elu", -1.0, e1 - 1},
      {"selu", 1.0, kLambda},      {"selu", -1.0, kLambda * kAlpha * (e1 - 1)},
      {"silu", 1.0, 1 / (1 + e1)}, {"silu", -1.0, -1 / (1 + 1 / e1)},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(std::string(c.name) + " at " + std::to_string(c.a));
    const Activation f = Activation::from_name(c.name);
    EXPECT_NEAR(f.value(c.a), c.expected, 1e-15);
    Matrix h;
    f.forward(Matrix{{c.a}}, h);
    EXPECT_NEAR(h(0, 0), c.expected, 1e-15);
  }
}

TEST(Activation, MatrixForwardMatchesScalarValues) {
  flows::Rng rng(0);
  Matrix a = 3.0 * rng.normal(8, 5);
  a(0, 0) = 0;
  a(0, 1) = -40;
  a(0, 2) = 40;
  for (const std::string& name : Activation::names()) {
    SCOPED_TRACE(name);
    const Activation f = Activation::from_name(name);
    Matrix h;
    f.forward(a, h);
    ASSERT_EQ(h.shape(), a.shape());
    for (Index k = 0; k < a.size(); ++k)
      EXPECT_NEAR(h.flat(k), f.value(a.flat(k)), 1e-14 * (1 + std::abs(h.flat(k))));
  }
}

TEST(Activation, DerivativesMatchFiniteDifferences) {
  const Real points[] = {-3.0, -0.7, -0.1, 0.2, 0.9, 2.5};
  const Real h = 1e-6;
  for (const std::string& name : Activation::names()) {
    SCOPED_TRACE(name);
    const Activation f = Activation::from_name(name);
    for (Real a : points) {
      const Real numeric = (f.value(a + h) - f.value(a - h)) / (2 * h);
      EXPECT_NEAR(f.derivative(a), numeric, 1e-8) << "at " << a;
    }
  }
}

TEST(Activation, BackwardMatchesFiniteDifferencesForEveryActivation) {
  flows::Rng rng(1);
  const Matrix x = 2.0 * rng.normal(6, 4);  // |a| ≫ step: no kink inside a difference
  for (const std::string& name : Activation::names()) {
    SCOPED_TRACE(name);
    const Activation act = Activation::from_name(name);
    Matrix a, h;
    DifferentiableFunction f;
    f.forward = [&](const Matrix& input) {
      a = input;
      act.forward(a, h);
      return h;
    };
    f.backward = [&](const Matrix& grad_h) {
      Matrix grad = grad_h;
      act.backward(a, h, grad);
      return grad;
    };
    const auto result = check_gradients(f, x);
    EXPECT_TRUE(result.ok) << result.report;
  }
}

TEST(Activation, BackwardAgreesWithScalarDerivative) {
  flows::Rng rng(2);
  Matrix a = 3.0 * rng.normal(5, 5);
  a(0, 0) = -60;
  a(0, 1) = 60;
  for (const std::string& name : Activation::names()) {
    SCOPED_TRACE(name);
    const Activation f = Activation::from_name(name);
    Matrix h;
    f.forward(a, h);
    Matrix grad = xt::ones_like(a);
    f.backward(a, h, grad);
    for (Index k = 0; k < a.size(); ++k) {
      ASSERT_TRUE(std::isfinite(grad.flat(k)));
      EXPECT_NEAR(grad.flat(k), f.derivative(a.flat(k)), 1e-12) << "at " << a.flat(k);
    }
  }
}

TEST(Activation, NamesRoundTrip) {
  const std::vector<std::string> expected{"identity", "relu", "tanh", "elu", "selu", "silu"};
  EXPECT_EQ(Activation::names(), expected);
  for (const std::string& name : Activation::names())
    EXPECT_EQ(Activation::from_name(name).name(), name);
  EXPECT_EQ(Activation(Activation::Kind::silu).name(), "silu");
}

TEST(Activation, UnknownNameIsConfigErrorListingValidNames) {
  try {
    Activation::from_name("rleu");
    FAIL() << "expected a ConfigError";
  } catch (const flows::ConfigError& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("rleu"), std::string::npos) << message;
    for (const std::string& name : Activation::names())
      EXPECT_NE(message.find(name), std::string::npos) << message;
    EXPECT_NE(message.find("did you mean 'relu'"), std::string::npos) << message;
  }
}

}  // namespace
