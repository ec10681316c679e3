#include "rational_quadratic_spline.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include <xsimd/xsimd.hpp>
#include <xtensor/xmath.hpp>
#include <xtensor/xoperation.hpp>

namespace flows::spline {

namespace {

// Upper bound on K, so that per-element scratch lives on the stack.
constexpr Index kMaxBins = 128;

// softplus(a) = log(1 + e^a) and its derivative σ(a), without overflow.
inline Real softplus(Real a) {
  return std::max(a, Real(0)) + std::log1p(std::exp(-std::abs(a)));
}
inline Real sigmoid(Real a) {
  if (a >= 0) return 1 / (1 + std::exp(-a));
  const Real e = std::exp(a);
  return e / (1 + e);
}

// p = softmax(raw[0], raw[stride], ..., raw[(K-1) stride]) into p[0..K).
inline void softmax(const Real* raw, Index stride, Index bins, Real* p) {
  Real top = raw[0];
  for (Index k = 1; k < bins; ++k) top = std::max(top, raw[k * stride]);
  Real sum = 0;
  for (Index k = 0; k < bins; ++k) {
    p[k] = std::exp(raw[k * stride] - top);
    sum += p[k];
  }
  const Real inv = 1 / sum;
  for (Index k = 0; k < bins; ++k) p[k] *= inv;
}

// The knots bounding bin k of the partition with normalized sizes
// m + (1 - m K) p_j, scaled to [-B, B] as nflows scales them:
// knot_j = 2B · cumsum_j + (-B), with the two ends exactly -B and B.
struct Bin {
  Index k;
  Real lo, hi;
};

// The bin holding v (the number of inner knots ≤ v), and its two knots.
inline Bin find_bin(Real v, const Real* p, Index bins, Real min_size, Real bound) {
  const Real scale = 1 - min_size * Real(bins);
  Real cum = 0;
  Bin bin{0, -bound, bound};
  for (Index j = 1; j < bins; ++j) {
    cum += min_size + scale * p[j - 1];
    const Real knot = 2 * bound * cum - bound;
    if (v >= knot) {
      bin.k = j;
      bin.lo = knot;
    } else {
      bin.hi = knot;
      break;
    }
  }
  return bin;
}

// The knots of bin k.
inline Bin bin_at(Index k, const Real* p, Index bins, Real min_size, Real bound) {
  const Real scale = 1 - min_size * Real(bins);
  Real cum = 0;
  for (Index j = 0; j < k; ++j) cum += min_size + scale * p[j];
  Bin bin{k, k == 0 ? -bound : 2 * bound * cum - bound, bound};
  if (k + 1 < bins) bin.hi = 2 * bound * (cum + min_size + scale * p[k]) - bound;
  return bin;
}

// Cache layout per element.
enum Slot : Index { kInside, kBin, kXi, kWidth, kHeight, kD0, kD1, kSig0, kSig1, kSoftmax };

}  // namespace

SplineOptions SplineOptions::read(ConfigNode& node) {
  SplineOptions o;
  node.read("bins", o.bins);
  // `tail_bound: auto` is replaced by a number from the training data before
  // the model is built (resolve_auto_tail_bounds, in Pipeline::load); a
  // spline built without a pipeline has no data to take it from.
  try {
    node.read("tail_bound", o.tail_bound);
  } catch (const ConfigError&) {
    std::string text;
    try {
      node.read("tail_bound", text);
    } catch (const ConfigError&) {
    }
    if (text != "auto") throw;
    throw node.error("tail_bound",
                     "'auto' is set from the training data by a pipeline (flows run, "
                     "Pipeline::load) before the model is built; here give a number");
  }
  node.read("min_bin_width", o.min_bin_width);
  node.read("min_bin_height", o.min_bin_height);
  node.read("min_derivative", o.min_derivative);
  node.expect(o.bins >= 1 && o.bins <= kMaxBins, "bins", "must be in [1, 128]");
  node.expect(std::isfinite(o.tail_bound) && o.tail_bound > 0, "tail_bound",
              "must be a positive number");
  // The minima keep every bin and knot slope away from 0: a softmax or a
  // softplus can underflow to exactly 0, and a bin of zero width or height or
  // a knot of zero slope gives 0/0 or log 0 there. The bins must fit in [−B,
  // B] (K · minimum < 1), and identity_value needs min_derivative < 1.
  node.expect(o.min_bin_width > 0 && o.min_bin_width * Real(o.bins) < 1, "min_bin_width",
              "must be > 0 with min_bin_width * bins < 1");
  node.expect(o.min_bin_height > 0 && o.min_bin_height * Real(o.bins) < 1, "min_bin_height",
              "must be > 0 with min_bin_height * bins < 1");
  node.expect(o.min_derivative > 0 && o.min_derivative < 1, "min_derivative",
              "must be > 0 and < 1");
  return o;
}

RationalQuadraticSpline::RationalQuadraticSpline(const SplineOptions& options)
    : options_(options) {}

// Zero widths and heights give equal bins; softplus(log(e^{1-m} - 1)) = 1 - m
// gives inner slopes of exactly 1 (nflows' boundary constant), so the spline
// is the identity.
Real RationalQuadraticSpline::identity_value(Index p) const {
  if (p < 2 * options_.bins) return 0;
  return std::log(std::expm1(1 - options_.min_derivative));
}

Real RationalQuadraticSpline::forward_one(Real x, const Real* raw, Index stride, Real& logdet,
                                          Real* cache) const {
  const Index K = options_.bins;
  const Real B = options_.tail_bound;
  if (!(x >= -B && x <= B)) {  // the identity tails (and NaN, which stays NaN)
    logdet = 0;
    if (cache) cache[kInside] = 0;
    return x;
  }
  Real local[2 * kMaxBins];
  Real* pw = cache ? cache + kSoftmax : local;
  Real* ph = pw + K;
  softmax(raw, stride, K, pw);
  softmax(raw + K * stride, stride, K, ph);
  const Bin bx = find_bin(x, pw, K, options_.min_bin_width, B);
  const Index k = bx.k;
  const Bin by = bin_at(k, ph, K, options_.min_bin_height, B);
  const Real* e = raw + 2 * K * stride;
  const Real d0 = k == 0 ? Real(1) : options_.min_derivative + softplus(e[(k - 1) * stride]);
  const Real d1 = k + 1 == K ? Real(1) : options_.min_derivative + softplus(e[k * stride]);

  const Real w = bx.hi - bx.lo;
  const Real h = by.hi - by.lo;
  const Real s = h / w;
  const Real xi = (x - bx.lo) / w;
  const Real t = xi * (1 - xi);
  const Real num = h * (s * xi * xi + d0 * t);
  const Real den = s + (d0 + d1 - 2 * s) * t;
  const Real dnum = s * s * (d1 * xi * xi + 2 * s * t + d0 * (1 - xi) * (1 - xi));
  logdet = std::log(dnum) - 2 * std::log(den);
  if (cache) {
    cache[kInside] = 1;
    cache[kBin] = Real(k);
    cache[kXi] = xi;
    cache[kWidth] = w;
    cache[kHeight] = h;
    cache[kD0] = d0;
    cache[kD1] = d1;
    cache[kSig0] = k == 0 ? Real(0) : sigmoid(e[(k - 1) * stride]);
    cache[kSig1] = k + 1 == K ? Real(0) : sigmoid(e[k * stride]);
  }
  return by.lo + num / den;
}

// The inverse solves a ξ² + b ξ + c = 0 for ξ ∈ [0, 1] (Durkan et al. 2019,
// appendix A) with the root in the form 2c / (-b - √(b² - 4ac)), which does
// not cancel: c = -s (y - y_k) ≤ 0 and the denominator is negative, and it
// vanishes only when c = 0 and b ≤ 0, which cannot happen (c = 0 means
// y = y_k, where b = h δ_k > 0).
Real RationalQuadraticSpline::inverse_one(Real y, const Real* raw, Index stride,
                                          Real& logdet) const {
  const Index K = options_.bins;
  const Real B = options_.tail_bound;
  if (!(y >= -B && y <= B)) {
    logdet = 0;
    return y;
  }
  Real pw[kMaxBins], ph[kMaxBins];
  softmax(raw, stride, K, pw);
  softmax(raw + K * stride, stride, K, ph);
  const Bin by = find_bin(y, ph, K, options_.min_bin_height, B);
  const Index k = by.k;
  const Bin bx = bin_at(k, pw, K, options_.min_bin_width, B);
  const Real* e = raw + 2 * K * stride;
  const Real d0 = k == 0 ? Real(1) : options_.min_derivative + softplus(e[(k - 1) * stride]);
  const Real d1 = k + 1 == K ? Real(1) : options_.min_derivative + softplus(e[k * stride]);

  const Real w = bx.hi - bx.lo;
  const Real h = by.hi - by.lo;
  const Real s = h / w;
  const Real dy = y - by.lo;
  const Real curve = d0 + d1 - 2 * s;
  const Real a = h * (s - d0) + dy * curve;
  const Real b = h * d0 - dy * curve;
  const Real c = -s * dy;
  const Real disc = std::max(b * b - 4 * a * c, Real(0));
  const Real xi = 2 * c / (-b - std::sqrt(disc));
  const Real t = xi * (1 - xi);
  const Real den = s + curve * t;
  const Real dnum = s * s * (d1 * xi * xi + 2 * s * t + d0 * (1 - xi) * (1 - xi));
  logdet = 2 * std::log(den) - std::log(dnum);
  return bx.lo + xi * w;
}

// Backward through y = y_k + h q(ξ, s, δ_k, δ_{k+1}) and
// ℓ = log dy/dx = 2 log s + log M - 2 log D, where
//   t = ξ(1-ξ),  n = s ξ² + δ_k t,  D = s + (δ_k + δ_{k+1} - 2s) t,  q = n / D,
//   M = δ_{k+1} ξ² + 2 s t + δ_k (1-ξ)²,
// then through ξ = (x - x_k)/w, s = h/w, w = x_{k+1} - x_k, h = y_{k+1} - y_k,
// the knots' cumulative sums, the softmaxes and the softplus.
Real RationalQuadraticSpline::backward_one(const Real* cache, Real gy, Real gl, Real* graw,
                                           Index stride) const {
  const Index K = options_.bins;
  const Index P = params_per_dim();
  if (cache[kInside] == 0) {
    for (Index p = 0; p < P; ++p) graw[p * stride] = 0;
    return gy;
  }
  // Widths and heights are all written below; derivatives only at k-1 and k.
  for (Index p = 2 * K; p < P; ++p) graw[p * stride] = 0;
  const Real B = options_.tail_bound;
  const Index k = static_cast<Index>(cache[kBin]);
  const Real xi = cache[kXi], w = cache[kWidth], h = cache[kHeight];
  const Real d0 = cache[kD0], d1 = cache[kD1];
  const Real s = h / w;
  const Real t = xi * (1 - xi);
  const Real dt = 1 - 2 * xi;
  const Real curve = d0 + d1 - 2 * s;
  const Real n = s * xi * xi + d0 * t;
  const Real D = s + curve * t;
  const Real inv_D = 1 / D;
  const Real q = n * inv_D;
  const Real M = d1 * xi * xi + 2 * s * t + d0 * (1 - xi) * (1 - xi);
  const Real inv_M = 1 / M;

  // ∂q and ∂ℓ with respect to ξ, s, δ_k, δ_{k+1}.
  const Real dq_dxi = ((2 * s * xi + d0 * dt) - q * curve * dt) * inv_D;
  const Real dq_ds = (xi * xi - q * (1 - 2 * t)) * inv_D;
  const Real dq_dd0 = t * (1 - q) * inv_D;
  const Real dq_dd1 = -q * t * inv_D;
  const Real dl_dxi =
      (2 * d1 * xi + 2 * s * dt - 2 * d0 * (1 - xi)) * inv_M - 2 * curve * dt * inv_D;
  const Real dl_ds = 2 / s + 2 * t * inv_M - 2 * (1 - 2 * t) * inv_D;
  const Real dl_dd0 = (1 - xi) * (1 - xi) * inv_M - 2 * t * inv_D;
  const Real dl_dd1 = xi * xi * inv_M - 2 * t * inv_D;

  const Real gq = gy * h;
  const Real g_xi = gq * dq_dxi + gl * dl_dxi;
  const Real g_s = gq * dq_ds + gl * dl_ds;
  const Real g_d0 = gq * dq_dd0 + gl * dl_dd0;
  const Real g_d1 = gq * dq_dd1 + gl * dl_dd1;
  const Real inv_w = 1 / w;
  const Real grad_x = g_xi * inv_w;
  const Real g_h = gy * q + g_s * inv_w;            // h explicit and through s
  const Real g_w = -(g_xi * xi + g_s * s) * inv_w;  // through ξ and s
  const Real g_lo_x = -grad_x;                      // x_k through ξ
  // Knot gradients: x_k gets g_lo_x - g_w, x_{k+1} gets g_w; y_k gets
  // gy - g_h, y_{k+1} gets g_h. The end knots ±B are constants.
  const Real ax = k >= 1 ? g_lo_x - g_w : 0, cx = k + 1 < K ? g_w : 0;
  const Real ay = k >= 1 ? gy - g_h : 0, cy = k + 1 < K ? g_h : 0;

  // knot_j = -B + 2B Σ_{i<j} (m + (1 - mK) p_i), so a knot gradient G_j
  // reaches p_i for i < j; then softmax: dL/du_i = p_i (g_i - Σ_j p_j g_j).
  auto through_softmax = [&](const Real* p, Real a, Real c, Real min_size, Real* out) {
    const Real scale = 2 * B * (1 - min_size * Real(K));
    Real below = 0;
    for (Index i = 0; i < k; ++i) below += p[i];
    const Real mean = a * below + c * (below + p[k]);
    for (Index i = 0; i < K; ++i) {
      const Real g = (i < k ? a : 0) + (i <= k ? c : 0);
      out[i * stride] = scale * p[i] * (g - mean);
    }
  };
  through_softmax(cache + kSoftmax, ax, cx, options_.min_bin_width, graw);
  through_softmax(cache + kSoftmax + K, ay, cy, options_.min_bin_height, graw + K * stride);
  Real* ge = graw + 2 * K * stride;
  if (k >= 1) ge[(k - 1) * stride] = g_d0 * cache[kSig0];
  if (k + 1 < K) ge[k * stride] = g_d1 * cache[kSig1];
  return grad_x;
}

namespace {

// Rows per chunk of the batch paths: a chunk's parameters (3K - 1 columns of
// 256 doubles) stay in L1/L2 while it is processed.
constexpr Index kChunk = 256;

// The rows of a chunk in SIMD batches of kLanes: the bin search and the
// rational-quadratic arithmetic below run on kLanes rows at once, branch-free.
using Batch = xsimd::batch<Real>;
using Mask = Batch::batch_bool_type;
constexpr Index kLanes = Batch::size;
static_assert(kChunk % kLanes == 0, "a chunk is whole SIMD batches");

// Per-thread scratch of the batch paths, in structure-of-arrays form so that
// the exponentials and logarithms run over SIMD batches of rows. It only
// grows, so training steps do not allocate.
struct Scratch {
  std::vector<Vector> param;  // param[p][i]: parameter p of chunk row i, then its transform
  std::vector<Vector> sig;    // σ(e) of the inner derivative parameters
  Vector value;               // the chunk's inputs of the column (see gather_column)

