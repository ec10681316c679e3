#include "flows/metrics.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <utility>
#include <vector>
#include <xtensor-blas/xblas.hpp>
#include <xtensor/xadapt.hpp>
#include <xtensor/xmath.hpp>

#include "flows/error.hpp"

namespace flows {
namespace {

// Kernel and projection buffers hold at most this many entries (2 MiB of
// doubles), whatever the row counts.
constexpr Index kBlockEntries = Index(1) << 18;

void check_finite(const Matrix& m, const char* what, const char* fn) {
  for (const Real v : m)
    if (!std::isfinite(v)) throw DataError(fmt::format("{}: {} contains NaN or Inf", fn, what));
}

void check_pair(const Matrix& x, const Matrix& y, Index min_rows, const char* fn) {
  if (x.shape(1) != y.shape(1))
    throw DataError(
        fmt::format("{}: the inputs have {} and {} columns", fn, x.shape(1), y.shape(1)));
  if (x.shape(0) < min_rows || y.shape(0) < min_rows)
    throw DataError(fmt::format("{}: need at least {} rows in each input, got {} and {}", fn,
                                min_rows, x.shape(0), y.shape(0)));
  check_finite(x, "the first input", fn);
  check_finite(y, "the second input", fn);
}

// C (rows x cols, leading dimension cols) = A B^T for row-major A (rows x d)
// and B (cols x d), both contiguous.
void gemm_abt(const Real* a, Index rows, const Real* b, Index cols, Index d, Real* c) {
  using xt::blas_index_t;
  cxxblas::gemm<blas_index_t>(
      cxxblas::StorageOrder::RowMajor, cxxblas::Transpose::NoTrans, cxxblas::Transpose::Trans,
      static_cast<blas_index_t>(rows), static_cast<blas_index_t>(cols),
      static_cast<blas_index_t>(d), Real(1), a, static_cast<blas_index_t>(d), b,
      static_cast<blas_index_t>(d), Real(0), c, static_cast<blas_index_t>(cols));
}

std::vector<Real> squared_norms(const Matrix& m) {
  const Index n = m.shape(0), d = m.shape(1);
  std::vector<Real> out(n, Real(0));
  const Real* row = m.data();
  for (Index i = 0; i < n; ++i, row += d)
    for (Index k = 0; k < d; ++k) out[i] += row[k] * row[k];
  return out;
}

// Σ k(a_i, b_j) with k(a,b) = exp(-gamma |a-b|²), over all (i, j), or over
// i < j when `same` (a and b are one matrix: each unordered pair once, the
// diagonal left out). |a-b|² = |a|² + |b|² - 2 a·b: the cross terms come from
// BLAS one block of rows at a time, so memory stays at kBlockEntries.
Real kernel_sum(const Matrix& a, const Matrix& b, Real gamma, bool same) {
  const Index na = a.shape(0), nb = b.shape(0), d = a.shape(1);
  const std::vector<Real> sqa = squared_norms(a);
  const std::vector<Real> sqb = same ? sqa : squared_norms(b);
  const Index block = std::max<Index>(1, std::min(na, kBlockEntries / std::max<Index>(nb, 1)));
  std::vector<Real> buffer(block * nb);
  Real total = 0;
  for (Index r0 = 0; r0 < na; r0 += block) {
    const Index rows = std::min(block, na - r0);
    // With `same`, only columns c >= r0 can hold pairs i < c for rows i >= r0.
    const Index c0 = same ? r0 : 0;
    const Index cols = nb - c0;
    if (cols == 0) break;
    Real* g = buffer.data();
    gemm_abt(a.data() + r0 * d, rows, b.data() + c0 * d, cols, d, g);
    for (Index i = 0; i < rows; ++i) {
      Real* gi = g + i * cols;
      const Real si = sqa[r0 + i];
      for (Index j = 0; j < cols; ++j)
        gi[j] = -gamma * std::max(Real(0), si + sqb[c0 + j] - 2 * gi[j]);
      // Pairs with c <= i (the diagonal and below) contribute exp(-inf) = 0.
      if (same)
        for (Index j = 0; j <= i && j < cols; ++j) gi[j] = -std::numeric_limits<Real>::infinity();
    }
    const Index count = rows * cols;
    auto block_view = xt::adapt(g, count, xt::no_ownership(), std::array<Index, 1>{count});
    xt::noalias(block_view) = xt::exp(block_view);  // vectorized through xsimd
    Real partial = 0;
    for (Index k = 0; k < count; ++k) partial += g[k];
    total += partial;
  }
  return total;
}

// The median heuristic of mmd_squared (see the header).
Real median_bandwidth(const Matrix& x, const Matrix& y) {
  const Index m = x.shape(0), n = y.shape(0), d = x.shape(1);
  const Index pooled = m + n;
  const Index used = std::min(pooled, kMedianHeuristicRows);
  std::vector<const Real*> rows(used);
  for (Index k = 0; k < used; ++k) {
    const Index r = k * pooled / used;  // evenly spaced, exact when used == pooled
    rows[k] = r < m ? x.data() + r * d : y.data() + (r - m) * d;
  }
  std::vector<Real> dist;
  dist.reserve(used * (used - 1) / 2);
  for (Index i = 0; i < used; ++i)
    for (Index j = i + 1; j < used; ++j) {
      Real s = 0;
      for (Index k = 0; k < d; ++k) {
        const Real diff = rows[i][k] - rows[j][k];
        s += diff * diff;
      }
      dist.push_back(std::sqrt(s));
    }
  auto median = [](std::vector<Real>& v) {
    const Index half = v.size() / 2;
    std::nth_element(v.begin(), v.begin() + half, v.end());
    const Real upper = v[half];
    if (v.size() % 2 == 1) return upper;
    const Real lower = *std::max_element(v.begin(), v.begin() + half);
    return (lower + upper) / 2;
  };
  Real h = median(dist);
  if (h > 0) return h;
  dist.erase(std::remove(dist.begin(), dist.end(), Real(0)), dist.end());
  return dist.empty() ? Real(1) : median(dist);
}

// Exact W1 between the empirical measures of sorted a (m values) and sorted b
// (n values): Σ over the merged grid of quantile levels {i/m} ∪ {j/n} of
// (interval length) · |a_i - b_j|. Levels are kept as integers over m·n so
// the grid is exact.
Real wasserstein_1d_sorted(const Real* a, Index m, const Real* b, Index n) {
  Index i = 0, j = 0;
  Index level = 0;  // current quantile level times m·n
  Real total = 0;
  while (i < m && j < n) {
    const Index next_a = (i + 1) * n, next_b = (j + 1) * m;
    const Index next = std::min(next_a, next_b);
    total += Real(next - level) * std::abs(a[i] - b[j]);
    level = next;
    if (next_a == next) ++i;
    if (next_b == next) ++j;
  }
  return total / (Real(m) * Real(n));
}

// Rows of m chosen uniformly without replacement (partial Fisher–Yates), in
// their original order; m itself when it has at most `rows` rows.
Matrix subsample_rows(const Matrix& m, Index rows, Rng& rng) {
  const Index n = m.shape(0), d = m.shape(1);
  if (n <= rows) return m;
  std::vector<Index> order(n);
  std::iota(order.begin(), order.end(), Index(0));
  for (Index k = 0; k < rows; ++k) std::swap(order[k], order[k + rng.index(n - k)]);
  std::sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(rows));
  Matrix out = xt::empty<Real>({rows, d});
  for (Index k = 0; k < rows; ++k) std::copy_n(m.data() + order[k] * d, d, out.data() + k * d);
  return out;
}

// x and y less their pooled column means. The kernel depends on differences
// only, so this changes no value of it; but kernel_sum's |a|² + |b|² − 2a·b
// then works at the scale of the spread, not of the distance from the
// origin (data 10⁶ spreads away would lose 12 of its 16 digits).
std::pair<Matrix, Matrix> centred(const Matrix& x, const Matrix& y) {
  const Index d = x.shape(1);
  std::vector<Real> mean(d, Real(0));
  for (const Matrix* m : {&x, &y})
    for (Index i = 0; i < m->shape(0); ++i)
      for (Index k = 0; k < d; ++k) mean[k] += (*m)(i, k);
  for (Real& v : mean) v /= static_cast<Real>(x.shape(0) + y.shape(0));
  std::pair<Matrix, Matrix> out{x, y};
  for (Matrix* m : {&out.first, &out.second})
    for (Index i = 0; i < m->shape(0); ++i)
      for (Index k = 0; k < d; ++k) (*m)(i, k) -= mean[k];
  return out;
}

}  // namespace

