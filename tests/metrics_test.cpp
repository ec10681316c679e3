#include "flows/metrics.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "flows/error.hpp"
#include "flows/rng.hpp"

namespace flows {
namespace {

const Real kPi = 3.14159265358979323846;

// rows x d with N(mean, s² I) rows.
Matrix gaussian(Rng& rng, Index rows, const std::vector<Real>& mean, Real s) {
  Matrix x = rng.normal(rows, mean.size());
  for (Index i = 0; i < rows; ++i)
    for (Index k = 0; k < mean.size(); ++k) x(i, k) = mean[k] + s * x(i, k);
  return x;
}

Matrix reversed_rows(const Matrix& x) {
  Matrix out = x;
  for (Index i = 0; i < x.shape(0); ++i)
    for (Index k = 0; k < x.shape(1); ++k) out(i, k) = x(x.shape(0) - 1 - i, k);
  return out;
}

// The unbiased estimator written out term by term, O(n²) with no blocking.
Real naive_mmd2(const Matrix& x, const Matrix& y, Real h) {
  auto k = [h](const Matrix& a, Index i, const Matrix& b, Index j) {
    Real s = 0;
    for (Index c = 0; c < a.shape(1); ++c) s += (a(i, c) - b(j, c)) * (a(i, c) - b(j, c));
    return std::exp(-s / (2 * h * h));
  };
  const Index m = x.shape(0), n = y.shape(0);
  Real kxx = 0, kyy = 0, kxy = 0;
  for (Index i = 0; i < m; ++i)
    for (Index j = 0; j < m; ++j)
      if (i != j) kxx += k(x, i, x, j);
  for (Index i = 0; i < n; ++i)
    for (Index j = 0; j < n; ++j)
      if (i != j) kyy += k(y, i, y, j);
  for (Index i = 0; i < m; ++i)
    for (Index j = 0; j < n; ++j) kxy += k(x, i, y, j);
  return kxx / Real(m * (m - 1)) + kyy / Real(n * (n - 1)) - 2 * kxy / Real(m * n);
}

TEST(Mmd, UnbiasedEstimatorMatchesHandComputationOnTinyInputs) {
  // x = {0, 1, 2}, y = {0.5, 3} in 1-D, h = 1, k = exp(-d²/2).
  const Matrix x = {{0}, {1}, {2}};
  const Matrix y = {{0.5}, {3}};
  using std::exp;
  // Σ_{i≠j} k(x_i,x_j) / (3·2): pairs at distance 1, 2, 1, each counted twice.
  const Real kxx = 2 * (2 * exp(-0.5) + exp(-2.0)) / 6;
  // Σ_{i≠j} k(y_i,y_j) / (2·1): one pair at distance 2.5, counted twice.
  const Real kyy = 2 * exp(-3.125) / 2;
  // Σ_{i,j} k(x_i,y_j) / (3·2): distances 0.5, 3 | 0.5, 2 | 1.5, 1.
  const Real kxy =
      (exp(-0.125) + exp(-4.5) + exp(-0.125) + exp(-2.0) + exp(-1.125) + exp(-0.5)) / 6;
  const MmdResult r = mmd_squared(x, y, 1.0);
  EXPECT_EQ(r.bandwidth, 1.0);
  EXPECT_NEAR(r.mmd2, kxx + kyy - 2 * kxy, 1e-14);
}

TEST(Mmd, BlockedSumsMatchNaiveSumsAcrossSeveralBlocks) {
  // 700 and 450 rows: more than one block of rows for both the xx and xy sums.
  Rng rng(3);
  const Matrix x = gaussian(rng, 700, {0, 0, 0}, 1);
  const Matrix y = gaussian(rng, 450, {0.3, -0.2, 0}, 1.2);
  const MmdResult r = mmd_squared(x, y, 0.8);
  EXPECT_NEAR(r.mmd2, naive_mmd2(x, y, 0.8), 1e-12);
}

TEST(Mmd, IdenticalSamplesGiveAtMostZeroAndWithinTwoOverN) {
  // With y = x the unbiased estimate is 2S/(m²(m-1)) - 2/m for S = Σ_{i<j}
  // k(x_i,x_j) ∈ [0, m(m-1)/2]: in [-2/m, 0].
  Rng rng(4);
  const Matrix x = gaussian(rng, 300, {1, 2}, 1);
  const MmdResult r = mmd_squared(x, x);
  EXPECT_LE(r.mmd2, 1e-12);
  EXPECT_GE(r.mmd2, -2.0 / 300);
  Rng a(9), b(9);
  EXPECT_EQ(sliced_wasserstein(x, x, 64, a), 0.0);
}

TEST(Mmd, ClosedFormForTwoGaussiansWithinStandardErrors) {
  // N(μ1, s²I) vs N(μ2, s²I), fixed h:
  // MMD² = 2 (h²/(h²+2s²))^{d/2} (1 - exp(-|Δ|²/(2(h²+2s²)))).
  const Real s = 1, h = 1.5, d = 3;
  const std::vector<Real> mu1 = {0, 0, 0}, mu2 = {1, -1, 0};
  const Real delta2 = 2;
  const Real c = h * h + 2 * s * s;
  const Real expected = 2 * std::pow(h * h / c, d / 2) * (1 - std::exp(-delta2 / (2 * c)));
  Rng rng(5);
  const int reps = 10;
  std::vector<Real> values;
  for (int r = 0; r < reps; ++r) {
    const Matrix x = gaussian(rng, 600, mu1, s);
    const Matrix y = gaussian(rng, 600, mu2, s);
    values.push_back(mmd_squared(x, y, h).mmd2);
  }
  Real mean = 0, var = 0;
  for (Real v : values) mean += v / reps;
  for (Real v : values) var += (v - mean) * (v - mean) / (reps - 1);
  const Real se = std::sqrt(var / reps);
  EXPECT_GT(se, 0);
  EXPECT_NEAR(mean, expected, 4 * se) << "expected " << expected << " se " << se;
  // The estimate is informative: the truth is far from 0 on this scale.
  EXPECT_GT(expected, 20 * se);
}

TEST(Mmd, UnbiasedForEqualDistributions) {
  // Same distribution: E[MMD²_u] = 0 (the biased V-statistic would sit near
  // 2(1 - (h²/(h²+2s²))^{d/2})/n > 0).
  Rng rng(6);
  const int reps = 30;
  std::vector<Real> values;
  for (int r = 0; r < reps; ++r) {
    const Matrix x = gaussian(rng, 100, {0, 0}, 1);
    const Matrix y = gaussian(rng, 100, {0, 0}, 1);
    values.push_back(mmd_squared(x, y, 1.0).mmd2);
  }
  Real mean = 0, var = 0;
  for (Real v : values) mean += v / reps;
  for (Real v : values) var += (v - mean) * (v - mean) / (reps - 1);
  const Real se = std::sqrt(var / reps);
  EXPECT_NEAR(mean, 0, 4 * se);
  const Real v_statistic_bias = 2 * (1 - 1.0 / 3) / 100;
  EXPECT_LT(4 * se, v_statistic_bias);  // so the check above can tell them apart
}

TEST(Mmd, MedianHeuristicOnHandMadeSets) {
  // Pooled {0, 1, 3}: distances 1, 3, 2 -> median 2.
  EXPECT_DOUBLE_EQ(mmd_squared(Matrix{{0}, {1}}, Matrix{{3}, {3}}).bandwidth, 2.0);
  // Pooled {0, 1, 3, 7}: distances 1, 3, 7, 2, 6, 4 -> (3 + 4) / 2.
  EXPECT_DOUBLE_EQ(mmd_squared(Matrix{{0}, {1}}, Matrix{{3}, {7}}).bandwidth, 3.5);
  // 2-D, pooled (0,0), (3,4), (0,4), (3,0): distances 5, 4, 3, 3, 4, 5 -> 4.
  EXPECT_DOUBLE_EQ(mmd_squared(Matrix{{0, 0}, {3, 4}}, Matrix{{0, 4}, {3, 0}}).bandwidth, 4.0);
  // Mostly equal rows: the median of the positive distances (all 2).
  EXPECT_DOUBLE_EQ(mmd_squared(Matrix{{1}, {1}, {1}}, Matrix{{1}, {3}}).bandwidth, 2.0);
  // All rows equal: h = 1 and MMD² = 0.
  const MmdResult same = mmd_squared(Matrix{{2, 2}, {2, 2}}, Matrix{{2, 2}, {2, 2}});
  EXPECT_EQ(same.bandwidth, 1.0);
  EXPECT_NEAR(same.mmd2, 0, 1e-15);
}

TEST(Mmd, MedianHeuristicIsDeterministicOnLargeInputs) {
  Rng rng(7);
  const Matrix x = gaussian(rng, 1200, {0, 0}, 1);
  const Matrix y = gaussian(rng, 900, {1, 0}, 1);
  const MmdResult a = mmd_squared(x, y);
  const MmdResult b = mmd_squared(x, y);
  EXPECT_EQ(a.bandwidth, b.bandwidth);
  EXPECT_EQ(a.mmd2, b.mmd2);
  // Distances between N(0,I) and N(e1,I) points in 2-D are a few units.
  EXPECT_GT(a.bandwidth, 1.0);
  EXPECT_LT(a.bandwidth, 2.5);
}

TEST(Mmd, SymmetricAndInvariantToRowOrder) {
  Rng rng(8);
  const Matrix x = gaussian(rng, 120, {0, 0, 0}, 1);
  const Matrix y = gaussian(rng, 90, {0.5, 0, 0}, 2);
  const MmdResult xy = mmd_squared(x, y);
  const MmdResult yx = mmd_squared(y, x);
  EXPECT_NEAR(xy.mmd2, yx.mmd2, 1e-13);
  EXPECT_EQ(xy.bandwidth, yx.bandwidth);
  const MmdResult rev = mmd_squared(reversed_rows(x), reversed_rows(y));
  EXPECT_NEAR(xy.mmd2, rev.mmd2, 1e-13);
  EXPECT_EQ(xy.bandwidth, rev.bandwidth);
}

// The Gaussian kernel depends on differences only, so moving both samples by
// the same offset leaves MMD² unchanged. An offset of 10⁶ times the spread
// must not turn |a|² + |b|² − 2a·b into rounding noise.
TEST(Mmd, FarFromTheOriginEqualsTheCentredValue) {
  Rng rng(9);
  const Matrix x = gaussian(rng, 200, {0, 0, 0}, 1);
  const Matrix y = gaussian(rng, 150, {0.3, 0, -0.2}, 1.2);
  const Matrix far_x = x + 1e6, far_y = y + 1e6;
  for (const Real h : {0.0, 1.0}) {
    SCOPED_TRACE(h == 0 ? "median heuristic" : "bandwidth 1");
    const MmdResult near = mmd_squared(x, y, h);
    const MmdResult far = mmd_squared(far_x, far_y, h);
    EXPECT_GT(near.mmd2, 1e-3);
    EXPECT_NEAR(far.bandwidth, near.bandwidth, 1e-8);
    EXPECT_NEAR(far.mmd2, near.mmd2, 1e-8);
    EXPECT_NEAR(far.mmd2, naive_mmd2(far_x, far_y, far.bandwidth), 1e-10);
  }
}

TEST(Mmd, RejectsBadInputs) {
  const Matrix two = {{0, 0}, {1, 1}};
  EXPECT_THROW(mmd_squared(two, Matrix{{0, 0, 0}, {1, 1, 1}}), DataError);
  EXPECT_THROW(mmd_squared(two, Matrix{{0, 0}}), DataError);
  EXPECT_THROW(mmd_squared(Matrix{{0, 0}}, two), DataError);
  EXPECT_THROW(mmd_squared(two, Matrix{{0, 0}, {1, std::nan("")}}), DataError);
  EXPECT_THROW(mmd_squared(two, two, -1.0), ConfigError);
}

TEST(SlicedWasserstein, ShiftGivesTwoOverPiTimesNormIn2d) {
  // y = x + Δ: along θ every projection moves by θ·Δ, so W1 = |θ·Δ| exactly,
  // and E|θ·Δ| = |Δ| E|cos φ| = |Δ| 2/π for θ uniform on the circle.
  Rng rng(10);
  const Matrix x = gaussian(rng, 200, {0, 0}, 1);
  Matrix y = x;
  for (Index i = 0; i < y.shape(0); ++i) {
    y(i, 0) += 3;
    y(i, 1) -= 4;
  }
  const Index p = 4000;
  Rng dirs(11);
  const Real sw = sliced_wasserstein(x, y, p, dirs);
  // sd of |cos φ| is sqrt(1/2 - 4/π²) ≈ 0.31; 4 standard errors of the mean.
  const Real tol = 5 * 4 * std::sqrt(0.5 - 4 / (kPi * kPi)) / std::sqrt(Real(p));
  EXPECT_NEAR(sw, 5 * 2 / kPi, tol);
}

TEST(SlicedWasserstein, ExactW1OfUnequalSizesIn1d) {
  // F⁻¹ of {0, 1, 3} against G⁻¹ of {0.5, 2} on the grid 0, 1/3, 1/2, 2/3, 1:
  // 1/3·0.5 + 1/6·0.5 + 1/6·1 + 1/3·1 = 3/4. In 1-D each direction is ±1.
  const Matrix x = {{3}, {0}, {1}};
  const Matrix y = {{2}, {0.5}};
  Rng rng(12);
  EXPECT_NEAR(sliced_wasserstein(x, y, 5, rng), 0.75, 1e-15);
  // {0, 0, 1, 1} vs {0, 1, 2}: ∫|F - G| = 1/6 (on [0,1)) + 1/3 (on [1,2)) = 1/2.
  EXPECT_NEAR(sliced_wasserstein(Matrix{{0}, {1}, {0}, {1}}, Matrix{{2}, {1}, {0}}, 3, rng), 0.5,
              1e-15);
}

TEST(SlicedWasserstein, PointMassesGiveTheirDistance) {
  Rng rng(13);
  Matrix x = xt::empty<Real>({Index(4), Index(1)});
  Matrix y = xt::empty<Real>({Index(7), Index(1)});
  x.fill(2.0);
  y.fill(-1.5);
  EXPECT_NEAR(sliced_wasserstein(x, y, 3, rng), 3.5, 1e-14);
  // In 2-D, point masses at distance 1 give |θ·Δ| per direction: 2/π on average.
  Matrix a = xt::zeros<Real>({Index(3), Index(2)});
  Matrix b = xt::zeros<Real>({Index(5), Index(2)});
  for (Index i = 0; i < 5; ++i) b(i, 1) = 1;
  const Index p = 4000;
  const Real tol = 4 * std::sqrt(0.5 - 4 / (kPi * kPi)) / std::sqrt(Real(p));
  EXPECT_NEAR(sliced_wasserstein(a, b, p, rng), 2 / kPi, tol);
}

TEST(SlicedWasserstein, SymmetricAndInvariantToRowOrder) {
  Rng rng(14);
  const Matrix x = gaussian(rng, 150, {0, 0, 0}, 1);
  const Matrix y = gaussian(rng, 110, {1, 0, -1}, 0.5);
  Rng a(15), b(15), c(15);
  const Real xy = sliced_wasserstein(x, y, 50, a);
  EXPECT_GT(xy, 0.3);
  EXPECT_NEAR(sliced_wasserstein(y, x, 50, b), xy, 1e-13);
  EXPECT_NEAR(sliced_wasserstein(reversed_rows(x), reversed_rows(y), 50, c), xy, 1e-13);
}

TEST(SlicedWasserstein, RejectsBadInputs) {
  Rng rng(16);
  const Matrix x = {{0, 0}, {1, 1}};
  EXPECT_THROW(sliced_wasserstein(x, Matrix{{0, 0, 0}}, 4, rng), DataError);
  EXPECT_THROW(sliced_wasserstein(x, Matrix(xt::empty<Real>({Index(0), Index(2)})), 4, rng),
               DataError);
  EXPECT_THROW(sliced_wasserstein(x, Matrix{{0, INFINITY}}, 4, rng), DataError);
  EXPECT_THROW(sliced_wasserstein(x, x, 0, rng), ConfigError);
}

TEST(SampleQuality, SubsamplesToTheSmallerSideAndIsDeterministic) {
  Rng rng(17);
  const Matrix data = gaussian(rng, 500, {0, 0}, 1);
  const Matrix samples = gaussian(rng, 300, {2, 0}, 1);
  Rng a(18), b(18);
  const SampleQuality qa = sample_quality(data, samples, a, 400, 32);
  const SampleQuality qb = sample_quality(data, samples, b, 400, 32);
  EXPECT_EQ(qa.rows, 300u);
  EXPECT_EQ(qa.projections, 32u);
  EXPECT_EQ(qa.mmd.mmd2, qb.mmd.mmd2);
  EXPECT_EQ(qa.sliced_w1, qb.sliced_w1);
  // A shift of 2 along one axis: SW1 ≈ 2·2/π, MMD² clearly positive.
  EXPECT_NEAR(qa.sliced_w1, 4 / kPi, 0.35);
  EXPECT_GT(qa.mmd.mmd2, 0.1);
  EXPECT_GT(qa.mmd.bandwidth, 0);
  EXPECT_EQ(sample_quality(data, samples, a, 100, 8).rows, 100u);
  EXPECT_THROW(sample_quality(data, samples, a, 1, 8), ConfigError);
  EXPECT_THROW(sample_quality(data, samples, a, 100, 0), ConfigError);
  EXPECT_THROW(sample_quality(data, Matrix{{0, 0, 0}, {1, 1, 1}}, a), DataError);
}

TEST(SampleQuality, SameDistributionScoresNearZero) {
  Rng rng(19);
  const Matrix data = gaussian(rng, 1000, {0, 0, 0, 0}, 1);
  const Matrix samples = gaussian(rng, 1000, {0, 0, 0, 0}, 1);
  Rng r(20);
  const SampleQuality q = sample_quality(data, samples, r, 1000, 64);
  EXPECT_EQ(q.rows, 1000u);
  EXPECT_LT(std::abs(q.mmd.mmd2), 0.005);
  EXPECT_LT(q.sliced_w1, 0.1);
}

}  // namespace
}  // namespace flows
