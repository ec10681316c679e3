#include "permutation.hpp"

#include <cmath>
#include <utility>

#include <flows/error.hpp>
#include <flows/rng.hpp>
#include <flows/streams.hpp>

namespace flows::basic {

namespace {

// forward: out[:, j] = in[:, order[j]]; otherwise the inverse,
// out[:, order[j]] = in[:, j].
Matrix gather(const Matrix& in, const std::vector<Index>& order, bool forward) {
  const Index rows = in.shape(0);
  const Index cols = order.size();
  Matrix out({rows, cols});
  for (Index i = 0; i < rows; ++i)
    for (Index j = 0; j < cols; ++j) {
      if (forward)
        out(i, j) = in(i, order[j]);
      else
        out(i, order[j]) = in(i, j);
    }
  return out;
}

}  // namespace

void check_permutation(const std::vector<Index>& order, const std::string& who) {
  std::vector<bool> seen(order.size(), false);
  for (Index k : order) {
    if (k >= order.size() || seen[k])
      throw DataError(who + ": the column order is not a permutation of 0.." +
                      std::to_string(order.size()) + "-1");
    seen[k] = true;
  }
}

void visit_order(StateVisitor& visitor, std::vector<Index>& order, const std::string& who) {
  Matrix stored = index_row(order);
  visitor.tensor("order", stored);
  std::vector<Index> loaded(order.size());
  for (Index k = 0; k < loaded.size(); ++k) {
    const Real v = stored(0, k);
    if (!(v >= 0 && v < static_cast<Real>(order.size())) || v != std::floor(v))
      throw DataError(who + ": a stored column order entry is not an index: " + std::to_string(v));
    loaded[k] = static_cast<Index>(v);
  }
  check_permutation(loaded, who);  // before anything changes
  order = std::move(loaded);
}

Permutation::Permutation(std::vector<Index> order, std::string name)
    : Bijector(std::move(name), order.size()), order_(std::move(order)) {
  check_permutation(order_, this->name());
}

void Permutation::visit_state(StateVisitor& visitor) {
  visit_order(visitor, order_, name());
}

Transformed Permutation::forward_impl(const Matrix& x, const Matrix&) const {
  return {gather(x, order_, true), xt::zeros<Real>({x.shape(0)})};
}

Transformed Permutation::inverse_impl(const Matrix& z, const Matrix&) const {
  return {gather(z, order_, false), xt::zeros<Real>({z.shape(0)})};
}

void Permutation::forward_train_impl(const Matrix& x, const Matrix&, Matrix& z, Vector& logdet) {
  z = gather(x, order_, true);
  logdet = xt::zeros<Real>({x.shape(0)});
}

// z = P x is linear, so dL/dx = Pᵀ dL/dz: the inverse reordering.
void Permutation::backward_impl(const Matrix& grad_z, const Vector&, Matrix& grad_x, Matrix*) {
  grad_x = gather(grad_z, order_, false);
}

PermutationOptions PermutationOptions::from(ConfigNode& node) {
  PermutationOptions o;
  Index seed = 0;
  node.read("seed", seed);  // read even when absent, so that "did you mean" knows the key
  if (node.has("seed")) o.seed = seed;
  node.finish();
  return o;
}

std::vector<Index> random_permutation(Index dim, std::uint64_t seed) {
  std::vector<Index> order(dim);
  for (Index j = 0; j < dim; ++j) order[j] = j;
  // A stream of its own, so that a permutation does not repeat the draws of
  // another component built from the same seed.
  Rng rng = Rng(seed).derive(stream_tags::permutation);
  for (Index j = dim; j > 1; --j) std::swap(order[j - 1], order[rng.index(j)]);
  return order;
}

std::unique_ptr<Bijector> make_permutation(ConfigNode& node, const BuildContext& context) {
  const PermutationOptions options = PermutationOptions::from(node);
  return std::make_unique<Permutation>(
      random_permutation(context.dim, options.seed.value_or(context.seed)), "permutation");
}

}  // namespace flows::basic
