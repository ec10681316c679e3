#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include <flows/bijector.hpp>
#include <flows/config.hpp>
#include <flows/diagnostics.hpp>
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
  Real guidance = 0;  // classifier-free guidance weight w (conditional models trained with
                      // the cfm trainer's context_dropout > 0); 0: the plain field
  // `solver:` (an ode_solver by type, dopri5 by default) is read by the factory.

  // Reads every key but `solver` (no finish()).
  static FlowMatchingOptions from(ConfigNode& node);
};

// A continuous-time flow dx/dt = v(x, t, c) with t = 0 the noise side and t =
// 1 the data side (Lipman et al. 2023, "Flow Matching for Generative
// Modeling"); c is the (encoded) context of a conditional model, fixed along
// each row's path.
//   inverse (noise z -> data x): integrate v from t = 0 to 1;
//   forward (data x -> noise z): integrate from t = 1 to 0.
// Both integrate the log-determinant with the instantaneous change of
// variables (Chen et al. 2018, "Neural Ordinary Differential Equations",
// thm. 1): d log p(x_t)/dt = −div v(x_t, t), so with dℓ/dt = div v and ℓ = 0
// at the start, ℓ at the end is log|det ∂(end)/∂(start)|:
//   forward:  log|det ∂z/∂x| = ∫_1^0 div v dt,  inverse: ∫_0^1 div v dt.
// The state of the solve is [x, ℓ] (n x (d+1)), so the solver's error control
// covers the log-density too. div v (with respect to x) is exact, or
// Hutchinson's estimate with probes fixed for the whole solve (Grathwohl et
// al. 2019, "FFJORD"), one per row, keyed by the seed and the row's values.
//
// With `guidance: w` every solve (sampling and log-density alike, so forward
// and inverse stay one map) follows the classifier-free guided field
// (1 + w) v(x, t, c) − w v(x, t, ∅) of VelocityField::Evaluator. It needs a
// field trained on the null context ∅ (the cfm trainer's context_dropout > 0,
// recorded in the model's state); otherwise solving refuses with a
// ConfigError.
//
// The velocity field is trained by regression (the `cfm` trainer), not by
// maximum likelihood: as a RegressionFittedBijector it has no training pass.
// As NumericallySolved, the doctor judges it by the accuracy of an ODE solve.
class FlowMatchingBijector : public RegressionFittedBijector, public NumericallySolved {
 public:
  FlowMatchingBijector(Index dim, Index context_dim, const FlowMatchingOptions& options,
                       std::shared_ptr<OdeSolver> solver, std::uint64_t seed);

  ParameterList parameters() override { return field_.parameters(); }
  // The parameters and, for a conditional model, "context_dropout" (the
  // probability the field was trained with; see set_context_dropout).
  void visit_state(StateVisitor& visitor) override;
  // An adaptive solve shares its step sizes among the rows of a group
  // (transport), so batches are cut only on whole groups.
  bool rows_independent_in_inference() const override { return false; }

  VelocityField& field() { return field_; }
  const OdeSolver& solver() const { return *solver_; }
  const FlowMatchingOptions& options() const { return options_; }

  // The trainer records the context dropout p it fits the field with: p > 0
  // means v(·, ·, ∅) is trained, which guidance needs.
  void set_context_dropout(Real p) { context_dropout_ = p; }
  Real context_dropout() const { return context_dropout_; }

  // Integrates from t0 to t1 with the context rows (n x context_dim(), or
  // ignored when unconditional); with_logdet adds ℓ = ∫ div v dt per row
  // (else the logdet is NaN). Rows are solved in groups of
  // kInferenceRowGroup (bijector.hpp), each with its own step sizes. Returns
  // the solver's statistics, summed over the groups, through `stats` when
  // given.
  Transformed transport(const Matrix& x, const Matrix& context, Real t0, Real t1, bool with_logdet,
                        OdeStats* stats = nullptr) const;

 private:
  // One solve of all rows of x together (transport's groups).
  Transformed solve_group(const Matrix& x, const Matrix& context, Real t0, Real t1,
                          bool with_logdet, OdeStats* stats) const;
  Transformed forward_impl(const Matrix& x, const Matrix& context) const override;
  Transformed inverse_impl(const Matrix& z, const Matrix& context) const override;

  FlowMatchingOptions options_;
  VelocityField field_;
  std::shared_ptr<OdeSolver> solver_;
  std::uint64_t probe_seed_;
  Real context_dropout_ = 0;
};

// Factory of `flow_matching`.
std::unique_ptr<Bijector> make_flow_matching(ConfigNode& node, const BuildContext& context);

}  // namespace flows::flow_matching
