// The bounds of model.bounds and the standalone logit (issue 16): the
// bijector contract, log-determinants against finite differences at the
// edges, samples that never leave the box, densities that integrate to 1, and
// the errors for data outside the bounds.
#define FLOWS_BIJECTOR_CONTRACT_INSTANTIATE_ONLY
#include <flows/testing/bijector_contract.hpp>

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <limits>

#include "flows/bounds.hpp"
#include "flows/flow.hpp"
#include "flows/normal.hpp"
#include "flows/pipeline.hpp"
#include "flows/standardize.hpp"
#include "runner_support.hpp"

namespace flows {
namespace {

using testing::BijectorCase;
using testing::BijectorContract;
constexpr Real kInf = std::numeric_limits<Real>::infinity();

// The random contract inputs are N(0, 1): the boxes hold them with room to spare.
INSTANTIATE_TEST_SUITE_P(
    Bounds, BijectorContract,
    ::testing::Values(
        BijectorCase{"bounds_every_kind", "",
                     "{type: bounds, bounds: [[-10, 10], [-10, null], [null, 10], [null, null]]}",
                     4},
        BijectorCase{"bounds_tight_box", "", "{type: bounds, bounds: [-8, 9]}", 3},
        BijectorCase{"logit_realnvp_alpha", "", "{type: logit, alpha: 0.05, low: -10, high: 10}",
                     2},
        BijectorCase{"logit_no_alpha", "", "{type: logit, alpha: 0, low: -12, high: 11}", 3}),
    testing::bijector_case_name);

// log|dy/dx| per row against a central difference of the elementwise map.
void expect_logdet_matches_differences(const Bijector& b, const Matrix& x) {
  const Transformed t = b.forward(x);
  for (Index i = 0; i < x.shape(0); ++i) {
    Real expected = 0;
    for (Index j = 0; j < x.shape(1); ++j) {
      const Real h = 1e-6 * std::max(Real(1e-3), std::abs(x(i, j)));
      Matrix plus = x, minus = x;
      plus(i, j) += h;
      minus(i, j) -= h;
      const Real slope = (b.forward(plus).value(i, j) - b.forward(minus).value(i, j)) / (2 * h);
      expected += std::log(std::abs(slope));
    }
    EXPECT_NEAR(t.logdet(i), expected, 1e-5 * (1 + std::abs(expected))) << "row " << i;
  }
}

TEST(Bounds, LogDetMatchesFiniteDifferencesNearTheEdges) {
  Bounds box({{0, 1}, {0, kInf}, {-kInf, 2}, {-3, 7}});
  const Matrix x = {
      {1e-3, 1e-3, 2 - 1e-3, -3 + 1e-2}, {0.5, 0.5, 1.5, 2.0}, {1 - 1e-3, 40.0, -40.0, 7 - 1e-2}};
  expect_logdet_matches_differences(box, x);
  Logit logit(2, 0.05);
  expect_logdet_matches_differences(logit, Matrix{{0.0, 1.0}, {0.3, 0.999}});
}

TEST(Bounds, TrainingGradientMatchesFiniteDifferencesOfTheLoss) {
  // L = Σ_ij a_ij y_ij + Σ_i b_i logdet_i; dL/dx from backward vs differences.
  Bounds box({{0, 1}, {0, kInf}, {-kInf, 2}});
  const Matrix x = {{0.02, 0.01, 1.9}, {0.7, 3.0, -5.0}};
  const Matrix a = {{0.3, -1.2, 0.5}, {2.0, 0.1, -0.7}};
  const Vector w = {0.9, -1.4};
  auto loss = [&](const Matrix& in) {
    const Transformed t = box.forward(in);
    Real s = 0;
    for (Index i = 0; i < in.shape(0); ++i) {
      s += w(i) * t.logdet(i);
      for (Index j = 0; j < in.shape(1); ++j) s += a(i, j) * t.value(i, j);
    }
    return s;
  };
  Matrix z, grad_x;
  Vector logdet;
  box.forward_train(x, {}, z, logdet);
  box.backward(a, w, grad_x);
  for (Index i = 0; i < x.shape(0); ++i)
    for (Index j = 0; j < x.shape(1); ++j) {
      const Real h = 1e-7;
      Matrix plus = x, minus = x;
      plus(i, j) += h;
      minus(i, j) -= h;
      const Real fd = (loss(plus) - loss(minus)) / (2 * h);
      EXPECT_NEAR(grad_x(i, j), fd, 1e-5 * (1 + std::abs(fd))) << i << "," << j;
    }
}

// Heavy training pushes the latent far out: a base with σ = e^6 gives latents
// in the thousands, where the sigmoid and softplus saturate. No sample may
// leave the closed box.
TEST(Bounds, SamplesNeverLeaveTheBoxOnAMillionSamples) {
  const std::vector<ColumnBounds> boxes = {{0, 1}, {0, kInf}, {-kInf, 1}, {-3, 7}};
  for (Real log_scale : {0.0, 6.0}) {
    auto bounds = std::make_shared<Bounds>(boxes);
    auto base = std::make_shared<DiagonalNormal>(4, 0.0, log_scale);
    Flow flow(base, {bounds});
    Rng rng(11);
    const Matrix s = flow.sample(1000000, rng);
    Index outside = 0;
    for (Index i = 0; i < s.shape(0); ++i)
      for (Index j = 0; j < 4; ++j)
        if (!(s(i, j) >= boxes[j].low && s(i, j) <= boxes[j].high)) ++outside;
    EXPECT_EQ(outside, 0) << "log σ of the base " << log_scale;
    EXPECT_TRUE(bounds->contains(s));
  }
}

// ∫ p(x) dx = 1 over the box (midpoint rule on a fine grid; the density
// vanishes at the ends).
Real integrate(const Flow& flow, Real low, Real high, Index n) {
  Matrix x = xt::empty<Real>({n, Index{1}});
  const Real h = (high - low) / static_cast<Real>(n);
  for (Index i = 0; i < n; ++i) x(i, 0) = low + (static_cast<Real>(i) + 0.5) * h;
  const Vector lp = flow.log_prob(x);
  Real sum = 0;
  for (Real v : lp) sum += std::exp(v) * h;
  return sum;
}

TEST(Bounds, OneDimensionalBoundedDensitiesIntegrateToOne) {
  {
    // [0, 2] after a standardization-like affine map and a shifted, wider base.
    auto bounds = std::make_shared<Bounds>(std::vector<ColumnBounds>{{0, 2}});
    auto scale = std::make_shared<Standardize>(Matrix{{0.3}}, Matrix{{1.7}});
    Flow flow(std::make_shared<DiagonalNormal>(1, 0.4, 0.3), {bounds, scale});
    EXPECT_NEAR(integrate(flow, 0, 2, 400000), 1.0, 1e-6);
  }
  {
    // [0, ∞) with softplus: the mass beyond 60 is below 1e-300.
    auto bounds = std::make_shared<Bounds>(std::vector<ColumnBounds>{{0, kInf}});
    Flow flow(std::make_shared<DiagonalNormal>(1, 1.0, 0.5), {bounds});
    EXPECT_NEAR(integrate(flow, 0, 60, 600000), 1.0, 1e-6);
  }
  {
    // The standalone logit on [0, 1] with α = 0.05: the density lives on the
    // widened interval (−α/(1−2α), 1 + α/(1−2α)).
    const Real wide = 0.05 / 0.9;
    Flow flow(std::make_shared<StandardNormal>(1), {std::make_shared<Logit>(1, 0.05)});
    EXPECT_NEAR(integrate(flow, -wide, 1 + wide, 400000), 1.0, 1e-6);
  }
}

TEST(Bounds, ValuesOnOrOutsideTheBoundsAreRefusedByRowAndColumn) {
  Bounds box({{0, 1}, {-kInf, kInf}, {0, kInf}}, {"share", "free", "count"});
  const Matrix ok = {{0.5, -9, 3}, {0.1, 9, 0.01}};
  EXPECT_NO_THROW(box.check(ok, "the test split"));
  try {
    box.check(Matrix{{0.5, 0, 1}, {0.2, 0, 2}, {1.0, 0, 3}}, "the test split");
    ADD_FAILURE() << "a value on the upper end was accepted";
  } catch (const DataError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("the test split: row 3, column 'share'"), std::string::npos) << what;
    EXPECT_NE(what.find("on the bounds [0, 1]"), std::string::npos) << what;
  }
  try {
    box.forward(Matrix{{0.5, 0, 1}, {0.5, 0, -2}});
    ADD_FAILURE() << "forward accepted a value below the lower end";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("row 2, column 'count'"), std::string::npos) << e.what();
  }
  // A dequantized column's bin [x, x + 1) must fit: 9 in [0, 10] is fine, 10 is not.
  Bounds counts({{0, 10}}, {"k"});
  EXPECT_NO_THROW(counts.check(Matrix{{0}, {9}}, "train", {1.0}));
  EXPECT_THROW(counts.check(Matrix{{0}, {10}}, "train", {1.0}), DataError);
}

