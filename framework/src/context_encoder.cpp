#include "flows/context_encoder.hpp"

#include <cmath>

#include <fmt/format.h>

#include "flows/error.hpp"
#include "flows/standardize.hpp"

namespace flows {

ContextEncoder::ContextEncoder(Index columns, const EmbeddingOptions& embedding, Rng& rng)
    : columns_(columns),
      mean_(xt::zeros<Real>({Index(1), columns})),
      scale_(xt::ones<Real>({Index(1), columns})) {
  if (columns == 0) throw ConfigError("context: a conditional model needs context columns");
  if (embedding.features > 0) {
    embedding_ = std::make_unique<nn::MLP>(columns, embedding.hidden, embedding.features,
                                           embedding.activation, rng, embedding.precision);
    for (Parameter* p : embedding_->parameters()) p->name = "embedding." + p->name;
  }
}

Index ContextEncoder::output_dim() const {
  return embedding_ ? embedding_->out_features() : columns_;
}

void ContextEncoder::fit_standardization(const Matrix& train_context, Ranks* ranks) {
  const Standardize fitted = Standardize::fit(train_context, ranks);
  mean_ = fitted.mean();
  scale_ = fitted.scale();
}

void ContextEncoder::standardize(const Matrix& context, Matrix& out) const {
  if (context.shape(1) != columns_)
    throw DataError(fmt::format("the context has {} columns, the model expects {}",
                                context.shape(1), columns_));
  const Index n = context.shape(0);
  if (out.shape(0) != n || out.shape(1) != columns_) out.resize({n, columns_});
  for (Index i = 0; i < n; ++i)
    for (Index j = 0; j < columns_; ++j) out(i, j) = (context(i, j) - mean_(0, j)) / scale_(0, j);
}

Matrix ContextEncoder::encode(const Matrix& context) const {
  Matrix standardized;
  standardize(context, standardized);
  if (!embedding_) return standardized;
  return embedding_->infer(standardized);
}

const Matrix& ContextEncoder::encode_train(const Matrix& context) {
  standardize(context, standardized_);
  if (!embedding_) return standardized_;
  embedding_->forward(standardized_, encoded_);
  return encoded_;
}

void ContextEncoder::backward(const Matrix& grad_encoded) {
  if (embedding_) embedding_->backward(grad_encoded, grad_input_);
}

ParameterList ContextEncoder::parameters() {
  return embedding_ ? embedding_->parameters() : ParameterList{};
}

void ContextEncoder::visit_state(StateVisitor& visitor) {
  Matrix mean = mean_, scale = scale_;
  visitor.tensor("mean", mean);
  visitor.tensor("scale", scale);
  const Standardize checked(mean, scale);  // DataError on a bad loaded value
  mean_ = checked.mean();
  scale_ = checked.scale();
  visit_parameters(parameters(), visitor);
}

}  // namespace flows
