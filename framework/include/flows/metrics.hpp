#pragma once
// Sample-quality metrics: how close a model's samples are to held-out data,
// beyond the likelihood. Both compare two sets of rows (n x d and m x d).
#include "flows/export.hpp"
#include "flows/rng.hpp"
#include "flows/tensor.hpp"

namespace flows {

struct MmdResult {
  Real mmd2 = 0;       // unbiased estimate of MMD² (may be slightly negative)
  Real bandwidth = 0;  // h of the Gaussian kernel used
};

// At most this many rows of the pooled sample (taken at evenly spaced
// positions) enter the median heuristic, so it costs at most ~5·10⁵ distances.
inline constexpr Index kMedianHeuristicRows = 1000;

// Unbiased MMD² (Gretton, Borgwardt, Rasch, Schölkopf & Smola 2012, JMLR,
// Lemma 6) between the rows of x (m rows) and y (n rows):
//   MMD²_u = 1/(m(m-1)) Σ_{i≠j} k(x_i,x_j) + 1/(n(n-1)) Σ_{i≠j} k(y_i,y_j)
//            - 2/(mn) Σ_{i,j} k(x_i,y_j)
// with the Gaussian kernel k(a,b) = exp(-|a-b|²/(2h²)). bandwidth > 0 uses
// it; 0 uses the median heuristic: h = median of the pairwise Euclidean
// distances between distinct rows of the pooled sample (x then y; at most
// kMedianHeuristicRows evenly spaced rows of it, so deterministic; an even
// count takes the mean of the two middle values). If that median is 0 (most
// rows coincide) h is the median of the positive distances, and 1 if there
// are none. Cost O((m+n)² d) through BLAS, in blocks of bounded memory, on
// the samples less their pooled mean (the kernel is shift-invariant; data far
// from the origin then lose no digits).
// DataError on column mismatch, fewer than 2 rows in either, or NaN/Inf;
// ConfigError on a negative or non-finite bandwidth.
FLOWS_API MmdResult mmd_squared(const Matrix& x, const Matrix& y, Real bandwidth = 0);

// Sliced 1-Wasserstein distance (Bonneel, Rabin, Peyré & Pfister 2015, JMIV
// 51(1), "Sliced and Radon Wasserstein barycenters of measures"):
//   SW1(x, y) ≈ (1/P) Σ_p W1(θ_p·x, θ_p·y),
// θ_p drawn uniformly on the unit sphere (normalized Gaussian vectors from
// rng, all P·d draws made up front). Each 1-D W1 is exact for empirical
// measures of any row counts: ∫₀¹ |F⁻¹(u) - G⁻¹(u)| du over the merged grid
// of quantile levels {i/m} ∪ {j/n}. In 1-D every direction is ±1, so the
// result is the exact W1. DataError on column mismatch, an empty input or
// NaN/Inf; ConfigError if projections == 0.
FLOWS_API Real sliced_wasserstein(const Matrix& x, const Matrix& y, Index projections, Rng& rng);

// What the runner reports: both metrics between held-out data and model
// samples. Each input is subsampled without replacement (deterministically
// from rng) to the same number of rows, at most max_rows, to bound the
// O(rows²) kernel cost; the MMD uses the median-heuristic bandwidth.
struct SampleQuality {
  MmdResult mmd;
  Real sliced_w1 = 0;
  Index projections = 0;
  Index rows = 0;  // rows used from each side (min of both inputs and max_rows)
};
// ConfigError if max_rows < 2 or projections == 0; otherwise the errors above.
FLOWS_API SampleQuality sample_quality(const Matrix& data, const Matrix& samples, Rng& rng,
                                       Index max_rows = 2000, Index projections = 128);

}  // namespace flows