TEST(Bounds, ReadsEveryFormOfModelBounds) {
  auto read = [](const std::string& yaml, std::vector<std::string> columns) {
    ConfigNode node = ConfigNode::parse(yaml, "test");
    return read_bounds(node, "bounds", 3, columns);
  };
  auto all = read("bounds: [0, 1]", {});
  for (const auto& b : all) EXPECT_TRUE(b.low == 0 && b.high == 1);
  auto list = read("bounds: [[0, 1], [0, null], [null, null]]", {});
  EXPECT_TRUE(list[1].lower_bounded() && !list[1].upper_bounded());
  EXPECT_FALSE(list[2].bounded());
  auto named = read("bounds: {b: [null, 5]}", {"a", "b", "c"});
  EXPECT_FALSE(named[0].bounded());
  EXPECT_TRUE(!named[1].lower_bounded() && named[1].high == 5);
  try {
    read("bounds: {z: [0, 1]}", {"a", "b", "c"});
    ADD_FAILURE() << "an unknown column was accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("no column 'z' in the data (its columns: a, b, c)"),
              std::string::npos)
        << e.what();
  }
  EXPECT_THROW(read("bounds: [1, 0]", {}), ConfigError);
  EXPECT_THROW(read("bounds: [[0, 1], [0, 1]]", {}), ConfigError);  // 2 pairs for 3 columns
  EXPECT_THROW(read("bounds: [0, zero]", {}), ConfigError);
}

