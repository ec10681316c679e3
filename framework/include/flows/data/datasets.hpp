#pragma once
#include <cstdint>
#include <optional>
#include <string>

#include "flows/config.hpp"
#include "flows/dataset.hpp"
#include "flows/export.hpp"
#include "flows/registry.hpp"

namespace flows {

// Options of every toy data set (moons, circles, 8gaussians, ...).
struct FLOWS_API ToyDatasetOptions {
  Index n_train = 20000;  // training points (> 0)
  Index n_val = 2000;     // validation points
  Index n_test = 10000;   // test points
  // Noise scale (>= 0); absent: the toy's own default (toy_default_noise).
  std::optional<Real> noise;
  // Fixes the data whatever the pipeline seed; absent: the Rng given to load().
  std::optional<std::uint64_t> seed;

  static ToyDatasetOptions from(ConfigNode& node);
};

// A toy data set: the three splits are drawn from independent streams derived
// from `seed`, or from the seed of the Rng given to load() (which is not
// advanced), so the same seed gives the same data.
class FLOWS_API ToyDataset : public Dataset {
 public:
  ToyDataset(std::string name, ToyDatasetOptions options);
  DataSplits load(Rng& rng) const override;

 private:
  std::string name_;
  ToyDatasetOptions options_;
};

enum class FileFormat { csv, npy };

// Options of the `csv` and `npy` data sets: either one file (`path`), shuffled
// and split by fraction, or one file per split (`train`, `val`, `test`).
// Relative paths are resolved against the folder of the YAML file.
struct FLOWS_API FileDatasetOptions {
  std::string path;   // one file, split into train/val/test
  std::string train;  // or one file per split: all three are needed
  std::string val;
  std::string test;
  Real val_fraction = 0.1;   // of the rows of `path`, in [0, 1)
  Real test_fraction = 0.1;  // of the rows of `path`, in [0, 1); the two sum to < 1
  bool shuffle = true;       // shuffle the rows of `path` before splitting
  // Seeds the shuffle; absent: the Rng given to load().
  std::optional<std::uint64_t> seed;
  // CSV only: whether the first row is a header ("auto": when none of its
  // fields is a number, "true", "false").
  std::string header = "auto";

  // Reads and checks the options, resolving relative paths against the folder
  // of node.origin(); a missing file is a ConfigError naming its key.
  static FileDatasetOptions from(ConfigNode& node, FileFormat format);
};

// Data from CSV or NPY files. Splits that disagree in their number of columns
// (or CSV header names) raise DataError naming both files and keys.
class FLOWS_API FileDataset : public Dataset {
 public:
  // `where` prefixes messages, naming the options in the YAML file
  // (e.g. "pipeline.yaml:4:7: data").
  FileDataset(FileFormat format, FileDatasetOptions options, std::string where = "");
  DataSplits load(Rng& rng) const override;

 private:
  FileFormat format_;
  FileDatasetOptions options_;
  std::string where_;
};

// Registers every toy name, `csv` and `npy` as kind "dataset".
FLOWS_API void register_datasets(Registry& registry);

}  // namespace flows
