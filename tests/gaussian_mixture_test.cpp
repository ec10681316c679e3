// The gaussian_mixture base (issue 16): log_prob against the closed form,
// hand-written gradients against finite differences, sampling moments, and
// the registry.
#include <gtest/gtest.h>

#include <cmath>

#include "flows/config.hpp"
#include "flows/gaussian_mixture.hpp"
#include "flows/normal.hpp"
#include "flows/registry.hpp"

namespace flows {
namespace {

// A 2-component, 2-D mixture with distinct weights, means and scales.
GaussianMixture make_mixture() {
  Rng rng(1);
  GaussianMixture::Options o;
  o.components = 2;
  GaussianMixture g(2, o, rng);
  g.logits().value = Matrix{{0.3, -0.4}};
  g.means().value = Matrix{{-1.0, 0.5}, {2.0, -1.5}};
  g.log_scales().value = Matrix{{0.2, -0.3}, {-0.1, 0.4}};
  return g;
}

TEST(GaussianMixture, LogProbMatchesTheClosedForm) {
  GaussianMixture g = make_mixture();
  const Matrix z = {{0.1, 0.2}, {3.0, -2.0}, {-40.0, 35.0}};
  const Vector lp = g.log_prob(z, {});
  const Real w0 = std::exp(0.3) / (std::exp(0.3) + std::exp(-0.4)), w1 = 1 - w0;
  auto normal = [](Real x, Real mu, Real log_sigma) {
    const Real s = std::exp(log_sigma);
    return std::exp(-0.5 * (x - mu) * (x - mu) / (s * s)) / (s * std::sqrt(2 * M_PI));
  };
  for (Index i = 0; i < 2; ++i) {
    const Real p = w0 * normal(z(i, 0), -1.0, 0.2) * normal(z(i, 1), 0.5, -0.3) +
                   w1 * normal(z(i, 0), 2.0, -0.1) * normal(z(i, 1), -1.5, 0.4);
    EXPECT_NEAR(lp(i), std::log(p), 1e-12) << "row " << i;
  }
  // Far out, where every density underflows: log-sum-exp keeps it finite.
  EXPECT_TRUE(std::isfinite(lp(2)));
  EXPECT_LT(lp(2), -500);
}

TEST(GaussianMixture, OneComponentIsTheDiagonalNormal) {
  Rng rng(2);
  GaussianMixture::Options o;
  o.components = 1;
  o.log_scale = 0.7;
  GaussianMixture g(3, o, rng);
  g.means().value = Matrix{{0.0, 0.0, 0.0}};
  DiagonalNormal d(3, 0.0, 0.7);
  const Matrix z = Rng(3).normal(5, 3);
  const Vector a = g.log_prob(z, {}), b = d.log_prob(z, {});
  for (Index i = 0; i < 5; ++i) EXPECT_NEAR(a(i), b(i), 1e-12);
}

TEST(GaussianMixture, GradientsMatchFiniteDifferences) {
  GaussianMixture g = make_mixture();
  const Matrix z = {{0.1, 0.2}, {1.0, -1.0}, {-2.0, 0.7}};
  const Vector w = {0.7, -1.3, 0.4};  // dL/dlog p per row
  auto loss = [&]() {
    const Vector lp = g.log_prob(z, {});
    Real s = 0;
    for (Index i = 0; i < 3; ++i) s += w(i) * lp(i);
    return s;
  };
  for (Parameter* p : g.parameters()) p->zero_grad();
  Matrix grad_z;
  g.log_prob_backward(z, {}, w, grad_z, nullptr);
  const Real h = 1e-6;
  for (Parameter* p : g.parameters())
    for (Index k = 0; k < p->value.size(); ++k) {
      const Real keep = p->value.data()[k];
      p->value.data()[k] = keep + h;
      const Real up = loss();
      p->value.data()[k] = keep - h;
      const Real down = loss();
      p->value.data()[k] = keep;
      EXPECT_NEAR(p->grad.data()[k], (up - down) / (2 * h), 1e-7) << p->name << "[" << k << "]";
    }
  for (Index i = 0; i < 3; ++i)
    for (Index j = 0; j < 2; ++j) {
      Matrix plus = z, minus = z;
      plus(i, j) += h;
      minus(i, j) -= h;
      const Real fd = w(i) * (g.log_prob(plus, {})(i) - g.log_prob(minus, {})(i)) / (2 * h);
      EXPECT_NEAR(grad_z(i, j), fd, 1e-7) << "z " << i << "," << j;
    }
}

TEST(GaussianMixture, SamplingMomentsMatchTheMixture) {
  GaussianMixture g = make_mixture();
  Rng rng(5);
  const Index n = 400000;
  const Matrix s = g.sample(n, {}, rng);
  const Matrix pi = g.weights();
  for (Index j = 0; j < 2; ++j) {
    Real mean = 0, second = 0;
    for (Index c = 0; c < 2; ++c) {
      const Real mu = g.means().value(c, j), sigma = std::exp(g.log_scales().value(c, j));
      mean += pi(0, c) * mu;
      second += pi(0, c) * (sigma * sigma + mu * mu);
    }
    const Real var = second - mean * mean;
    Real m = 0, v = 0;
    for (Index i = 0; i < n; ++i) m += s(i, j);
    m /= n;
    for (Index i = 0; i < n; ++i) v += (s(i, j) - m) * (s(i, j) - m);
    v /= n - 1;
    // 5 standard errors of the mean and (roughly) of the variance.
    EXPECT_NEAR(m, mean, 5 * std::sqrt(var / n)) << "column " << j;
    EXPECT_NEAR(v, var, 5 * var * std::sqrt(4.0 / n)) << "column " << j;
  }
}

TEST(GaussianMixture, IsBuiltByNameWithItsOptions) {
  Registry registry;
  register_builtins(registry);
  ConfigNode node =
      ConfigNode::parse("{type: gaussian_mixture, components: 3, init_spread: 2.0}", "test");
  auto base = registry.make<BaseDistribution>(node, BuildContext{4, 0, 9, &registry});
  auto* g = dynamic_cast<GaussianMixture*>(base.get());
  ASSERT_NE(g, nullptr);
  EXPECT_EQ(g->components(), 3u);
  EXPECT_EQ(g->dim(), 4u);
  // Distinct initial means (the symmetry between components is broken).
  EXPECT_NE(g->means().value(0, 0), g->means().value(1, 0));
  ConfigNode bad = ConfigNode::parse("{type: gaussian_mixture, components: 0}", "test");
  EXPECT_THROW(registry.make<BaseDistribution>(bad, BuildContext{4, 0, 9, &registry}), ConfigError);
}

}  // namespace
}  // namespace flows
