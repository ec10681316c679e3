#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "flows/config.hpp"
#include "flows/dataset.hpp"
#include "flows/export.hpp"
#include "flows/rng.hpp"

namespace flows {

// Data sets for discrete and bounded data, with known mass functions or
// densities so that a model's bound can be compared with the truth.
//
// `binomials`: D independent columns, column j ~ Binomial(trials_j, probs_j);
//   its entropy is the sum of the columns' (binomials_entropy).
// `quantized_gaussians`: floor of a 2-D mixture of four equally weighted
//   isotropic Gaussians with means (2, 2), (2, 8), (8, 2), (8, 8) and standard
//   deviation `scale`; its mass function is
//     P(k) = ¼ Σ_m Π_j [Φ((k_j + 1 − μ_mj)/s) − Φ((k_j − μ_mj)/s)]
//   (quantized_gaussians_pmf), summed exactly over the grid for the entropy.
// `unit_box`: 2-D data in (0, 1)², a mixture of three products of Beta
//   densities with mass piled against the edges:
//     ⅓ Beta(0.7, 3) Beta(3, 0.7) + ⅓ Beta(6, 2) Beta(6, 2) + ⅓ Beta(2, 6) Beta(3, 3).
struct FLOWS_API DiscreteDatasetOptions {
  Index n_train = 20000;
  Index n_val = 2000;
  Index n_test = 10000;
  std::optional<std::uint64_t> seed;  // fixes the data whatever the pipeline seed
  std::vector<Index> trials{4, 8};    // binomials: trials per column
  std::vector<Real> probs{0.3, 0.6};  // binomials: success probability per column
  Real scale = 1.5;                   // quantized_gaussians: std of each component

  static DiscreteDatasetOptions from(ConfigNode& node, const std::string& name);
};

class FLOWS_API DiscreteDataset : public Dataset {
 public:
  DiscreteDataset(std::string name, DiscreteDatasetOptions options);
  DataSplits load(Rng& rng) const override;
  // n rows of the data set from rng.
  Matrix draw(Index n, Rng& rng) const;

 private:
  std::string name_;
  DiscreteDatasetOptions options_;
};

// The names: binomials, quantized_gaussians, unit_box.
FLOWS_API const std::vector<std::string>& discrete_dataset_names();

// Entropy in nats of the product of Binomial(trials_j, probs_j).
FLOWS_API Real binomials_entropy(const std::vector<Index>& trials, const std::vector<Real>& probs);
// P(k1, k2) of quantized_gaussians with component std `scale`.
FLOWS_API Real quantized_gaussians_pmf(long k1, long k2, Real scale);
// Its entropy in nats, summed over every cell with mass above 1e-300.
FLOWS_API Real quantized_gaussians_entropy(Real scale);

}  // namespace flows
