#pragma once
#include <string>
#include <vector>

#include "flows/export.hpp"
#include "flows/rng.hpp"
#include "flows/tensor.hpp"

namespace flows {

// The three splits of a data set, in the data's own units. For conditional
// density estimation p(x | c) each split also has its context rows (one per
// data row); an unconditional data set has empty context matrices.
struct DataSplits {
  Matrix train;
  Matrix val;
  Matrix test;
  std::vector<std::string> columns;  // names of the x columns when the source has them
  Matrix train_context;
  Matrix val_context;
  Matrix test_context;
  std::vector<std::string> context_columns;  // names of the context columns

  // Context columns (0: unconditional data).
  Index context_dim() const { return context_columns.size(); }
};

// A source of data, built by name (kind "dataset").
class FLOWS_API Dataset {
 public:
  virtual ~Dataset() = default;
  virtual DataSplits load(Rng& rng) const = 0;
};

}  // namespace flows
