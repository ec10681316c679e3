// The velocity field v(x, t, c): parameter, input and context gradients and
// the vector-Jacobian product against finite differences, the batched
// evaluator (with its context and classifier-free guidance) against the
// training pass, and the divergence (exact and Hutchinson) against the Jacobian.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include <flows/testing/gradient_checker.hpp>

#include "velocity_field.hpp"

namespace {

using flows::Index;
using flows::Matrix;
using flows::Real;
using flows::Rng;
using flows::Vector;
using flows::flow_matching::VelocityField;
using flows::flow_matching::VelocityFieldOptions;

struct FieldCase {
  std::string name;
  std::vector<Index> hidden;
  std::string activation;
  Index frequencies;
  Index dim;
  Index context_dim = 0;
};

class VelocityFieldTest : public ::testing::TestWithParam<FieldCase> {
 protected:
  VelocityFieldOptions options() const {
    VelocityFieldOptions o;
    o.hidden = GetParam().hidden;
    o.activation = GetParam().activation;
    o.time_frequencies = GetParam().frequencies;
    return o;
  }
  Index dim() const { return GetParam().dim; }
  Index context_dim() const { return GetParam().context_dim; }
  // A random context of n rows (empty for an unconditional field).
  Matrix context(Index n) {
    return context_dim() > 0 ? Matrix(rng_.normal(n, context_dim())) : Matrix();
  }
  VelocityField make_field(std::uint64_t seed) {
    Rng init(seed);
    return VelocityField(dim(), context_dim(), options(), init);
  }
  Rng rng_{5};
};

Vector times(Index n, Rng& rng) {
  Vector t = xt::empty<Real>({n});
  for (Real& v : t) v = rng.uniform();
  return t;
}

// Half the rows of a batch get the null context ∅ (every other row).
std::vector<char> every_other(Index n) {
  std::vector<char> dropped(n);
  for (Index i = 0; i < n; ++i) dropped[i] = i % 2;
  return dropped;
}

TEST_P(VelocityFieldTest, ParameterAndInputGradientsMatchFiniteDifferences) {
  VelocityField field = make_field(1);
  const Vector t = times(6, rng_);
  const Matrix c = context(6);
  for (bool drop : {false, true}) {
    SCOPED_TRACE(drop ? "half the rows with the null context" : "every row with its context");
    const std::vector<char> dropped = drop ? every_other(6) : std::vector<char>();
    flows::testing::DifferentiableFunction f;
    f.forward = [&](const Matrix& x) {
      Matrix v;
      field.forward(x, t, c, v, dropped);
      return v;
    };
    f.backward = [&](const Matrix& grad_v) {
      Matrix grad_x;
      field.backward(grad_v, grad_x, true);
      return grad_x;
    };
    f.params = field.parameters();
    const auto result = flows::testing::check_gradients(f, rng_.normal(6, dim()));
    EXPECT_TRUE(result.ok) << result.report;
  }
}

// dL/dc by finite differences in c, x fixed; rows with ∅ get no gradient
// (their output does not depend on c, and the check sees that too).
TEST_P(VelocityFieldTest, ContextGradientMatchesFiniteDifferences) {
  if (context_dim() == 0) GTEST_SKIP() << "unconditional field";
  VelocityField field = make_field(6);
  const Vector t = times(6, rng_);
  const Matrix x = rng_.normal(6, dim());
  for (bool drop : {false, true}) {
    SCOPED_TRACE(drop ? "half the rows with the null context" : "every row with its context");
    const std::vector<char> dropped = drop ? every_other(6) : std::vector<char>();
    flows::testing::DifferentiableFunction f;
    f.forward = [&](const Matrix& c) {
      Matrix v;
      field.forward(x, t, c, v, dropped);
      return v;
    };
    f.backward = [&](const Matrix& grad_v) {
      Matrix grad_x;
      Matrix grad_c = xt::ones<Real>({Index(6), context_dim()});  // added to, not overwritten
      field.backward(grad_v, grad_x, false, &grad_c);
      return Matrix(grad_c - 1.0);
    };
    const Matrix c = context(6);
    const auto result = flows::testing::check_gradients(f, c);
    EXPECT_TRUE(result.ok) << result.report;
    if (drop) {
      Matrix v, grad_x;
      field.forward(x, t, c, v, dropped);
      Matrix grad_c = xt::zeros<Real>({Index(6), context_dim()});
      field.backward(rng_.normal(6, dim()), grad_x, false, &grad_c);
      for (Index i = 1; i < 6; i += 2)
        for (Index j = 0; j < context_dim(); ++j) EXPECT_EQ(grad_c(i, j), 0.0) << "row " << i;
    }
  }
}

TEST_P(VelocityFieldTest, VectorJacobianProductMatchesFiniteDifferencesAndLeavesParameters) {
  VelocityField field = make_field(2);
  const Vector t = times(5, rng_);
  const Matrix x = rng_.normal(5, dim());
  const Matrix c = context(5);
  const Matrix w = rng_.normal(5, dim());
  Matrix v, vjp;
  field.forward(x, t, c, v);
  for (auto* p : field.parameters()) p->zero_grad();
  field.backward(w, vjp, false);
  for (auto* p : field.parameters())
    for (Real g : p->grad) ASSERT_EQ(g, 0.0) << p->name;
  const Real h = 1e-6;
  for (Index i = 0; i < x.shape(0); ++i)
    for (Index j = 0; j < dim(); ++j) {
      Matrix xp = x, xm = x, vp, vm;
      xp(i, j) += h;
      xm(i, j) -= h;
      field.forward(xp, t, c, vp);
      field.forward(xm, t, c, vm);
      Real numeric = 0;
      for (Index k = 0; k < dim(); ++k) numeric += w(i, k) * (vp(i, k) - vm(i, k)) / (2 * h);
      EXPECT_NEAR(vjp(i, j), numeric, 1e-7 * (1 + std::abs(numeric))) << i << "," << j;
    }
}

// The ODE's evaluator (time folded into layer 0's bias, the context into a
// per-row term) computes the training pass's v(x, t, c).
TEST_P(VelocityFieldTest, EvaluatorMatchesTheTrainingPass) {
  VelocityField field = make_field(3);
  const Matrix x = rng_.normal(9, dim());
  const Matrix c = context(9);
  for (Real t : {0.0, 0.37, 1.0}) {
    Matrix expected, v;
    field.forward(x, xt::zeros<Real>({9}) + t, c, expected);
    VelocityField::Evaluator evaluator(field, c);
    evaluator.velocity(x, t, v);
    ASSERT_EQ(v.shape(), expected.shape());
    for (Index k = 0; k < v.size(); ++k) EXPECT_NEAR(v.flat(k), expected.flat(k), 1e-12);
  }
}

// The context matters: another context gives another velocity.
TEST_P(VelocityFieldTest, TheContextChangesTheVelocity) {
  if (context_dim() == 0) GTEST_SKIP() << "unconditional field";
  VelocityField field = make_field(7);
  const Matrix x = rng_.normal(4, dim());
  Matrix a, b;
  VelocityField::Evaluator(field, context(4)).velocity(x, 0.4, a);
  VelocityField::Evaluator(field, context(4)).velocity(x, 0.4, b);
  Real difference = 0;
  for (Index k = 0; k < a.size(); ++k) difference += std::abs(a.flat(k) - b.flat(k));
  EXPECT_GT(difference, 1e-3);
}

// Classifier-free guidance: w = 0 is the plain field; w = −1 is the field at
// the null context (the training pass with every row dropped); any w gives
// (1 + w) v(x, t, c) − w v(x, t, ∅), and the divergence (exact and
// Hutchinson) combines the same way.
TEST_P(VelocityFieldTest, GuidanceCombinesTheConditionalAndNullFields) {
  if (context_dim() == 0) GTEST_SKIP() << "unconditional field";
  VelocityField field = make_field(8);
  const Index n = 5;
  const Matrix x = rng_.normal(n, dim());
  const Matrix c = context(n);
  const Real t = 0.52;
  Matrix conditional, null, expected_null;
  VelocityField::Evaluator plain(field, c);
  plain.velocity(x, t, conditional);
  field.forward(x, xt::zeros<Real>({n}) + t, c, expected_null, std::vector<char>(n, 1));
  VelocityField::Evaluator unconditional(field, c, -1.0);
  unconditional.velocity(x, t, null);
  for (Index k = 0; k < null.size(); ++k) EXPECT_NEAR(null.flat(k), expected_null.flat(k), 1e-12);

  Matrix zero_guided;
  VelocityField::Evaluator(field, c, 0.0).velocity(x, t, zero_guided);
  EXPECT_EQ(zero_guided, conditional);

  std::vector<Matrix> probes{rng_.normal(n, dim()), rng_.normal(n, dim())};
  Matrix v_c, v_0, v_w;
  Vector div_c, div_0, div_w, est_c, est_0, est_w;
  plain.velocity_and_divergence(x, t, v_c, div_c);
  unconditional.velocity_and_divergence(x, t, v_0, div_0);
  plain.velocity_and_divergence_estimate(x, t, probes, v_c, est_c);
  unconditional.velocity_and_divergence_estimate(x, t, probes, v_0, est_0);
  for (Real w : {0.5, 2.0, -0.3}) {
    SCOPED_TRACE("w = " + std::to_string(w));
    VelocityField::Evaluator guided(field, c, w);
    Matrix v;
    guided.velocity(x, t, v);
    ASSERT_EQ(v.shape(), conditional.shape());
    for (Index k = 0; k < v.size(); ++k)
      EXPECT_NEAR(v.flat(k), (1 + w) * conditional.flat(k) - w * null.flat(k), 1e-12);
    guided.velocity_and_divergence(x, t, v_w, div_w);
    for (Index k = 0; k < v.size(); ++k) EXPECT_NEAR(v_w.flat(k), v.flat(k), 1e-12);
    for (Index i = 0; i < n; ++i) EXPECT_NEAR(div_w(i), (1 + w) * div_c(i) - w * div_0(i), 1e-11);
    guided.velocity_and_divergence_estimate(x, t, probes, v_w, est_w);
    for (Index i = 0; i < n; ++i) EXPECT_NEAR(est_w(i), (1 + w) * est_c(i) - w * est_0(i), 1e-11);
  }
}

// div v = trace of the central-difference Jacobian, row by row, for the
// plain field and (conditional fields) the guided one.
TEST_P(VelocityFieldTest, ExactDivergenceIsTheTraceOfTheJacobian) {
  VelocityField field = make_field(4);
  const Matrix x = rng_.normal(6, dim());
  const Matrix c = context(6);
  const Real t = 0.61;
  for (Real w : {0.0, 1.5}) {
    if (w != 0 && context_dim() == 0) continue;
    SCOPED_TRACE("guidance " + std::to_string(w));
    VelocityField::Evaluator evaluator(field, c, w);
    Matrix v;
    Vector divergence;
    evaluator.velocity_and_divergence(x, t, v, divergence);
    Matrix expected_v;
    evaluator.velocity(x, t, expected_v);
    for (Index k = 0; k < v.size(); ++k) EXPECT_NEAR(v.flat(k), expected_v.flat(k), 1e-12);
    for (Index i = 0; i < x.shape(0); ++i) {
      const Matrix row = xt::view(x, xt::range(i, i + 1), xt::all());
      const Matrix row_c =
          context_dim() > 0 ? Matrix(xt::view(c, xt::range(i, i + 1), xt::all())) : Matrix();
      const Matrix jacobian = flows::testing::numerical_jacobian(
          [&](const Matrix& r) {
            Matrix out;
            VelocityField::Evaluator e(field, row_c, w);
            e.velocity(r, t, out);
            return out;
          },
          row);
      Real trace = 0;
      for (Index j = 0; j < dim(); ++j) trace += jacobian(j, j);
      EXPECT_NEAR(divergence(i), trace, 1e-7 * (1 + std::abs(trace))) << "row " << i;
    }
  }
}

// E[εᵀ J ε] = trace J for probes with E[ε εᵀ] = I: the mean of many
// single-probe estimates is within 4 standard errors of the exact divergence,
// for Rademacher and Gaussian probes, and the K-probe call is their mean.
TEST_P(VelocityFieldTest, HutchinsonsEstimatorIsUnbiased) {
  VelocityField field = make_field(5);
  const Matrix x = rng_.normal(3, dim());
  VelocityField::Evaluator evaluator(field, context(3));
  const Real t = 0.3;
  Matrix v;
  Vector exact;
  evaluator.velocity_and_divergence(x, t, v, exact);
  for (bool rademacher : {true, false}) {
    SCOPED_TRACE(rademacher ? "rademacher" : "gaussian");
    const Index probes = 4000;
    std::vector<Matrix> all;
    std::vector<Real> sum(3, 0), sum_sq(3, 0);
    Vector estimate;
    for (Index k = 0; k < probes; ++k) {
      Matrix eps = rng_.normal(3, dim());
      if (rademacher)
        for (Real& e : eps) e = e < 0 ? -1 : 1;
      evaluator.velocity_and_divergence_estimate(x, t, {eps}, v, estimate);
      for (Index i = 0; i < 3; ++i) {
        sum[i] += estimate(i);
        sum_sq[i] += estimate(i) * estimate(i);
      }
      all.push_back(std::move(eps));
    }
    Vector together;
    evaluator.velocity_and_divergence_estimate(x, t, all, v, together);
    for (Index i = 0; i < 3; ++i) {
      const Real mean = sum[i] / probes;
      const Real variance = sum_sq[i] / probes - mean * mean;
      const Real standard_error = std::sqrt(std::max(variance, 0.0) / probes);
      EXPECT_NEAR(mean, exact(i), 4 * standard_error + 1e-12) << "row " << i;
      EXPECT_NEAR(together(i), mean, 1e-9 * (1 + std::abs(mean)));
    }
  }
}

// float32 against float64: one seed gives both fields the same float64
// parameters, so the training pass (v and every gradient) and the evaluator
// (v, the exact divergence, Hutchinson's estimate, guidance) must agree to
// float32 rounding: 1e-4 relative for values, 1e-3 of the largest entry for
// gradients (see tests/precision_test.cpp for the reasoning).
TEST_P(VelocityFieldTest, Float32AgreesWithFloat64) {
  VelocityFieldOptions o32 = options(), o64 = options();
  o32.precision = flows::Precision::float32;
  o64.precision = flows::Precision::float64;
  Rng init32(8), init64(8);
  VelocityField f32(dim(), context_dim(), o32, init32), f64(dim(), context_dim(), o64, init64);
  const Index n = 24;
  const Matrix x = rng_.normal(n, dim());
  const Vector t = times(n, rng_);
  const Matrix c = context(n);
  const std::vector<char> dropped = context_dim() > 0 ? every_other(n) : std::vector<char>();
  const Matrix grad_v = rng_.normal(n, dim());
  auto near = [](const Matrix& a, const Matrix& b, Real tolerance) {
    Real scale = 1e-12, worst = 0;
    for (Real v : b) scale = std::max(scale, std::abs(v));
    for (Index k = 0; k < a.size(); ++k) worst = std::max(worst, std::abs(a.flat(k) - b.flat(k)));
    return worst <= tolerance * scale;
  };
  Matrix v[2], gx[2], gc[2];
  VelocityField* both[2] = {&f32, &f64};
  for (int k = 0; k < 2; ++k) {
    both[k]->forward(x, t, c, v[k], dropped);
    gc[k] = xt::zeros<Real>({n, context_dim()});
    both[k]->backward(grad_v, gx[k], true, context_dim() > 0 ? &gc[k] : nullptr);
  }
  EXPECT_TRUE(near(v[0], v[1], 1e-4)) << "v";
  EXPECT_TRUE(near(gx[0], gx[1], 1e-3)) << "dL/dx";
  if (context_dim() > 0) {
    EXPECT_TRUE(near(gc[0], gc[1], 1e-3)) << "dL/dc";
  }
  const flows::ParameterList p32 = f32.parameters(), p64 = f64.parameters();
  for (std::size_t k = 0; k < p32.size(); ++k)
    EXPECT_TRUE(near(p32[k]->grad, p64[k]->grad, 1e-3)) << "dL/d" << p64[k]->name;

  const Matrix probe = rng_.normal(n, dim());
  for (Real guidance : {0.0, 1.5}) {
    if (guidance != 0 && context_dim() == 0) continue;
    VelocityField::Evaluator e32(f32, c, guidance), e64(f64, c, guidance);
    Matrix w[2];
    Vector div[2], est[2];
    e32.velocity_and_divergence(x, 0.3, w[0], div[0]);
    e64.velocity_and_divergence(x, 0.3, w[1], div[1]);
    EXPECT_TRUE(near(w[0], w[1], 1e-4)) << "evaluator v, guidance " << guidance;
    Matrix d32 = xt::view(div[0], xt::newaxis(), xt::all());
    Matrix d64 = xt::view(div[1], xt::newaxis(), xt::all());
    EXPECT_TRUE(near(d32, d64, 1e-4)) << "div v, guidance " << guidance;
    e32.velocity_and_divergence_estimate(x, 0.7, {probe}, w[0], est[0]);
    e64.velocity_and_divergence_estimate(x, 0.7, {probe}, w[1], est[1]);
    Matrix h32 = xt::view(est[0], xt::newaxis(), xt::all());
    Matrix h64 = xt::view(est[1], xt::newaxis(), xt::all());
    EXPECT_TRUE(near(h32, h64, 1e-4)) << "Hutchinson estimate, guidance " << guidance;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Fields, VelocityFieldTest,
    ::testing::Values(FieldCase{"selu_3x16_f2_d2", {16, 16, 16}, "selu", 2, 2},
                      FieldCase{"tanh_2x8_f0_d3", {8, 8}, "tanh", 0, 3},
                      FieldCase{"silu_1x12_f1_d1", {12}, "silu", 1, 1},
                      FieldCase{"linear_f3_d2", {}, "relu", 3, 2},
                      FieldCase{"silu_2x16_f1_d2_c3", {16, 16}, "silu", 1, 2, 3},
                      FieldCase{"selu_3x8_f0_d3_c1", {8, 8, 8}, "selu", 0, 3, 1},
                      FieldCase{"linear_f2_d2_c2", {}, "tanh", 2, 2, 2},
                      // Layers past the fused kernel's size limit (136² weights
                      // are over 64 KiB in float32): the evaluator's BLAS path.
                      FieldCase{"selu_2x136_f1_d2_c1", {136, 136}, "selu", 1, 2, 1}),
    [](const auto& info) { return info.param.name; });

}  // namespace