TEST(Logit, RefusesInputsOutsideItsDomainByRowAndColumn) {
  Logit logit(2, 0.05);
  EXPECT_NO_THROW(logit.forward(Matrix{{0.0, 1.0}}));  // the ends are inside the widened domain
  try {
    logit.forward(Matrix{{0.5, 0.5}, {0.5, 1.2}});
    ADD_FAILURE() << "1.2 was accepted";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("row 2 of the batch, column 1"), std::string::npos)
        << e.what();
  }
  EXPECT_THROW(Logit(2, 0.5), ConfigError);
}

// model.bounds in a pipeline: the bounds come first in the chain, then the
// standardization; a row outside them is refused when the pipeline loads,
// naming split, row and column.
TEST(Bounds, PipelinePutsTheBoundsFirstAndRefusesDataOutsideThem) {
  namespace fs = std::filesystem;
  const fs::path dir = test_support::temp_dir("bounds_pipeline");
  {
    std::ofstream csv(dir / "box.csv");
    csv << "p,q\n";
    for (int i = 0; i < 40; ++i) csv << (i + 0.5) / 40.0 << "," << 1 + (i % 7) << "\n";
  }
  const std::string yaml = "name: box\noutput: " + (dir / "out").string() +
                           "\ndata: {type: csv, path: box.csv, shuffle: false, val_fraction: 0.2, "
                           "test_fraction: 0.2}\nmodel:\n  bounds: {p: [0, 1], q: [0, null]}\n"
                           "  bijectors: [{type: affine}]\ntrainer: {type: mle, steps: 5}\n";
  std::ofstream(dir / "box.yaml") << yaml;
  Pipeline p = Pipeline::load((dir / "box.yaml").string());
  ASSERT_TRUE(p.model.bounds);
  ASSERT_GE(p.model.flow->chain().size(), 3u);
  EXPECT_EQ(p.model.flow->chain()[0].get(), p.model.bounds.get());
  EXPECT_EQ(p.model.flow->chain()[1].get(), p.model.standardize.get());
  EXPECT_EQ(p.model.bounds->describe(), "p in [0, 1], q in [0, inf)");
  p.train({});
  Rng rng(3);
  EXPECT_TRUE(p.model.bounds->contains(p.model.flow->sample(5000, rng)));

  {
    std::ofstream csv(dir / "box.csv");
    csv << "p,q\n";
    for (int i = 0; i < 40; ++i) csv << (i == 6 ? 1.5 : 0.5) << ",1\n";
  }
  try {
    Pipeline::load((dir / "box.yaml").string());
    ADD_FAILURE() << "a value outside the bounds was accepted";
  } catch (const DataError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("split: row "), std::string::npos) << what;
    EXPECT_NE(what.find("column 'p': 1.5 is outside the bounds [0, 1]"), std::string::npos) << what;
  }
}

}  // namespace
}  // namespace flows
