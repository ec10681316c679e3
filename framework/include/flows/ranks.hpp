#pragma once
// The processes of a data-parallel run (issue 14). Every rank holds the same
// model and draws the same global mini-batch; it computes the gradient of its
// share of the rows, the shares' gradients are summed across the ranks, and
// every rank takes the same optimizer step. The SDK knows only this
// interface: the runner implements it on MPI (apps/flows/mpi), so that
// neither the SDK nor a plugin links MPI.
#include <cstdint>
#include <utility>

#include "flows/export.hpp"
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
};

// Rows [begin, end) of a batch of `rows` that `rank` of `size` computes:
// contiguous, in rank order, sizes differing by at most one.
inline std::pair<Index, Index> rank_share(Index rows, int rank, int size) {
  const Index r = static_cast<Index>(rank), n = static_cast<Index>(size);
  return {rows * r / n, rows * (r + 1) / n};
}

}  // namespace flows
