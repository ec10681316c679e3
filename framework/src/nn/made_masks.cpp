#include "flows/nn/made_masks.hpp"

#include <algorithm>
#include <numeric>
#include <string>
#include <utility>

#include "flows/config.hpp"
#include "flows/error.hpp"

namespace flows::nn {

namespace {

void check_dim(Index dim) {
  if (dim == 0) throw ConfigError("MADE: the dimension must be positive");
}

}  // namespace

std::vector<Index> natural_order(Index dim) {
  check_dim(dim);
  std::vector<Index> order(dim);
  std::iota(order.begin(), order.end(), Index(0));
  return order;
}

std::vector<Index> reversed_order(Index dim) {
  std::vector<Index> order = natural_order(dim);
  std::reverse(order.begin(), order.end());
  return order;
}

// Fisher–Yates, drawing from rng so that a seed fixes the order.
std::vector<Index> random_order(Index dim, Rng& rng) {
  std::vector<Index> order = natural_order(dim);
  for (Index i = dim; i > 1; --i) std::swap(order[i - 1], order[rng.index(i)]);
  return order;
}

const std::vector<std::string>& order_names() {
  static const std::vector<std::string> names{"natural", "reversed", "random"};
  return names;
}

std::vector<Index> make_order(const std::string& name, Index dim, Rng& rng) {
  if (name == "natural") return natural_order(dim);
  if (name == "reversed") return reversed_order(dim);
  if (name == "random") return random_order(dim, rng);
  const std::string hint = closest_match(name, order_names());
  throw ConfigError("unknown ordering '" + name + "'; valid names: natural, reversed, random" +
                    (hint.empty() ? "" : " (did you mean '" + hint + "'?)"));
}

void check_order(const std::vector<Index>& order) {
  check_dim(order.size());
  std::vector<bool> seen(order.size(), false);
  for (Index position : order) {
    if (position >= order.size() || seen[position])
      throw ConfigError("MADE: the order must be a permutation of 0.." +
                        std::to_string(order.size() - 1) + " (each position once)");
    seen[position] = true;
  }
}

std::vector<Index> input_degrees(const std::vector<Index>& order) {
  check_order(order);
  std::vector<Index> degrees(order.size());
  for (Index i = 0; i < order.size(); ++i) degrees[i] = order[i] + 1;
  return degrees;
}

// Germain et al. 2015 draw hidden degrees from 1..D-1; cycling instead gives
// each degree as evenly as the width allows, so no input is cut off by chance.
std::vector<Index> hidden_degrees(Index width, Index dim, bool with_context) {
  check_dim(dim);
  if (width == 0) throw ConfigError("MADE: hidden widths must be positive");
  std::vector<Index> degrees(width, 0);
  if (dim == 1) return degrees;
  for (Index j = 0; j < width; ++j) degrees[j] = with_context ? j % dim : j % (dim - 1) + 1;
  return degrees;
}

// Germain et al. 2015, sec. 4: M[k', k] = 1{m(k') ≥ m(k)}.
Matrix hidden_mask(const std::vector<Index>& in_degrees, const std::vector<Index>& out_degrees) {
  Matrix mask({out_degrees.size(), in_degrees.size()});
  for (Index j = 0; j < out_degrees.size(); ++j)
    for (Index i = 0; i < in_degrees.size(); ++i)
      mask(j, i) = out_degrees[j] >= in_degrees[i] ? 1 : 0;
  return mask;
}

// Germain et al. 2015, sec. 4: M[d, k] = 1{d > m(k)}, repeated for each of
// the out_multiplier blocks of D outputs.
Matrix output_mask(const std::vector<Index>& in_degrees, const std::vector<Index>& dim_degrees,
                   Index out_multiplier) {
  if (out_multiplier == 0) throw ConfigError("MADE: out_multiplier must be positive");
  const Index dim = dim_degrees.size();
  Matrix mask({out_multiplier * dim, in_degrees.size()});
  for (Index b = 0; b < out_multiplier; ++b)
    for (Index i = 0; i < dim; ++i)
      for (Index j = 0; j < in_degrees.size(); ++j)
        mask(b * dim + i, j) = dim_degrees[i] > in_degrees[j] ? 1 : 0;
  return mask;
}

std::vector<Matrix> made_masks(const std::vector<Index>& order, const std::vector<Index>& hidden,
                               Index out_multiplier) {
  const std::vector<Index> inputs = input_degrees(order);
  std::vector<Matrix> masks;
  masks.reserve(hidden.size() + 1);
  std::vector<Index> below = inputs;
  for (Index width : hidden) {
    std::vector<Index> degrees = hidden_degrees(width, order.size());
    masks.push_back(hidden_mask(below, degrees));
    below = std::move(degrees);
  }
  masks.push_back(output_mask(below, inputs, out_multiplier));
  return masks;
}

Matrix autoregressive_connectivity(const std::vector<Index>& order) {
  check_order(order);
  const Index dim = order.size();
  Matrix allowed({dim, dim});
  for (Index i = 0; i < dim; ++i)
    for (Index j = 0; j < dim; ++j) allowed(i, j) = order[j] < order[i] ? 1 : 0;
  return allowed;
}

}  // namespace flows::nn
