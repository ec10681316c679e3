// The rational-quadratic spline transform on its own: reference values from
// nflows, monotonicity, continuity at the knots, tails, round trips and
// hand-written gradients against finite differences.
#include "rational_quadratic_spline.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include <flows/config.hpp>
#include <flows/error.hpp>
#include <flows/rng.hpp>
#include <flows/testing/gradient_checker.hpp>

namespace {

using flows::Index;
using flows::Matrix;
using flows::Parameter;
using flows::Real;
using flows::Rng;
using flows::spline::RationalQuadraticSpline;
using flows::spline::SplineOptions;

SplineOptions shape(Index bins, Real bound) {
  SplineOptions o;
  o.bins = bins;
  o.tail_bound = bound;
  return o;
}

// Unconstrained parameters ~ N(0, scale²), one set.
std::vector<Real> random_params(const RationalQuadraticSpline& s, Rng& rng, Real scale = 1) {
  std::vector<Real> p(s.params_per_dim());
  for (Real& v : p) v = scale * rng.normal();
  return p;
}

// The knots, computed here independently of the implementation:
// x_k = -B + 2B Σ_{j<k} (m + (1 - mK) softmax(u)_j).
std::vector<Real> knots(const std::vector<Real>& raw, Index offset, Index bins, Real bound,
                        Real min_size) {
  Real top = -std::numeric_limits<Real>::infinity();
  for (Index k = 0; k < bins; ++k) top = std::max(top, raw[offset + k]);
  Real sum = 0;
  for (Index k = 0; k < bins; ++k) sum += std::exp(raw[offset + k] - top);
  std::vector<Real> out{-bound};
  Real cum = 0;
  for (Index k = 0; k < bins; ++k) {
    cum += min_size + (1 - min_size * bins) * std::exp(raw[offset + k] - top) / sum;
    out.push_back(-bound + 2 * bound * cum);
  }
  out.back() = bound;
  return out;
}

Real forward(const RationalQuadraticSpline& s, Real x, const std::vector<Real>& raw, Real& ld) {
  return s.forward_one(x, raw.data(), 1, ld, nullptr);
}

TEST(RationalQuadraticSpline, MatchesNflowsReferenceValues) {
  // K = 8, B = 3, minima 1e-3, as the file's header says.
  const RationalQuadraticSpline s(shape(8, 3.0));
  std::ifstream in(std::string(FLOWS_SOURCE_DIR) + "/tests/spline/data/rq_spline_cases.csv");
  ASSERT_TRUE(in) << "tests/spline/data/rq_spline_cases.csv is missing";
  std::string line;
  bool header = false;
  Index rows = 0;
  Real worst_y = 0, worst_ld = 0, worst_inverse = 0;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    if (!header) {
      header = true;
      ASSERT_EQ(line.substr(0, 8), "x,w0,w1,");
      continue;
    }
    std::stringstream fields(line);
    std::vector<Real> v;
    for (std::string f; std::getline(fields, f, ',');) v.push_back(std::stod(f));
    ASSERT_EQ(v.size(), 1 + 23 + 2u) << line;
    const std::vector<Real> raw(v.begin() + 1, v.begin() + 24);
    Real ld;
    const Real y = forward(s, v[0], raw, ld);
    worst_y = std::max(worst_y, std::abs(y - v[24]) / (1 + std::abs(v[24])));
    worst_ld = std::max(worst_ld, std::abs(ld - v[25]));
    Real inverse_ld;
    const Real x = s.inverse_one(v[24], raw.data(), 1, inverse_ld);
    worst_inverse = std::max(worst_inverse, std::abs(x - v[0]) / (1 + std::abs(v[0])));
    EXPECT_NEAR(inverse_ld, -v[25], 1e-9) << line;
    ++rows;
  }
  EXPECT_EQ(rows, 400u);
  EXPECT_LT(worst_y, 1e-12);
  EXPECT_LT(worst_ld, 1e-10);
  EXPECT_LT(worst_inverse, 1e-11);
}

TEST(RationalQuadraticSpline, IdentityValuesGiveTheIdentity) {
  for (Index bins : {1, 2, 8, 17}) {
    const RationalQuadraticSpline s(shape(bins, 2.5));
    std::vector<Real> raw(s.params_per_dim());
    for (Index p = 0; p < raw.size(); ++p) raw[p] = s.identity_value(p);
    for (Real x = -4; x <= 4; x += 0.01) {
      Real ld;
      EXPECT_NEAR(forward(s, x, raw, ld), x, 1e-14) << "bins " << bins;
      EXPECT_NEAR(ld, 0, 1e-14) << "bins " << bins;
    }
  }
}

