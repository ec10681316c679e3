#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include <flows/bijector.hpp>
#include <flows/config.hpp>
#include <flows/nn/made.hpp>
#include <flows/registry.hpp>

#include "options.hpp"
#include "rational_quadratic_spline.hpp"

namespace flows::spline {

// Autoregressive neural spline flow (Durkan et al. 2019, sec. 3.2, "RQ-NSF
// (AR)"): per layer a MADE (Germain et al. 2015) reads x and gives, for each
// dimension i, the 3K - 1 spline parameters from the dimensions before i in
// the layer's order, and
//   z_i = τ(x_i; θ_i(x_{<i})),   log|det| = Σ_i log τ'(x_i).
// The forward is one MADE pass; the inverse takes D passes, each fixing the
// next dimension in the order. Orders alternate between natural and reversed
// from one layer to the next (the permutation between MAF layers).
class NsfAutoregressive final : public Bijector {
 public:
  NsfAutoregressive(Index dim, const NsfAutoregressiveOptions& options, std::uint64_t seed);

  Index dim() const override { return dim_; }
  Transformed forward(const Matrix& x, const Matrix& context) const override;
  Transformed inverse(const Matrix& z, const Matrix& context) const override;
  void forward_train(const Matrix& x, const Matrix& context, Matrix& z, Vector& logdet) override;
  void backward(const Matrix& grad_z, const Vector& grad_logdet, Matrix& grad_x) override;
  ParameterList parameters() override { return params_; }
  // Parameters, and each layer's ordering as structure ("layer<l>.order").
  void visit_state(StateVisitor& visitor) override;

 private:
  struct Layer {
    std::unique_ptr<nn::Made> made;
    Matrix theta, grad_theta, grad_made;
    std::vector<Real> cache;
  };
  void check_columns(const Matrix& m, const char* what) const;

  Index dim_;
  RationalQuadraticSpline spline_;
  std::vector<Index> all_cols_;  // 0 .. D-1
  std::vector<Layer> layers_;
  ParameterList params_;
  Index recorded_rows_ = 0;
  bool recorded_ = false;
};

// Factory of `nsf_autoregressive`.
std::unique_ptr<Bijector> make_nsf_autoregressive(ConfigNode& node, const BuildContext& context);

}  // namespace flows::spline
