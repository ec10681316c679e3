#include "flows/precision.hpp"

#include "flows/config.hpp"
#include "flows/error.hpp"

namespace flows {

const std::vector<std::string>& precision_names() {
  static const std::vector<std::string> names{"float32", "float64"};
  return names;
}

const std::string& precision_name(Precision precision) {
  return precision_names()[precision == Precision::float32 ? 0 : 1];
}

Precision precision_from_name(const std::string& name) {
  if (name == "float32") return Precision::float32;
  if (name == "float64") return Precision::float64;
  const std::string hint = closest_match(name, precision_names());
  throw ConfigError("unknown precision '" + name + "'; valid: float32, float64" +
                    (hint.empty() ? "" : " (did you mean '" + hint + "'?)"));
}

}  // namespace flows
