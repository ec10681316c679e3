// The correlated_gaussians data set against its definition: the structure
// follows the documented shape, samples have the mixture's mean and
// covariance (within statistical tolerance), the true log-density is
// normalized and equals the Gaussian density written out another way, and the
// seed fixes everything.
#include "flows/data/correlated_gaussians.hpp"

#include <gtest/gtest.h>

#include <cmath>

#include <xtensor/xmath.hpp>

#include "flows/config.hpp"
#include "flows/error.hpp"
#include "flows/registry.hpp"

namespace flows {
namespace {

constexpr Real kPi = 3.14159265358979323846;

CorrelatedGaussians mixture(Index dim, Index components, Real separation, std::uint64_t seed) {
  Rng rng(seed);
  return CorrelatedGaussians(dim, components, separation, rng);
}

TEST(CorrelatedGaussians, FactorsAreLowerTriangularWithPositiveDiagonal) {
  const CorrelatedGaussians p = mixture(5, 3, 1.0, 1);
  ASSERT_EQ(p.factors().size(), 3u);
  EXPECT_EQ(p.means().shape(0), 3u);
  EXPECT_EQ(p.means().shape(1), 5u);
  for (const Matrix& l : p.factors())
    for (Index i = 0; i < 5; ++i) {
      EXPECT_GT(l(i, i), 0);
      for (Index j = i + 1; j < 5; ++j) EXPECT_EQ(l(i, j), 0);
    }
  // Separation 0 puts every mean at the origin.
  const CorrelatedGaussians centred = mixture(4, 2, 0.0, 1);
  for (Real m : centred.means()) EXPECT_EQ(m, 0);
}

TEST(CorrelatedGaussians, OneDimensionalLogProbIsTheNormalDensity) {
  const CorrelatedGaussians p = mixture(1, 1, 2.0, 3);
  const Real mu = p.means()(0, 0), sigma = p.factors()[0](0, 0);
  Matrix x({3, 1});
  x(0, 0) = -1.5;
  x(1, 0) = 0.2;
  x(2, 0) = 4.0;
  const Vector lp = p.log_prob(x);
  for (Index i = 0; i < 3; ++i) {
    const Real z = (x(i, 0) - mu) / sigma;
    EXPECT_NEAR(lp(i), -0.5 * z * z - std::log(sigma) - 0.5 * std::log(2 * kPi), 1e-12);
  }
}

// log p of a two-component mixture in 2-D against the density written with
// the inverse covariance (Σ = L Lᵀ inverted in closed form).
TEST(CorrelatedGaussians, TwoDimensionalLogProbMatchesTheExplicitMixture) {
  const CorrelatedGaussians p = mixture(2, 2, 1.0, 4);
  Matrix x({4, 2});
  const Real rows[4][2] = {{0.1, -0.3}, {1.2, 0.8}, {-2.0, 0.5}, {0.0, 3.0}};
  for (Index i = 0; i < 4; ++i)
    for (Index j = 0; j < 2; ++j) x(i, j) = rows[i][j];
  const Vector lp = p.log_prob(x);
  for (Index i = 0; i < 4; ++i) {
    Real density = 0;
    for (Index k = 0; k < 2; ++k) {
      const Matrix& l = p.factors()[k];
      const Real s00 = l(0, 0) * l(0, 0), s01 = l(1, 0) * l(0, 0),
                 s11 = l(1, 0) * l(1, 0) + l(1, 1) * l(1, 1);
      const Real det = s00 * s11 - s01 * s01;
      const Real a = x(i, 0) - p.means()(k, 0), b = x(i, 1) - p.means()(k, 1);
      const Real q = (s11 * a * a - 2 * s01 * a * b + s00 * b * b) / det;
      density += 0.5 * std::exp(-0.5 * q) / (2 * kPi * std::sqrt(det));
    }
    EXPECT_NEAR(lp(i), std::log(density), 1e-10);
  }
}

TEST(CorrelatedGaussians, DensityIntegratesToOne) {
  const CorrelatedGaussians p = mixture(2, 3, 1.0, 5);
  // Midpoint rule on [-9, 9]² with step 0.05: the mixture's mass outside is
  // negligible (means within a few units, scales about 1).
  const Real lo = -9, h = 0.05;
  const Index m = 360;
  Matrix grid({m * m, 2});
  for (Index i = 0; i < m; ++i)
    for (Index j = 0; j < m; ++j) {
      grid(i * m + j, 0) = lo + h * (Real(i) + 0.5);
      grid(i * m + j, 1) = lo + h * (Real(j) + 0.5);
    }
  const Vector lp = p.log_prob(grid);
  Real mass = 0;
  for (Real v : lp) mass += std::exp(v) * h * h;
  EXPECT_NEAR(mass, 1.0, 1e-4);
}

// Mean (1/K) Σ μ_k and covariance (1/K) Σ (L_k L_kᵀ + μ_k μ_kᵀ) − m mᵀ.
TEST(CorrelatedGaussians, SamplesHaveTheMixturesMoments) {
  const Index d = 4, kk = 3, n = 200000;
  const CorrelatedGaussians p = mixture(d, kk, 1.0, 6);
  Rng rng(7);
  const Matrix x = p.draw(n, rng);
  ASSERT_EQ(x.shape(0), n);
  ASSERT_EQ(x.shape(1), d);
  std::vector<Real> mean(d, 0), sample_mean(d, 0);
  for (Index k = 0; k < kk; ++k)
    for (Index j = 0; j < d; ++j) mean[j] += p.means()(k, j) / Real(kk);
  for (Index r = 0; r < n; ++r)
    for (Index j = 0; j < d; ++j) sample_mean[j] += x(r, j) / Real(n);
  for (Index i = 0; i < d; ++i) {
    EXPECT_NEAR(sample_mean[i], mean[i], 0.02) << "column " << i;
    for (Index j = 0; j <= i; ++j) {
      Real cov = 0;
      for (Index k = 0; k < kk; ++k) {
        const Matrix& l = p.factors()[k];
        Real llt = 0;
        for (Index t = 0; t < d; ++t) llt += l(i, t) * l(j, t);
        cov += (llt + p.means()(k, i) * p.means()(k, j)) / Real(kk);
      }
      cov -= mean[i] * mean[j];
      Real sample_cov = 0;
      for (Index r = 0; r < n; ++r)
        sample_cov += (x(r, i) - sample_mean[i]) * (x(r, j) - sample_mean[j]) / Real(n);
      EXPECT_NEAR(sample_cov, cov, 0.03) << "entry " << i << ", " << j;
    }
  }
}

TEST(CorrelatedGaussians, LogProbRefusesTheWrongWidth) {
  const CorrelatedGaussians p = mixture(3, 2, 1.0, 1);
  EXPECT_THROW(p.log_prob(Matrix({2, 4})), DataError);
  Rng rng(0);
  EXPECT_THROW(CorrelatedGaussians(0, 2, 1.0, rng), ConfigError);
  EXPECT_THROW(CorrelatedGaussians(2, 0, 1.0, rng), ConfigError);
  EXPECT_THROW(CorrelatedGaussians(2, 2, -1.0, rng), ConfigError);
}

std::shared_ptr<Dataset> build(const std::string& yaml) {
  Registry registry;
  register_builtins(registry);
  ConfigNode node = ConfigNode::parse(yaml, "test");
  return registry.make<Dataset>(node, BuildContext{0, 0, 0, &registry});
}

TEST(CorrelatedGaussiansDataset, SeedFixesTheSplitsAndTheyDiffer) {
  const std::string yaml =
      "{type: correlated_gaussians, dim: 3, n_train: 50, n_val: 10, "
      "n_test: 20, seed: 11}";
  auto a = build(yaml), b = build(yaml);
  Rng r1(1), r2(2);
  const DataSplits s1 = a->load(r1), s2 = b->load(r2);  // the data seed wins
  EXPECT_EQ(s1.train.shape(0), 50u);
  EXPECT_EQ(s1.val.shape(0), 10u);
  EXPECT_EQ(s1.test.shape(0), 20u);
  EXPECT_EQ(s1.train.shape(1), 3u);
  EXPECT_EQ(s1.columns, (std::vector<std::string>{"x1", "x2", "x3"}));
  EXPECT_EQ(s1.train, s2.train);
  EXPECT_EQ(s1.test, s2.test);
  EXPECT_NE(xt::view(s1.train, xt::range(0, 10), xt::all()), s1.val);
  // Without a data seed, the Rng given to load() decides.
  auto c = build("{type: correlated_gaussians, dim: 3, n_train: 50}");
  Rng r3(1), r4(2);
  EXPECT_NE(c->load(r3).train, c->load(r4).train);
}

TEST(CorrelatedGaussiansDataset, DistributionIsTheOneTheSplitsComeFrom) {
  CorrelatedGaussiansOptions o;
  o.dim = 8;
  o.n_train = 4000;
  const CorrelatedGaussiansDataset data(o);
  Rng rng(9);
  const DataSplits splits = data.load(rng);
  const CorrelatedGaussians p = data.distribution(Rng(9));
  const CorrelatedGaussians other = data.distribution(Rng(10));
  EXPECT_NE(p.means(), other.means());
  // The training rows are far likelier under the distribution of their seed.
  const Real own = xt::mean(p.log_prob(splits.train))(),
             foreign = xt::mean(other.log_prob(splits.train))();
  EXPECT_GT(own, foreign + 1.0);
  // And their mean log-density is that of fresh draws of it (both estimate
  // −entropy; 4,000 rows give a standard error of a few hundredths).
  Rng fresh(123);
  const Real expected = xt::mean(p.log_prob(p.draw(20000, fresh)))();
  EXPECT_NEAR(own, expected, 0.15);
}

TEST(CorrelatedGaussiansDataset, OptionsAreChecked) {
  EXPECT_THROW(build("{type: correlated_gaussians, dim: 0}"), ConfigError);
  EXPECT_THROW(build("{type: correlated_gaussians, components: 0}"), ConfigError);
  EXPECT_THROW(build("{type: correlated_gaussians, separation: -1}"), ConfigError);
  EXPECT_THROW(build("{type: correlated_gaussians, dimension: 3}"), ConfigError);
}

}  // namespace
}  // namespace flows
