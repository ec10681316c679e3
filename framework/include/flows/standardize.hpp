#pragma once
#include "flows/bijector.hpp"
#include "flows/export.hpp"
#include "flows/ranks.hpp"
#include "flows/tensor.hpp"

namespace flows {

// The data standardization that is part of the model: z = (x - mean) / scale
// per column, fitted once on the training split and then fixed (it has no
// trainable parameters). Because it is a bijector in the chain, log-densities
// stay in the data's own units: log|det ∂z/∂x| = -Σ_j log scale_j per row.
class FLOWS_API Standardize : public Bijector {
 public:
  // mean and scale are 1 x d; every scale must be finite and > 0. A shape
  // mismatch or bad scale raises DataError.
  Standardize(Matrix mean, Matrix scale);

  // Column means and population standard deviations of `train` (n x d, n > 0).
  // A constant column (std <= 1e-12 · max(1, |mean|)) gets scale 1, so it is
  // only centred.
  static Standardize fit(const Matrix& train);
  // The same fit when each rank holds a share of the training rows: the
  // sums are added across the ranks (batch_moments), so every rank gets the
  // fit of all rows, as one process would up to summation order. Without
  // several ranks, fit(train).
  static Standardize fit(const Matrix& train, Ranks* ranks);

  const Matrix& mean() const { return mean_; }
  const Matrix& scale() const { return scale_; }

  ParameterList parameters() override { return {}; }
  // Mean and scale are state ("mean", "scale"), checked when loaded.
  void visit_state(StateVisitor& visitor) override;

 private:
  Transformed forward_impl(const Matrix& x, const Matrix& context) const override;
  Transformed inverse_impl(const Matrix& z, const Matrix& context) const override;
  void forward_train_impl(const Matrix& x, const Matrix& context, Matrix& z,
                          Vector& logdet) override;
  // grad_x = grad_z / scale; logdet does not depend on x, so grad_logdet adds nothing.
  void backward_impl(const Matrix& grad_z, const Vector& grad_logdet, Matrix& grad_x,
                     Matrix* grad_context) override;

  // DataError unless mean and scale are 1 x d, finite, scale > 0; sets log_scale_sum_.
  void check_and_sum();

  Matrix mean_;
  Matrix scale_;
  Real log_scale_sum_ = 0;  // Σ_j log scale_j
};

}  // namespace flows
