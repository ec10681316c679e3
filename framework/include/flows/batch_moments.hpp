#pragma once
// Per-column mean and population variance of a training mini-batch, for the
// layers whose training pass normalizes by them (batch_norm, actnorm's
// initialisation). On several processes each rank holds a share of the
// batch's rows; the sums are added across the ranks, so that every rank
// gets the moments of the whole batch, as one process would.
#include <vector>

#include "flows/export.hpp"
#include "flows/ranks.hpp"
#include "flows/tensor.hpp"

namespace flows {

struct BatchMoments {
  std::vector<Real> mean;  // per column
  std::vector<Real> var;   // per column: (1/n) Σ (x − mean)², centred (two passes)
  Index rows = 0;          // n: the rows of every share together
  Index own_rows = 0;      // this process's share of them
  std::vector<Real> sums;  // scratch: the column sums and the row count
};

// The moments of x's columns (`columns` of them; x may have no rows on a
// rank whose share is empty) into `out`, whose buffers are reused, so that a
// training step does not allocate. ranks may be null (one process).
FLOWS_API void batch_moments(const Matrix& x, Index columns, Ranks* ranks, BatchMoments& out);

// Element-wise sums of `values` over the ranks when there are several (in
// place); nothing on one process.
FLOWS_API void sum_over_ranks(std::vector<Real>& values, Ranks* ranks);

}  // namespace flows
