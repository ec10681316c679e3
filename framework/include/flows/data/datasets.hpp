#pragma once
#include <cstdint>
#include <optional>
#include <string>

#include "flows/config.hpp"
#include "flows/data/conditional_toys.hpp"
#include "flows/data/csv.hpp"
#include "flows/dataset.hpp"
#include "flows/export.hpp"
#include "flows/registry.hpp"

namespace flows {

// Refuses (ResourceError, at the node's n_train) a synthetic data set whose
// n_train + n_val + n_test rows of `cols` columns, plus `extra_bytes` of its
// own structure (described by `extra`), would not fit in memory
// (resources.hpp), before anything is drawn. Every synthetic data set's
// options call it after reading the sizes.
FLOWS_API void check_split_memory(const ConfigNode& node, Index n_train, Index n_val, Index n_test,
                                  Index cols, double extra_bytes = 0,
                                  const std::string& extra = "");

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

// Options of the conditional toys (see data/conditional_toys.hpp):
// conditional_gaussian reads context_dim; linear_gaussian reads theta_dim,
// obs_dim and obs_noise.
struct FLOWS_API ConditionalToyOptions {
  Index n_train = 20000;  // training rows (> 0)
  Index n_val = 2000;     // validation rows
  Index n_test = 10000;   // test rows
  // Fixes the data whatever the pipeline seed; absent: the Rng given to load().
  std::optional<std::uint64_t> seed;
  Index context_dim = 1;              // conditional_gaussian: k, the context columns (>= 1)
  LinearGaussianSimulator simulator;  // linear_gaussian: theta_dim, obs_dim, obs_noise

  static ConditionalToyOptions from(ConfigNode& node, const std::string& name);
};

// A conditional toy: x and context per split, each split from its own stream
// (as ToyDataset), columns x1, x2 | c1..ck or theta1..thetad | xobs1..xobsm.
class FLOWS_API ConditionalToyDataset : public Dataset {
 public:
  ConditionalToyDataset(std::string name, ConditionalToyOptions options);
  DataSplits load(Rng& rng) const override;

 private:
  std::string name_;
  ConditionalToyOptions options_;
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
  // Columns that are the context c of p(x | c), the rest being x: header
  // names (CSV) or 0-based column indices (CSV and NPY; an entry made of
  // digits that is not a header name is an index). Unnamed columns (NPY, CSV
  // without a header) are then named "x0", "x1", ... by their position.
  // Empty: unconditional data.
  std::vector<std::string> context_columns;

  // Reads and checks the options, resolving relative paths against the folder
  // of node.origin(); a missing file is a ConfigError naming its key.
  static FileDatasetOptions from(ConfigNode& node, FileFormat format);
};

// Data from CSV or NPY files. Splits that disagree in their number of columns
// (or CSV header names) raise DataError naming both files and keys. A
// context column that is not in the file (or out of range, or listed twice,
// or that leaves no x column) is a ConfigError naming the key and the columns
// the file has.
class FLOWS_API FileDataset : public Dataset {
 public:
  // `where` prefixes messages, naming the options in the YAML file
  // (e.g. "pipeline.yaml:4:7: data"); `context_where` names the
  // context_columns key (e.g. "pipeline.yaml:5:3: data.context_columns").
  FileDataset(FileFormat format, FileDatasetOptions options, std::string where = "",
              std::string context_where = "");
  DataSplits load(Rng& rng) const override;
  // Reads only this rank's rows: every held-out row and the rank's share of
  // the training rows (of `path` after the shuffle, or of `train`).
  DataSplits load_share(Rng& rng, Ranks* ranks) const override;

 private:
  // The rows of `path` in split order: train, val, test.
  struct SplitPlan {
    std::vector<Index> order;
    Index n_train = 0, n_val = 0, n_test = 0;
  };
  SplitPlan plan_split(Index rows, Rng& rng) const;
  // train, val and test files; with several ranks, the training file's share.
  DataSplits load_split_files(Ranks* ranks) const;
  void split_contexts(const std::string& path, DataSplits& splits) const;
  CsvHeader header_mode() const;
  Matrix read_whole(const std::string& path, std::vector<std::string>& names) const;
  // The data rows and columns of a file, without its values.
  std::pair<Index, Index> count_rows(const std::string& path,
                                     std::vector<std::string>& names) const;
  Matrix read_rows(const std::string& path, const std::vector<bool>& keep,
                   std::vector<std::string>& names) const;
  // Splits `table` into x and context columns (names: the file's, or
  // positional), filling the columns of `splits` on the first call.
  void split_context(const Matrix& table, const std::vector<std::string>& names,
                     const std::string& path, Matrix& x, Matrix& context, DataSplits& splits) const;

  FileFormat format_;
  FileDatasetOptions options_;
  std::string where_;
  std::string context_where_;
};

// Registers every toy name, the conditional toys, `csv` and `npy` as kind "dataset".
FLOWS_API void register_datasets(Registry& registry);

}  // namespace flows
