#include "reverse.hpp"

#include <vector>

#include "permutation.hpp"

namespace flows::basic {

ReverseOptions ReverseOptions::from(ConfigNode& node) {
  node.finish();
  return {};
}

std::unique_ptr<Bijector> make_reverse(ConfigNode& node, const BuildContext& context) {
  ReverseOptions::from(node);
  std::vector<Index> order(context.dim);
  for (Index j = 0; j < context.dim; ++j) order[j] = context.dim - 1 - j;
  return std::make_unique<Permutation>(std::move(order), "reverse");
}

}  // namespace flows::basic
