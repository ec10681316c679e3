#pragma once
#include <flows/config.hpp>
#include <flows/diagnostics.hpp>
#include <flows/tensor.hpp>

#include <flows/transformer.hpp>

namespace flows::spline {

// The shape of a rational-quadratic spline; nflows' defaults for the minima.
// B = 5 rather than 3: standardized data with a heavy tail leave [−3, 3]
// (1.8 % of a banana's upper tail), where every layer is the identity and no
// training can reshape them; a wide bound costs only resolution, which the
// learnt bin widths partly recover (docs/yaml_reference.md, `tail_bound`).
struct SplineOptions {
  Index bins = 8;              // K, the number of bins on [-tail_bound, tail_bound]
  Real tail_bound = 5.0;       // B; outside [-B, B] the map is the identity
  Real min_bin_width = 1e-3;   // each bin is at least this fraction of 2B wide
  Real min_bin_height = 1e-3;  // and at least this fraction of 2B high
  Real min_derivative = 1e-3;  // inner knot derivatives are at least this

  // Reads the five keys above from `node` and checks them, without finish()
  // (the bijector that owns the spline reads its other keys and finishes).
  static SplineOptions read(ConfigNode& node);
};

// The monotonic rational-quadratic spline of Durkan, Bekasov, Murray and
// Papamakarios 2019 ("Neural Spline Flows", sec. 3.1), after Gregory and
// Delbourgo 1982, with linear (identity) tails outside [-B, B].
//
// Per element it takes 3K - 1 unconstrained parameters, laid out as nflows
// does: widths u_0..u_{K-1}, heights v_0..v_{K-1}, inner derivatives
// e_1..e_{K-1}:
//   bin widths  w_k = m_w + (1 - m_w K) softmax(u)_k, knots x_k = -B + 2B Σ_{j<k} w_j
//   bin heights h_k = m_h + (1 - m_h K) softmax(v)_k, knots y_k alike
//   derivatives δ_k = m_δ + softplus(e_k) inside, δ_0 = δ_K = 1 (the tails' slope),
// so zero parameters give equal bins and inner slopes m_δ + log 2; the
// derivative parameter log(e^{1 - m_δ} - 1) (identity_value) gives slope 1,
// the constant nflows pads its boundary derivatives with.
// In bin k, with ξ = (x - x_k)/(x_{k+1} - x_k) and s_k = (y_{k+1} - y_k)/(x_{k+1} - x_k):
//   y = y_k + (y_{k+1} - y_k) [s_k ξ² + δ_k ξ(1-ξ)] / [s_k + (δ_{k+1} + δ_k - 2 s_k) ξ(1-ξ)]
//   dy/dx = s_k² [δ_{k+1} ξ² + 2 s_k ξ(1-ξ) + δ_k (1-ξ)²] / [s_k + (δ_{k+1} + δ_k - 2 s_k) ξ(1-ξ)]²
// A tail element's value, log-derivative and gradient never involve the
// spline (the batch paths evaluate it on 0 for such rows, branch-free, and
// drop the result), so no NaN can reach a gradient.
// As a BoundedTransformer it tells the layers that use it B, for the doctor.
class RationalQuadraticSpline final : public Transformer, public BoundedTransformer {
 public:
  explicit RationalQuadraticSpline(const SplineOptions& options);

  const SplineOptions& options() const { return options_; }
  Index bins() const { return options_.bins; }
  Real tail_bound() const override { return options_.tail_bound; }

  Index params_per_dim() const override { return 3 * options_.bins - 1; }
  Index cache_size() const override { return 9 + 2 * options_.bins; }
  Real identity_value(Index p) const override;

  // One element, parameter p at raw[p * stride]. Returns y and sets logdet =
  // log dy/dx; with `cache`, records what backward_one needs.
  Real forward_one(Real x, const Real* raw, Index stride, Real& logdet, Real* cache) const;
  // x = τ⁻¹(y); logdet = log dx/dy.
  Real inverse_one(Real y, const Real* raw, Index stride, Real& logdet) const;
  // From forward_one's cache and g = dL/dy, γ = dL/dlogdet: writes dL/dθ_p
  // into graw[p * stride] for every p and returns dL/dx.
  Real backward_one(const Real* cache, Real grad_y, Real grad_logdet, Real* graw,
                    Index stride) const;

  void forward(const Matrix& in, Matrix& out, Vector& logdet, const ColumnSet& set,
               const Matrix& params, Real* cache) const override;
  void inverse(const Matrix& in, Matrix& out, Vector& logdet, const ColumnSet& set,
               const Matrix& params) const override;
  void backward(const Real* cache, const Matrix& grad_out, const Vector& grad_logdet,
                const ColumnSet& set, Matrix& grad_in, Matrix& grad_params) const override;

 private:
  SplineOptions options_;
};

}  // namespace flows::spline
