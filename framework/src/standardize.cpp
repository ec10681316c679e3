#include "flows/standardize.hpp"

#include <algorithm>
#include <cmath>
#include <utility>

#include <fmt/format.h>

#include "flows/batch_moments.hpp"
#include "flows/error.hpp"

namespace flows {

namespace {

// The dimension of a standardization with this mean and scale; DataError
// unless both are 1 x d with d ≥ 1 (checked before the base class is built).
Index checked_dim(const Matrix& mean, const Matrix& scale) {
  if (mean.dimension() != 2 || scale.dimension() != 2 || mean.shape(0) != 1 ||
      scale.shape(0) != 1 || mean.shape(1) != scale.shape(1) || mean.shape(1) == 0)
    throw DataError(fmt::format(
        "standardization: mean is {} x {} and scale is {} x {}; both must be 1 x d with d >= 1",
        mean.shape(0), mean.shape(1), scale.shape(0), scale.shape(1)));
  return mean.shape(1);
}

// A column's scale from its standard deviation: 1 for a constant column,
// which then passes through unscaled.
Real scale_of(Real std, Real mean) {
  const bool constant = !(std > 1e-12 * std::max(Real(1), std::abs(mean)));
  return constant ? Real(1) : std;
}

}  // namespace

Standardize::Standardize(Matrix mean, Matrix scale)
    : Bijector("standardization", checked_dim(mean, scale)),
      mean_(std::move(mean)),
      scale_(std::move(scale)) {
  check_and_sum();
}

void Standardize::visit_state(StateVisitor& visitor) {
  Matrix mean = mean_, scale = scale_;
  visitor.tensor("mean", mean);
  visitor.tensor("scale", scale);
  if (mean.shape() != mean_.shape() || scale.shape() != scale_.shape())
    throw DataError(fmt::format(
        "standardization: the stored mean is {} x {} and scale {} x {}, but the model has {} "
        "columns",
        mean.shape(0), mean.shape(1), scale.shape(0), scale.shape(1), dim()));
  const Standardize loaded(std::move(mean), std::move(scale));  // checks before anything changes
  mean_ = loaded.mean_;
  scale_ = loaded.scale_;
  log_scale_sum_ = loaded.log_scale_sum_;
}

void Standardize::check_and_sum() {
  log_scale_sum_ = 0;
  for (Index j = 0; j < dim(); ++j) {
    if (!std::isfinite(mean_(0, j)))
      throw DataError(fmt::format("standardization: mean of column {} is {}", j + 1, mean_(0, j)));
    if (!(scale_(0, j) > 0) || !std::isfinite(scale_(0, j)))
      throw DataError(
          fmt::format("standardization: scale of column {} is {}; it must be finite "
                      "and > 0",
                      j + 1, scale_(0, j)));
    log_scale_sum_ += std::log(scale_(0, j));
  }
}

Standardize Standardize::fit(const Matrix& train) {
  const Index n = train.shape(0);
  const Index d = train.shape(1);
  if (n == 0 || d == 0)
    throw DataError(
        fmt::format("standardization: cannot fit on an empty training split ({} x {})", n, d));
  Matrix mean = xt::zeros<Real>({Index(1), d});
  Matrix scale = xt::zeros<Real>({Index(1), d});
  for (Index i = 0; i < n; ++i)
    for (Index j = 0; j < d; ++j) mean(0, j) += train(i, j);
  for (Index j = 0; j < d; ++j) mean(0, j) /= Real(n);
  // Two passes (mean, then squared deviations) for accuracy.
  for (Index i = 0; i < n; ++i)
    for (Index j = 0; j < d; ++j) {
      const Real dev = train(i, j) - mean(0, j);
      scale(0, j) += dev * dev;
    }
  for (Index j = 0; j < d; ++j) {
    scale(0, j) = scale_of(std::sqrt(scale(0, j) / Real(n)), mean(0, j));
  }
  return Standardize(std::move(mean), std::move(scale));
}

Standardize Standardize::fit(const Matrix& train, Ranks* ranks) {
  if (ranks == nullptr || ranks->size() <= 1) return fit(train);
  const Index d = train.dimension() == 2 ? train.shape(1) : 0;
  BatchMoments moments;
  batch_moments(train, d, ranks, moments);
  if (moments.rows == 0 || d == 0)
    throw DataError(fmt::format("standardization: cannot fit on an empty training split ({} x {})",
                                moments.rows, d));
  Matrix mean = xt::zeros<Real>({Index(1), d});
  Matrix scale = xt::zeros<Real>({Index(1), d});
  for (Index j = 0; j < d; ++j) {
    mean(0, j) = moments.mean[j];
    scale(0, j) = scale_of(std::sqrt(moments.var[j]), moments.mean[j]);
  }
  return Standardize(std::move(mean), std::move(scale));
}

Transformed Standardize::forward_impl(const Matrix& x, const Matrix& /*context*/) const {
  Transformed out;
  out.value = Matrix(x.shape());
  for (Index i = 0; i < x.shape(0); ++i)
    for (Index j = 0; j < dim(); ++j) out.value(i, j) = (x(i, j) - mean_(0, j)) / scale_(0, j);
  out.logdet = Vector::from_shape({x.shape(0)});
  out.logdet.fill(-log_scale_sum_);
  return out;
}

Transformed Standardize::inverse_impl(const Matrix& z, const Matrix& /*context*/) const {
  Transformed out;
  out.value = Matrix(z.shape());
  for (Index i = 0; i < z.shape(0); ++i)
    for (Index j = 0; j < dim(); ++j) out.value(i, j) = z(i, j) * scale_(0, j) + mean_(0, j);
  out.logdet = Vector::from_shape({z.shape(0)});
  out.logdet.fill(log_scale_sum_);
  return out;
}

void Standardize::forward_train_impl(const Matrix& x, const Matrix& /*context*/, Matrix& z,
                                     Vector& logdet) {
  if (z.shape() != x.shape()) z.resize(x.shape());
  for (Index i = 0; i < x.shape(0); ++i)
    for (Index j = 0; j < dim(); ++j) z(i, j) = (x(i, j) - mean_(0, j)) / scale_(0, j);
  if (logdet.shape(0) != x.shape(0)) logdet.resize({x.shape(0)});
  logdet.fill(-log_scale_sum_);
}

void Standardize::backward_impl(const Matrix& grad_z, const Vector& /*grad_logdet*/, Matrix& grad_x,
                                Matrix* /*grad_context*/) {
  if (grad_x.shape() != grad_z.shape()) grad_x.resize(grad_z.shape());
  for (Index i = 0; i < grad_z.shape(0); ++i)
    for (Index j = 0; j < dim(); ++j) grad_x(i, j) = grad_z(i, j) / scale_(0, j);
}

}  // namespace flows
