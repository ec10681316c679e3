#pragma once
#include "flows/distribution.hpp"
#include "flows/export.hpp"

namespace flows {

// N(0, I) in `dim` dimensions.
class FLOWS_API StandardNormal : public BaseDistribution {
 public:
  explicit StandardNormal(Index dim);
  Index dim() const override { return dim_; }
  Index context_dim() const override { return 0; }
  Vector log_prob(const Matrix& z, const Matrix& context) const override;
  Matrix sample(Index n, const Matrix& context, Rng& rng) const override;
  void log_prob_into(const Matrix& z, const Matrix& context, Vector& out) const override;
  void sample_into(Index n, const Matrix& context, Rng& rng, Matrix& out) const override;
  void log_prob_backward(const Matrix& z, const Matrix& context, const Vector& grad_log_prob,
                         Matrix& grad_z, Matrix* grad_context) override;
  ParameterList parameters() override { return {}; }

 private:
  Index dim_;
};

// N(mean, diag(exp(log_scale))²) with learnable mean and log_scale (1 x dim);
// log_scale enters through the overflow guard clamp(·, ±kMaxLogScale) of
// log_scale.hpp (nothing changes for |log_scale| ≤ 30).
class FLOWS_API DiagonalNormal : public BaseDistribution {
 public:
  DiagonalNormal(Index dim, Real mean = 0.0, Real log_scale = 0.0);
  Index dim() const override { return mean_.value.shape(1); }
  Index context_dim() const override { return 0; }
  Vector log_prob(const Matrix& z, const Matrix& context) const override;
  Matrix sample(Index n, const Matrix& context, Rng& rng) const override;
  void log_prob_backward(const Matrix& z, const Matrix& context, const Vector& grad_log_prob,
                         Matrix& grad_z, Matrix* grad_context) override;
  ParameterList parameters() override { return {&mean_, &log_scale_}; }

 private:
  Parameter mean_;
  Parameter log_scale_;
};

// Raises DataError unless m has `dim` columns; `what` names the caller.
FLOWS_API void check_columns(const Matrix& m, Index dim, const char* what);

}  // namespace flows
