#include "flows/flow.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>

#include "flows/conditional_normal.hpp"
#include "flows/context_encoder.hpp"
#include "flows/error.hpp"
#include "flows/normal.hpp"

namespace flows {
namespace {

// z = a ⊙ x + b with learnable a, b: log|det| = Σ log|a_j|.
class ScaleShift : public Bijector {
 public:
  explicit ScaleShift(Matrix a, Matrix b)
      : Bijector("scale_shift", a.shape(1)), a_("a", std::move(a)), b_("b", std::move(b)) {}
  ParameterList parameters() override { return {&a_, &b_}; }

 private:
  Transformed forward_impl(const Matrix& x, const Matrix&) const override {
    Matrix z = x * a_.value + b_.value;
    return {z, logdet(x.shape(0))};
  }
  Transformed inverse_impl(const Matrix& z, const Matrix&) const override {
    Matrix x = (z - b_.value) / a_.value;
    return {x, -logdet(z.shape(0))};
  }
  void forward_train_impl(const Matrix& x, const Matrix& c, Matrix& z, Vector& ld) override {
    x_ = x;
    Transformed t = forward_impl(x, c);
    z = t.value;
    ld = t.logdet;
  }
  void backward_impl(const Matrix& gz, const Vector& gld, Matrix& gx, Matrix*) override {
    gx = gz * a_.value;
    Real sum_gld = 0;
    for (Real g : gld) sum_gld += g;
    for (Index j = 0; j < dim(); ++j) {
      Real ga = 0, gb = 0;
      for (Index i = 0; i < x_.shape(0); ++i) ga += gz(i, j) * x_(i, j), gb += gz(i, j);
      a_.grad(0, j) += ga + sum_gld / a_.value(0, j);
      b_.grad(0, j) += gb;
    }
  }

  Vector logdet(Index n) const {
    Real s = 0;
    for (Real a : a_.value) s += std::log(std::abs(a));
    return xt::ones<Real>({n}) * s;
  }
  Parameter a_, b_;
  Matrix x_;
};

// z = x + c W: a conditional shift (context_dim columns), log|det| = 0,
// dL/dc = dL/dz Wᵀ.
class ContextShift : public Bijector {
 public:
  explicit ContextShift(Matrix w) : Bijector("context_shift", w.shape(1), w.shape(0)), w_("w", w) {}
  ParameterList parameters() override { return {&w_}; }

 private:
  Matrix shift(const Matrix& c) const {
    Matrix s = xt::zeros<Real>({c.shape(0), dim()});
    for (Index i = 0; i < c.shape(0); ++i)
      for (Index j = 0; j < dim(); ++j)
        for (Index k = 0; k < context_dim(); ++k) s(i, j) += c(i, k) * w_.value(k, j);
    return s;
  }
  Transformed forward_impl(const Matrix& x, const Matrix& c) const override {
    return {Matrix(x + shift(c)), xt::zeros<Real>({x.shape(0)})};
  }
  Transformed inverse_impl(const Matrix& z, const Matrix& c) const override {
    return {Matrix(z - shift(c)), xt::zeros<Real>({z.shape(0)})};
  }
  void forward_train_impl(const Matrix& x, const Matrix& c, Matrix& z, Vector& ld) override {
    c_ = c;
    Transformed t = forward_impl(x, c);
    z = t.value;
    ld = t.logdet;
  }
  void backward_impl(const Matrix& gz, const Vector&, Matrix& gx, Matrix* gc) override {
    gx = gz;
    for (Index i = 0; i < gz.shape(0); ++i)
      for (Index k = 0; k < context_dim(); ++k)
        for (Index j = 0; j < dim(); ++j) {
          w_.grad(k, j) += c_(i, k) * gz(i, j);
          if (gc) (*gc)(i, k) += gz(i, j) * w_.value(k, j);
        }
  }

