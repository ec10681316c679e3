#include "flows/flow.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>

#include "flows/error.hpp"
#include "flows/normal.hpp"

namespace flows {
namespace {

// z = a ⊙ x + b with learnable a, b: log|det| = Σ log|a_j|.
class ScaleShift : public Bijector {
 public:
  explicit ScaleShift(Matrix a, Matrix b) : a_("a", std::move(a)), b_("b", std::move(b)) {}
  Index dim() const override { return a_.value.shape(1); }
  Transformed forward(const Matrix& x, const Matrix&) const override {
    Matrix z = x * a_.value + b_.value;
    return {z, logdet(x.shape(0))};
  }
  Transformed inverse(const Matrix& z, const Matrix&) const override {
    Matrix x = (z - b_.value) / a_.value;
    return {x, -logdet(z.shape(0))};
  }
  void forward_train(const Matrix& x, const Matrix& c, Matrix& z, Vector& ld) override {
    x_ = x;
    Transformed t = forward(x, c);
    z = t.value;
    ld = t.logdet;
  }
  void backward(const Matrix& gz, const Vector& gld, Matrix& gx) override {
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
  ParameterList parameters() override { return {&a_, &b_}; }

 private:
  Vector logdet(Index n) const {
    Real s = 0;
    for (Real a : a_.value) s += std::log(std::abs(a));
    return xt::ones<Real>({n}) * s;
  }
  Parameter a_, b_;
  Matrix x_;
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

TEST(Flow, NllGradientMatchesFiniteDifferencesOfMeanNll) {
  Flow flow = make_flow();
  Rng rng(5);
  Matrix x = rng.normal(16, 2);
  ParameterList params = flow.parameters();
  zero_grad(params);
  const Real loss = flow.nll_gradient(x);
  EXPECT_NEAR(loss, flow.mean_nll(x), 1e-12);
  const Real h = 1e-6;
  for (Parameter* p : params)
    for (Index k = 0; k < p->size(); ++k) {
      Real& w = p->value.data()[k];
      const Real saved = w;
      w = saved + h;
      const Real up = flow.mean_nll(x);
      w = saved - h;
      const Real down = flow.mean_nll(x);
      w = saved;
      EXPECT_NEAR(p->grad.data()[k], (up - down) / (2 * h), 1e-6) << p->name << "[" << k << "]";
    }
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

}  // namespace
}  // namespace flows
