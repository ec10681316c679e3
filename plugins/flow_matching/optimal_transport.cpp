#include "optimal_transport.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include <flows/error.hpp>

namespace flows::flow_matching {

Matrix squared_distances(const Matrix& a, const Matrix& b) {
  if (a.shape(1) != b.shape(1)) throw DataError("squared_distances: column counts differ");
  const Index n = a.shape(0), m = b.shape(0), d = a.shape(1);
  Matrix c({n, m});
  for (Index i = 0; i < n; ++i) {
    const Real* ai = a.data() + i * d;
    for (Index j = 0; j < m; ++j) {
      const Real* bj = b.data() + j * d;
      Real s = 0;
      for (Index k = 0; k < d; ++k) {
        const Real diff = ai[k] - bj[k];
        s += diff * diff;
      }
      c(i, j) = s;
    }
  }
  return c;
}

// Rows are added one at a time. For row i, a Dijkstra-like search over columns
// with reduced costs C_ij − u_i − v_j ≥ 0 finds the cheapest augmenting path
// from i to a free column; the potentials are then shifted by the path length
// so every reduced cost stays non-negative and matched pairs stay tight
// (complementary slackness), which makes the final matching optimal.
// Indices are 1-based inside, with column 0 a virtual start.
std::vector<Index> linear_assignment(const Matrix& cost) {
  const Index n = cost.shape(0);
  if (cost.shape(1) != n) throw DataError("linear_assignment: the cost matrix must be square");
  const Real inf = std::numeric_limits<Real>::infinity();
  std::vector<Real> u(n + 1, 0), v(n + 1, 0), shortest(n + 1);
  std::vector<Index> row_of(n + 1, 0), previous(n + 1, 0);
  std::vector<char> visited(n + 1);
  for (Index i = 1; i <= n; ++i) {
    row_of[0] = i;
    Index column = 0;
    std::fill(shortest.begin(), shortest.end(), inf);
    std::fill(visited.begin(), visited.end(), 0);
    do {
      visited[column] = 1;
      const Index row = row_of[column];
      const Real* cost_row = cost.data() + (row - 1) * n - 1;  // 1-based columns
      const Real u_row = u[row];
      Real delta = inf;
      Index next = 0;
      for (Index j = 1; j <= n; ++j) {
        if (visited[j]) continue;
        const Real reduced = cost_row[j] - u_row - v[j];
        if (reduced < shortest[j]) {
          shortest[j] = reduced;
          previous[j] = column;
        }
        if (shortest[j] < delta) {
          delta = shortest[j];
          next = j;
        }
      }
      if (!std::isfinite(delta)) throw NumericalError("linear_assignment: non-finite cost");
      for (Index j = 0; j <= n; ++j) {
        if (visited[j]) {
          u[row_of[j]] += delta;
          v[j] -= delta;
        } else {
          shortest[j] -= delta;
        }
      }
      column = next;
    } while (row_of[column] != 0);
    // Flip the augmenting path.
    do {
      const Index before = previous[column];
      row_of[column] = row_of[before];
      column = before;
    } while (column != 0);
  }
  std::vector<Index> assignment(n);
  for (Index j = 1; j <= n; ++j) assignment[row_of[j] - 1] = j - 1;
  return assignment;
}

std::vector<Index> sinkhorn_pairing(const Matrix& cost, Real reg, Index iterations, Rng& rng) {
  const Index n = cost.shape(0), m = cost.shape(1);
  if (n == 0 || m == 0) return {};
  if (!(reg > 0)) throw ConfigError("sinkhorn: reg must be > 0");
  Real max_cost = 0;
  for (Real c : cost) max_cost = std::max(max_cost, c);
  if (!std::isfinite(max_cost)) throw NumericalError("sinkhorn: non-finite cost");
  const Real scale = max_cost > 0 ? 1 / (max_cost * reg) : 0;
  Matrix kernel({n, m});
  for (Index k = 0; k < kernel.size(); ++k) kernel.flat(k) = std::exp(-cost.flat(k) * scale);
  // Uniform marginals a = 1/n, b = 1/m: u = a / (K v), v = b / (Kᵀ u).
  // Stops early once the row marginals (the ones the v-update leaves
  // approximate) are within 0.1% of 1/n, so row-conditional draws keep the
  // data's marginal.
  std::vector<Real> u(n, 1), v(m, 1), kv(n), ktu(m);
  for (Index it = 0; it < iterations; ++it) {
    Real worst = 0;
    for (Index i = 0; i < n; ++i) {
      Real s = 0;
      for (Index j = 0; j < m; ++j) s += kernel(i, j) * v[j];
      if (it > 0) worst = std::max(worst, std::abs(u[i] * s * static_cast<Real>(n) - 1));
      u[i] = (1.0 / static_cast<Real>(n)) / s;
    }
    if (it > 0 && worst < 1e-3) break;
    std::fill(ktu.begin(), ktu.end(), Real(0));
    for (Index i = 0; i < n; ++i)
      for (Index j = 0; j < m; ++j) ktu[j] += kernel(i, j) * u[i];
    for (Index j = 0; j < m; ++j) v[j] = (1.0 / static_cast<Real>(m)) / ktu[j];
  }
  // Row i's conditional plan is ∝ K_ij v_j (u_i cancels).
  std::vector<Index> pairing(n);
  std::vector<Real> cumulative(m);
  for (Index i = 0; i < n; ++i) {
    Real total = 0;
    for (Index j = 0; j < m; ++j) cumulative[j] = total += kernel(i, j) * v[j];
    if (!(total > 0) || !std::isfinite(total))
      throw NumericalError("sinkhorn: the transport plan underflowed; raise reg");
    const Real r = rng.uniform() * total;
    pairing[i] = std::min<Index>(
        m - 1, static_cast<Index>(std::upper_bound(cumulative.begin(), cumulative.end(), r) -
                                  cumulative.begin()));
  }
  return pairing;
}

}  // namespace flows::flow_matching
