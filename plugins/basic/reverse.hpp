#pragma once
#include <memory>

#include <flows/bijector.hpp>
#include <flows/config.hpp>
#include <flows/registry.hpp>

namespace flows::basic {

// `reverse` has no options; the struct is here so that every component reads
// its node the same way (and unknown keys are rejected).
struct ReverseOptions {
  static ReverseOptions from(ConfigNode& node);
};

// Factory of `reverse`: the permutation z_j = x_{d-1-j}.
std::unique_ptr<Bijector> make_reverse(ConfigNode& node, const BuildContext& context);

}  // namespace flows::basic
