// The rational-quadratic spline's batch paths (forward, inverse: SIMD batches
// of rows in chunks of 256) against the one-element reference, on random and
// extreme parameters and on the awkward inputs (knots, ±B and either side of
// it, the tails, NaN, ±∞), for batch sizes from 1 to 300 (each size up to 20
// and from 251 to 270), so that partial SIMD batches and the chunk's end are
// covered; and a row's results do not depend on where it falls in the batch.
#include "rational_quadratic_spline.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include <flows/rng.hpp>

namespace {

using flows::Index;
using flows::Matrix;
using flows::Real;
using flows::Rng;
using flows::spline::RationalQuadraticSpline;
using flows::spline::SplineOptions;

constexpr Real kNaN = std::numeric_limits<Real>::quiet_NaN();
constexpr Real kInf = std::numeric_limits<Real>::infinity();

// Data columns 0 and 2 of three are transformed; parameter p of column j is
// params(r, 1 + 2p + j) (offset 1, stride 2), column 1 and parameter column 0
// are left alone.
const std::vector<Index> kCols{0, 2};
const flows::ColumnSet kSet{kCols.data(), 2, 2, 1};

struct Case {
  SplineOptions options;
  Real scale;  // of the N(0, scale²) raw parameters
};

std::vector<Case> cases() {
  std::vector<Case> out;
  for (Index bins : {1, 2, 3, 8, 17})
    for (Real scale : {1.0, 6.0}) {
      SplineOptions o;
      o.bins = bins;
      o.tail_bound = bins == 3 ? 2.5 : 5.0;
      if (bins == 17) o.min_bin_width = o.min_bin_height = 1e-4, o.min_derivative = 1e-4;
      out.push_back({o, scale});
    }
  return out;
}

// The knots -B + 2B Σ_{j<k} (m + (1 - mK) softmax(u)_j), inner ones only,
// computed here from the raw parameters raw[k * stride].
std::vector<Real> inner_knots(const Real* raw, Index stride, Index bins, Real bound,
                              Real min_size) {
  Real top = -kInf;
  for (Index k = 0; k < bins; ++k) top = std::max(top, raw[k * stride]);
  Real sum = 0;
  for (Index k = 0; k < bins; ++k) sum += std::exp(raw[k * stride] - top);
  std::vector<Real> out;
  Real cum = 0;
  for (Index k = 0; k + 1 < bins; ++k) {
    cum += min_size + (1 - min_size * Real(bins)) * std::exp(raw[k * stride] - top) / sum;
    out.push_back(2 * bound * cum - bound);
  }
  return out;
}

// n rows of parameters: N(0, scale²), one in 100 replaced by an extreme value
// (±30 or ±700: bins and heights at their minimum size, derivatives at their
// minimum or huge), one row in 16 entirely extreme.
Matrix random_params(const RationalQuadraticSpline& s, Index n, Real scale, Rng& rng) {
  const Index P = s.params_per_dim();
  Matrix theta = rng.normal(n, 1 + 2 * P);
  theta *= scale;
  const Real extreme[] = {30, -30, 700, -700};
  for (Index r = 0; r < n; ++r) {
    const bool all = rng.uniform() < 1.0 / 16;
    for (Index c = 0; c < 1 + 2 * P; ++c)
      if (all || rng.uniform() < 1.0 / 100) theta(r, c) = extreme[rng.index(4)];
  }
  return theta;
}

// Inputs: uniform on [-1.2 B, 1.2 B], one in four replaced by an awkward
// value: a knot of the row's own partition (x knots, or y knots for the
// inverse when `heights`), ±B, either side of them, NaN, ±∞ or 0.
Matrix random_inputs(const RationalQuadraticSpline& s, const Matrix& theta, bool heights,
                     Rng& rng) {
  const Index n = theta.shape(0), K = s.bins();
  const Real B = s.tail_bound();
  Matrix x = rng.uniform(n, 3);
  x = 1.2 * B * (2.0 * x - 1.0);
  for (Index r = 0; r < n; ++r)
    for (Index j = 0; j < 2; ++j) {
      Real& v = x(r, kCols[j]);
      const Real u = rng.uniform();
      if (u >= 0.25) continue;
      const Index which = rng.index(10);
      if (which < 4 && K > 1) {
        const Real* raw = &theta(r, 1 + j + (heights ? 2 * K : 0));
        const Real m = heights ? s.options().min_bin_height : s.options().min_bin_width;
        const std::vector<Real> knots = inner_knots(raw, 2, K, B, m);
        v = knots[rng.index(knots.size())];
      } else {
        const Real awkward[] = {B,
                                -B,
                                std::nextafter(B, 0.0),
                                std::nextafter(-B, 0.0),
                                std::nextafter(B, kInf),
                                std::nextafter(-B, -kInf),
                                kNaN,
                                kInf,
                                -kInf,
                                0.0};
        v = awkward[rng.index(10)];
      }
    }
  return x;
}

bool same_bits(Real a, Real b) {
  return std::memcmp(&a, &b, sizeof(Real)) == 0;
}

struct Results {
  Matrix y;
  flows::Vector logdet;
  std::vector<Real> cache;
  Matrix x;  // inverse of the inputs
  flows::Vector inverse_logdet;
};

Results run(const RationalQuadraticSpline& s, const Matrix& in, const Matrix& theta) {
  const Index n = in.shape(0);
  Results out;
  out.y = in;
  out.logdet = xt::zeros<Real>({n});
  // Tail slots are left as forward finds them, apart from kInside: fill with
  // a marker so that uninitialized and stale values compare equal.
  out.cache.assign(n * 2 * s.cache_size(), -7.0);
  s.forward(in, out.y, out.logdet, kSet, theta, out.cache.data());
  out.x = in;
  out.inverse_logdet = xt::zeros<Real>({n});
  s.inverse(in, out.x, out.inverse_logdet, kSet, theta);
  return out;
}

// The one-element reference at v, and its spread: how far it moves when v
// moves by 1-3 ulps or 4-8 ulps of B, or the parameters by 4 ulps. The batch
// paths compute the softmaxes and softplus with xsimd, the reference with
// libm, and the last-bit differences matter where the spline is
// ill-conditioned: they move the knots by ulps of B, a relative change of
// 1e-12 in ξ in a bin of minimal width (2B · 1e-4 here), and the
// log-derivative can be steep in ξ; and the inverse's root 2c / (-b - √disc)
// cancels where b < 0 (a steep right knot, s < δ_{k+1} / 2), amplifying ξ's
// rounding by about δ_{k+1} / 2s, which near the top of such a bin the
// log-derivative amplifies again (by about 2 δ_k / s). The old scalar batch
// code differs from the reference there just as much. So each comparison
// allows 1e-12 relative plus 16 times the reference's own spread: negligible
// where the spline is well-conditioned (the large majority of the elements),
// and the reference's own rounding where not.
struct Reference {
  Real y, ld, x, ild;      // forward_one and inverse_one at v
  Real dy, dld, dx, dild;  // their spreads
  std::vector<Real> cache, dcache;
};

Reference reference(const RationalQuadraticSpline& s, Real v, const Real* raw, Index stride) {
  const Index csize = s.cache_size(), P = s.params_per_dim();
  const Real B = s.tail_bound();
  const Real eps = 4 * (std::nextafter(B, kInf) - B);
  Reference ref;
  ref.cache.assign(csize, -7.0);
  ref.dcache.assign(csize, 0.0);
  ref.y = s.forward_one(v, raw, stride, ref.ld, ref.cache.data());
  ref.x = s.inverse_one(v, raw, stride, ref.ild);
  ref.dy = ref.dld = ref.dx = ref.dild = 0;
  if (!std::isfinite(v)) return ref;
  std::vector<Real> other(csize), nudged(P);
  auto spread = [&](Real at, const Real* theta, Index theta_stride) {
    std::fill(other.begin(), other.end(), -7.0);
    Real ld, ild;
    const Real y = s.forward_one(at, theta, theta_stride, ld, other.data());
    const Real x = s.inverse_one(at, theta, theta_stride, ild);
    ref.dy = std::max(ref.dy, std::abs(y - ref.y));
    ref.dld = std::max(ref.dld, std::abs(ld - ref.ld));
    ref.dx = std::max(ref.dx, std::abs(x - ref.x));
    ref.dild = std::max(ref.dild, std::abs(ild - ref.ild));
    if (other[1] != ref.cache[1]) return;  // another bin: its slots are not comparable
    for (Index q = 2; q < csize; ++q)
      ref.dcache[q] = std::max(ref.dcache[q], std::abs(other[q] - ref.cache[q]));
  };
  // The input moved by 4 and 8 ulps of B; across ±B the reference jumps to
  // the identity tails, but the batch paths decide inside/outside on v
  // itself, exactly, so only v's side counts.
  for (Real step : {-2, -1, 1, 2}) {
    const Real nearby = v + step * eps;
    if ((nearby >= -B && nearby <= B) == (v >= -B && v <= B)) spread(nearby, raw, stride);
  }
  Real down = v, up = v;  // and by 1, 2, 3 ulps
  for (int step = 0; step < 3; ++step) {
    down = std::nextafter(down, -kInf), up = std::nextafter(up, kInf);
    for (Real nearby : {down, up})
      if ((nearby >= -B && nearby <= B) == (v >= -B && v <= B)) spread(nearby, raw, stride);
  }
  // The parameters moved by 4 ulps (of max(|u|, 1)), in four patterns of
  // directions.
  for (Index pattern = 0; pattern < 4; ++pattern) {
    for (Index p = 0; p < P; ++p) {
      const bool raise = ((p * 7 + pattern * 3) / (pattern + 1)) % 2 == 0;
      const Real u = raw[p * stride];
      nudged[p] = u + (raise ? 4 : -4) * std::numeric_limits<Real>::epsilon() *
                          std::max(std::abs(u), Real(1));
    }
    spread(v, nudged.data(), 1);
  }
  return ref;
}

// |a - b| ≤ 1e-12 max(|b|, 1) + 16 spread, or both NaN.
::testing::AssertionResult agrees(Real a, Real b, Real spread) {
  if (std::isnan(a) && std::isnan(b)) return ::testing::AssertionSuccess();
  if (a == b) return ::testing::AssertionSuccess();
  const Real tol = 1e-12 * std::max(std::abs(b), Real(1)) + 16 * spread;
  if (std::abs(a - b) <= tol) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << a << " vs " << b << " (difference " << a - b << ", allowed " << tol << ")";
}

// Batch forward and inverse against forward_one / inverse_one, element by
// element, for batch sizes from 1 to 300.
TEST(RationalQuadraticSplineBatch, AgreesWithTheElementPathsForEveryBatchSize) {
  Rng rng(2024);
  Index compared = 0, loose = 0;
  for (const Case& c : cases()) {
    const RationalQuadraticSpline s(c.options);
    const Index K = s.bins(), csize = s.cache_size();
    const Real B = s.tail_bound();
    for (Index n = 1; n <= 300; n += (n < 20 || (n > 250 && n < 270) ? 1 : 7)) {
      const Matrix theta = random_params(s, n, c.scale, rng);
      for (bool heights : {false, true}) {
        const Matrix in = random_inputs(s, theta, heights, rng);
        const Results got = run(s, in, theta);
        for (Index r = 0; r < n; ++r) {
          Real ld_sum = 0, ild_sum = 0, ld_spread = 0, ild_spread = 0;
          for (Index j = 0; j < 2; ++j) {
            const Index col = kCols[j];
            const Real v = in(r, col);
            const std::string where = "bins " + std::to_string(K) + " scale " +
                                      std::to_string(c.scale) + " n " + std::to_string(n) +
                                      " row " + std::to_string(r) + " column " +
                                      std::to_string(col) + " input " + std::to_string(v);
            const Reference ref = reference(s, v, &theta(r, 1 + j), 2);
            ld_sum += ref.ld, ild_sum += ref.ild;
            ld_spread += ref.dld, ild_spread += ref.dild;
            ++compared;
            if (std::max({ref.dy, ref.dx, ref.dld, ref.dild}) > 1e-12) ++loose;
            EXPECT_TRUE(agrees(got.y(r, col), ref.y, ref.dy)) << where;
            EXPECT_TRUE(agrees(got.x(r, col), ref.x, ref.dx)) << where;
            const bool inside = v >= -B && v <= B;
            if (!inside) {  // the identity, NaN included
              EXPECT_TRUE(same_bits(got.y(r, col), v)) << where;
              EXPECT_TRUE(same_bits(got.x(r, col), v)) << where;
            }
            const Real* slot = got.cache.data() + (r * 2 + j) * csize;
            ASSERT_EQ(slot[0], inside ? 1.0 : 0.0) << where;
            if (!inside) continue;
            // The bin, and with it the cached quantities, agree unless v is
            // within rounding of a knot, where a neighbouring bin gives the
            // same values and derivatives.
            ASSERT_LE(std::abs(slot[1] - ref.cache[1]), 1.0) << where;
            if (slot[1] != ref.cache[1]) continue;
            for (Index q = 2; q < csize; ++q)
              EXPECT_TRUE(agrees(slot[q], ref.cache[q], ref.dcache[q])) << where << " slot " << q;
          }
          const std::string row = "bins " + std::to_string(K) + " scale " +
                                  std::to_string(c.scale) + " n " + std::to_string(n) + " row " +
                                  std::to_string(r) + " inputs " + std::to_string(in(r, 0)) + " " +
                                  std::to_string(in(r, 2));
          EXPECT_TRUE(agrees(got.logdet(r), ld_sum, ld_spread)) << row;
          EXPECT_TRUE(agrees(got.inverse_logdet(r), ild_sum, ild_spread)) << row;
          EXPECT_EQ(got.y(r, 1), in(r, 1));
          EXPECT_EQ(got.x(r, 1), in(r, 1));
        }
      }
    }
  }
  // Most elements are compared at about 1e-12 (with this seed, 90 % have no
  // spread above 1e-12).
  EXPECT_LT(loose * 4, compared) << loose << " of " << compared << " ill-conditioned";
}

// Row i of a batch's results is bitwise row 0 of a one-row run's.
void expect_same_row(const Results& got, Index i, const Results& a, Index csize,
                     const std::string& where) {
  for (Index col = 0; col < 3; ++col) {
    EXPECT_TRUE(same_bits(got.y(i, col), a.y(0, col))) << where << " column " << col;
    EXPECT_TRUE(same_bits(got.x(i, col), a.x(0, col))) << where << " column " << col;
  }
  EXPECT_TRUE(same_bits(got.logdet(i), a.logdet(0))) << where;
  EXPECT_TRUE(same_bits(got.inverse_logdet(i), a.inverse_logdet(0))) << where;
  for (Index q = 0; q < 2 * csize; ++q)
    EXPECT_TRUE(same_bits(got.cache[i * 2 * csize + q], a.cache[q])) << where << " " << q;
}

// random_inputs for theta's rows, the awkward values of the even rows on
// the y knots (the inverse's) and of the odd rows on the x knots.
Matrix inputs_with_both_knots(const RationalQuadraticSpline& s, const Matrix& theta, Rng& rng) {
  Matrix in = random_inputs(s, theta, false, rng);
  const Matrix in_heights = random_inputs(s, theta, true, rng);
  for (Index r = 0; r < in.shape(0); r += 2) xt::row(in, r) = xt::row(in_heights, r);
  return in;
}

// A row's outputs, log-derivatives and cache slots are bitwise the same alone
// and at any position of a batch of 1..300 rows (partial SIMD batches, the
// chunk's end, the next chunk).
TEST(RationalQuadraticSplineBatch, ARowsResultsDoNotDependOnItsPositionInTheBatch) {
  Rng rng(77);
  for (const Case& c : cases()) {
    const RationalQuadraticSpline s(c.options);
    const Index csize = s.cache_size();
    const Index pool = 300;
    const Matrix theta = random_params(s, pool, c.scale, rng);
    const Matrix in = inputs_with_both_knots(s, theta, rng);

    // Each row alone.
    std::vector<Results> alone;
    for (Index r = 0; r < pool; ++r)
      alone.push_back(run(s, xt::view(in, xt::range(r, r + 1), xt::all()),
                          xt::view(theta, xt::range(r, r + 1), xt::all())));

    for (Index n = 1; n <= pool; n += (n < 20 || (n > 250 && n < 270) ? 1 : 11)) {
      // Rows first, first + 1, ... of the pool (cyclically), at positions 0..n-1.
      const Index first = rng.index(pool);
      Matrix bin = xt::zeros<Real>({n, Index(3)});
      Matrix btheta = xt::zeros<Real>({n, Index(theta.shape(1))});
      for (Index i = 0; i < n; ++i) {
        xt::row(bin, i) = xt::row(in, (first + i) % pool);
        xt::row(btheta, i) = xt::row(theta, (first + i) % pool);
      }
      const Results got = run(s, bin, btheta);
      for (Index i = 0; i < n; ++i) {
        const Results& a = alone[(first + i) % pool];
        const std::string where = "bins " + std::to_string(s.bins()) + " n " + std::to_string(n) +
                                  " position " + std::to_string(i);
        expect_same_row(got, i, a, csize, where);
      }
    }
  }
}

// Rows that share their parameters (an autoregressive layer's first input)
// are normalized once per chunk and the result copied: each row's outputs,
// log-derivatives and cache slots stay bitwise what it gives alone, for
// batches that end inside a SIMD batch, on the chunk's end and past it.
TEST(RationalQuadraticSplineBatch, RowsSharingTheirParametersGiveWhatEachGivesAlone) {
  Rng rng(91);
  for (const Case& c : cases()) {
    const RationalQuadraticSpline s(c.options);
    const Index csize = s.cache_size();
    const Index pool = 300;
    const Matrix one = random_params(s, 1, c.scale, rng);
    Matrix theta({pool, one.shape(1)});
    for (Index r = 0; r < pool; ++r) xt::row(theta, r) = xt::row(one, 0);
    const Matrix in = inputs_with_both_knots(s, theta, rng);
    const Matrix others = random_params(s, pool, c.scale, rng);
    for (Index n : {Index(2), Index(7), Index(9), Index(255), Index(256), Index(257), pool}) {
      run(s, in, others);  // leaves other rows' values in the per-thread scratch
      const Results got = run(s, xt::view(in, xt::range(0, n), xt::all()),
                              xt::view(theta, xt::range(0, n), xt::all()));
      for (Index i = 0; i < n; ++i) {
        const Results a = run(s, xt::view(in, xt::range(i, i + 1), xt::all()), one);
        const std::string where = "bins " + std::to_string(s.bins()) + " n " + std::to_string(n) +
                                  " row " + std::to_string(i);
        expect_same_row(got, i, a, csize, where);
      }
    }
  }
}

// NaN inputs propagate through both batch paths (the identity), with log-
// derivative 0 and kInside 0, wherever they fall in a batch.
TEST(RationalQuadraticSplineBatch, NanInputsPropagate) {
  Rng rng(5);
  SplineOptions o;
  const RationalQuadraticSpline s(o);
  const Index n = 37;
  const Matrix theta = random_params(s, n, 1.0, rng);
  Matrix in = rng.normal(n, 3);
  for (Index r = 0; r < n; r += 3) in(r, r % 2 ? 0 : 2) = kNaN;
  const Results got = run(s, in, theta);
  for (Index r = 0; r < n; ++r)
    for (Index j = 0; j < 2; ++j) {
      const Index col = kCols[j];
      if (!std::isnan(in(r, col))) continue;
      EXPECT_TRUE(std::isnan(got.y(r, col))) << r;
      EXPECT_TRUE(std::isnan(got.x(r, col))) << r;
      EXPECT_EQ(got.cache[(r * 2 + j) * s.cache_size()], 0.0) << r;
    }
  for (Index r = 0; r < n; ++r) {
    EXPECT_TRUE(std::isfinite(got.logdet(r))) << r;
    EXPECT_TRUE(std::isfinite(got.inverse_logdet(r))) << r;
  }
}

}  // namespace
