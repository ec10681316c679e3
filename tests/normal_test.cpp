#include "flows/normal.hpp"

#include <gtest/gtest.h>

#include <cmath>

#include "flows/error.hpp"
#include "flows/testing/gradient_checker.hpp"

namespace flows {
namespace {

TEST(StandardNormal, LogProbMatchesClosedForm) {
  StandardNormal normal(3);
  Matrix z = {{0.0, 0.0, 0.0}, {1.0, -2.0, 0.5}};
  Vector lp = normal.log_prob(z, {});
  const Real c = -1.5 * std::log(2 * M_PI);
  EXPECT_NEAR(lp(0), c, 1e-14);
  EXPECT_NEAR(lp(1), c - 0.5 * (1 + 4 + 0.25), 1e-14);
}

TEST(StandardNormal, SampleMomentsMatch) {
  StandardNormal normal(2);
  Rng rng(7);
  Matrix s = normal.sample(200000, {}, rng);
  for (Index j = 0; j < 2; ++j) {
    Real mean = 0, var = 0;
    for (Index i = 0; i < s.shape(0); ++i) mean += s(i, j);
    mean /= static_cast<Real>(s.shape(0));
    for (Index i = 0; i < s.shape(0); ++i) var += (s(i, j) - mean) * (s(i, j) - mean);
    var /= static_cast<Real>(s.shape(0));
    EXPECT_NEAR(mean, 0.0, 0.01);  // 4.5 standard errors
    EXPECT_NEAR(var, 1.0, 0.015);
  }
}

TEST(StandardNormal, WrongColumnCountIsADataError) {
  StandardNormal normal(3);
  Matrix z = xt::zeros<Real>({2, 2});
  EXPECT_THROW(normal.log_prob(z, {}), DataError);
}

TEST(DiagonalNormal, LogProbMatchesClosedForm) {
  DiagonalNormal normal(2, 0.5, std::log(2.0));
  Matrix z = {{1.5, -0.5}};
  // Each dimension: N(x; 0.5, 2²).
  auto log_n = [](Real x) {
    return -0.5 * std::pow((x - 0.5) / 2.0, 2) - std::log(2.0) - 0.5 * std::log(2 * M_PI);
  };
  EXPECT_NEAR(normal.log_prob(z, {})(0), log_n(1.5) + log_n(-0.5), 1e-14);
}

TEST(DiagonalNormal, SampleMomentsMatch) {
  DiagonalNormal normal(1, -1.0, std::log(0.5));
  Rng rng(3);
  Matrix s = normal.sample(200000, {}, rng);
  Real mean = 0, var = 0;
  for (Real v : s) mean += v;
  mean /= static_cast<Real>(s.size());
  for (Real v : s) var += (v - mean) * (v - mean);
  var /= static_cast<Real>(s.size());
  EXPECT_NEAR(mean, -1.0, 0.005);
  EXPECT_NEAR(var, 0.25, 0.004);
}

TEST(DiagonalNormal, GradientsMatchFiniteDifferences) {
  DiagonalNormal normal(3, 0.3, -0.2);
  normal.parameters()[0]->value = Matrix{{0.1, -0.4, 0.7}};
  normal.parameters()[1]->value = Matrix{{0.2, -0.3, 0.05}};
  Matrix last_z;
  testing::DifferentiableFunction f;
  f.forward = [&](const Matrix& z) {
    last_z = z;
    Vector lp = normal.log_prob(z, {});
    Matrix y({lp.size(), 1});
    for (Index i = 0; i < lp.size(); ++i) y(i, 0) = lp(i);
    return y;
  };
  f.backward = [&](const Matrix& grad_y) {
    Vector w = xt::empty<Real>({grad_y.shape(0)});
    for (Index i = 0; i < w.size(); ++i) w(i) = grad_y(i, 0);
    Matrix grad_z;
    normal.log_prob_backward(last_z, {}, w, grad_z);
    return grad_z;
  };
  f.params = normal.parameters();
  Rng rng(1);
  auto result = testing::check_gradients(f, rng.normal(5, 3));
  EXPECT_TRUE(result.ok) << result.report;
}

TEST(StandardNormal, InputGradientMatchesFiniteDifferences) {
  StandardNormal normal(2);
  Matrix last_z;
  testing::DifferentiableFunction f;
  f.forward = [&](const Matrix& z) {
    last_z = z;
    Vector lp = normal.log_prob(z, {});
    Matrix y({lp.size(), 1});
    for (Index i = 0; i < lp.size(); ++i) y(i, 0) = lp(i);
    return y;
  };
  f.backward = [&](const Matrix& grad_y) {
    Vector w = xt::empty<Real>({grad_y.shape(0)});
    for (Index i = 0; i < w.size(); ++i) w(i) = grad_y(i, 0);
    Matrix grad_z;
    normal.log_prob_backward(last_z, {}, w, grad_z);
    return grad_z;
  };
  Rng rng(2);
  auto result = testing::check_gradients(f, rng.normal(4, 2));
  EXPECT_TRUE(result.ok) << result.report;
}

}  // namespace
}  // namespace flows
