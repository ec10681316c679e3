// The velocity field: parameter gradients and the vector-Jacobian product
// against finite differences, the batched evaluator against the training
// pass, and the divergence (exact and Hutchinson) against the Jacobian.
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
  Rng rng_{5};
};

Vector times(Index n, Rng& rng) {
  Vector t = xt::empty<Real>({n});
  for (Real& v : t) v = rng.uniform();
  return t;
}

TEST_P(VelocityFieldTest, ParameterAndInputGradientsMatchFiniteDifferences) {
  Rng init(1);
  VelocityField field(dim(), options(), init);
  const Vector t = times(6, rng_);
  flows::testing::DifferentiableFunction f;
  f.forward = [&](const Matrix& x) {
    Matrix v;
    field.forward(x, t, v);
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

TEST_P(VelocityFieldTest, VectorJacobianProductMatchesFiniteDifferencesAndLeavesParameters) {
  Rng init(2);
  VelocityField field(dim(), options(), init);
  const Vector t = times(5, rng_);
  const Matrix x = rng_.normal(5, dim());
  const Matrix w = rng_.normal(5, dim());
  Matrix v, vjp;
  field.forward(x, t, v);
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
      field.forward(xp, t, vp);
      field.forward(xm, t, vm);
      Real numeric = 0;
      for (Index k = 0; k < dim(); ++k) numeric += w(i, k) * (vp(i, k) - vm(i, k)) / (2 * h);
      EXPECT_NEAR(vjp(i, j), numeric, 1e-7 * (1 + std::abs(numeric))) << i << "," << j;
    }
}

TEST_P(VelocityFieldTest, EvaluatorMatchesTheTrainingPass) {
  Rng init(3);
  VelocityField field(dim(), options(), init);
  const Matrix x = rng_.normal(9, dim());
  for (Real t : {0.0, 0.37, 1.0}) {
    Matrix expected, v;
    field.forward(x, xt::zeros<Real>({9}) + t, expected);
    VelocityField::Evaluator evaluator(field);
    evaluator.velocity(x, t, v);
    ASSERT_EQ(v.shape(), expected.shape());
    for (Index k = 0; k < v.size(); ++k) EXPECT_NEAR(v.flat(k), expected.flat(k), 1e-12);
  }
}

// div v = trace of the central-difference Jacobian, row by row.
TEST_P(VelocityFieldTest, ExactDivergenceIsTheTraceOfTheJacobian) {
  Rng init(4);
  VelocityField field(dim(), options(), init);
  VelocityField::Evaluator evaluator(field);
  const Matrix x = rng_.normal(6, dim());
  const Real t = 0.61;
  Matrix v;
  Vector divergence;
  evaluator.velocity_and_divergence(x, t, v, divergence);
  Matrix expected_v;
  evaluator.velocity(x, t, expected_v);
  for (Index k = 0; k < v.size(); ++k) EXPECT_NEAR(v.flat(k), expected_v.flat(k), 1e-12);
  for (Index i = 0; i < x.shape(0); ++i) {
    const Matrix row = xt::view(x, xt::range(i, i + 1), xt::all());
    const Matrix jacobian = flows::testing::numerical_jacobian(
        [&](const Matrix& r) {
          Matrix out;
          VelocityField::Evaluator e(field);
          e.velocity(r, t, out);
          return out;
        },
        row);
    Real trace = 0;
    for (Index j = 0; j < dim(); ++j) trace += jacobian(j, j);
    EXPECT_NEAR(divergence(i), trace, 1e-7 * (1 + std::abs(trace))) << "row " << i;
  }
}

// E[εᵀ J ε] = trace J for probes with E[ε εᵀ] = I: the mean of many
// single-probe estimates is within 4 standard errors of the exact divergence,
// for Rademacher and Gaussian probes, and the K-probe call is their mean.
TEST_P(VelocityFieldTest, HutchinsonsEstimatorIsUnbiased) {
  Rng init(5);
  VelocityField field(dim(), options(), init);
  VelocityField::Evaluator evaluator(field);
  const Matrix x = rng_.normal(3, dim());
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

INSTANTIATE_TEST_SUITE_P(Fields, VelocityFieldTest,
                         ::testing::Values(FieldCase{"selu_3x16_f2_d2", {16, 16, 16}, "selu", 2, 2},
                                           FieldCase{"tanh_2x8_f0_d3", {8, 8}, "tanh", 0, 3},
                                           FieldCase{"silu_1x12_f1_d1", {12}, "silu", 1, 1},
                                           FieldCase{"linear_f3_d2", {}, "relu", 3, 2}),
                         [](const auto& info) { return info.param.name; });

}  // namespace
