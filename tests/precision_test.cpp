// float32 networks against float64 ones: every bijector that owns a network
// (the autoregressive and coupling conditioners, the velocity field) and the
// conditional bases, built twice from one seed and one YAML, once with
// BuildContext::precision = float32 and once with float64. Their parameters
// are the same float64 values, so what differs is only the arithmetic inside
// the networks; log_prob, sampling and gradients must agree to within what
// float32 rounding (about 6e-8 relative per operation) can explain.
//
// The tolerances are relative, |a − b| ≤ tol · (1 + |b|) entrywise (all_near):
//   values (z, x, log|det|, log p)  1e-4
//   gradients (dL/dθ, dL/dx, dL/dc)  1e-3 of the gradient's largest entry
// A network of three layers of 64 units sums ~200 products per output, so its
// float32 error is ~1e-6 of the output's scale; the margins above leave room
// for the spline's bin search and the ODE's many steps, and would still fail
// for a kernel that dropped a term or mixed the two precisions' buffers.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>

#include "flows/bijector.hpp"
#include "flows/config.hpp"
#include "flows/distribution.hpp"
#include "flows/plugin_loader.hpp"
#include "flows/registry.hpp"
#include "flows/rng.hpp"
#include "flows/testing/assertions.hpp"

namespace {

using flows::BuildContext;
using flows::Index;
using flows::Matrix;
using flows::Precision;
using flows::Real;
using flows::Rng;
using flows::Vector;
using flows::testing::all_near;

constexpr Real kValueTolerance = 1e-4;
constexpr Real kGradientTolerance = 1e-3;
constexpr Index kRows = 64;

struct PrecisionCase {
  std::string name;
  std::string yaml;
  Index dim;
  Index context_dim;
  // Values' tolerance: kValueTolerance, except for an adaptive ODE solve,
  // whose step sequence the float32 field changes, so that the two solutions
  // differ by up to the solver's own error (rtol) times the steps taken.
  Real value_tolerance = kValueTolerance;
};

std::ostream& operator<<(std::ostream& out, const PrecisionCase& c) {
  return out << c.name << ": " << c.yaml;
}

// Built-ins and the shipped plugins of this build (as the runner sees them).
flows::Registry& registry() {
  static const std::unique_ptr<flows::Registry> r = [] {
    auto reg = std::make_unique<flows::Registry>();
    flows::register_builtins(*reg);
    flows::load_plugins({FLOWS_PLUGIN_DIR}, *reg);
    return reg;
  }();
  return *r;
}

BuildContext context_for(const PrecisionCase& c, Precision precision) {
  BuildContext context;
  context.dim = c.dim;
  context.context_dim = c.context_dim;
  context.seed = 11;
  context.registry = &registry();
  context.precision = precision;
  return context;
}

// Moves every parameter to the same generic point in both copies (identity
// initialisations would hide the networks: their last layer starts at zero).
void perturb(const flows::ParameterList& params) {
  Rng rng(5);
  for (flows::Parameter* p : params)
    p->value += 0.3 * rng.normal(p->value.shape(0), p->value.shape(1));
}

// The largest |g| of a gradient, so that its tolerance scales with it.
Real scale_of(const Matrix& g) {
  Real s = 0;
  for (Real v : g) s = std::max(s, std::abs(v));
  return s;
}

::testing::AssertionResult gradients_near(const Matrix& actual, const Matrix& expected,
                                          const std::string& what) {
  const Real scale = std::max(scale_of(expected), Real(1e-12));
  const Matrix a = actual / scale, e = expected / scale;
  return all_near(a, e, kGradientTolerance, what);
}

class BijectorPrecision : public ::testing::TestWithParam<PrecisionCase> {
 protected:
  void SetUp() override {
    const PrecisionCase& c = GetParam();
    for (Precision p : {Precision::float32, Precision::float64}) {
      flows::ConfigNode node = flows::ConfigNode::parse(c.yaml, "PrecisionCase " + c.name);
      auto b = registry().make<flows::Bijector>(node, context_for(c, p));
      perturb(b->parameters());
      (p == Precision::float32 ? f32_ : f64_) = std::move(b);
    }
    Rng rng(3);
    x_ = rng.normal(kRows, c.dim);
    context_ = c.context_dim > 0 ? rng.normal(kRows, c.context_dim) : Matrix();
  }