MmdResult mmd_squared(const Matrix& x_in, const Matrix& y_in, Real bandwidth) {
  check_pair(x_in, y_in, 2, "mmd_squared");
  const auto [x, y] = centred(x_in, y_in);
  if (!(bandwidth >= 0) || !std::isfinite(bandwidth))
    throw ConfigError(
        fmt::format("mmd_squared: bandwidth must be >= 0 (0 = median heuristic), "
                    "got {}",
                    bandwidth));
  MmdResult result;
  result.bandwidth = bandwidth > 0 ? bandwidth : median_bandwidth(x, y);
  const Real gamma = 1 / (2 * result.bandwidth * result.bandwidth);
  const Real m = Real(x.shape(0)), n = Real(y.shape(0));
  // kernel_sum(.., true) counts each unordered pair once; Σ_{i≠j} is twice that.
  const Real kxx = 2 * kernel_sum(x, x, gamma, true) / (m * (m - 1));
  const Real kyy = 2 * kernel_sum(y, y, gamma, true) / (n * (n - 1));
  const Real kxy = kernel_sum(x, y, gamma, false) / (m * n);
  result.mmd2 = kxx + kyy - 2 * kxy;
  return result;
}

Real sliced_wasserstein(const Matrix& x, const Matrix& y, Index projections, Rng& rng) {
  check_pair(x, y, 1, "sliced_wasserstein");
  if (projections == 0) throw ConfigError("sliced_wasserstein: projections must be > 0");
  const Index d = x.shape(1), m = x.shape(0), n = y.shape(0);
  if (d == 0) return 0;

  // Uniform directions on the unit sphere: normalized standard Gaussians.
  Matrix theta = xt::empty<Real>({projections, d});
  for (Index p = 0; p < projections; ++p) {
    Real* row = theta.data() + p * d;
    Real norm2 = 0;
    while (norm2 == 0) {
      norm2 = 0;
      for (Index k = 0; k < d; ++k) {
        row[k] = rng.normal();
        norm2 += row[k] * row[k];
      }
    }
    const Real inv = 1 / std::sqrt(norm2);
    for (Index k = 0; k < d; ++k) row[k] *= inv;
  }

  // Projections one chunk of directions at a time: row p of px holds θ_p·x_i.
  const Index chunk = std::max<Index>(1, std::min(projections, kBlockEntries / std::max(m, n)));
  std::vector<Real> px(chunk * m), py(chunk * n);
  Real total = 0;
  for (Index p0 = 0; p0 < projections; p0 += chunk) {
    const Index count = std::min(chunk, projections - p0);
    gemm_abt(theta.data() + p0 * d, count, x.data(), m, d, px.data());
    gemm_abt(theta.data() + p0 * d, count, y.data(), n, d, py.data());
    for (Index p = 0; p < count; ++p) {
      Real* a = px.data() + p * m;
      Real* b = py.data() + p * n;
      std::sort(a, a + m);
      std::sort(b, b + n);
      total += wasserstein_1d_sorted(a, m, b, n);
    }
  }
  return total / Real(projections);
}

SampleQuality sample_quality(const Matrix& data, const Matrix& samples, Rng& rng, Index max_rows,
                             Index projections) {
  if (max_rows < 2) throw ConfigError("sample_quality: max_rows must be >= 2");
  if (projections == 0) throw ConfigError("sample_quality: projections must be > 0");
  check_pair(data, samples, 2, "sample_quality");
  SampleQuality q;
  q.rows = std::min({data.shape(0), samples.shape(0), max_rows});
  q.projections = projections;
  const Matrix x = subsample_rows(data, q.rows, rng);
  const Matrix y = subsample_rows(samples, q.rows, rng);
  q.mmd = mmd_squared(x, y, 0);
  q.sliced_w1 = sliced_wasserstein(x, y, projections, rng);
  return q;
}

}  // namespace flows