  void reserve(Index params, Index bins) {
    auto sized = [](Vector& v) {
      if (v.size() != kChunk) v = xt::zeros<Real>({kChunk});
    };
    if (param.size() < params) param.resize(params);
    if (sig.size() + 1 < bins) sig.resize(bins - 1);
    for (Vector& v : param) sized(v);
    for (Vector& v : sig) sized(v);
    sized(value);
  }
};

Scratch& scratch(Index params, Index bins) {
  thread_local Scratch s;
  s.reserve(params, bins);
  return s;
}

// Copies parameter p of column j for rows [r0, r0 + m) into s.param[p], and
// zeros the rest of the chunk: the vectorized code runs over whole chunks and
// SIMD batches, and zeros keep its unused lanes finite (whatever an earlier
// call left there). True when every row's parameters are bitwise those of
// the first row (see prepare_chunk).
bool gather(const Matrix& params, const ColumnSet& set, Index j, Index r0, Index m, Index count,
            Scratch& s) {
  const Index pcols = params.shape(1);
  const Real* base = params.data() + r0 * pcols + set.offset + j;
  bool uniform = true;
  for (Index p = 0; p < count; ++p) {
    Real* out = s.param[p].data();
    const Real* in = base + p * set.stride;
    std::uint64_t first, bits, differ = 0;
    std::memcpy(&first, in, sizeof first);
    for (Index i = 0; i < m; ++i) {
      out[i] = in[i * pcols];
      std::memcpy(&bits, out + i, sizeof bits);
      differ |= bits ^ first;
    }
    uniform = uniform && differ == 0;
    std::fill(out + m, out + kChunk, Real(0));
  }
  return uniform;
}

// In place over the chunk's first m rows (rounded up to whole SIMD batches;
// the chunk holds kChunk, a multiple of the batch width, and its padding is
// finite, see gather): the softmax of param[first .. first + K). One batch of
// rows at a time, all K parameters in one pass, so the chunk is read once.
void normalize(Scratch& s, Index first, Index bins, Index m) {
  Real* p[kMaxBins];
  for (Index k = 0; k < bins; ++k) p[k] = s.param[first + k].data();
  for (Index i = 0; i < m; i += kLanes) {
    Batch top = Batch::load_unaligned(p[0] + i);
    for (Index k = 1; k < bins; ++k) top = xsimd::max(top, Batch::load_unaligned(p[k] + i));
    Batch sum(Real(0));
    for (Index k = 0; k < bins; ++k) {
      const Batch e = xsimd::exp(Batch::load_unaligned(p[k] + i) - top);
      e.store_unaligned(p[k] + i);
      sum += e;
    }
    const Batch scale = Real(1) / sum;
    for (Index k = 0; k < bins; ++k)
      (Batch::load_unaligned(p[k] + i) * scale).store_unaligned(p[k] + i);
  }
}

// In place over the chunk's first m rows (as normalize): the inner knot
// derivatives δ = m_δ + softplus(e), softplus(e) = max(e, 0) + log(1 + t),
// t = e^-|e|, and with sigmoids also σ(e) into s.sig (softplus' derivative),
// which only a forward that fills the backward's cache reads. log(1 + t)
// rather than log1p(t): t ∈ (0, 1], so the absolute error is an ulp of 1,
// and xsimd's log is the cheaper of the two.
void derivatives(Scratch& s, Index first, Index bins, Index m, Real min_derivative, bool sigmoids) {
  for (Index q = 0; q + 1 < bins; ++q) {
    Real* e = s.param[first + q].data();
    Real* sig = sigmoids ? s.sig[q].data() : nullptr;
    for (Index i = 0; i < m; i += kLanes) {
      const Batch v = Batch::load_unaligned(e + i);
      const Batch t = xsimd::exp(-xsimd::abs(v));
      const Batch one(Real(1));
      if (sig) (xsimd::select(v >= Real(0), one, t) / (one + t)).store_unaligned(sig + i);
      (Batch(min_derivative) + xsimd::max(v, Batch(Real(0))) + xsimd::log(one + t))
          .store_unaligned(e + i);
    }
  }
}

// a b + c rounded once. The batch paths place FMAs explicitly where GCC
// (-ffp-contract=fast, its default for C++) contracts the same expressions in
// scalar code (find_bin, bin_at, forward_one, inverse_one), so that each
// lane's knots, bin and forward values are bitwise those of the scalar
// expressions, and an x on a knot falls in the same bin. (xsimd 8's fma on
// AVX-512 is a multiply and an add, which GCC does not always contract.)
template <class A>
inline xsimd::batch<Real, A> fused(const xsimd::batch<Real, A>& a, const xsimd::batch<Real, A>& b,
                                   const xsimd::batch<Real, A>& c) {
#if defined(__AVX512F__)
  if constexpr (std::is_base_of<xsimd::avx512f, A>::value) return _mm512_fmadd_pd(a, b, c);
#endif
  return xsimd::fma(a, b, c);
}
inline Batch fma(const Batch& a, const Batch& b, const Batch& c) {
  return fused(a, b, c);
}
inline Batch fma(Real a, const Batch& b, Real c) {
  return fused(Batch(a), b, Batch(c));
}
inline Batch fma(Real a, const Batch& b, const Batch& c) {
  return fused(Batch(a), b, c);
}

// Column c of rows [r0, r0 + m) of a row-major matrix with `cols` columns
// into v, then zeros up to whole SIMD batches (inside [-B, B], so harmless).
void gather_column(const Real* in, Index cols, Index c, Index r0, Index m, Real* v) {
  for (Index i = 0; i < m; ++i) v[i] = in[(r0 + i) * cols + c];
  for (Index i = m; i % kLanes != 0; ++i) v[i] = 0;
}

// One chunk of one column, ready for the batch paths: its parameters
// normalized (widths, heights, knot derivatives) and its inputs, padded.
// (The scratch only grows, so the bins are given, not read off its sizes.)
// With sigmoids, also the σ(e) of the knot derivatives (see derivatives).
const Real* prepare_chunk(const Matrix& params, const ColumnSet& set, Index j, Index r0, Index m,
                          const Matrix& in, Index c, Index bins, Real min_derivative, Scratch& s,
                          bool sigmoids) {
  const Index count = 3 * bins - 1;
  // Rows with the same parameters (an autoregressive layer's first input has
  // no inputs to depend on, so without a context all of its rows share
  // them) need the transforms once: the first batch is computed, and its first
  // lane copied over the chunk. Lanes compute independently, so this is
  // bitwise what the whole chunk would give.
  const bool uniform = gather(params, set, j, r0, m, count, s) && m > 1;
  const Index rows = uniform ? 1 : m;
  normalize(s, 0, bins, rows);
  normalize(s, bins, bins, rows);
  derivatives(s, 2 * bins, bins, rows, min_derivative, sigmoids);
  if (uniform) {
    for (Index p = 0; p < count; ++p)
      std::fill(s.param[p].begin() + 1, s.param[p].end(), s.param[p](0));
    if (sigmoids)
      for (Index q = 0; q + 1 < bins; ++q)
        std::fill(s.sig[q].begin() + 1, s.sig[q].end(), s.sig[q](0));
  }
  gather_column(in.data(), in.shape(1), c, r0, m, s.value.data());
  return s.value.data();
}

// δ_{k+1} ξ² + 2 s t + δ_k (1-ξ)², with t = ξ(1-ξ): dy/dx = s² · this / den².
inline Batch slope_numerator(const Batch& xi, const Batch& t, const Batch& sl, const Batch& d0,
                             const Batch& d1) {
  const Batch u = 1.0 - xi;
  return fma(d0 * u, u, fma(d1 * xi, xi, 2.0 * sl * t));
}

// Per lane, the bin of v in the partition of normalized sizes p[q][i + lane]
// and its two knots, as find_bin computes them: the same accumulation and
// comparisons, a lane leaving the search (find_bin's break) at its first knot
// above v, so that each lane's knots are find_bin's. k is a Real, exact.
struct BinBatch {
  Batch k, lo, hi;
};
inline BinBatch search_bin(const Batch& v, const Real* const* p, Index i, Index bins, Real min_size,
                           Real scale, Real bound) {
  Batch k(Real(0)), cum(Real(0)), lo(-bound), hi(bound), qb(Real(0));
  Mask open(true);  // lanes whose knots so far are all ≤ v
  for (Index q = 1; q < bins; ++q) {
    qb += Real(1);  // q
    cum += fma(scale, Batch::load_unaligned(p[q - 1] + i), min_size);
    const Batch knot = fma(2 * bound, cum, -bound);
    const Mask ge = v >= knot;
    hi = xsimd::select(open & !ge, knot, hi);
    open = open & ge;
    k = xsimd::select(open, qb, k);
    lo = xsimd::select(open, knot, lo);
  }
  return {k, lo, hi};
}

// Per lane, the knots of bin k in the other partition, accumulated as bin_at
// does, and the knot derivatives δ_k, δ_{k+1} (1 at the ends) from
// deriv[q][i + lane] = δ_{q+1}.
struct KnotBatch {
  Batch lo, hi, d0, d1;
};
inline KnotBatch knots_at(const Batch& k, const Real* const* p, const Real* const* deriv, Index i,
                          Index bins, Real min_size, Real scale, Real bound) {
  Batch cum(Real(0)), lo(-bound), hi(bound), d0(Real(1)), d1(Real(1)), qb(Real(0));
  for (Index q = 0; q < bins; ++q, qb += Real(1)) {
    const Mask at = k == qb;
    const Batch pq = Batch::load_unaligned(p[q] + i);
    if (q > 0) {
      lo = xsimd::select(at, fma(2 * bound, cum, -bound), lo);
      d0 = xsimd::select(at, Batch::load_unaligned(deriv[q - 1] + i), d0);
    }
    if (q + 1 < bins) {
      hi = xsimd::select(at, fma(2 * bound, fma(scale, pq, cum + min_size), -bound), hi);
      d1 = xsimd::select(at, Batch::load_unaligned(deriv[q] + i), d1);
    }
    cum += fma(scale, pq, min_size);
  }
  return {lo, hi, d0, d1};
}

}  // namespace

// The batch paths compute what forward_one / inverse_one compute, chunk by
// chunk: softmaxes, softplus and logarithms vectorized over rows, then the bin
// search and the rational-quadratic arithmetic over SIMD batches of rows. The
// chunk's last batch is padded (parameters and inputs 0, see gather and
// gather_column) and its extra lanes dropped, so a row's result does not depend
// on where it falls in the chunk. Rows outside [-B, B] (and NaN) compute on
// x = 0 and are then replaced by the identity. Chunks are the outer loop, so
// that a chunk's rows of `params` are still in cache for its next column.
void RationalQuadraticSpline::forward(const Matrix& in, Matrix& out, Vector& logdet,
                                      const ColumnSet& set, const Matrix& params,
                                      Real* cache) const {
  const Index K = options_.bins, P = params_per_dim(), csize = cache_size();
  const Real B = options_.tail_bound;
  const Index rows = in.shape(0), cols = in.shape(1);
  Scratch& s = scratch(P, K);
  const Real* pw[kMaxBins];  // the chunk's normalized widths and heights, per bin
  const Real* ph[kMaxBins];
  const Real* pd[kMaxBins];  // and its inner knot derivatives δ_1 .. δ_{K-1}
  for (Index k = 0; k < K; ++k) pw[k] = s.param[k].data(), ph[k] = s.param[K + k].data();
  for (Index k = 0; k + 1 < K; ++k) pd[k] = s.param[2 * K + k].data();
  const Real wscale = 1 - options_.min_bin_width * Real(K);
  const Real hscale = 1 - options_.min_bin_height * Real(K);
  for (Index r0 = 0; r0 < rows; r0 += kChunk) {
    const Index m = std::min(kChunk, rows - r0);
    for (Index j = 0; j < set.count; ++j) {
      const Index c = set.cols[j];
      const Real* value = prepare_chunk(params, set, j, r0, m, in, c, K, options_.min_derivative, s,
                                        cache != nullptr);
      for (Index i = 0; i < m; i += kLanes) {
        const Index n = std::min(kLanes, m - i);
        const Batch x_in = Batch::load_unaligned(value + i);
        const Mask inside = (x_in >= Batch(-B)) & (x_in <= Batch(B));
        const Batch x = xsimd::select(inside, x_in, Batch(Real(0)));
        const BinBatch bx = search_bin(x, pw, i, K, options_.min_bin_width, wscale, B);
        const KnotBatch by = knots_at(bx.k, ph, pd, i, K, options_.min_bin_height, hscale, B);
        const Batch d0 = by.d0, d1 = by.d1;
        const Batch w = bx.hi - bx.lo, h = by.hi - by.lo, sl = h / w;
        const Batch xi = (x - bx.lo) / w;
        const Batch t = xi * (1.0 - xi);
        const Batch den = fma(d0 + d1 - 2.0 * sl, t, sl);
        const Batch y = by.lo + h * fma(sl * xi, xi, d0 * t) / den;
        const Batch arg = sl * sl * slope_numerator(xi, t, sl, d0, d1) / (den * den);
        Real yv[kLanes], lv[kLanes];
        xsimd::select(inside, y, x_in).store_unaligned(yv);
        xsimd::log(xsimd::select(inside, arg, Batch(Real(1)))).store_unaligned(lv);
        for (Index l = 0; l < n; ++l) {
          out.data()[(r0 + i + l) * cols + c] = yv[l];
          logdet(r0 + i + l) += lv[l];
        }
        if (!cache) continue;
        Real kv[kLanes], xiv[kLanes], wv[kLanes], hv[kLanes], d0v[kLanes], d1v[kLanes], iv[kLanes];
        xsimd::select(inside, Batch(Real(1)), Batch(Real(0))).store_unaligned(iv);
        bx.k.store_unaligned(kv);
        xi.store_unaligned(xiv);
        w.store_unaligned(wv);
        h.store_unaligned(hv);
        d0.store_unaligned(d0v);
        d1.store_unaligned(d1v);
        for (Index l = 0; l < n; ++l) {
          const Index row = i + l;
          Real* slot = cache + ((r0 + row) * set.count + j) * csize;
          slot[kInside] = iv[l];
          if (iv[l] == 0) continue;
          const Index k = static_cast<Index>(kv[l]);
          slot[kBin] = kv[l];
          slot[kXi] = xiv[l];
          slot[kWidth] = wv[l];
          slot[kHeight] = hv[l];
          slot[kD0] = d0v[l];
          slot[kD1] = d1v[l];
          slot[kSig0] = k == 0 ? Real(0) : s.sig[k - 1][row];
          slot[kSig1] = k + 1 == K ? Real(0) : s.sig[k][row];
          for (Index q = 0; q < K; ++q) {
            slot[kSoftmax + q] = pw[q][row];
            slot[kSoftmax + K + q] = ph[q][row];
          }
        }
      }
    }
  }
}

void RationalQuadraticSpline::inverse(const Matrix& in, Matrix& out, Vector& logdet,
                                      const ColumnSet& set, const Matrix& params) const {
  const Index K = options_.bins, P = params_per_dim();
  const Real B = options_.tail_bound;
  const Index rows = in.shape(0), cols = in.shape(1);
  Scratch& s = scratch(P, K);
  const Real* pw[kMaxBins];  // the chunk's normalized widths and heights, per bin
  const Real* ph[kMaxBins];
  const Real* pd[kMaxBins];  // and its inner knot derivatives δ_1 .. δ_{K-1}
  for (Index k = 0; k < K; ++k) pw[k] = s.param[k].data(), ph[k] = s.param[K + k].data();
  for (Index k = 0; k + 1 < K; ++k) pd[k] = s.param[2 * K + k].data();
  const Real wscale = 1 - options_.min_bin_width * Real(K);
  const Real hscale = 1 - options_.min_bin_height * Real(K);
  for (Index r0 = 0; r0 < rows; r0 += kChunk) {
    const Index m = std::min(kChunk, rows - r0);
    for (Index j = 0; j < set.count; ++j) {
      const Index c = set.cols[j];
      const Real* value =
          prepare_chunk(params, set, j, r0, m, in, c, K, options_.min_derivative, s, false);
      for (Index i = 0; i < m; i += kLanes) {
        const Index n = std::min(kLanes, m - i);
        const Batch y_in = Batch::load_unaligned(value + i);
        const Mask inside = (y_in >= Batch(-B)) & (y_in <= Batch(B));
        const Batch y = xsimd::select(inside, y_in, Batch(Real(0)));
        const BinBatch by = search_bin(y, ph, i, K, options_.min_bin_height, hscale, B);
        const KnotBatch bx = knots_at(by.k, pw, pd, i, K, options_.min_bin_width, wscale, B);
        const Batch d0 = bx.d0, d1 = bx.d1;
        const Batch w = bx.hi - bx.lo, h = by.hi - by.lo, sl = h / w;
        const Batch dy = y - by.lo;
        const Batch curve = d0 + d1 - 2.0 * sl;
        const Batch a = fma(h, sl - d0, dy * curve);
        const Batch b = fma(h, d0, -(dy * curve));  // contracted, as in inverse_one
        const Batch cc = -sl * dy;
        const Batch d = fma(b, b, -(4.0 * a * cc));
        const Batch disc = xsimd::select(d < Batch(Real(0)), Batch(Real(0)), d);  // max(d, 0)
        const Batch xi = 2.0 * cc / (-b - xsimd::sqrt(disc));
        const Batch t = xi * (1.0 - xi);
        const Batch den = fma(curve, t, sl);
        const Batch x = fma(xi, w, bx.lo);
        // log dx/dy = -log dy/dx
        const Batch arg = (den * den) / (sl * sl * slope_numerator(xi, t, sl, d0, d1));
        Real xv[kLanes], lv[kLanes];
        xsimd::select(inside, x, y_in).store_unaligned(xv);
        xsimd::log(xsimd::select(inside, arg, Batch(Real(1)))).store_unaligned(lv);
        for (Index l = 0; l < n; ++l) {
          out.data()[(r0 + i + l) * cols + c] = xv[l];
          logdet(r0 + i + l) += lv[l];
        }
      }
    }
  }
}

void RationalQuadraticSpline::backward(const Real* cache, const Matrix& grad_out,
                                       const Vector& grad_logdet, const ColumnSet& set,
                                       Matrix& grad_in, Matrix& grad_params) const {
  const Index rows = grad_out.shape(0), cols = grad_out.shape(1), pcols = grad_params.shape(1);
  const Index csize = cache_size();
  const Real* g = grad_out.data();
  Real* gx = grad_in.data();
  Real* gtheta = grad_params.data();
  for (Index r = 0; r < rows; ++r)
    for (Index j = 0; j < set.count; ++j) {
      const Index c = set.cols[j];
      gx[r * cols + c] =
          backward_one(cache + (r * set.count + j) * csize, g[r * cols + c], grad_logdet(r),
                       gtheta + r * pcols + set.offset + j, set.stride);
    }
}

}  // namespace flows::spline
