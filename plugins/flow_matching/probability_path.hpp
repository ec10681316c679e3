#pragma once
#include <string>

#include <flows/tensor.hpp>

namespace flows::flow_matching {

// A conditional probability path between a noise point x0 (t = 0) and a data
// point x1 (t = 1): the point x_t and its velocity u_t = dx_t/dt that the
// velocity field regresses onto.
//   straight: the conditional optimal-transport path (Lipman et al. 2023,
//     "Flow Matching for Generative Modeling", eqs. 20–23, with x0 the noise):
//       x_t = (1 − (1 − σ_min) t) x0 + t x1,   u_t = x1 − (1 − σ_min) x0
//     (σ_min = 0: rectified flow's path, Liu et al. 2023).
//   vp: the variance-preserving trigonometric interpolant (Albergo &
//     Vanden-Eijnden 2023, "Building Normalizing Flows with Stochastic
//     Interpolants"; torchcfm's VariancePreservingConditionalFlowMatcher at σ = 0):
//       x_t = cos(πt/2) x0 + sin(πt/2) x1,   u_t = (π/2) (cos(πt/2) x1 − sin(πt/2) x0)
//     (cos² + sin² = 1: independent unit-variance ends give unit variance all along).
class ProbabilityPath {
 public:
  enum class Kind { straight, vp };
  ProbabilityPath(Kind kind, Real sigma_min) : kind_(kind), sigma_min_(sigma_min) {}

  // Row i at time t(i); xt and ut are resized.
  void sample(const Matrix& x0, const Matrix& x1, const Vector& t, Matrix& xt, Matrix& ut) const;

 private:
  Kind kind_;
  Real sigma_min_;
};

}  // namespace flows::flow_matching
