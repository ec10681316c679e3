#pragma once
#include <memory>
#include <optional>
#include <vector>

#include <flows/bijector.hpp>
#include <flows/config.hpp>
#include <flows/diagnostics.hpp>
#include <flows/registry.hpp>

namespace flows::basic {

// An invertible linear map with an LU-parametrised weight (Kingma & Dhariwal
// 2018, "Glow: Generative Flow with Invertible 1x1 Convolutions", sec. 3.2;
// the linear layer that Durkan et al. 2019, "Neural Spline Flows", place
// between the layers of their tabular models):
//   z = W x + b,   W = P L U,
// with P a fixed permutation, L unit lower triangular, U upper triangular with
// diagonal u_ii = exp(s_i) > 0, so that
//   log|det ∂z/∂x| = log|det P| + Σ_i log u_ii = Σ_i s_i   (every row).
// The inverse is two triangular solves, x = U⁻¹ L⁻¹ Pᵀ (z − b), O(d²) a row.
// It starts as z = P x: the identity when P is (the default).
//
// Parameters: "lower" (1 x d(d−1)/2, L_ij for i > j at i(i−1)/2 + j),
// "upper" (1 x d(d−1)/2, U_ij for i < j at j(j−1)/2 + i), "log_diag" (s,
// 1 x d) and "bias" (b, 1 x d); for d = 1 only log_diag and bias.
class LuLinear final : public Bijector, public Diagnosable {
 public:
  // `order` is P: (P v)_j = v_{order[j]}; it must be a permutation of 0..d−1.
  explicit LuLinear(std::vector<Index> order);

  // W = P L U, d x d.
  Matrix weight() const;
  const std::vector<Index>& order() const { return order_; }

  // The 2-norm condition number of W, σ_max / σ_min (fails above
  // kConditionThreshold: a nearly singular W amplifies rounding in the
  // inverse and makes log|det| = Σ s_i a sum of large opposite terms).
  std::vector<Finding> diagnose(const Matrix& x, const Matrix& context) const override;

  ParameterList parameters() override;
  // The parameters and P ("order", checked when loaded).
  void visit_state(StateVisitor& visitor) override;

 private:
  Transformed forward_impl(const Matrix& x, const Matrix& context) const override;
  Transformed inverse_impl(const Matrix& z, const Matrix& context) const override;
  void forward_train_impl(const Matrix& x, const Matrix& context, Matrix& z,
                          Vector& logdet) override;
  void backward_impl(const Matrix& grad_z, const Vector& grad_logdet, Matrix& grad_x,
                     Matrix* grad_context) override;

  // Dense L (unit diagonal) and U (diagonal exp(s)) from the parameters.
  void factors(Matrix& lower, Matrix& upper) const;
  Real log_det() const;

  std::vector<Index> order_;
  Parameter lower_, upper_, log_diag_, bias_;
  // Training record: the input, and L, U and W of the forward pass.
  Matrix x_, l_, u_, w_;
  Matrix grad_w_, grad_m_;
};

struct LuLinearOptions {
  // Fold a fixed random permutation P into W (seeded); false: P = I, so the
  // map starts as the identity.
  bool permute = false;
  // Seed of P; absent: the build context's seed.
  std::optional<Index> seed;

  static LuLinearOptions from(ConfigNode& node);
};

// Factory of `lu_linear`.
std::unique_ptr<Bijector> make_lu_linear(ConfigNode& node, const BuildContext& context);

}  // namespace flows::basic