TEST(RationalQuadraticSpline, IsStrictlyIncreasingWithPositiveDerivative) {
  Rng rng(1);
  for (Index trial = 0; trial < 20; ++trial) {
    const RationalQuadraticSpline s(shape(trial % 2 ? 8 : 5, 3.0));
    const std::vector<Real> raw = random_params(s, rng, trial < 10 ? 1.0 : 4.0);
    Real previous = -std::numeric_limits<Real>::infinity();
    for (Real x = -5; x <= 5; x += 1e-3) {
      Real ld;
      const Real y = forward(s, x, raw, ld);
      ASSERT_GT(y, previous) << "x = " << x;
      ASSERT_TRUE(std::isfinite(ld));
      previous = y;
    }
  }
}

// Value and derivative agree from both sides of every knot, of ±B, and the
// spline maps each knot onto its height knot.
TEST(RationalQuadraticSpline, ValueAndDerivativeAreContinuousAtEveryKnot) {
  Rng rng(2);
  for (Index trial = 0; trial < 10; ++trial) {
    const SplineOptions o = shape(8, 3.0);
    const RationalQuadraticSpline s(o);
    const std::vector<Real> raw = random_params(s, rng, 1.5);
    const std::vector<Real> xk = knots(raw, 0, 8, 3.0, o.min_bin_width);
    const std::vector<Real> yk = knots(raw, 8, 8, 3.0, o.min_bin_height);
    for (Index k = 0; k <= 8; ++k) {
      SCOPED_TRACE("knot " + std::to_string(k));
      Real ld, ld_left, ld_right;
      EXPECT_NEAR(forward(s, xk[k], raw, ld), yk[k], 1e-12);
      // A jump would survive this close; slopes here are at most ~1e4.
      const Real eps = 1e-11;
      const Real left = forward(s, xk[k] - eps, raw, ld_left);
      const Real right = forward(s, xk[k] + eps, raw, ld_right);
      EXPECT_NEAR(left, yk[k], 1e-8);
      EXPECT_NEAR(right, yk[k], 1e-8);
      EXPECT_NEAR(ld_left, ld_right, 1e-6);
      EXPECT_NEAR(ld, ld_right, 1e-6);
      if (k == 0 || k == 8) {
        EXPECT_NEAR(ld, 0, 1e-12) << "the slope at ±B is the tails' 1";
      }
      Real inverse_ld;
      EXPECT_NEAR(s.inverse_one(yk[k], raw.data(), 1, inverse_ld), xk[k], 1e-12);
      EXPECT_NEAR(inverse_ld, -ld, 1e-9);
    }
  }
}

TEST(RationalQuadraticSpline, TailsAreTheIdentityEvenForHugeInputs) {
  Rng rng(3);
  const RationalQuadraticSpline s(shape(8, 3.0));
  const std::vector<Real> raw = random_params(s, rng);
  std::vector<Real> cache(s.cache_size());
  std::vector<Real> graw(s.params_per_dim(), 99.0);
  for (Real x :
       {-1e300, -1e10, -3.0000001, 3.0000001, 7.0, 1e10, 1e300, std::numeric_limits<Real>::max()}) {
    Real ld, inverse_ld;
    EXPECT_EQ(s.forward_one(x, raw.data(), 1, ld, cache.data()), x);
    EXPECT_EQ(ld, 0);
    EXPECT_EQ(s.inverse_one(x, raw.data(), 1, inverse_ld), x);
    EXPECT_EQ(inverse_ld, 0);
    EXPECT_EQ(s.backward_one(cache.data(), 0.7, -1.3, graw.data(), 1), 0.7);
    for (Real g : graw) EXPECT_EQ(g, 0) << "a tail element has no parameter gradient";
  }
}

