#pragma once
#include <vector>

#include <flows/rng.hpp>
#include <flows/tensor.hpp>

namespace flows::flow_matching {

// Squared Euclidean distances C_ij = ‖a_i − b_j‖² (a and b with d columns).
Matrix squared_distances(const Matrix& a, const Matrix& b);

// An optimal assignment for a square cost matrix: returns σ with row i paired
// to column σ(i), minimizing Σ_i C_iσ(i). Shortest augmenting paths with dual
// potentials (Kuhn 1955; Jonker & Volgenant 1987, "A shortest augmenting path
// algorithm for dense and sparse linear assignment problems"): O(n³).
std::vector<Index> linear_assignment(const Matrix& cost);

// A column for each row drawn from the entropic optimal-transport plan between
// uniform marginals (Cuturi 2013, "Sinkhorn Distances"): the cost is divided by
// its maximum, K = exp(−C / reg), and at most `iterations` Sinkhorn scalings (fewer once
// the marginals agree to 0.1%) give
// π = diag(u) K diag(v); row i gets column j with probability π_ij / Σ_j π_ij.
// Every row keeps its partner draw, so each noise point is used once.
std::vector<Index> sinkhorn_pairing(const Matrix& cost, Real reg, Index iterations, Rng& rng);

}  // namespace flows::flow_matching
