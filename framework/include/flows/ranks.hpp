#pragma once
// The processes of a data-parallel run (issue 14). Every rank holds the same
// model and draws the same global mini-batch; it computes the gradient of its
// share of the rows, the shares' gradients are summed across the ranks, and
// every rank takes the same optimizer step. The SDK knows only this
// interface: the runner implements it on MPI (apps/flows/mpi), so that
// neither the SDK nor a plugin links MPI.
#include <cstdint>
#include <utility>
#include <vector>

#include "flows/export.hpp"
#include "flows/function_ref.hpp"
#include "flows/tensor.hpp"

namespace flows {

class FLOWS_API Ranks {
 public:
  virtual ~Ranks() = default;
  virtual int rank() const = 0;  // 0 .. size() - 1
  virtual int size() const = 0;
  // Element-wise sums of `values` over every rank, in place. Every rank gets
  // the same sums, so that the ranks' models stay identical.
  virtual void sum(Real* values, Index count) = 0;
  // Whether every rank passed the same value (a hash of what must agree).
  virtual bool same_on_every_rank(std::uint64_t value) = 0;
  // Every rank's `count` values, in rank order, on rank 0; the other ranks
  // get an empty vector. The counts may differ between ranks.
  virtual std::vector<Real> gather(const Real* values, Index count) = 0;
};

// Rows [begin, end) of a batch of `rows` that `rank` of `size` computes:
// contiguous, in rank order, sizes differing by at most one.
inline std::pair<Index, Index> rank_share(Index rows, int rank, int size) {
  const Index r = static_cast<Index>(rank), n = static_cast<Index>(size);
  return {rows * r / n, rows * (r + 1) / n};
}

// This process's rows of `rows`: rank_share on several ranks, all of them
// without ranks (nullptr) or on one. With granule g > 1 the rows are dealt
// out in whole runs [k g, (k + 1) g) (the last may be short): inference
// shares use Flow::row_granule() (kInferenceRowGroup for a chain with a
// bijector that solves a group of rows together, an adaptive ODE solve, so
// that it sees the groups of one process), training shares kInferenceRowGroup.
FLOWS_API std::pair<Index, Index> share_of(Index rows, Ranks* ranks, Index granule = 1);

// The mean of a per-row quantity over `rows` rows, computed in shares:
// sum_rows(begin, end) returns the sum over this process's share [begin,
// end) (not called for an empty share), and the sums are added across the
// ranks, so every rank gets the mean of all rows. Without ranks it is
// sum_rows(0, rows) / rows. NaN when rows is 0. The shares are
// share_of(rows, ranks, granule).
FLOWS_API Real mean_over_ranks(Ranks* ranks, Index rows,
                               FunctionRef<Real(Index begin, Index end)> sum_rows,
                               Index granule = 1);

// The rows each rank computed (its share_of the rows; `share` holds
// them, `columns` wide) stacked in rank order on rank 0; the other ranks
// get an empty matrix. Without ranks, `share` itself.
FLOWS_API Matrix gather_rows(Ranks* ranks, const Matrix& share, Index columns);

}  // namespace flows
