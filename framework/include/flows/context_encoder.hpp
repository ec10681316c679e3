#pragma once
#include <memory>
#include <vector>

#include "flows/export.hpp"
#include "flows/nn/activation.hpp"
#include "flows/nn/mlp.hpp"
#include "flows/parameter.hpp"
#include "flows/ranks.hpp"
#include "flows/rng.hpp"
#include "flows/state.hpp"
#include "flows/tensor.hpp"

namespace flows {

// What a conditional flow does to its context c before any bijector or the
// base sees it: a fixed standardization (c − mean) / scale, fitted on the
// training split like the data's, then optionally an embedding network
// e = MLP(c) shared by every layer (zuko's and nflows' `embedding_net`),
// trained with the flow. Its output e is "the context" of the chain and base.
class FLOWS_API ContextEncoder {
 public:
  struct EmbeddingOptions {
    std::vector<Index> hidden;  // hidden widths; an empty list and features 0: no embedding
    Index features = 0;         // width of e (0: no embedding)
    nn::Activation activation{nn::Activation::Kind::relu};
    Precision precision = Precision::float64;  // what the network computes in
  };

  // `columns` raw context columns; mean and scale 1 x columns (scale > 0).
  ContextEncoder(Index columns, const EmbeddingOptions& embedding, Rng& rng);

  Index columns() const { return columns_; }
  // Width of what the chain and the base see: features, or columns.
  Index output_dim() const;
  bool has_embedding() const { return embedding_ != nullptr; }

  // Sets the standardization to the training split's column means and
  // standard deviations (as flows::Standardize::fit).
  // With several ranks, each holding a share of the rows: the fit of all.
  void fit_standardization(const Matrix& train_context, Ranks* ranks = nullptr);
  const Matrix& mean() const { return mean_; }
  const Matrix& scale() const { return scale_; }

  // e for c (n x columns), keeping no state; DataError on a wrong width.
  Matrix encode(const Matrix& context) const;
  // Training: e for c, recording for backward.
  const Matrix& encode_train(const Matrix& context);
  // dL/de of the last encode_train into the embedding's parameter gradients.
  void backward(const Matrix& grad_encoded);

  ParameterList parameters();
  // "mean", "scale" (checked when loaded) and the embedding's parameters.
  void visit_state(StateVisitor& visitor);

 private:
  void standardize(const Matrix& context, Matrix& out) const;

  Index columns_;
  Matrix mean_, scale_;
  std::unique_ptr<nn::MLP> embedding_;
  Matrix standardized_, encoded_, grad_input_;
};

}  // namespace flows
