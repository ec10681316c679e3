#include "flows/bijector.hpp"

#include <fmt/format.h>

#include "flows/error.hpp"

namespace flows {

Bijector::Bijector(std::string name, Index dim, Index context_dim)
    : name_(std::move(name)), dim_(dim), context_dim_(context_dim) {
  if (dim_ == 0) throw ConfigError(name_ + ": needs a data dimension of at least 1");
}

namespace {

void check_columns(const Matrix& m, Index dim, const std::string& who, const char* what) {
  if (m.shape(1) != dim)
    throw DataError(fmt::format("{}: {} has {} columns but the bijector's dimension is {}", who,
                                what, m.shape(1), dim));
}

}  // namespace

void Bijector::check_context(const Matrix& context, Index rows, const char* call) const {
  if (context_dim_ == 0) return;
  if (context.size() == 0 && rows > 0)
    throw DataError(fmt::format("{}: {} needs a context of {} column{} (the model is conditional)",
                                name_, call, context_dim_, context_dim_ == 1 ? "" : "s"));
  if (context.shape(1) != context_dim_ || context.shape(0) != rows)
    throw DataError(fmt::format("{}: {} got a context of [{} x {}], expected [{} x {}]", name_,
                                call, context.shape(0), context.shape(1), rows, context_dim_));
}

Transformed Bijector::forward(const Matrix& x, const Matrix& context) const {
  check_columns(x, dim_, name_, "input");
  check_context(context, x.shape(0), "forward");
  return forward_impl(x, context);
}

Transformed Bijector::inverse(const Matrix& z, const Matrix& context) const {
  check_columns(z, dim_, name_, "latent input");
  check_context(context, z.shape(0), "inverse");
  return inverse_impl(z, context);
}

void Bijector::forward_train(const Matrix& x, const Matrix& context, Matrix& z, Vector& logdet) {
  if (!trains_by_likelihood())
    throw ConfigError(
        fmt::format("{} has no maximum-likelihood training pass; fit it with trainer: {{type: {}}}",
                    name_, trainer_));
  check_columns(x, dim_, name_, "input");
  check_context(context, x.shape(0), "forward_train");
  recorded_ = false;
  forward_train_impl(x, context, z, logdet);
  recorded_rows_ = x.shape(0);
  recorded_ = true;
}

void Bijector::backward(const Matrix& grad_z, const Vector& grad_logdet, Matrix& grad_x,
                        Matrix* grad_context) {
  if (!recorded_) throw Error(name_ + ": backward called before forward_train");
  if (grad_z.shape(0) != recorded_rows_ || grad_z.shape(1) != dim_ ||
      grad_logdet.size() != recorded_rows_)
    throw Error(fmt::format(
        "{}: backward got dL/dz of shape [{} x {}] and {} log-determinant gradients, but the "
        "last forward_train had [{} x {}]",
        name_, grad_z.shape(0), grad_z.shape(1), grad_logdet.size(), recorded_rows_, dim_));
  if (grad_context && context_dim_ > 0 &&
      (grad_context->shape(0) != recorded_rows_ || grad_context->shape(1) != context_dim_))
    throw Error(fmt::format("{}: backward got a context gradient of [{} x {}], expected [{} x {}]",
                            name_, grad_context->shape(0), grad_context->shape(1), recorded_rows_,
                            context_dim_));
  backward_impl(grad_z, grad_logdet, grad_x, context_dim_ > 0 ? grad_context : nullptr);
}

// Unreachable through Bijector's checks; kept as a guard for direct calls.
void RegressionFittedBijector::forward_train_impl(const Matrix&, const Matrix&, Matrix&, Vector&) {
  throw ConfigError(name() + ": fit by trainer " + trainer() + ", not by maximum likelihood");
}

void RegressionFittedBijector::backward_impl(const Matrix&, const Vector&, Matrix&, Matrix*) {
  throw ConfigError(name() + ": fit by trainer " + trainer() + ", not by maximum likelihood");
}

}  // namespace flows
