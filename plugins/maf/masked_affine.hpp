#pragma once
#include <vector>

#include <flows/bijector.hpp>
#include <flows/nn/made.hpp>
#include <flows/rng.hpp>

namespace flows::maf {

// One masked autoregressive affine layer (Papamakarios, Pavlakou & Murray
// 2017, "Masked Autoregressive Flow for Density Estimation", sec. 3.1, eq. 4
// read in the normalizing direction):
//   f(u)_i = (u_i − μ_i(u)) · exp(−α_i(u)),   log|det ∂f/∂u| = −Σ_i α_i(u),
// where μ and α come from one MADE with out_multiplier 2 (columns [0, D) are
// μ, [D, 2D) the raw log-scales r) and depend on u_j only for order[j] <
// order[i]. The log-scale is soft-clamped,
//   α = B · tanh(r / B),
// so |α| < B for any network output: exp(±α) can neither overflow nor reach
// zero, yet α ≈ r near zero (slope 1) and the map stays smooth. (A hard clamp
// would zero the gradient outside the bounds.)
//
// Computing f is one MADE pass; f⁻¹ takes D passes, position by position in
// the ordering (u_i = μ_i(u) + v_i e^{α_i(u)} once the earlier ones are known).
// As `maf` the layer's forward (x → z) is f; as `iaf` (inverted) its forward
// is f⁻¹ and its inverse, sampling, is the single pass f (Kingma et al. 2016,
// "Improved Variational Inference with Inverse Autoregressive Flow").
class MaskedAffine final : public Bijector {
 public:
  MaskedAffine(const std::vector<Index>& order, const nn::MadeOptions& made, Real log_scale_bound,
               bool inverted, Rng& rng);

  Index dim() const override { return made_.dim(); }
  Transformed forward(const Matrix& x, const Matrix& context) const override;
  Transformed inverse(const Matrix& z, const Matrix& context) const override;
  void forward_train(const Matrix& x, const Matrix& context, Matrix& z, Vector& logdet) override;
  void backward(const Matrix& grad_z, const Vector& grad_logdet, Matrix& grad_x) override;
  ParameterList parameters() override { return made_.parameters(); }

  nn::Made& made() { return made_; }
  const nn::Made& made() const { return made_; }
  bool inverted() const { return inverted_; }

 private:
  // v = f(u) for `rows` rows starting at u and v (n x D, contiguous), from the
  // MADE output m (rows x 2D); logdet[i] = −Σα (logdet may be null).
  void apply(const Real* u, const Matrix& m, Index rows, Real* v, Real* logdet) const;
  // u = f⁻¹(v) by D passes; logdet = +Σα(u) per row (log|det ∂f⁻¹/∂v|).
  void solve(const Matrix& v, Matrix& u, Vector& logdet) const;
  // f(u) with its logdet (out.value, out.logdet sized by the caller).
  void evaluate(const Matrix& u, Transformed& out) const;
  // From the recorded m_: alpha', e^{−α} and f(u) for the backward passes.
  void record(const Matrix& u);

  nn::Made made_;
  Real bound_;
  bool inverted_;

  // Record of the last forward_train, at the point u where the MADE ran
  // (u = x for maf, u = z for iaf).
  Matrix m_;        // MADE output, n x 2D
  Matrix scale_;    // e^{−α}
  Matrix dalpha_;   // dα/dr = 1 − (α/B)²
  Matrix f_;        // f(u)
  Matrix grad_m_;   // dL/dm
  Matrix grad_u_;   // MADE input gradients
  Matrix rhs_, v_;  // iaf: the transposed triangular solve
  bool recorded_ = false;
};

}  // namespace flows::maf
