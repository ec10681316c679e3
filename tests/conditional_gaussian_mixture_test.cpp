#include "flows/conditional_gaussian_mixture.hpp"

#include <gtest/gtest.h>

#include <cmath>

#include "flows/config.hpp"
#include "flows/error.hpp"
#include "flows/gaussian_mixture.hpp"
#include "flows/registry.hpp"

namespace {

using flows::ConditionalGaussianMixture;
using flows::Index;
using flows::Matrix;
using flows::Parameter;
using flows::Real;
using flows::Rng;
using flows::Vector;

// K = 3 in 2-D, a context of 2 columns, every parameter moved off its start
// so that the network really depends on the context.
ConditionalGaussianMixture make_mixture(std::vector<Index> hidden = {8}) {
  ConditionalGaussianMixture::Options o;
  o.components = 3;
  o.hidden = std::move(hidden);
  o.activation = "tanh";
  Rng rng(3);
  ConditionalGaussianMixture g(2, 2, o, rng);
  Rng noise(4);
  for (Parameter* p : g.parameters())
    p->value += 0.3 * noise.normal(p->value.shape(0), p->value.shape(1));
  return g;
}

TEST(ConditionalGaussianMixture, LogProbIsTheMixtureOfItsRowParameters) {
  ConditionalGaussianMixture g = make_mixture();
  const Matrix z = {{0.1, 0.2}, {1.0, -1.0}};
  const Matrix c = {{0.5, -0.3}, {-1.2, 0.8}};
  const Matrix p = g.mixture_parameters(c);
  const Vector lp = g.log_prob(z, c);
  for (Index i = 0; i < 2; ++i) {
    // p(z | c) = Σ_k softmax(a)_k Π_j N(z_j; μ_kj, σ_kj²), written out.
    Real norm = 0;
    for (Index k = 0; k < 3; ++k) norm += std::exp(p(i, k));
    Real density = 0;
    for (Index k = 0; k < 3; ++k) {
      Real component = std::exp(p(i, k)) / norm;
      for (Index j = 0; j < 2; ++j) {
        const Real mu = p(i, 3 + 2 * k + j), sigma = std::exp(p(i, 9 + 2 * k + j));
        const Real u = (z(i, j) - mu) / sigma;
        component *= std::exp(-0.5 * u * u) / (sigma * std::sqrt(2 * M_PI));
      }
      density += component;
    }
    EXPECT_NEAR(lp(i), std::log(density), 1e-12);
  }
  // Different contexts give different densities at the same point.
  const Vector other = g.log_prob(Matrix{{0.1, 0.2}, {0.1, 0.2}}, c);
  EXPECT_NE(other(0), other(1));
}

TEST(ConditionalGaussianMixture, StartsAsTheUnconditionalMixtureForEveryContext) {
  ConditionalGaussianMixture::Options o;
  o.components = 4;
  Rng rng(1);
  const ConditionalGaussianMixture g(2, 3, o, rng);
  const Matrix z = {{0.3, -0.4}, {0.3, -0.4}};
  const Matrix c = {{1.0, 2.0, 3.0}, {-5.0, 0.0, 0.7}};
  const Vector lp = g.log_prob(z, c);
  EXPECT_DOUBLE_EQ(lp(0), lp(1));
  const Matrix p = g.mixture_parameters(c);
  for (Index k = 0; k < 4; ++k) EXPECT_EQ(p(0, k), 0.0);  // equal weights
}

TEST(ConditionalGaussianMixture, GradientsMatchFiniteDifferences) {
  for (const std::vector<Index>& hidden : {std::vector<Index>{}, std::vector<Index>{8}}) {
    ConditionalGaussianMixture g = make_mixture(hidden);
    const Matrix z = {{0.1, 0.2}, {1.0, -1.0}, {-2.0, 0.7}};
    const Matrix c = {{0.5, -0.3}, {-1.2, 0.8}, {0.0, 2.0}};
    const Vector w = {0.7, -1.3, 0.4};  // dL/dlog p per row
    auto loss = [&](const Matrix& zz, const Matrix& cc) {
      const Vector lp = g.log_prob(zz, cc);
      Real s = 0;
      for (Index i = 0; i < 3; ++i) s += w(i) * lp(i);
      return s;
    };
    for (Parameter* p : g.parameters()) p->zero_grad();
    Matrix grad_z;
    Matrix grad_c = xt::zeros<Real>({Index(3), Index(2)});
    g.log_prob_backward(z, c, w, grad_z, &grad_c);
    const Real h = 1e-6;
    for (Parameter* p : g.parameters())
      for (Index k = 0; k < p->value.size(); ++k) {
        const Real keep = p->value.data()[k];
        p->value.data()[k] = keep + h;
        const Real up = loss(z, c);
        p->value.data()[k] = keep - h;
        const Real down = loss(z, c);
        p->value.data()[k] = keep;
        EXPECT_NEAR(p->grad.data()[k], (up - down) / (2 * h), 1e-7) << p->name << "[" << k << "]";
      }
    for (Index i = 0; i < 3; ++i)
      for (Index j = 0; j < 2; ++j) {
        Matrix zp = z, zm = z, cp = c, cm = c;
        zp(i, j) += h;
        zm(i, j) -= h;
        cp(i, j) += h;
        cm(i, j) -= h;
        EXPECT_NEAR(grad_z(i, j), (loss(zp, c) - loss(zm, c)) / (2 * h), 1e-7) << "z";
        EXPECT_NEAR(grad_c(i, j), (loss(z, cp) - loss(z, cm)) / (2 * h), 1e-7) << "context";
      }
  }
}

TEST(ConditionalGaussianMixture, SamplesFollowTheMixtureOfTheirContext) {
  ConditionalGaussianMixture g = make_mixture();
  const Index n = 200000;
  const Matrix one = {{0.4, -0.9}};
  Matrix c({n, 2});
  for (Index i = 0; i < n; ++i) {
    c(i, 0) = one(0, 0);
    c(i, 1) = one(0, 1);
  }
  Rng rng(9);
  const Matrix s = g.sample(n, c, rng);
  const Matrix p = g.mixture_parameters(one);
  Real norm = 0;
  for (Index k = 0; k < 3; ++k) norm += std::exp(p(0, k));
  for (Index j = 0; j < 2; ++j) {
    Real mean = 0, expected = 0;
    for (Index i = 0; i < n; ++i) mean += s(i, j);
    mean /= Real(n);
    for (Index k = 0; k < 3; ++k) expected += std::exp(p(0, k)) / norm * p(0, 3 + 2 * k + j);
    EXPECT_NEAR(mean, expected, 0.02) << "dimension " << j;
  }
}

TEST(ConditionalGaussianMixture, IsBuiltByNameAndNeedsAContext) {
  flows::Registry registry;
  flows::register_builtins(registry);
  auto node = flows::ConfigNode::parse("{type: conditional_gaussian_mixture, components: 2}", "t");
  auto base = registry.make<flows::BaseDistribution>(node, flows::BuildContext{2, 3, 0, &registry});
  EXPECT_EQ(base->context_dim(), 3u);
  auto unconditional = flows::ConfigNode::parse("{type: conditional_gaussian_mixture}", "t");
  EXPECT_THROW(registry.make<flows::BaseDistribution>(unconditional,
                                                      flows::BuildContext{2, 0, 0, &registry}),
               flows::ConfigError);
  // A context of the wrong width is a DataError.
  EXPECT_THROW(base->log_prob(Matrix{{0.0, 0.0}}, Matrix{{1.0, 2.0}}), flows::DataError);
}

}  // namespace
