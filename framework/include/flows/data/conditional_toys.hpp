#pragma once
// Toy data sets with a context, whose conditional density is known in closed
// form, so that a conditional flow q(x | c) can be scored exactly: on rows
// (x, c) drawn from the joint,
//   mean KL(p(·|c) ‖ q(·|c)) = E[log p(x | c)] − E[log q(x | c)]
//                           = test NLL of q − test NLL of p,
// with the true log p(x | c) per row from the *_log_prob functions below.
#include <string>
#include <vector>

#include "flows/export.hpp"
#include "flows/rng.hpp"
#include "flows/tensor.hpp"

namespace flows {

// ---------------------------------------------------------------------------
// conditional_gaussian: c ~ N(0, I_k), x | c ~ N(μ(c), Σ(c)) in two dimensions.
// With u = (c_1 + … + c_k)/√k (so u ~ N(0, 1) whatever k) and j = 1..k:
//   μ(c)    = A c + b,   b = (0.5, −0.5),   A_1j = 1/√k,   A_2j = (−1)^(j+1) · 0.5/√k
//   σ_1(c)  = exp(−0.7 + 0.5 tanh(u))        (log std linear in u near 0,
//   σ_2(c)  = exp(−1.2 − 0.5 tanh(u))         saturating: in [e^−1.7, e^−0.2])
//   ρ(c)    = 0.6 tanh(u)                    (correlation of x_1 and x_2)
//   Σ(c)    = [[σ_1², ρ σ_1 σ_2], [ρ σ_1 σ_2, σ_2²]].
// Columns x1, x2 (data) and c1..ck (context).
// ---------------------------------------------------------------------------

// The parameters of x | c for one context row.
struct ConditionalGaussianAt {
  Real mean[2];
  Real std[2];
  Real rho;
};

// μ(c), σ(c), ρ(c) for one context row (k = c.size() ≥ 1).
FLOWS_API ConditionalGaussianAt conditional_gaussian_at(const Real* c, Index k);

// One x per context row (n x 2), from `rng`; DataError when context has no column.
FLOWS_API Matrix conditional_gaussian_sample(const Matrix& context, Rng& rng);

// True log p(x | c) per row (bivariate normal density); DataError on a shape
// mismatch (x must be n x 2, context n x k with k ≥ 1).
FLOWS_API Vector conditional_gaussian_log_prob(const Matrix& x, const Matrix& context);

// ---------------------------------------------------------------------------
// linear_gaussian: simulation-based inference with a linear-Gaussian
// simulator. θ ~ N(0, I_d) is the prior, x_obs = A θ + ε with
// ε ~ N(0, σ² I_m), and A (m x d) fixed: A_ij = (−1)^(i+j) / (1 + |i − j|)
// (1-based i, j), e.g. [[1, −0.5], [−0.5, 1]] for d = m = 2. The posterior is
// Gaussian (Bishop, PRML 2006, eqs. 2.116–2.117, with prior mean 0 and
// precision I, likelihood precision I/σ²):
//   p(θ | x_obs) = N(μ(x_obs), Σ),  Σ = (I + AᵀA/σ²)⁻¹,  μ(x_obs) = Σ Aᵀ x_obs / σ².
// The data columns are θ (theta1..thetad), the context columns x_obs
// (xobs1..xobsm): a flow fit to them learns p(θ | x_obs).
// ---------------------------------------------------------------------------

struct FLOWS_API LinearGaussianSimulator {
  Index theta_dim = 2;   // d ≥ 1
  Index obs_dim = 2;     // m ≥ 1
  Real obs_noise = 0.5;  // σ > 0

  // A (m x d) as above.
  Matrix design() const;
  // n draws of the prior θ (n x d) and the simulator's x_obs (n x m).
  void simulate(Index n, Rng& rng, Matrix& theta, Matrix& x_obs) const;
  // Posterior covariance Σ (d x d) and the posterior mean for each row of
  // x_obs (n x d).
  Matrix posterior_covariance() const;
  Matrix posterior_mean(const Matrix& x_obs) const;
  // True log p(θ | x_obs) per row; DataError on a shape mismatch.
  Vector posterior_log_prob(const Matrix& theta, const Matrix& x_obs) const;
  // ConfigError naming the bad field (dims 0, σ not finite and > 0).
  void check() const;
};

// Names of the conditional toys (kind "dataset"), in the documentation's order.
FLOWS_API const std::vector<std::string>& conditional_toy_names();

}  // namespace flows