  Parameter w_;
  Matrix c_;
};

Flow make_flow() {
  auto base = std::make_shared<DiagonalNormal>(2, 0.1, -0.2);
  std::vector<std::shared_ptr<Bijector>> chain = {
      std::make_shared<ScaleShift>(Matrix{{2.0, 0.5}}, Matrix{{0.3, -0.1}}),
      std::make_shared<ScaleShift>(Matrix{{-1.5, 1.2}}, Matrix{{0.0, 0.4}})};
  return Flow(base, chain);
}

TEST(Flow, LogProbIsChangeOfVariables) {
  auto base = std::make_shared<StandardNormal>(2);
  Flow flow(base, {std::make_shared<ScaleShift>(Matrix{{2.0, 3.0}}, Matrix{{0.0, 0.0}})});
  Matrix x = {{0.5, -0.25}};
  // z = (1, -0.75); log p(x) = log N(z) + log 2 + log 3.
  const Real expected = -std::log(2 * M_PI) - 0.5 * (1.0 + 0.5625) + std::log(6.0);
  EXPECT_NEAR(flow.log_prob(x)(0), expected, 1e-13);
}

TEST(Flow, SampleAndLogProbAgreesWithLogProb) {
  Flow flow = make_flow();
  Rng rng(4);
  Transformed s = flow.sample_and_log_prob(50, rng);
  Vector lp = flow.log_prob(s.value);
  for (Index i = 0; i < 50; ++i) EXPECT_NEAR(s.logdet(i), lp(i), 1e-11);
}

TEST(Flow, SamplingIsReproducibleFromTheSeed) {
  Flow flow = make_flow();
  Rng a(9), b(9);
  Matrix sa = flow.sample(10, a), sb = flow.sample(10, b);
  EXPECT_EQ(sa, sb);
}

// nll_gradient's loss and gradient against mean_nll and its central differences.
void expect_nll_gradient_matches_finite_differences(Flow& flow, const Matrix& x,
                                                    const Matrix& context) {
  ParameterList params = flow.parameters();
  zero_grad(params);
  const Real loss = flow.nll_gradient(x, context);
  EXPECT_NEAR(loss, flow.mean_nll(x, context), 1e-12);
  const Real h = 1e-6;
  for (Parameter* p : params)
    for (Index k = 0; k < p->size(); ++k) {
      Real& w = p->value.data()[k];
      const Real saved = w;
      w = saved + h;
      const Real up = flow.mean_nll(x, context);
      w = saved - h;
      const Real down = flow.mean_nll(x, context);
      w = saved;
      EXPECT_NEAR(p->grad.data()[k], (up - down) / (2 * h), 1e-6) << p->name << "[" << k << "]";
    }
}

TEST(Flow, NllGradientMatchesFiniteDifferencesOfMeanNll) {
  Flow flow = make_flow();
  Rng rng(5);
  expect_nll_gradient_matches_finite_differences(flow, rng.normal(16, 2), Matrix());
}

TEST(Flow, ParallelInferenceGivesWhatOneThreadGives) {
  Flow flow = make_flow();
  ::setenv("FLOWS_NUM_THREADS", "1", 1);
  Rng a(3);
  Transformed one = flow.sample_and_log_prob(3000, a);
  Vector one_lp = flow.log_prob(one.value);
  ::setenv("FLOWS_NUM_THREADS", "4", 1);
  Rng b(3);
  Transformed four = flow.sample_and_log_prob(3000, b);
  Vector four_lp = flow.log_prob(four.value);
  ::unsetenv("FLOWS_NUM_THREADS");
  EXPECT_EQ(one.value, four.value);
  EXPECT_EQ(one.logdet, four.logdet);
  EXPECT_EQ(one_lp, four_lp);
  for (Index i = 0; i < 3000; ++i) ASSERT_NEAR(four.logdet(i), four_lp(i), 1e-11) << i;
}

// Rows that are independent may be cut anywhere; the flow says so, and
// cuts on blocks of 256 rows, not on the adaptive solve's groups.
TEST(Flow, AChainOfIndependentRowsIsCutOnBlocksOf256) {
  const Flow flow = make_flow();
  EXPECT_TRUE(flow.rows_independent_in_inference());
  EXPECT_EQ(flow.row_granule(), 256);
}

TEST(Flow, WrongDataDimensionIsADataError) {
  Flow flow = make_flow();
  Matrix x = xt::zeros<Real>({3, 5});
  try {
    flow.log_prob(x);
    FAIL();
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("2 dimensions but the data has 5 columns"),
              std::string::npos);
  }
}

// A conditional flow: a context encoder (standardization and an embedding),
// a conditional bijector and the conditional_diagonal_normal base.
Flow make_conditional_flow() {
  Rng rng(12);
  ContextEncoder::EmbeddingOptions embedding;
  embedding.hidden = {4};
  embedding.features = 3;
  embedding.activation = nn::Activation(nn::Activation::Kind::tanh);
  auto encoder = std::make_shared<ContextEncoder>(2, embedding, rng);
  encoder->fit_standardization(Matrix{{1.0, -2.0}, {3.0, 0.0}, {2.0, 1.0}});
  ConditionalDiagonalNormal::Options options;
  options.hidden = {5};
  options.activation = "tanh";
  auto base = std::make_shared<ConditionalDiagonalNormal>(2, 3, options, rng);
  for (Parameter* p : base->parameters())
    p->value += 0.3 * rng.normal(p->value.shape(0), p->value.shape(1));
  std::vector<std::shared_ptr<Bijector>> chain = {
      std::make_shared<ScaleShift>(Matrix{{2.0, 0.5}}, Matrix{{0.3, -0.1}}),
      std::make_shared<ContextShift>(rng.normal(3, 2) * 0.5)};
  return Flow(base, chain, encoder);
}

// The whole conditional training pass, context encoder and conditional base
// included, against central differences of mean_nll.
TEST(Flow, ConditionalNllGradientMatchesFiniteDifferences) {
  Flow flow = make_conditional_flow();
  Rng rng(13);
  const Matrix x = rng.normal(9, 2);
  const Matrix context = rng.normal(9, 2) * 2.0;
  expect_nll_gradient_matches_finite_differences(flow, x, context);
}

TEST(Flow, ConditionalSamplesHaveTheLogProbOfTheirContext) {
  Flow flow = make_conditional_flow();
  Rng rng(14);
  const Matrix context = rng.normal(40, 2);
  Transformed s = flow.sample_and_log_prob(40, rng, context);
  const Vector lp = flow.log_prob(s.value, context);
  for (Index i = 0; i < 40; ++i) EXPECT_NEAR(s.logdet(i), lp(i), 1e-11) << i;
  // Another context gives another density at the same points.
  const Vector other = flow.log_prob(s.value, Matrix(context + 1.0));
  EXPECT_GT(std::abs(other(0) - lp(0)), 1e-6);
}

TEST(Flow, ConditionalFlowWithoutContextIsADataError) {
  Flow flow = make_conditional_flow();
  EXPECT_EQ(flow.context_dim(), 2u);
  EXPECT_THROW(flow.log_prob(xt::zeros<Real>({3, 2})), DataError);
  EXPECT_THROW(flow.log_prob(xt::zeros<Real>({3, 2}), xt::zeros<Real>({3, 1})), DataError);
}

}  // namespace
}  // namespace flows
