#include "flows/rng.hpp"

#include "flows/error.hpp"

namespace flows {

std::uint64_t mix_seed(std::uint64_t seed, std::uint64_t stream) {
  // SplitMix64 finalizer (Steele, Lea & Flood 2014) over seed and stream.
  std::uint64_t z = seed + 0x9E3779B97F4A7C15ULL * (stream + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

Rng::Rng(std::uint64_t seed) : seed_(seed), engine_(mix_seed(seed, 0)) {}

Rng Rng::derive(std::uint64_t stream) const {
  return Rng(mix_seed(seed_, stream + 1));
}

Real Rng::uniform() {
  return uniform_(engine_);
}

Real Rng::normal() {
  return normal_(engine_);
}

Index Rng::index(Index n) {
  if (n == 0) throw Error("Rng::index: empty range");
  std::uniform_int_distribution<Index> pick(0, n - 1);
  return pick(engine_);
}

Matrix Rng::normal(Index rows, Index cols) {
  Matrix m({rows, cols});
  fill_normal(m);
  return m;
}

void Rng::fill_normal(Matrix& m) {
  for (auto& v : m) v = normal_(engine_);
}

Matrix Rng::uniform(Index rows, Index cols) {
  Matrix m({rows, cols});
  for (auto& v : m) v = uniform_(engine_);
  return m;
}

}  // namespace flows