// Extreme parameters (bins squeezed to the minimum width, huge or tiny
// derivatives) still give finite values and gradients everywhere.
TEST(RationalQuadraticSpline, ExtremeParametersGiveFiniteValuesAndGradients) {
  Rng rng(4);
  const RationalQuadraticSpline s(shape(8, 3.0));
  std::vector<Real> cache(s.cache_size());
  std::vector<Real> graw(s.params_per_dim());
  for (Real scale : {10.0, 50.0, 300.0}) {
    const std::vector<Real> raw = random_params(s, rng, scale);
    for (Real x = -3.5; x <= 3.5; x += 1e-3) {
      Real ld;
      const Real y = s.forward_one(x, raw.data(), 1, ld, cache.data());
      ASSERT_TRUE(std::isfinite(y) && std::isfinite(ld)) << "x " << x << " scale " << scale;
      const Real gx = s.backward_one(cache.data(), 1.0, 1.0, graw.data(), 1);
      ASSERT_TRUE(std::isfinite(gx)) << "x " << x << " scale " << scale;
      for (Real g : graw) ASSERT_TRUE(std::isfinite(g)) << "x " << x << " scale " << scale;
    }
  }
}

// |τ⁻¹(τ(x)) - x| < 1e-9 from -1e3 to 1e3, and densely inside [-B, B].
TEST(RationalQuadraticSpline, InverseUndoesForwardAcrossTheRealLine) {
  Rng rng(5);
  for (Index trial = 0; trial < 8; ++trial) {
    const RationalQuadraticSpline s(shape(trial % 2 ? 8 : 3, 3.0));
    const std::vector<Real> raw = random_params(s, rng, trial < 4 ? 1.0 : 5.0);
    Real worst = 0;
    auto check = [&](Real x) {
      Real ld, inverse_ld;
      const Real y = forward(s, x, raw, ld);
      const Real back = s.inverse_one(y, raw.data(), 1, inverse_ld);
      worst = std::max(worst, std::abs(back - x));
      ASSERT_NEAR(inverse_ld, -ld, 1e-8) << "x = " << x;
    };
    for (Index i = 0; i <= 200000; ++i) check(-1e3 + 1e-2 * Real(i));
    for (Index i = 0; i <= 600000; ++i) check(-3.0 + 1e-5 * Real(i));
    EXPECT_LT(worst, 1e-9) << "trial " << trial;
  }
}

// y and log dy/dx of a batch, one parameter row per sample, as a
// DifferentiableFunction for the gradient checker: output n x 2 = (y, ℓ).
struct SplineFunction {
  const RationalQuadraticSpline& spline;
  Parameter theta;
  std::vector<Real> cache;

  flows::testing::DifferentiableFunction function() {
    flows::testing::DifferentiableFunction f;
    f.forward = [this](const Matrix& x) {
      const Index n = x.shape(0);
      cache.resize(n * spline.cache_size());
      Matrix y({n, 2});
      for (Index r = 0; r < n; ++r)
        y(r, 0) = spline.forward_one(x(r, 0), &theta.value(r, 0), 1, y(r, 1),
                                     cache.data() + r * spline.cache_size());
      return y;
    };
    f.backward = [this](const Matrix& g) {
      const Index n = g.shape(0), P = spline.params_per_dim();
      Matrix gx({n, 1});
      std::vector<Real> graw(P);
      for (Index r = 0; r < n; ++r) {
        gx(r, 0) = spline.backward_one(cache.data() + r * spline.cache_size(), g(r, 0), g(r, 1),
                                       graw.data(), 1);
        for (Index p = 0; p < P; ++p) theta.grad(r, p) += graw[p];
      }
      return gx;
    };
    f.params = {&theta};
    return f;
  }
};

Parameter random_theta(const RationalQuadraticSpline& s, Index rows, Rng& rng, Real scale) {
  Matrix v = rng.normal(rows, s.params_per_dim());
  v *= scale;
  return Parameter("theta", v);
}

TEST(RationalQuadraticSpline, GradientsMatchFiniteDifferencesAtRandomPoints) {
  Rng rng(6);
  for (Index bins : {1, 2, 8}) {
    const RationalQuadraticSpline s(shape(bins, 3.0));
    SplineFunction f{s, random_theta(s, 40, rng, 1.0), {}};
    Matrix x = rng.normal(40, 1);
    x *= 1.5;
    const auto result = flows::testing::check_gradients(f.function(), x);
    EXPECT_TRUE(result.ok) << "bins " << bins << "\n" << result.report;
  }
}