  std::shared_ptr<flows::Bijector> f32_, f64_;
  Matrix x_, context_;
};

TEST_P(BijectorPrecision, ForwardAndLogDetAgree) {
  const Real tolerance = GetParam().value_tolerance;
  const flows::Transformed a = f32_->forward(x_, context_);
  const flows::Transformed b = f64_->forward(x_, context_);
  EXPECT_TRUE(all_near(a.value, b.value, tolerance, "z"));
  EXPECT_TRUE(all_near(a.logdet, b.logdet, tolerance, "log|det|"));
}

// |a − e| ≤ tolerance · (1 + |e|) + allowance entrywise (allowance: the
// float64 map's own error at that entry); the message names the worst entry.
template <class M>
::testing::AssertionResult near_with_allowance(const M& actual, const M& expected,
                                               const M& allowance, Real tolerance,
                                               const std::string& what) {
  Real worst = 0;
  Index at = 0;
  for (Index k = 0; k < actual.size(); ++k) {
    const Real excess = std::abs(actual.flat(k) - expected.flat(k)) - allowance.flat(k);
    const Real error = excess / (1 + std::abs(expected.flat(k)));
    if (!(error <= worst)) worst = error, at = k;
  }
  if (worst <= tolerance) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << what << ": entry " << at << " is " << actual.flat(at) << ", expected "
         << expected.flat(at) << " ± " << allowance.flat(at) << " (excess " << worst << " > "
         << tolerance << ")";
}

// Sampling: the float32 inverse solves the float64 equation f(x) = z. It is
// judged by its residual f₆₄(x₃₂) − z, in z, and by its log-determinant
// against the float64 one at the same point, each allowed the float64
// inverse's own error (zero for a closed-form inverse, the discretization
// error of a fixed-step ODE solve). Comparing x₃₂ with x₆₄ directly would
// measure the map's conditioning (a spline bin of small height magnifies any
// difference in z), not the arithmetic.
TEST_P(BijectorPrecision, InverseSolvesTheFloat64Map) {
  const Real tolerance = GetParam().value_tolerance;
  const Matrix z = f64_->forward(x_, context_).value;
  const flows::Transformed a = f32_->inverse(z, context_);
  const flows::Transformed b = f64_->inverse(z, context_);
  const flows::Transformed back32 = f64_->forward(a.value, context_);
  const flows::Transformed back64 = f64_->forward(b.value, context_);
  const Matrix own_value = xt::abs(back64.value - z);
  const Vector own_logdet = xt::abs(b.logdet + back64.logdet);
  EXPECT_TRUE(near_with_allowance(back32.value, z, own_value, tolerance, "f₆₄(f₃₂⁻¹(z))"));
  const Vector minus = -back32.logdet;
  EXPECT_TRUE(near_with_allowance(a.logdet, minus, own_logdet, 10 * tolerance,
                                  "log|det| of the float32 inverse"));
}

// The float32 bijector is a bijection of its own: its round trip returns x
// as closely as the float64 one does (a discretized ODE's round trip is not
// exact in either precision, so the two are compared with each other).
TEST_P(BijectorPrecision, Float32RoundTripHolds) {
  const Real tolerance = GetParam().value_tolerance;
  const Matrix a = f32_->inverse(f32_->forward(x_, context_).value, context_).value;
  const Matrix b = f64_->inverse(f64_->forward(x_, context_).value, context_).value;
  EXPECT_TRUE(all_near(a, b, tolerance, "f₃₂⁻¹(f₃₂(x)) against f₆₄⁻¹(f₆₄(x))"));
}

TEST_P(BijectorPrecision, GradientsAgree) {
  if (!f64_->trains_by_likelihood()) GTEST_SKIP() << "fit by regression: no likelihood pass";
  const PrecisionCase& c = GetParam();
  Rng rng(4);
  const Matrix grad_z = rng.normal(kRows, c.dim);
  const Vector grad_logdet = xt::view(rng.normal(1, kRows), 0, xt::all());
  Matrix grad_x[2], grad_context[2];
  flows::Bijector* both[2] = {f32_.get(), f64_.get()};
  for (int k = 0; k < 2; ++k) {
    Matrix z;
    Vector logdet;
    for (flows::Parameter* p : both[k]->parameters()) p->zero_grad();
    both[k]->forward_train(x_, context_, z, logdet);
    grad_context[k] = xt::zeros<Real>({kRows, c.context_dim});
    both[k]->backward(grad_z, grad_logdet, grad_x[k],
                      c.context_dim > 0 ? &grad_context[k] : nullptr);
  }
  EXPECT_TRUE(gradients_near(grad_x[0], grad_x[1], "dL/dx"));
  if (c.context_dim > 0) {
    EXPECT_TRUE(gradients_near(grad_context[0], grad_context[1], "dL/dc"));
  }
  const flows::ParameterList p32 = f32_->parameters(), p64 = f64_->parameters();
  ASSERT_EQ(p32.size(), p64.size());
  for (std::size_t k = 0; k < p32.size(); ++k)
    EXPECT_TRUE(gradients_near(p32[k]->grad, p64[k]->grad, "dL/d" + p64[k]->name));
}

// Every bijector of the shipped plugins and the SDK that owns a network.
INSTANTIATE_TEST_SUITE_P(
    Networks, BijectorPrecision,
    ::testing::Values(
        PrecisionCase{"maf", "{type: maf, layers: 2, hidden: [32, 32]}", 3, 0},
        PrecisionCase{"maf_context", "{type: maf, layers: 2, hidden: [32, 32]}", 3, 2},
        PrecisionCase{"maf_residual",
                      "{type: maf, layers: 2, hidden: [16, 16], residual_blocks: 2}", 3, 0},
        PrecisionCase{"iaf", "{type: iaf, layers: 2, hidden: [32, 32]}", 3, 0},
        PrecisionCase{"iaf_context", "{type: iaf, layers: 2, hidden: [32, 32]}", 3, 2},
        PrecisionCase{"nsf_autoregressive",
                      "{type: nsf_autoregressive, layers: 2, hidden: [32, 32], bins: 6}", 3, 0},
        PrecisionCase{"nsf_autoregressive_context",
                      "{type: nsf_autoregressive, layers: 2, hidden: [32, 32], bins: 6}", 3, 2},
        PrecisionCase{"nsf_coupling", "{type: nsf_coupling, layers: 2, hidden: [32, 32], bins: 6}",
                      4, 0},
        PrecisionCase{"nsf_coupling_context",
                      "{type: nsf_coupling, layers: 2, hidden: [32, 32], bins: 6}", 4, 2},
        PrecisionCase{"affine_coupling", "{type: affine_coupling, layers: 2, hidden: [32, 32]}", 4,
                      0},
        PrecisionCase{"affine_coupling_context",
                      "{type: affine_coupling, layers: 2, hidden: [32, 32]}", 4, 2},
        PrecisionCase{"autoregressive_rq",
                      "{type: autoregressive, layers: 1, hidden: [32], transformer: {type: "
                      "rational_quadratic, bins: 5}}",
                      2, 0},
        PrecisionCase{"coupling_affine",
                      "{type: coupling, layers: 2, hidden: [32], transformer: {type: affine}}", 3,
                      1},
        PrecisionCase{"flow_matching",
                      "{type: flow_matching, hidden: [32, 32], solver: {type: rk4, steps: 20}}", 2,
                      0},
        PrecisionCase{"flow_matching_context",
                      "{type: flow_matching, hidden: [32, 32], solver: {type: rk4, steps: 20}}", 2,
                      2},
        PrecisionCase{"flow_matching_dopri5",
                      "{type: flow_matching, hidden: [32, 32], solver: {type: dopri5, rtol: "
                      "1.0e-5, atol: 1.0e-5}}",
                      2, 0, 1e-2}),
    [](const ::testing::TestParamInfo<PrecisionCase>& info) { return info.param.name; });

// The conditional bases own a network of the context.
class BasePrecision : public ::testing::TestWithParam<std::string> {};

TEST_P(BasePrecision, LogProbAndGradientsAgree) {
  const PrecisionCase c{GetParam(), "{type: " + GetParam() + ", hidden: [16]}", 2, 3};
  std::shared_ptr<flows::BaseDistribution> base[2];
  for (int k = 0; k < 2; ++k) {
    flows::ConfigNode node = flows::ConfigNode::parse(c.yaml, "base " + c.name);
    base[k] = registry().make<flows::BaseDistribution>(
        node, context_for(c, k == 0 ? Precision::float32 : Precision::float64));
    perturb(base[k]->parameters());
  }
  Rng rng(6);
  const Matrix z = rng.normal(kRows, c.dim), context = rng.normal(kRows, c.context_dim);
  EXPECT_TRUE(all_near(base[0]->log_prob(z, context), base[1]->log_prob(z, context),
                       kValueTolerance, "log p(z | c)"));
  const Vector w = xt::ones<Real>({kRows});
  Matrix grad_z[2], grad_context[2];
  for (int k = 0; k < 2; ++k) {
    grad_context[k] = xt::zeros<Real>({kRows, c.context_dim});
    base[k]->log_prob_backward(z, context, w, grad_z[k], &grad_context[k]);
  }
  EXPECT_TRUE(gradients_near(grad_z[0], grad_z[1], "dL/dz"));
  EXPECT_TRUE(gradients_near(grad_context[0], grad_context[1], "dL/dc"));
  const flows::ParameterList p32 = base[0]->parameters(), p64 = base[1]->parameters();
  for (std::size_t k = 0; k < p32.size(); ++k)
    EXPECT_TRUE(gradients_near(p32[k]->grad, p64[k]->grad, "dL/d" + p64[k]->name));
}

INSTANTIATE_TEST_SUITE_P(Conditional, BasePrecision,
                         ::testing::Values("conditional_diagonal_normal",
                                           "conditional_gaussian_mixture"));

}  // namespace
