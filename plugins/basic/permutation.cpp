#include "permutation.hpp"

#include <cmath>

#include <utility>

#include <flows/error.hpp>
#include <flows/rng.hpp>

#include <flows/checks.hpp>

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

Permutation::Permutation(std::vector<Index> order, std::string name)
    : order_(std::move(order)), name_(std::move(name)) {
  check_order();
}

void Permutation::check_order() const {
  std::vector<bool> seen(order_.size(), false);
  for (Index k : order_) {
    if (k >= order_.size() || seen[k])
      throw DataError(name_ + ": the column order is not a permutation of 0.." +
                      std::to_string(order_.size()) + "-1");
    seen[k] = true;
  }
}

void Permutation::visit_state(StateVisitor& visitor) {
  Matrix order = index_row(order_);
  visitor.tensor("order", order);
  std::vector<Index> loaded(order_.size());
  for (Index k = 0; k < loaded.size(); ++k) {
    const Real v = order(0, k);
    if (!(v >= 0 && v < static_cast<Real>(order_.size())) || v != std::floor(v))
      throw DataError(name_ +
                      ": a stored column order entry is not an index: " + std::to_string(v));
    loaded[k] = static_cast<Index>(v);
  }
  std::swap(order_, loaded);
  try {
    check_order();
  } catch (...) {
    std::swap(order_, loaded);
    throw;
  }
}

Transformed Permutation::forward(const Matrix& x, const Matrix&) const {
  require_columns(x, dim(), name_.c_str(), "input");
  return {gather(x, order_, true), xt::zeros<Real>({x.shape(0)})};
}

Transformed Permutation::inverse(const Matrix& z, const Matrix&) const {
  require_columns(z, dim(), name_.c_str(), "latent input");
  return {gather(z, order_, false), xt::zeros<Real>({z.shape(0)})};
}

void Permutation::forward_train(const Matrix& x, const Matrix&, Matrix& z, Vector& logdet) {
  require_columns(x, dim(), name_.c_str(), "input");
  z = gather(x, order_, true);
  logdet = xt::zeros<Real>({x.shape(0)});
  recorded_rows_ = x.shape(0);
  recorded_ = true;
}

// z = P x is linear, so dL/dx = Pᵀ dL/dz: the inverse reordering.
void Permutation::backward(const Matrix& grad_z, const Vector& grad_logdet, Matrix& grad_x) {
  require_backward_shapes(grad_z, grad_logdet, recorded_rows_, dim(), recorded_, name_.c_str());
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
  Rng rng = Rng(seed).derive(0x7065726d);  // "perm"
  for (Index j = dim; j > 1; --j) std::swap(order[j - 1], order[rng.index(j)]);
  return order;
}

std::unique_ptr<Bijector> make_permutation(ConfigNode& node, const BuildContext& context) {
  const PermutationOptions options = PermutationOptions::from(node);
  if (context.dim == 0) throw node.error("", "needs a data dimension of at least 1");
  return std::make_unique<Permutation>(
      random_permutation(context.dim, options.seed.value_or(context.seed)), "permutation");
}

}  // namespace flows::basic
