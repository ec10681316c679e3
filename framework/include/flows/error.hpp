#pragma once
#include <stdexcept>
#include <string>
#include "flows/export.hpp"

namespace flows {

// Every error flows raises derives from Error; the runner catches it, prints
// what() and exits non-zero.
class FLOWS_API Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A pipeline or component option is missing, unknown, mistyped or out of range.
class FLOWS_API ConfigError : public Error {
 public:
  using Error::Error;
};

// A plugin could not be found, loaded, or was built against another SDK.
class FLOWS_API PluginError : public Error {
 public:
  using Error::Error;
};

// Input data is malformed (text in a CSV, NaN, ragged rows, wrong dimension).
class FLOWS_API DataError : public Error {
 public:
  using Error::Error;
};

// Reading or writing a file failed.
class FLOWS_API IoError : public Error {
 public:
  using Error::Error;
};

// A computation produced NaN/Inf or failed to converge.
class FLOWS_API NumericalError : public Error {
 public:
  using Error::Error;
};

}  // namespace flows
