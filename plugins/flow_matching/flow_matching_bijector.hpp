#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include <flows/bijector.hpp>
#include <flows/config.hpp>
#include <flows/ode_solver.hpp>
#include <flows/registry.hpp>

#include "velocity_field.hpp"

namespace flows::flow_matching {

struct FlowMatchingOptions {
  VelocityFieldOptions field;        // hidden, activation, time_frequencies
  std::string divergence = "exact";  // exact (one VJP per dimension) | hutchinson
  Index probes = 1;                  // Hutchinson probes per solve
  std::string probe = "rademacher";  // Hutchinson probe distribution: rademacher | gaussian
  bool sample_logdet = true;         // inverse integrates log|det| too; false skips the
                                     // divergence (faster sampling) and returns NaN logdet
  // `solver:` (an ode_solver by type, dopri5 by default) is read by the factory.

  // Reads every key but `solver` (no finish()).
  static FlowMatchingOptions from(ConfigNode& node);
};

// A continuous-time flow dx/dt = v(x, t) with t = 0 the noise side and t = 1
// the data side (Lipman et al. 2023, "Flow Matching for Generative Modeling").
//   inverse (noise z -> data x): integrate v from t = 0 to 1;
//   forward (data x -> noise z): integrate from t = 1 to 0.
// Both integrate the log-determinant with the instantaneous change of
// variables (Chen et al. 2018, "Neural Ordinary Differential Equations",
// thm. 1): d log p(x_t)/dt = −div v(x_t, t), so with dℓ/dt = div v and ℓ = 0
// at the start, ℓ at the end is log|det ∂(end)/∂(start)|:
//   forward:  log|det ∂z/∂x| = ∫_1^0 div v dt,  inverse: ∫_0^1 div v dt.
// The state of the solve is [x, ℓ] (n x (d+1)), so the solver's error control
// covers the log-density too. div v is exact, or Hutchinson's estimate with
// probes fixed for the whole solve (Grathwohl et al. 2019, "FFJORD").
//
// The velocity field is trained by regression (the `cfm` trainer), not by
// maximum likelihood: forward_train computes what forward computes, and
// backward raises an Error (no gradient through the ODE solve).
class FlowMatchingBijector : public Bijector {
 public:
  FlowMatchingBijector(Index dim, const FlowMatchingOptions& options,
                       std::shared_ptr<OdeSolver> solver, std::uint64_t seed);

  Index dim() const override { return field_.dim(); }
  Transformed forward(const Matrix& x, const Matrix& context) const override;
  Transformed inverse(const Matrix& z, const Matrix& context) const override;
  void forward_train(const Matrix& x, const Matrix& context, Matrix& z, Vector& logdet) override;
  void backward(const Matrix& grad_z, const Vector& grad_logdet, Matrix& grad_x) override;
  ParameterList parameters() override { return field_.parameters(); }

  VelocityField& field() { return field_; }
  const OdeSolver& solver() const { return *solver_; }
  const FlowMatchingOptions& options() const { return options_; }

  // Integrates from t0 to t1; with_logdet adds ℓ = ∫ div v dt per row (else
  // the logdet is NaN). Returns the solver's statistics through `stats` when given.
  Transformed transport(const Matrix& x, Real t0, Real t1, bool with_logdet,
                        OdeStats* stats = nullptr) const;

 private:
  FlowMatchingOptions options_;
  VelocityField field_;
  std::shared_ptr<OdeSolver> solver_;
  std::uint64_t probe_seed_;
};

// Factory of `flow_matching`.
std::unique_ptr<Bijector> make_flow_matching(ConfigNode& node, const BuildContext& context);

}  // namespace flows::flow_matching