// Points within 1e-5 and 1e-4 of every knot on either side (the step, 1e-6, does not
// cross the knot), just inside ±B, and in the tails.
TEST(RationalQuadraticSpline, GradientsMatchFiniteDifferencesNearKnotsBoundsAndTails) {
  Rng rng(7);
  const SplineOptions o = shape(8, 3.0);
  const RationalQuadraticSpline s(o);
  const std::vector<Real> raw = random_params(s, rng, 1.0);
  const std::vector<Real> xk = knots(raw, 0, 8, 3.0, o.min_bin_width);
  std::vector<Real> points;
  for (Real k : xk)
    for (Real offset : {-1e-4, -1e-5, 1e-5, 1e-4})
      if (std::abs(k + offset) < 3.0) points.push_back(k + offset);
  for (Real tail : {-3.0 - 1e-4, 3.0 + 1e-4, -50.0, 50.0, 1e6}) points.push_back(tail);
  const Index n = points.size();
  Matrix x({n, 1});
  Matrix theta({n, s.params_per_dim()});
  for (Index r = 0; r < n; ++r) {
    x(r, 0) = points[r];
    for (Index p = 0; p < raw.size(); ++p) theta(r, p) = raw[p];
  }
  SplineFunction f{s, Parameter("theta", theta), {}};
  flows::testing::GradientCheckOptions options;
  options.step = 1e-6;  // smaller than every offset from a knot
  options.relative_tolerance = 1e-5;
  const auto result = flows::testing::check_gradients(f.function(), x, options);
  EXPECT_TRUE(result.ok) << result.report;
}

// Exactly on the knots, the parameter gradients with the input held fixed
// there. y is differentiable in the parameters at a knot (the slope is
// continuous), but log dy/dx is not: moving the knot moves x into one bin or
// the other, and the log-derivative has a kink at the knot; so inner knots
// check y and ±B (which do not move) check both.
TEST(RationalQuadraticSpline, ParameterGradientsMatchFiniteDifferencesExactlyOnKnots) {
  Rng rng(8);
  const SplineOptions o = shape(6, 2.0);
  const RationalQuadraticSpline s(o);
  const std::vector<Real> raw = random_params(s, rng, 1.0);
  const std::vector<Real> xk = knots(raw, 0, 6, 2.0, o.min_bin_width);
  const Index n = xk.size();
  Matrix theta({n, s.params_per_dim()});
  for (Index r = 0; r < n; ++r)
    for (Index p = 0; p < raw.size(); ++p) theta(r, p) = raw[p];
  SplineFunction inner{s, Parameter("theta", theta), {}};
  const auto spline_fn = inner.function();
  flows::testing::DifferentiableFunction f;
  // Keeps column 1 (log dy/dx) at ±B only.
  auto keep = [n](Matrix m) {
    for (Index r = 1; r + 1 < n; ++r) m(r, 1) = 0;
    return m;
  };
  f.forward = [&](const Matrix&) {
    Matrix fixed({n, 1});
    for (Index r = 0; r < n; ++r) fixed(r, 0) = xk[r];
    return keep(spline_fn.forward(fixed));
  };
  f.backward = [&](const Matrix& g) {
    spline_fn.backward(keep(g));
    return Matrix(xt::zeros<Real>({n, Index(1)}));
  };
  f.params = spline_fn.params;
  // y is C¹ but not C² in the parameters at a knot, so central differences
  // carry an O(step) error here: a smaller step and a looser tolerance.
  flows::testing::GradientCheckOptions options;
  options.step = 1e-7;
  options.relative_tolerance = 1e-4;
  const auto result = flows::testing::check_gradients(f, xt::zeros<Real>({n, Index(1)}), options);
  EXPECT_TRUE(result.ok) << result.report;
  // At ±B the value and slope are fixed (±B and 1) whatever the parameters.
  for (Index p = 0; p < raw.size(); ++p) {
    EXPECT_NEAR(inner.theta.grad(0, p), 0, 1e-12);
    EXPECT_NEAR(inner.theta.grad(n - 1, p), 0, 1e-12);
  }
}

TEST(RationalQuadraticSpline, OptionsAreCheckedWithTheirKeyPath) {
  auto parse = [](const std::string& yaml) {
    flows::ConfigNode node = flows::ConfigNode::parse(yaml, "test.yaml");
    return SplineOptions::read(node);
  };
  EXPECT_EQ(parse("{bins: 5, tail_bound: 4.0}").bins, 5u);
  EXPECT_THROW(parse("{bins: 0}"), flows::ConfigError);
  EXPECT_THROW(parse("{tail_bound: -1.0}"), flows::ConfigError);
  EXPECT_THROW(parse("{bins: 8, min_bin_width: 0.2}"), flows::ConfigError);
  EXPECT_THROW(parse("{min_derivative: -0.1}"), flows::ConfigError);
  try {
    parse("{bins: 0}");
  } catch (const flows::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("bins"), std::string::npos) << e.what();
  }
}

