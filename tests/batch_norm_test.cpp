// batch_norm beyond the maf suite's statistics tests: its log γ is clamped
// against overflow, and the gradients follow the clamp.
#include "flows/batch_norm.hpp"

#include <gtest/gtest.h>

#include <cmath>

#include "flows/log_scale.hpp"
#include "flows/rng.hpp"
#include "flows/testing/assertions.hpp"
#include "flows/testing/gradient_checker.hpp"

namespace flows {
namespace {

// log γ = 800 would give e^γ = inf (and e^{−γ} = 0 in the inverse): the map
// uses γ clamped to ±kMaxLogScale, in evaluation and in training alike.
TEST(BatchNorm, LogGammaIsClampedAgainstOverflow) {
  BatchNorm bn(2, 0.1, 1e-5);
  bn.parameters()[0]->value = Matrix{{800.0, -800.0}};
  Rng rng(3);
  const Matrix x = rng.normal(5, 2);
  const Transformed fwd = bn.forward(x);
  for (Real v : fwd.value) ASSERT_TRUE(std::isfinite(v));
  const Real scale0 = std::exp(kMaxLogScale) / std::sqrt(1 + 1e-5);
  EXPECT_NEAR(fwd.value(0, 0) / (x(0, 0) * scale0), 1.0, 1e-12);
  EXPECT_NEAR(fwd.logdet(0), -std::log(1 + 1e-5), 1e-12);  // +30 and −30
  EXPECT_TRUE(testing::all_near(bn.inverse(fwd.value).value, x, 1e-12, "inverse(forward(x))"));
  Matrix z;
  Vector logdet;
  bn.forward_train(x, {}, z, logdet);
  for (Real v : z) ASSERT_TRUE(std::isfinite(v));
}

// Below the clamp e^γ is tiny and the checker sees every term; above it the
// output is ~e^30 and a step in β is lost in rounding, so the slope of the
// clamp there is checked directly: ∂L/∂γ = 0.
TEST(BatchNorm, GradientsMatchFiniteDifferencesInsideAndBelowTheClamp) {
  Rng rng(4);
  const Matrix x = rng.normal(6, 3);
  for (const Matrix& log_gamma : {Matrix{{0.3, -0.2, 0.1}}, Matrix{{-31.0, 0.2, -40.0}}}) {
    BatchNorm bn(3, 0.1, 1e-5);
    bn.parameters()[0]->value = log_gamma;
    bn.parameters()[1]->value = Matrix{{0.1, -0.3, 0.2}};
    const auto result = testing::check_bijector_gradients(bn, x);
    EXPECT_TRUE(result.ok) << result.report;
  }
}

TEST(BatchNorm, LogGammaOutsideTheClampGetsNoGradient) {
  BatchNorm bn(3, 0.1, 1e-5);
  bn.parameters()[0]->value = Matrix{{31.0, -31.0, 0.5}};
  Rng rng(5);
  const Matrix x = rng.normal(6, 3);
  Matrix z, grad_x;
  Vector logdet;
  bn.forward_train(x, {}, z, logdet);
  const Matrix grad_z = rng.normal(6, 3);
  const Vector grad_logdet = xt::ones<Real>({Index(6)});
  bn.backward(grad_z, grad_logdet, grad_x);
  const Matrix& grad = bn.parameters()[0]->grad;
  EXPECT_EQ(grad(0, 0), 0.0);
  EXPECT_EQ(grad(0, 1), 0.0);
  EXPECT_NE(grad(0, 2), 0.0);
}

}  // namespace
}  // namespace flows
