#pragma once
#include <string>
#include <vector>

#include <flows/config.hpp>
#include <flows/nn/activation.hpp>
#include <flows/nn/mlp.hpp>
#include <flows/parameter.hpp>
#include <flows/rng.hpp>
#include <flows/tensor.hpp>

namespace flows::flow_matching {

struct VelocityFieldOptions {
  std::vector<Index> hidden = {64, 64, 64};  // hidden layer widths of the MLP
  std::string activation = "selu";           // any name of nn::Activation
  Index time_frequencies = 4;  // sinusoidal time features: sin and cos of 2^k π t, k < this

  // Reads the keys above from `node` (the bijector's node; no finish()).
  void read_from(ConfigNode& node);
};

// The velocity field v(x, t) of a continuous flow: an MLP on the input x
// concatenated with an embedding of t,
//   e(t) = [t, sin(π t), cos(π t), sin(2π t), cos(2π t), …, sin(2^{F-1} π t), cos(2^{F-1} π t)],
// (Fourier features of t; F = time_frequencies, F = 0 gives torchcfm's MLP on
// [x, t]). Training goes through the SDK's nn::MLP (forward/backward with
// hand-derived parameter gradients); the ODE solves go through Evaluator, which
// uses that t is the same for the whole batch.
class VelocityField {
 public:
  VelocityField(Index dim, const VelocityFieldOptions& options, Rng& rng);
  // params_ points into mlp_: no copies.
  VelocityField(const VelocityField&) = delete;
  VelocityField& operator=(const VelocityField&) = delete;

  Index dim() const { return dim_; }
  // d + 1 + 2F: the MLP's input width.
  Index input_features() const { return dim_ + 1 + 2 * frequencies_; }
  Index time_frequencies() const { return frequencies_; }
  // Writes e(t) (1 + 2F values) to out.
  void embed_time(Real t, Real* out) const;
  // [x, e(t_i)] row by row; t has one entry per row of x.
  void features(const Matrix& x, const Vector& t, Matrix& out) const;

  // Training pass: v = v(x_i, t_i) per row, recording what backward needs.
  void forward(const Matrix& x, const Vector& t, Matrix& v);
  // For the last forward: dL/dx into grad_x (n x d) and, unless
  // accumulate_param_grads is false, *adds* dL/dθ to the parameters' gradients
  // (with false it is the vector-Jacobian product grad_vᵀ ∂v/∂x).
  void backward(const Matrix& grad_v, Matrix& grad_x, bool accumulate_param_grads = true);

  ParameterList parameters() { return mlp_.parameters(); }
  nn::MLP& mlp() { return mlp_; }

  // v(·, t) and its divergence for a batch at one time t, with buffers reused
  // across calls: one Evaluator per ODE solve (parameters are read when it is
  // built and must not change while it lives).
  class Evaluator {
   public:
    explicit Evaluator(const VelocityField& field);
    // v = v(x, t).
    void velocity(const Matrix& x, Real t, Matrix& v);
    // v and div v = Σ_i ∂v_i/∂x_i per row, exactly: one vector-Jacobian
    // product e_iᵀ ∂v/∂x per dimension, sharing the forward pass.
    void velocity_and_divergence(const Matrix& x, Real t, Matrix& v, Vector& divergence);
    // v and Hutchinson's estimate (1/K) Σ_k ε_kᵀ (∂v/∂x) ε_k per row
    // (Hutchinson 1989; Grathwohl et al. 2019, "FFJORD", eq. 7); probes[k] is
    // n x d, fixed for a whole solve.
    void velocity_and_divergence_estimate(const Matrix& x, Real t,
                                          const std::vector<Matrix>& probes, Matrix& v,
                                          Vector& divergence);

   private:
    void forward(const Matrix& x, Real t, Matrix& v, bool derivatives);
    // g (n x width of the last hidden layer) → dL/d(pre-activation of layer 0).
    void backpropagate_hidden(Matrix& g);

    const VelocityField& field_;
    Index layers_;
    std::vector<const Matrix*> weight_;  // W_k, out x in
    std::vector<const Matrix*> bias_;    // b_k, 1 x out
    Matrix w0x_;                         // W_0's first d columns (h_0 x d)
    Matrix w0x_t_;                       // its transpose (d x h_0)
    Matrix w0t_;                         // W_0's time columns (h_0 x (1 + 2F))
    std::vector<Real> embedding_, c0_;   // e(t); b_0 + W_0t e(t)
    std::vector<Matrix> pre_, act_, deriv_, grad_;
    Matrix input_grad_;
  };

 private:
  Index dim_;
  Index frequencies_;
  nn::MLP mlp_;
  ParameterList params_;  // mlp_'s: weight 0, bias 0, weight 1, …
  Matrix features_, grad_features_;
};

}  // namespace flows::flow_matching
