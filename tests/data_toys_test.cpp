#include "flows/data/toys.hpp"

#include <gtest/gtest.h>

#include <cmath>

#include "flows/error.hpp"

namespace flows {
namespace {

Real column_std(const Matrix& m, Index c) {
  Real mean = 0;
  for (Index i = 0; i < m.shape(0); ++i) mean += m(i, c);
  mean /= Real(m.shape(0));
  Real var = 0;
  for (Index i = 0; i < m.shape(0); ++i) var += (m(i, c) - mean) * (m(i, c) - mean);
  return std::sqrt(var / Real(m.shape(0)));
}

TEST(MakeToy, MoonsWithoutNoiseLieOnTheTwoHalfCircles) {
  Rng rng(3);
  const Index n = 101;
  const Matrix x = make_toy("moons", n, 0.0, rng);
  ASSERT_EQ(x.shape(0), n);
  ASSERT_EQ(x.shape(1), 2u);
  Index outer = 0, inner = 0;
  bool has_outer_ends[2] = {false, false};
  for (Index i = 0; i < n; ++i) {
    const Real a = x(i, 0), b = x(i, 1);
    // Outer: (cos t, sin t), t in [0, π]. Inner: (1 - cos t, 0.5 - sin t).
    const bool on_outer = std::abs(a * a + b * b - 1) < 1e-12 && b >= -1e-12;
    const bool on_inner =
        std::abs((a - 1) * (a - 1) + (b - 0.5) * (b - 0.5) - 1) < 1e-12 && b <= 0.5 + 1e-12;
    EXPECT_TRUE(on_outer != on_inner) << "point " << i << " = (" << a << ", " << b << ")";
    outer += on_outer;
    inner += on_inner;
    if (on_outer && std::abs(a - 1) < 1e-12) has_outer_ends[0] = true;
    if (on_outer && std::abs(a + 1) < 1e-12) has_outer_ends[1] = true;
  }
  // sklearn: n_out = n // 2 on the outer circle, the rest on the inner one.
  EXPECT_EQ(outer, n / 2);
  EXPECT_EQ(inner, n - n / 2);
  // linspace(0, π) includes both ends.
  EXPECT_TRUE(has_outer_ends[0] && has_outer_ends[1]);
}

TEST(MakeToy, MoonsAreShuffled) {
  Rng rng(0);
  const Matrix x = make_toy("moons", 200, 0.0, rng);
  // Unshuffled, the first half would all be on the outer circle (y >= 0, x² + y² = 1).
  Index inner_in_first_half = 0;
  for (Index i = 0; i < 100; ++i)
    if (std::abs(x(i, 0) * x(i, 0) + x(i, 1) * x(i, 1) - 1) > 1e-9) ++inner_in_first_half;
  EXPECT_GT(inner_in_first_half, 20u);
}

TEST(MakeToy, CirclesWithoutNoiseLieOnRadiusOneAndOneHalf) {
  Rng rng(1);
  const Matrix x = make_toy("circles", 51, 0.0, rng);
  Index outer = 0, inner = 0;
  for (Index i = 0; i < x.shape(0); ++i) {
    const Real r = std::hypot(x(i, 0), x(i, 1));
    if (std::abs(r - 1) < 1e-12) ++outer;
    if (std::abs(r - 0.5) < 1e-12) ++inner;
  }
  EXPECT_EQ(outer, 25u);
  EXPECT_EQ(inner, 26u);
}

TEST(MakeToy, RingsWithoutNoiseLieOnFourRadii) {
  Rng rng(1);
  const Matrix x = make_toy("rings", 103, 0.0, rng);
  Index counts[4] = {0, 0, 0, 0};
  const Real radii[4] = {3.0, 2.25, 1.5, 0.75};
  for (Index i = 0; i < x.shape(0); ++i) {
    const Real r = std::hypot(x(i, 0), x(i, 1));
    for (int k = 0; k < 4; ++k)
      if (std::abs(r - radii[k]) < 1e-12) ++counts[k];
  }
  EXPECT_EQ(counts[0], 25u);
  EXPECT_EQ(counts[1], 25u);
  EXPECT_EQ(counts[2], 25u);
  EXPECT_EQ(counts[3], 28u);
}

TEST(MakeToy, CheckerboardFillsOnlyCellsOfOneColour) {
  Rng rng(2);
  const Matrix x = make_toy("checkerboard", 4000, 0.0, rng);
  Index cells[4][4] = {};
  for (Index i = 0; i < x.shape(0); ++i) {
    ASSERT_GE(x(i, 0), -4.0);
    ASSERT_LT(x(i, 0), 4.0);
    ASSERT_GE(x(i, 1), -4.0);
    ASSERT_LT(x(i, 1), 4.0);
    const auto cx = static_cast<long>(std::floor(x(i, 0) / 2));
    const auto cy = static_cast<long>(std::floor(x(i, 1) / 2));
    EXPECT_EQ((cx + cy + 4) % 2, 0) << "point " << i << " in cell " << cx << ", " << cy;
    ++cells[cx + 2][cy + 2];
  }
  // All eight cells of the colour are used.
  for (int a = 0; a < 4; ++a)
    for (int b = 0; b < 4; ++b)
      if ((a + b) % 2 == 0) {
        EXPECT_GT(cells[a][b], 300u);
      }
}

TEST(MakeToy, EightGaussiansClusterAroundTheirCentres) {
  Rng rng(4);
  const Matrix x = make_toy("8gaussians", 2000, 0.0, rng);
  for (Index i = 0; i < x.shape(0); ++i)
    EXPECT_NEAR(std::hypot(x(i, 0), x(i, 1)), 4 / 1.414, 1e-12);
}

TEST(MakeToy, EveryToyHasTheRequestedSize) {
  for (const auto& name : toy_names()) {
    for (Index n : {Index(0), Index(1), Index(7), Index(1001)}) {
      Rng rng(5);
      const Matrix x = make_toy(name, n, toy_default_noise(name), rng);
      EXPECT_EQ(x.shape(0), n) << name;
      EXPECT_EQ(x.shape(1), 2u) << name;
    }
  }
}

TEST(MakeToy, IsReproducibleBySeed) {
  for (const auto& name : toy_names()) {
    Rng a(11), b(11), c(12);
    const Real noise = std::max(toy_default_noise(name), 0.01);
    const Matrix xa = make_toy(name, 300, noise, a);
    const Matrix xb = make_toy(name, 300, noise, b);
    const Matrix xc = make_toy(name, 300, noise, c);
    EXPECT_EQ(xa, xb) << name;
    EXPECT_NE(xa, xc) << name;
  }
}

TEST(MakeToy, EveryToyIsFiniteWithTheExpectedScale) {
  struct Expect {
    const char* name;
    Real max_abs;  // no coordinate beyond this
    Real min_std;  // each column spreads at least this much
    Real max_std;
  };
  const Expect expects[] = {
      {"moons", 2.5, 0.4, 1.0},        {"circles", 1.5, 0.4, 0.8},  {"8gaussians", 5.0, 1.5, 2.5},
      {"checkerboard", 4.0, 2.0, 2.6}, {"pinwheel", 8.0, 1.0, 3.0}, {"spirals", 5.0, 1.0, 2.5},
      {"rings", 3.6, 1.0, 2.0},
  };
  ASSERT_EQ(std::size(expects), toy_names().size());
  for (const auto& e : expects) {
    Rng rng(6);
    const Matrix x = make_toy(e.name, 5000, toy_default_noise(e.name), rng);
    for (Real v : x) {
      ASSERT_TRUE(std::isfinite(v)) << e.name;
      ASSERT_LE(std::abs(v), e.max_abs) << e.name;
    }
    for (Index c = 0; c < 2; ++c) {
      EXPECT_GT(column_std(x, c), e.min_std) << e.name << " column " << c;
      EXPECT_LT(column_std(x, c), e.max_std) << e.name << " column " << c;
    }
  }
}

TEST(MakeToy, NoiseWidensTheMoons) {
  Rng rng(7);
  const Matrix x = make_toy("moons", 5000, 0.1, rng);
  Real sum_sq = 0;
  for (Index i = 0; i < x.shape(0); ++i) {
    // Distance to the nearer of the two circles approximates the noise.
    const Real d_outer = std::abs(std::hypot(x(i, 0), x(i, 1)) - 1);
    const Real d_inner = std::abs(std::hypot(x(i, 0) - 1, x(i, 1) - 0.5) - 1);
    const Real d = std::min(d_outer, d_inner);
    sum_sq += d * d;
  }
  const Real rms = std::sqrt(sum_sq / 5000);
  EXPECT_GT(rms, 0.05);
  EXPECT_LT(rms, 0.12);
}

TEST(MakeToy, UnknownNameIsAConfigErrorListingTheToys) {
  Rng rng(0);
  try {
    make_toy("moon", 10, 0.1, rng);
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("'moon'"), std::string::npos) << what;
    EXPECT_NE(what.find("did you mean 'moons'"), std::string::npos) << what;
    EXPECT_NE(what.find("checkerboard"), std::string::npos) << what;
  }
}

TEST(MakeToy, NegativeNoiseIsAConfigError) {
  Rng rng(0);
  EXPECT_THROW(make_toy("moons", 10, -0.1, rng), ConfigError);
}

}  // namespace
}  // namespace flows
