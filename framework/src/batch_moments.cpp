#include "flows/batch_moments.hpp"

namespace flows {

void sum_over_ranks(std::vector<Real>& values, Ranks* ranks) {
  if (ranks != nullptr && ranks->size() > 1) ranks->sum(values.data(), values.size());
}

void batch_moments(const Matrix& x, Index columns, Ranks* ranks, BatchMoments& m) {
  const Index n = x.size() == 0 ? 0 : x.shape(0);
  m.own_rows = n;
  // The column sums, then the row count, in one reduction.
  std::vector<Real>& sums = m.sums;
  sums.assign(columns + 1, 0.0);
  for (Index j = 0; j < columns; ++j) {
    Real sum = 0;
    for (Index i = 0; i < n; ++i) sum += x(i, j);
    sums[j] = sum;
  }
  sums[columns] = static_cast<Real>(n);
  sum_over_ranks(sums, ranks);
  m.rows = static_cast<Index>(sums[columns]);
  const Real rows = m.rows > 0 ? static_cast<Real>(m.rows) : 1;
  m.mean.resize(columns);
  for (Index j = 0; j < columns; ++j) m.mean[j] = sums[j] / rows;
  // Centred on the whole batch's mean: accurate when the offset dwarfs the spread.
  m.var.assign(columns, 0.0);
  for (Index j = 0; j < columns; ++j) {
    const Real mean = m.mean[j];
    Real squares = 0;
    for (Index i = 0; i < n; ++i) squares += (x(i, j) - mean) * (x(i, j) - mean);
    m.var[j] = squares;
  }
  sum_over_ranks(m.var, ranks);
  for (Real& v : m.var) v /= rows;
}

}  // namespace flows
