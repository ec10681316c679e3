#pragma once
#include <string>
#include <vector>

#include "flows/export.hpp"
#include "flows/rng.hpp"
#include "flows/tensor.hpp"

namespace flows {

// The three splits of a data set, in the data's own units.
struct DataSplits {
  Matrix train;
  Matrix val;
  Matrix test;
  std::vector<std::string> columns;  // column names when the source has them
};

// A source of data, built by name (kind "dataset").
class FLOWS_API Dataset {
 public:
  virtual ~Dataset() = default;
  virtual DataSplits load(Rng& rng) const = 0;
};

}  // namespace flows
