#include "conditioner.hpp"

namespace flows::spline {

Conditioner::Conditioner(Index in, const std::vector<Index>& hidden, Index out,
                         nn::Activation activation, Rng& rng, const std::string& prefix)
    : out_(out), constant_(prefix + "constant", xt::zeros<Real>({Index(1), out})) {
  if (in == 0) return;
  mlp_ = std::make_unique<nn::MLP>(in, hidden, out, activation, rng);
  for (Parameter* p : mlp_->parameters()) p->name = prefix + p->name;
}

void Conditioner::forward(const Matrix& x, Matrix& y) {
  if (mlp_) return mlp_->forward(x, y);
  infer(x, y);
}

void Conditioner::infer(const Matrix& x, Matrix& y) const {
  if (mlp_) return mlp_->infer(x, y);
  const Index rows = x.shape(0);
  if (y.shape(0) != rows || y.shape(1) != out_) y.resize({rows, out_});
  for (Index r = 0; r < rows; ++r)
    for (Index c = 0; c < out_; ++c) y(r, c) = constant_.value(0, c);
}

void Conditioner::backward(const Matrix& grad_y, Matrix& grad_x) {
  if (mlp_) return mlp_->backward(grad_y, grad_x);
  const Index rows = grad_y.shape(0);
  for (Index r = 0; r < rows; ++r)
    for (Index c = 0; c < out_; ++c) constant_.grad(0, c) += grad_y(r, c);
  if (grad_x.shape(0) != rows || grad_x.shape(1) != 0) grad_x.resize({rows, Index(0)});
}

void Conditioner::set_constant_output(const std::vector<Real>& values) {
  if (!mlp_) {
    for (Index c = 0; c < out_; ++c) constant_.value(0, c) = values[c];
    return;
  }
  const Index last = mlp_->num_layers() - 1;
  mlp_->weight(last).value.fill(0);
  for (Index c = 0; c < out_; ++c) mlp_->bias(last).value(0, c) = values[c];
}

ParameterList Conditioner::parameters() {
  if (mlp_) return mlp_->parameters();
  return {&constant_};
}

}  // namespace flows::spline
