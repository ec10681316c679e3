#pragma once
// `correlated_gaussians`: synthetic data of any dimension with a known
// density, so that a flow's test NLL can be set beside the truth's. It is the
// data of the benchmark's workload W4 and of its scale sweep (apps/bench),
// where the dimension D is what varies.
//
// The distribution is an equally weighted mixture of K Gaussians in D
// dimensions, each with its own mean and full covariance:
//   p(x) = (1/K) Σ_k N(x; μ_k, L_k L_kᵀ),
//   μ_k  = s g_k,           g_k ~ N(0, I_D)                     (s: separation)
//   L_k  lower triangular,  (L_k)_jj = exp(0.25 a),  a ~ N(0, 1),
//                           (L_k)_ij = b / √D for i > j,  b ~ N(0, 1),
// so every coordinate is correlated with every earlier one in each component
// (variance of x_i within a component ≈ e^{0.5 a} + (i − 1)/D) and the
// components overlap at small D and separate as D grows (pairwise mean
// distance ≈ s √(2D)). The structure (g, a, b) is drawn from its own stream of
// the data seed, so the seed fixes the distribution; a row draws k uniformly,
// then x = μ_k + L_k ε with ε ~ N(0, I_D). With y_k = L_k⁻¹ (x − μ_k) (forward
// substitution), log N(x; μ_k, L_k L_kᵀ) = −½‖y_k‖² − Σ_j log (L_k)_jj −
// (D/2) log 2π, and log p is the log-sum-exp over k minus log K.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "flows/config.hpp"
#include "flows/dataset.hpp"
#include "flows/export.hpp"
#include "flows/registry.hpp"
#include "flows/rng.hpp"
#include "flows/tensor.hpp"

namespace flows {

// The mixture itself (see the header comment).
class FLOWS_API CorrelatedGaussians {
 public:
  // Draws the structure from `structure_rng`. ConfigError for dim or
  // components of 0, or a separation that is negative or not finite.
  CorrelatedGaussians(Index dim, Index components, Real separation, Rng& structure_rng);

  Index dim() const { return dim_; }
  Index components() const { return means_.shape(0); }
  // μ_k is row k (K x D); L_k is factors()[k] (D x D, zero above the diagonal).
  const Matrix& means() const { return means_; }
  const std::vector<Matrix>& factors() const { return factors_; }

  // n rows (n x D) from `rng`.
  Matrix draw(Index n, Rng& rng) const;
  // log p(x) per row; DataError when x does not have D columns.
  Vector log_prob(const Matrix& x) const;

 private:
  Index dim_;
  Matrix means_;
  std::vector<Matrix> factors_;
  std::vector<Real> log_det_;  // Σ_j log (L_k)_jj per component
};

struct FLOWS_API CorrelatedGaussiansOptions {
  Index n_train = 20000;  // training rows (> 0)
  Index n_val = 2000;     // validation rows
  Index n_test = 10000;   // test rows
  // Fixes the data (structure and rows) whatever the pipeline seed; absent:
  // the Rng given to load().
  std::optional<std::uint64_t> seed;
  Index dim = 64;         // D (>= 1)
  Index components = 4;   // K (>= 1)
  Real separation = 1.0;  // s (>= 0)

  static CorrelatedGaussiansOptions from(ConfigNode& node);
};

// The data set: the three splits from independent streams of the data seed
// (as the toys), columns x1..xD.
class FLOWS_API CorrelatedGaussiansDataset : public Dataset {
 public:
  explicit CorrelatedGaussiansDataset(CorrelatedGaussiansOptions options);
  DataSplits load(Rng& rng) const override;
  // The distribution load(rng) draws from (for its true log-density).
  CorrelatedGaussians distribution(const Rng& rng) const;
  const CorrelatedGaussiansOptions& options() const { return options_; }

 private:
  CorrelatedGaussiansOptions options_;
};

// Registers `correlated_gaussians` (kind dataset).
FLOWS_API void register_correlated_gaussians(Registry& registry);

}  // namespace flows
