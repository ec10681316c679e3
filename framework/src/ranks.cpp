#include "flows/ranks.hpp"

#include <algorithm>
#include <limits>

#include <fmt/format.h>

#include "flows/error.hpp"

namespace flows {

namespace {

bool several(const Ranks* ranks) {
  return ranks != nullptr && ranks->size() > 1;
}

}  // namespace

std::pair<Index, Index> share_of(Index rows, Ranks* ranks, Index granule) {
  if (!several(ranks)) return {0, rows};
  if (granule <= 1) return rank_share(rows, ranks->rank(), ranks->size());
  const Index runs = (rows + granule - 1) / granule;
  const auto [first, last] = rank_share(runs, ranks->rank(), ranks->size());
  return {std::min(rows, first * granule), std::min(rows, last * granule)};
}

Real mean_over_ranks(Ranks* ranks, Index rows, FunctionRef<Real(Index begin, Index end)> sum_rows,
                     Index granule) {
  if (rows == 0) return std::numeric_limits<Real>::quiet_NaN();
  const auto [begin, end] = share_of(rows, ranks, granule);
  Real sum = end > begin ? sum_rows(begin, end) : 0;
  if (several(ranks)) ranks->sum(&sum, 1);
  return sum / static_cast<Real>(rows);
}

Matrix gather_rows(Ranks* ranks, const Matrix& share, Index columns) {
  if (!several(ranks)) return share;
  std::vector<Real> all = ranks->gather(share.data(), share.size());
  if (ranks->rank() != 0) return {};
  if (columns == 0 || all.size() % static_cast<std::size_t>(columns) != 0)
    throw Error(
        fmt::format("gather_rows: {} values do not make rows of {} columns", all.size(), columns));
  Matrix out({static_cast<Index>(all.size()) / columns, columns});
  std::copy(all.begin(), all.end(), out.begin());
  return out;
}

}  // namespace flows
