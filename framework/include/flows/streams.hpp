#pragma once
// Every random stream of a run, named in one place. A pipeline's one seed
// gives each consumer a stream of its own, so that a draw added to one never
// shifts another. There are three kinds:
//   - the seed of a component the pipeline builds: component_seed(seed, ·),
//     passed as BuildContext::seed;
//   - a stream of draws of the run itself: run_stream(seed, ·);
//   - a stream inside a component, from its own BuildContext::seed:
//     substream(component seed, ·), or Rng(component seed).derive(tag) for
//     the tags below.
// The numbers are part of what a seed means: changing one changes every model,
// sample and metric drawn from it, so they stay as they are.
#include <cstdint>
#include <optional>

#include "flows/rng.hpp"
#include "flows/tensor.hpp"

namespace flows {

// Seeds of the components a pipeline builds: mix_seed(seed, ·).
enum class ComponentSeed : std::uint64_t {
  dataset = 1,
  trainer = 2,
  report = 7,   // the report's own draws (samples at three contexts)
  doctor = 11,  // the rows and samples the doctor checks
  base_distribution = 100,
  context_encoder = 200,
  first_bijector = 1000,  // bijectors[k] gets first_bijector + k
};

// Streams of draws of the run: Rng(seed).derive(·).
enum class RunStream : std::uint64_t {
  data_rows = 1,         // a dataset's rows (sampled data sets, splits)
  minibatches = 3,       // the training mini-batches
  samples = 4,           // the sample stage's rows, and the report's
  quality_samples = 5,   // the evaluate stage's samples for MMD and sliced W1
  quality_metric = 6,    // the evaluate stage's random projections and subsets
  dequantize_noise = 8,  // the U(0, 1) noise of each training mini-batch
  evaluation = 9,        // fixed evaluation draws, then .derive(split): 0 train, 1 val, 2 test
};

// Streams inside a component, from its BuildContext::seed: mix_seed(seed, ·).
enum class Substream : std::uint64_t {
  hutchinson_probes = 7,  // flow_matching: the trace estimator's probes
  cfm_draws = 11,         // cfm trainer: the noise and times of each mini-batch
  cfm_validation = 12,    // cfm trainer: the fixed draws of the validation loss
};

// Streams inside a component: Rng(component seed).derive(·). The tags spell
// the component's name in ASCII.
namespace stream_tags {
inline constexpr std::uint64_t permutation = 0x7065726d;         // "perm"
inline constexpr std::uint64_t conditional_normal = 0x636f6e64;  // "cond"
inline constexpr std::uint64_t gaussian_mixture = 0x6d6978;      // "mix"
inline constexpr std::uint64_t dataset = 0x64617461;             // "data"
inline constexpr std::uint64_t rank = 0x72616e6b;     // "rank": a rank's own draws, + its rank
inline constexpr std::uint64_t made_order = 1;        // a MAF layer's random input order
inline constexpr std::uint64_t made_weights = 2;      // its MADE's initial weights
inline constexpr std::uint64_t coupling_layer = 0;    // a coupling layer's weights: + layer
inline constexpr std::uint64_t coupling_mask = 1000;  // a coupling pair's split: + pair
inline constexpr std::uint64_t discrete_train = 11;   // the discrete data set's rows
inline constexpr std::uint64_t discrete_val = 12;
inline constexpr std::uint64_t discrete_test = 13;
}  // namespace stream_tags

// The uses of a data set's randomness, under stream_tags::dataset of its seed
// (its own `seed:` key, else the Rng its load() is given).
enum class DataUse : std::uint64_t {
  train = 0,
  val = 1,
  test = 2,
  file_shuffle = 3,  // the row order of a file split into train, val and test
  structure = 5,     // correlated_gaussians: its covariance and means
};

inline std::uint64_t component_seed(Index seed, ComponentSeed which) {
  return mix_seed(seed, static_cast<std::uint64_t>(which));
}
inline std::uint64_t bijector_seed(Index seed, Index k) {
  return mix_seed(seed, static_cast<std::uint64_t>(ComponentSeed::first_bijector) + k);
}
inline Rng run_stream(Index seed, RunStream which) {
  return Rng(seed).derive(static_cast<std::uint64_t>(which));
}
inline std::uint64_t substream(std::uint64_t component_seed, Substream which) {
  return mix_seed(component_seed, static_cast<std::uint64_t>(which));
}

inline Rng data_stream(const std::optional<std::uint64_t>& seed, const Rng& rng, DataUse use) {
  return Rng(seed ? *seed : rng.seed())
      .derive(stream_tags::dataset)
      .derive(static_cast<std::uint64_t>(use));
}

}  // namespace flows