// A minimum of 0 lets a softmax or softplus underflow to a bin of zero width
// or height or a knot of zero slope: 0/0 or log 0 at a knot. Each minimum must
// be > 0, and the bins must fit (K·min < 1; the slope minimum < 1).
TEST(RationalQuadraticSpline, MinimaMustBePositiveAndFit) {
  auto error = [](const std::string& yaml) -> std::string {
    try {
      flows::ConfigNode node = flows::ConfigNode::parse(yaml, "test.yaml");
      SplineOptions::read(node);
    } catch (const flows::ConfigError& e) {
      return e.what();
    }
    return "";
  };
  for (const char* key : {"min_bin_width", "min_bin_height", "min_derivative"}) {
    for (const char* value : {"0", "0.0", "-1.0e-3"}) {
      const std::string message = error(std::string("{") + key + ": " + value + "}");
      EXPECT_NE(message.find(key), std::string::npos) << key << ": " << value << ": " << message;
      EXPECT_NE(message.find("> 0"), std::string::npos) << message;
    }
    EXPECT_EQ(error(std::string("{") + key + ": 1.0e-6}"), "") << key;
  }
  EXPECT_NE(error("{bins: 8, min_bin_width: 0.125}").find("min_bin_width"), std::string::npos);
  EXPECT_NE(error("{bins: 4, min_bin_height: 0.25}").find("min_bin_height"), std::string::npos);
  EXPECT_NE(error("{min_derivative: 1.0}").find("min_derivative"), std::string::npos);
}

}  // namespace

namespace {

// The vectorized batch paths (chunks of rows, SIMD logs and exponentials)
// agree with the one-element reference, also in the tails and across chunks.
TEST(RationalQuadraticSpline, BatchPathsMatchTheElementPaths) {
  Rng rng(10);
  const RationalQuadraticSpline s(shape(8, 3.0));
  const Index n = 600, d = 3, P = s.params_per_dim();
  Matrix x = rng.normal(n, d);
  x *= 2.0;
  const Matrix theta = rng.normal(n, P * 2);
  const std::vector<Index> cols{0, 2};  // column 1 is left alone
  const flows::ColumnSet set{cols.data(), 2, 2, 0};
  Matrix y = x;
  flows::Vector logdet = xt::zeros<Real>({n});
  std::vector<Real> cache(n * 2 * s.cache_size());
  s.forward(x, y, logdet, set, theta, cache.data());
  Matrix back = y;
  flows::Vector inverse_logdet = xt::zeros<Real>({n});
  s.inverse(y, back, inverse_logdet, set, theta);
  const Matrix gy = rng.normal(n, d);
  const flows::Vector gl = xt::view(rng.normal(1, n), 0, xt::all());
  Matrix gx = xt::zeros<Real>({n, d});
  Matrix gtheta = xt::zeros<Real>({n, P * 2});
  s.backward(cache.data(), gy, gl, set, gx, gtheta);
  std::vector<Real> one_cache(s.cache_size()), graw(P);
  for (Index r = 0; r < n; ++r) {
    Real sum = 0;
    for (Index j = 0; j < 2; ++j) {
      const Index c = cols[j];
      Real ld;
      const Real yj = s.forward_one(x(r, c), &theta(r, j), 2, ld, one_cache.data());
      sum += ld;
      EXPECT_NEAR(y(r, c), yj, 1e-13);
      EXPECT_NEAR(back(r, c), x(r, c), 1e-11);
      EXPECT_NEAR(gx(r, c), s.backward_one(one_cache.data(), gy(r, c), gl(r), graw.data(), 1),
                  1e-10);
      for (Index p = 0; p < P; ++p) EXPECT_NEAR(gtheta(r, p * 2 + j), graw[p], 1e-10);
    }
    EXPECT_EQ(y(r, 1), x(r, 1));
    EXPECT_NEAR(logdet(r), sum, 1e-12);
    EXPECT_NEAR(inverse_logdet(r), -sum, 1e-9);
  }
}

}  // namespace
