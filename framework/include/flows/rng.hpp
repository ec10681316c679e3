#pragma once
#include <cstdint>
#include <random>

#include "flows/export.hpp"
#include "flows/tensor.hpp"

namespace flows {

// A seeded random source. Every random draw of a run comes from an Rng derived
// from the pipeline's seed, so a run is reproducible. derive() gives an
// independent stream per component (and later per MPI rank).
class FLOWS_API Rng {
 public:
  explicit Rng(std::uint64_t seed = 0);

  std::uint64_t seed() const { return seed_; }
  // A new generator whose stream depends on this seed and `stream` only.
  Rng derive(std::uint64_t stream) const;

  Real uniform();  // in [0, 1)
  Real normal();   // standard normal
  // Uniform integer in [0, n); n must be > 0.
  Index index(Index n);
  Matrix normal(Index rows, Index cols);
  // Every entry of m drawn from N(0, 1), in m's order (as normal(rows, cols) draws).
  void fill_normal(Matrix& m);
  Matrix uniform(Index rows, Index cols);
  std::mt19937_64& engine() { return engine_; }

 private:
  std::uint64_t seed_;
  std::mt19937_64 engine_;
  std::normal_distribution<Real> normal_{0.0, 1.0};
  std::uniform_real_distribution<Real> uniform_{0.0, 1.0};
};

// SplitMix64: mixes a seed and a stream number into a new, well-spread seed.
FLOWS_API std::uint64_t mix_seed(std::uint64_t seed, std::uint64_t stream);

}  // namespace flows
