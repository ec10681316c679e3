#pragma once
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <flows/bijector.hpp>
#include <flows/config.hpp>
#include <flows/registry.hpp>

namespace flows::basic {

// A fixed reordering of the columns, z_j = x_{order[j]}. It has no
// parameters and its Jacobian is a permutation matrix, so log|det| = 0.
class Permutation final : public Bijector {
 public:
  // `order` must hold each of 0 .. order.size()-1 once; `name` is used in
  // error messages ("reverse", "permutation").
  Permutation(std::vector<Index> order, std::string name);

  const std::vector<Index>& order() const { return order_; }

  ParameterList parameters() override { return {}; }
  // The order is state ("order"): a loaded order replaces it after checking.
  void visit_state(StateVisitor& visitor) override;

 private:
  Transformed forward_impl(const Matrix& x, const Matrix& context) const override;
  Transformed inverse_impl(const Matrix& z, const Matrix& context) const override;
  void forward_train_impl(const Matrix& x, const Matrix& context, Matrix& z,
                          Vector& logdet) override;
  void backward_impl(const Matrix& grad_z, const Vector& grad_logdet, Matrix& grad_x,
                     Matrix* grad_context) override;

  std::vector<Index> order_;  // z column j takes x column order_[j]
};

struct PermutationOptions {
  // Seed of the random permutation; absent: the build context's seed, so a
  // pipeline's seed fixes every permutation in it.
  std::optional<Index> seed;

  static PermutationOptions from(ConfigNode& node);
};

// DataError naming `who` unless `order` holds each of 0 .. order.size()-1 once.
void check_permutation(const std::vector<Index>& order, const std::string& who);

// Visits a column order as the state tensor "order"; when loading, replaces
// `order` by the stored one once it is checked to be a permutation of the
// same size (DataError naming `who` otherwise, leaving `order` as it was).
void visit_order(StateVisitor& visitor, std::vector<Index>& order, const std::string& who);

// A uniformly random permutation of 0 .. dim-1 (Fisher–Yates), fixed by `seed`.
std::vector<Index> random_permutation(Index dim, std::uint64_t seed);

// Factory of `permutation`.
std::unique_ptr<Bijector> make_permutation(ConfigNode& node, const BuildContext& context);

}  // namespace flows::basic
