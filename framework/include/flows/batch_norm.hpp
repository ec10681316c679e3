#pragma once
#include <memory>
#include <vector>

#include "flows/batch_moments.hpp"
#include "flows/bijector.hpp"
#include "flows/config.hpp"
#include "flows/export.hpp"
#include "flows/registry.hpp"

namespace flows {

// Batch normalisation as a bijector (Dinh, Sohl-Dickstein & Bengio 2017,
// "Density estimation using Real NVP", sec. 3.6; Papamakarios, Pavlakou &
// Murray 2017, "Masked Autoregressive Flow for Density Estimation", sec. 3.4):
//   z = (x − m) / sqrt(v + ε) ⊙ e^γ + β,   log|det ∂z/∂x| = Σ_j (γ_j − ½ log(v_j + ε)),
// with learnable γ ("log_gamma") and β ("beta"). forward_train uses the
// batch's mean and (biased) variance for m, v and updates running averages,
//   m̄ ← (1 − momentum) m̄ + momentum m,   v̄ ← (1 − momentum) v̄ + momentum v;
// forward and inverse use the running averages (m̄ = 0, v̄ = 1 at start).
// γ enters through the overflow guard clamp(γ, ±kMaxLogScale) of
// log_scale.hpp (nothing changes for |γ| ≤ 30).
// The running averages are parameters marked not trainable: optimizers skip
// them, and the trainer's best-parameter snapshot and checkpoints keep them
// together with γ and β.
class FLOWS_API BatchNorm final : public Bijector {
 public:
  BatchNorm(Index dim, Real momentum, Real epsilon);

  ParameterList parameters() override {
    return {&log_gamma_, &beta_, &running_mean_, &running_var_};
  }
  // The parameters; a loaded running variance must be > 0.
  void visit_state(StateVisitor& visitor) override;
  // The batch's mean and variance couple every row of it.
  bool rows_independent_in_training() const override { return false; }
  // On several ranks the batch's mean and variance, and the sums of its
  // backward pass, are those of every rank's share together.
  void share_batch_statistics(Ranks* ranks) override { ranks_ = ranks; }

  const Matrix& running_mean() const { return running_mean_.value; }
  const Matrix& running_var() const { return running_var_.value; }

 private:
  Transformed forward_impl(const Matrix& x, const Matrix& context) const override;
  Transformed inverse_impl(const Matrix& z, const Matrix& context) const override;
  void forward_train_impl(const Matrix& x, const Matrix& context, Matrix& z,
                          Vector& logdet) override;
  void backward_impl(const Matrix& grad_z, const Vector& grad_logdet, Matrix& grad_x,
                     Matrix* grad_context) override;

  Parameter log_gamma_;  // γ, 1 x d
  Parameter beta_;       // β, 1 x d
  Real momentum_;
  Real epsilon_;
  Parameter running_mean_;  // m̄, 1 x d, not trained
  Parameter running_var_;   // v̄, 1 x d, not trained
  // Record of the last forward_train.
  Matrix normalized_;  // x̂ = (x − m) / sqrt(v + ε)
  Matrix inv_std_;     // 1 / sqrt(v + ε), 1 x d
  Ranks* ranks_ = nullptr;
  Real share_weight_ = 1;  // this rank's rows / the batch's rows
  // Buffers of every step, kept so that training does not allocate.
  BatchMoments moments_;
  std::vector<Real> own_sums_, batch_sums_;  // backward: this rank's, the batch's
};

struct FLOWS_API BatchNormOptions {
  Real momentum = 0.1;  // weight of each new batch in the running averages, in (0, 1]
  Real epsilon = 1e-5;  // added to every variance before the square root, > 0

  static BatchNormOptions from(ConfigNode& node);
};

// Factory of `batch_norm`.
FLOWS_API std::unique_ptr<Bijector> make_batch_norm(ConfigNode& node, const BuildContext& context);

}  // namespace flows
