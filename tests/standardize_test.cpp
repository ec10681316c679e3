#include "flows/standardize.hpp"

#include <gtest/gtest.h>

#include <cmath>

#include "flows/error.hpp"
#include "flows/rng.hpp"
#include "flows/state.hpp"
#include "flows/testing/gradient_checker.hpp"

namespace flows {
namespace {

// 500 x 3 data with different offsets and spreads per column.
Matrix sample_data() {
  Rng rng(1);
  Matrix x = rng.normal(500, 3);
  for (Index i = 0; i < x.shape(0); ++i) {
    x(i, 0) = 10 + 3 * x(i, 0);
    x(i, 1) = -2 + 0.01 * x(i, 1);
    x(i, 2) = 0.5 * x(i, 2);
  }
  return x;
}

TEST(Standardize, FitGivesZeroMeanAndUnitStd) {
  const Matrix x = sample_data();
  const Standardize s = Standardize::fit(x);
  EXPECT_EQ(s.dim(), 3u);
  const Matrix z = s.forward(x, Matrix()).value;
  for (Index j = 0; j < 3; ++j) {
    Real mean = 0, sq = 0;
    for (Index i = 0; i < z.shape(0); ++i) mean += z(i, j);
    mean /= Real(z.shape(0));
    for (Index i = 0; i < z.shape(0); ++i) sq += (z(i, j) - mean) * (z(i, j) - mean);
    EXPECT_NEAR(mean, 0, 1e-12) << j;
    EXPECT_NEAR(std::sqrt(sq / Real(z.shape(0))), 1, 1e-12) << j;
  }
  EXPECT_NEAR(s.mean()(0, 0), 10, 0.5);
  EXPECT_NEAR(s.scale()(0, 1), 0.01, 0.002);
}

TEST(Standardize, InverseUndoesForward) {
  const Matrix x = sample_data();
  const Standardize s = Standardize::fit(x);
  const Transformed z = s.forward(x, Matrix());
  const Transformed back = s.inverse(z.value, Matrix());
  ASSERT_EQ(back.value.shape(), x.shape());
  for (Index i = 0; i < x.size(); ++i) EXPECT_NEAR(back.value.flat(i), x.flat(i), 1e-12);
  for (Index i = 0; i < x.shape(0); ++i) EXPECT_DOUBLE_EQ(back.logdet(i), -z.logdet(i));
}

TEST(Standardize, LogdetIsMinusTheSumOfLogScales) {
  const Standardize s(Matrix{{1, -1}}, Matrix{{2, 0.25}});
  const Matrix x = {{3, 0}, {1, 1}};
  const Transformed z = s.forward(x, Matrix());
  EXPECT_EQ(z.value, (Matrix{{1, 4}, {0, 8}}));
  ASSERT_EQ(z.logdet.size(), 2u);
  for (Index i = 0; i < 2; ++i) EXPECT_DOUBLE_EQ(z.logdet(i), -(std::log(2.0) + std::log(0.25)));
}

TEST(Standardize, ConstantColumnIsOnlyCentred) {
  Matrix x = {{1, 5}, {2, 5}, {3, 5}};
  const Standardize s = Standardize::fit(x);
  EXPECT_EQ(s.scale()(0, 1), 1.0);
  EXPECT_EQ(s.mean()(0, 1), 5.0);
  const Matrix z = s.forward(x, Matrix()).value;
  for (Index i = 0; i < 3; ++i) EXPECT_EQ(z(i, 1), 0.0);
}

TEST(Standardize, TrainingPassMatchesInferenceAndBackwardDividesByScale) {
  Standardize s(Matrix{{1, 2}}, Matrix{{2, 4}});
  EXPECT_TRUE(s.parameters().empty());
  const Matrix x = {{3, 6}, {-1, 2}};
  Matrix z;
  Vector logdet;
  s.forward_train(x, Matrix(), z, logdet);
  const Transformed ref = s.forward(x, Matrix());
  EXPECT_EQ(z, ref.value);
  EXPECT_EQ(logdet, ref.logdet);
  Matrix grad_x;
  s.backward(Matrix{{1, 1}, {2, -4}}, Vector{1, 1}, grad_x);
  EXPECT_EQ(grad_x, (Matrix{{0.5, 0.25}, {1, -1}}));
}

TEST(Standardize, LogdetMatchesTheFiniteDifferenceJacobian) {
  const Standardize s(Matrix{{0.5, -1}}, Matrix{{3, 0.2}});
  const Matrix x = {{0.3, -0.7}};
  const Matrix jac = testing::numerical_jacobian(
      [&](const Matrix& in) { return s.forward(in, Matrix()).value; }, x);
  ASSERT_EQ(jac.shape(0), 2u);
  ASSERT_EQ(jac.shape(1), 2u);
  const Real det = jac(0, 0) * jac(1, 1) - jac(0, 1) * jac(1, 0);
  EXPECT_NEAR(std::log(std::abs(det)), s.forward(x, Matrix()).logdet(0), 1e-6);
}

TEST(Standardize, BackwardMatchesFiniteDifferences) {
  Standardize s(Matrix{{0.5, -1, 2}}, Matrix{{3, 0.2, 1.5}});
  Rng rng(4);
  const testing::GradientCheckResult result =
      testing::check_bijector_gradients(s, rng.normal(6, 3));
  EXPECT_TRUE(result.ok) << result.report;
}

TEST(Standardize, WrongColumnCountNamesBothNumbers) {
  const Standardize s(Matrix{{0, 0}}, Matrix{{1, 1}});
  try {
    s.forward(Matrix{{1, 2, 3}}, Matrix());
    FAIL() << "no error";
  } catch (const DataError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("standardization"), std::string::npos) << what;
    EXPECT_NE(what.find("3 columns"), std::string::npos) << what;
    EXPECT_NE(what.find("dimension is 2"), std::string::npos) << what;
  }
  EXPECT_THROW(s.inverse(Matrix{{1}}, Matrix()), DataError);
}

TEST(Standardize, RejectsBadParametersAndEmptyData) {
  EXPECT_THROW(Standardize(Matrix{{0, 0}}, Matrix{{1}}), DataError);
  EXPECT_THROW(Standardize(Matrix{{0}}, Matrix{{0}}), DataError);
  EXPECT_THROW(Standardize(Matrix{{0}}, Matrix{{-1}}), DataError);
  EXPECT_THROW(Standardize::fit(Matrix({0, 2})), DataError);
  EXPECT_THROW(Standardize(Matrix({1, 0}), Matrix({1, 0})), DataError);
  EXPECT_THROW(Standardize(Matrix{{0}, {0}}, Matrix{{1}, {1}}), DataError);
}

TEST(Standardize, IsUnconditionalAndIgnoresAContext) {
  const Standardize s(Matrix{{1, -1}}, Matrix{{2, 0.25}});
  EXPECT_EQ(s.context_dim(), 0u);
  const Matrix x = {{3, 0}, {1, 1}};
  EXPECT_EQ(s.forward(x, Matrix{{1, 2, 3}, {4, 5, 6}}).value, s.forward(x, Matrix()).value);
}

TEST(Standardize, BackwardBeforeATrainingPassIsAnError) {
  Standardize s(Matrix{{0, 0}}, Matrix{{1, 1}});
  Matrix grad_x;
  EXPECT_THROW(s.backward(Matrix{{1, 1}}, Vector{1}, grad_x), Error);
}

TEST(Standardize, LoadedStateIsCheckedBeforeItReplacesTheFit) {
  Standardize s(Matrix{{1, 2}}, Matrix{{2, 4}});
  TensorStore store;
  StateSaver saver(store);
  s.visit_state(saver);
  ASSERT_EQ(store.entries.size(), 2u);
  store.entries[1].value(0, 1) = -1;  // a negative scale
  StateLoader loader(store, "model.flows");
  EXPECT_THROW(s.visit_state(loader), DataError);
  EXPECT_EQ(s.scale(), (Matrix{{2, 4}})) << "a rejected load changed the standardization";

  store.entries[1].value(0, 1) = 8;
  StateLoader good(store, "model.flows");
  s.visit_state(good);
  EXPECT_EQ(s.scale(), (Matrix{{2, 8}}));
  EXPECT_DOUBLE_EQ(s.forward(Matrix{{1, 2}}, Matrix()).logdet(0), -(std::log(2.0) + std::log(8.0)));
}

}  // namespace
}  // namespace flows
