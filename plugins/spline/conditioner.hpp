#pragma once
#include <memory>
#include <string>
#include <vector>

#include <flows/nn/activation.hpp>
#include <flows/nn/mlp.hpp>
#include <flows/parameter.hpp>
#include <flows/rng.hpp>
#include <flows/tensor.hpp>

namespace flows::spline {

// The network of a coupling layer: an MLP from the conditioning columns to the
// transformer's parameters. With no conditioning columns (a 1-D flow) there is
// nothing to condition on, and it is a learned constant row shared by every
// sample, so the layer is an unconditional elementwise transform.
class Conditioner {
 public:
  // in = 0 selects the constant. Parameter names get `prefix` in front.
  Conditioner(Index in, const std::vector<Index>& hidden, Index out, nn::Activation activation,
              Rng& rng, const std::string& prefix);

  Index out_features() const { return out_; }

  // Training pass (records for backward) and stateless inference.
  void forward(const Matrix& x, Matrix& y);
  void infer(const Matrix& x, Matrix& y) const;
  // For the last forward: dL/dx into grad_x, dL/dθ *added* to the gradients.
  void backward(const Matrix& grad_y, Matrix& grad_x);

  // Output column c starts at values[c] for every input: the last layer's
  // weight becomes zero and its bias `values`.
  void set_constant_output(const std::vector<Real>& values);

  ParameterList parameters();

 private:
  Index out_;
  std::unique_ptr<nn::MLP> mlp_;  // null for the constant
  Parameter constant_;            // 1 x out, used when mlp_ is null
};

}  // namespace flows::spline
