#pragma once
#include <memory>
#include <string>
#include <vector>

#include <flows/config.hpp>
#include <flows/nn/activation.hpp>
#include <flows/nn/mlp.hpp>
#include <flows/parameter.hpp>
#include <flows/precision.hpp>
#include <flows/rng.hpp>
#include <flows/tensor.hpp>

namespace flows::flow_matching {

template <class T>
class EvaluatorOf;  // velocity_field.cpp

struct VelocityFieldOptions {
  std::vector<Index> hidden = {64, 64, 64};  // hidden layer widths of the MLP
  std::string activation = "selu";           // any name of nn::Activation
  Index time_frequencies = 4;  // sinusoidal time features: sin and cos of 2^k π t, k < this
  // What the network computes in (set from the model's precision, not a key).
  Precision precision = Precision::float64;

  // Reads the keys above from `node` (the bijector's node; no finish()).
  void read_from(ConfigNode& node);
};

// The velocity field v(x, t, c) of a continuous flow: an MLP on the input x
// concatenated with an embedding of t and, for a conditional field, the
// context row c and a null indicator m,
//   e(t) = [t, sin(π t), cos(π t), sin(2π t), cos(2π t), …, sin(2^{F-1} π t), cos(2^{F-1} π t)],
//   input = [x, e(t)]                 (unconditional; F = 0 gives torchcfm's MLP on [x, t]),
//   input = [x, e(t), c, 0]           (conditional, context present),
//   input = [x, e(t), 0, 1]           (conditional, null context ∅).
// The null context ∅ of classifier-free guidance (Ho & Salimans 2022,
// "Classifier-Free Diffusion Guidance") is explicit: zeroed context columns
// plus the indicator m = 1. The context the field sees is standardized (mean
// 0), so zeros alone would be the average context, not "no context"; the
// indicator tells them apart. With context_dropout 0 no training row has m =
// 1, so v(·, ·, ∅) is untrained (guidance refuses such a model).
//
// Training goes through the SDK's nn::MLP (forward/backward with hand-derived
// parameter gradients); the ODE solves go through Evaluator, which uses that t
// is the same for the whole batch and the context the same for a whole solve.
// Both compute in the options' precision; states, times and outputs are float64.
class VelocityField {
 public:
  VelocityField(Index dim, Index context_dim, const VelocityFieldOptions& options, Rng& rng);
  // params_ points into mlp_: no copies.
  VelocityField(const VelocityField&) = delete;
  VelocityField& operator=(const VelocityField&) = delete;

  Index dim() const { return dim_; }
  Index context_dim() const { return context_dim_; }
  Index time_frequencies() const { return frequencies_; }
  // 1 + 2F values of e(t).
  Index time_features() const { return 1 + 2 * frequencies_; }
  // k + 1 (context and indicator) for a conditional field, else 0.
  Index context_features() const { return context_dim_ > 0 ? context_dim_ + 1 : 0; }
  // The MLP's input width: d + 1 + 2F + context_features().
  Index input_features() const { return dim_ + time_features() + context_features(); }
  // Writes e(t) (1 + 2F values) to out.
  void embed_time(Real t, Real* out) const;
  // The MLP input row by row (see the class comment); t has one entry per
  // row of x; context is n x context_dim() for a conditional field (ignored
  // otherwise); dropped is empty (no row dropped) or has one flag per row,
  // nonzero where the row gets the null context ∅.
  void features(const Matrix& x, const Vector& t, const Matrix& context,
                const std::vector<char>& dropped, Matrix& out) const;

  // Training pass: v = v(x_i, t_i, c_i) per row (∅ for dropped rows),
  // recording what backward needs.
  void forward(const Matrix& x, const Vector& t, const Matrix& context, Matrix& v,
               const std::vector<char>& dropped = {});
  // For the last forward: dL/dx into grad_x (n x d) and, unless
  // accumulate_param_grads is false, *adds* dL/dθ to the parameters' gradients
  // (with false it is the vector-Jacobian product grad_vᵀ ∂v/∂x). When
  // grad_context is given (n x context_dim()), dL/dc is *added* to it (nothing
  // for dropped rows, whose output does not depend on c).
  void backward(const Matrix& grad_v, Matrix& grad_x, bool accumulate_param_grads = true,
                Matrix* grad_context = nullptr);

  ParameterList parameters() { return mlp_.parameters(); }
  nn::MLP& mlp() { return mlp_; }

  // v(·, t, c) and its divergence for a batch at one time t, with buffers
  // reused across calls: one Evaluator per ODE solve (parameters and context
  // are read when it is built and must not change while it lives).
  //
  // With guidance w ≠ 0 it is the classifier-free guided field (Ho &
  // Salimans 2022, eq. 6, with the velocity in place of the score):
  //   ṽ(x, t, c) = (1 + w) v(x, t, c) − w v(x, t, ∅),
  // and div ṽ = (1 + w) div v(·, c) − w div v(·, ∅) (divergence is linear).
  // Both terms run as one stacked batch of 2n rows.
  class Evaluator {
   public:
    // context: the rows of the batch every call gets (n x context_dim()) for a
    // conditional field; ignored by an unconditional one, as is guidance.
    explicit Evaluator(const VelocityField& field, const Matrix& context = {}, Real guidance = 0);
    ~Evaluator();
    Evaluator(Evaluator&&) noexcept;
    // v = v(x, t, c).
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

    // The computation in the field's precision (EvaluatorOf<float or double>).
    class Impl;

   private:
    std::unique_ptr<Impl> impl_;
  };

 private:
  Index dim_;
  Index context_dim_;
  Index frequencies_;
  nn::MLP mlp_;
  ParameterList params_;  // mlp_'s: weight 0, bias 0, weight 1, …
  Matrix features_, grad_features_;
  std::vector<char> dropped_;  // of the last forward

  template <class T>
  friend class EvaluatorOf;
};

}  // namespace flows::flow_matching
