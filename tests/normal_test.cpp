#include "flows/normal.hpp"

#include <gtest/gtest.h>

#include <cmath>

#include "flows/conditional_normal.hpp"
#include "flows/config.hpp"
#include "flows/error.hpp"
#include "flows/log_scale.hpp"
#include "flows/registry.hpp"
#include "flows/testing/gradient_checker.hpp"

namespace flows {
namespace {

TEST(StandardNormal, LogProbMatchesClosedForm) {
  StandardNormal normal(3);
  Matrix z = {{0.0, 0.0, 0.0}, {1.0, -2.0, 0.5}};
  Vector lp = normal.log_prob(z, {});
  const Real c = -1.5 * std::log(2 * M_PI);
  EXPECT_NEAR(lp(0), c, 1e-14);
  EXPECT_NEAR(lp(1), c - 0.5 * (1 + 4 + 0.25), 1e-14);
}

TEST(StandardNormal, SampleMomentsMatch) {
  StandardNormal normal(2);
  Rng rng(7);
  Matrix s = normal.sample(200000, {}, rng);
  for (Index j = 0; j < 2; ++j) {
    Real mean = 0, var = 0;
    for (Index i = 0; i < s.shape(0); ++i) mean += s(i, j);
    mean /= static_cast<Real>(s.shape(0));
    for (Index i = 0; i < s.shape(0); ++i) var += (s(i, j) - mean) * (s(i, j) - mean);
    var /= static_cast<Real>(s.shape(0));
    EXPECT_NEAR(mean, 0.0, 0.01);  // 4.5 standard errors
    EXPECT_NEAR(var, 1.0, 0.015);
  }
}

TEST(StandardNormal, WrongColumnCountIsADataError) {
  StandardNormal normal(3);
  Matrix z = xt::zeros<Real>({2, 2});
  EXPECT_THROW(normal.log_prob(z, {}), DataError);
}

TEST(DiagonalNormal, LogProbMatchesClosedForm) {
  DiagonalNormal normal(2, 0.5, std::log(2.0));
  Matrix z = {{1.5, -0.5}};
  // Each dimension: N(x; 0.5, 2²).
  auto log_n = [](Real x) {
    return -0.5 * std::pow((x - 0.5) / 2.0, 2) - std::log(2.0) - 0.5 * std::log(2 * M_PI);
  };
  EXPECT_NEAR(normal.log_prob(z, {})(0), log_n(1.5) + log_n(-0.5), 1e-14);
}

TEST(DiagonalNormal, SampleMomentsMatch) {
  DiagonalNormal normal(1, -1.0, std::log(0.5));
  Rng rng(3);
  Matrix s = normal.sample(200000, {}, rng);
  Real mean = 0, var = 0;
  for (Real v : s) mean += v;
  mean /= static_cast<Real>(s.size());
  for (Real v : s) var += (v - mean) * (v - mean);
  var /= static_cast<Real>(s.size());
  EXPECT_NEAR(mean, -1.0, 0.005);
  EXPECT_NEAR(var, 0.25, 0.004);
}

TEST(DiagonalNormal, GradientsMatchFiniteDifferences) {
  DiagonalNormal normal(3, 0.3, -0.2);
  normal.parameters()[0]->value = Matrix{{0.1, -0.4, 0.7}};
  normal.parameters()[1]->value = Matrix{{0.2, -0.3, 0.05}};
  Matrix last_z;
  testing::DifferentiableFunction f;
  f.forward = [&](const Matrix& z) {
    last_z = z;
    Vector lp = normal.log_prob(z, {});
    Matrix y({lp.size(), 1});
    for (Index i = 0; i < lp.size(); ++i) y(i, 0) = lp(i);
    return y;
  };
  f.backward = [&](const Matrix& grad_y) {
    Vector w = xt::empty<Real>({grad_y.shape(0)});
    for (Index i = 0; i < w.size(); ++i) w(i) = grad_y(i, 0);
    Matrix grad_z;
    normal.log_prob_backward(last_z, {}, w, grad_z, nullptr);
    return grad_z;
  };
  f.params = normal.parameters();
  Rng rng(1);
  auto result = testing::check_gradients(f, rng.normal(5, 3));
  EXPECT_TRUE(result.ok) << result.report;
}

// log σ far outside any sensible range would overflow e^{−log σ} (and
// sampling's e^{log σ}): it is clamped to ±kMaxLogScale, consistently in the
// density, the samples and the gradients (0 in log σ outside the bound).
TEST(DiagonalNormal, LogScaleIsClampedAgainstOverflow) {
  DiagonalNormal normal(2);
  normal.parameters()[1]->value = Matrix{{-800.0, 800.0}};
  const Matrix z = {{0.0, 1.0}, {1e-14, -2.0}};
  const Vector lp = normal.log_prob(z, {});
  const Real k = kMaxLogScale, log_2pi = std::log(2 * M_PI);
  EXPECT_NEAR(lp(0), k - k - log_2pi - 0.5 * std::exp(-2 * k), 1e-12);
  EXPECT_NEAR(lp(1), -0.5 * std::pow(1e-14 * std::exp(k), 2) - log_2pi, 1e-12);
  Rng rng(4);
  for (Real v : normal.sample(5, {}, rng)) EXPECT_TRUE(std::isfinite(v));

  normal.parameters()[1]->value = Matrix{{-31.0, 31.0}};
  Matrix last_z;
  testing::DifferentiableFunction f;
  f.forward = [&](const Matrix& x) {
    last_z = x;
    const Vector v = normal.log_prob(x, {});
    Matrix y({v.size(), 1});
    for (Index i = 0; i < v.size(); ++i) y(i, 0) = v(i);
    return y;
  };
  f.backward = [&](const Matrix& grad_y) {
    Vector w = xt::empty<Real>({grad_y.shape(0)});
    for (Index i = 0; i < w.size(); ++i) w(i) = grad_y(i, 0);
    Matrix grad_z;
    normal.log_prob_backward(last_z, {}, w, grad_z, nullptr);
    return grad_z;
  };
  f.params = normal.parameters();
  // Column 0 has σ = e^{−30}: inputs on its scale keep its u = (z − μ)/σ of
  // order 1, so that its terms do not drown column 1's in the differences.
  Matrix x = rng.normal(3, 2);
  for (Index i = 0; i < 3; ++i) x(i, 0) *= std::exp(-k);
  const auto result = testing::check_gradients(f, x);
  EXPECT_TRUE(result.ok) << result.report;
}

TEST(StandardNormal, InputGradientMatchesFiniteDifferences) {
  StandardNormal normal(2);
  Matrix last_z;
  testing::DifferentiableFunction f;
  f.forward = [&](const Matrix& z) {
    last_z = z;
    Vector lp = normal.log_prob(z, {});
    Matrix y({lp.size(), 1});
    for (Index i = 0; i < lp.size(); ++i) y(i, 0) = lp(i);
    return y;
  };
  f.backward = [&](const Matrix& grad_y) {
    Vector w = xt::empty<Real>({grad_y.shape(0)});
    for (Index i = 0; i < w.size(); ++i) w(i) = grad_y(i, 0);
    Matrix grad_z;
    normal.log_prob_backward(last_z, {}, w, grad_z, nullptr);
    return grad_z;
  };
  Rng rng(2);
  auto result = testing::check_gradients(f, rng.normal(4, 2));
  EXPECT_TRUE(result.ok) << result.report;
}

TEST(StandardNormal, IsUnconditionalAndIgnoresAContext) {
  StandardNormal normal(2);
  EXPECT_EQ(normal.context_dim(), 0u);
  const Matrix z = {{0.5, -1.0}, {2.0, 0.1}};
  const Matrix context = {{1.0, 2.0, 3.0}, {4.0, 5.0, 6.0}};
  EXPECT_EQ(normal.log_prob(z, context), normal.log_prob(z, {}));
  Matrix grad_z, grad_context = xt::ones<Real>({2, 3});
  normal.log_prob_backward(z, context, Vector{1.0, 1.0}, grad_z, &grad_context);
  EXPECT_EQ(grad_context, Matrix(xt::ones<Real>({2, 3}))) << "an unconditional base wrote dL/dc";
}

TEST(DiagonalNormal, IsUnconditional) {
  DiagonalNormal normal(3);
  EXPECT_EQ(normal.context_dim(), 0u);
}

// ConditionalDiagonalNormal: a network e -> [μ | log σ].

using Options = ConditionalDiagonalNormal::Options;

Options options(std::vector<Index> hidden, const std::string& activation = "tanh") {
  Options o;
  o.hidden = std::move(hidden);
  o.activation = activation;
  return o;
}

// Moves every parameter of the network away from its initial value.
void perturb(ConditionalDiagonalNormal& normal, std::uint64_t seed, Real scale = 0.5) {
  Rng rng(seed);
  for (Parameter* p : normal.parameters())
    p->value += scale * rng.normal(p->value.shape(0), p->value.shape(1));
}

TEST(ConditionalDiagonalNormal, StartsAsTheStandardNormalForEveryContext) {
  Rng rng(1);
  ConditionalDiagonalNormal normal(3, 2, options({8}), rng);
  EXPECT_EQ(normal.dim(), 3u);
  EXPECT_EQ(normal.context_dim(), 2u);
  const Matrix z = rng.normal(5, 3);
  const Matrix context = rng.normal(5, 2) * 4.0;
  const Vector expected = StandardNormal(3).log_prob(z, {});
  const Vector lp = normal.log_prob(z, context);
  for (Index i = 0; i < 5; ++i) EXPECT_NEAR(lp(i), expected(i), 1e-14) << i;
}

// With a linear network (hidden: []): μ = e Wμᵀ + bμ, log σ = e Wσᵀ + bσ, and
// log p is the diagonal normal's at that row's μ and σ.
TEST(ConditionalDiagonalNormal, LogProbIsTheDiagonalNormalAtTheContextsMeanAndScale) {
  Rng rng(2);
  ConditionalDiagonalNormal normal(2, 1, options({}), rng);
  ASSERT_EQ(normal.parameters().size(), 2u);
  Parameter& w = *normal.parameters()[0];  // 4 x 1: μ_0, μ_1, log σ_0, log σ_1
  Parameter& b = *normal.parameters()[1];
  w.value = Matrix{{1.0}, {-2.0}, {0.5}, {0.0}};
  b.value = Matrix{{0.3, 0.0, -0.2, 0.1}};
  const Matrix z = {{1.0, -1.0}, {0.0, 2.0}};
  const Matrix context = {{0.5}, {-1.0}};
  const Vector lp = normal.log_prob(z, context);
  for (Index i = 0; i < 2; ++i) {
    const Real e = context(i, 0);
    DiagonalNormal at_row(2);
    at_row.parameters()[0]->value = Matrix{{0.3 + e, -2.0 * e}};
    at_row.parameters()[1]->value = Matrix{{-0.2 + 0.5 * e, 0.1}};
    const Matrix row = xt::view(z, xt::range(i, i + 1), xt::all());
    EXPECT_NEAR(lp(i), at_row.log_prob(row, {})(0), 1e-13) << "row " << i;
  }
  Matrix mean, log_scale;
  normal.mean_and_log_scale(context, mean, log_scale);
  EXPECT_NEAR(mean(1, 1), 2.0, 1e-15);
  EXPECT_NEAR(log_scale(0, 0), 0.05, 1e-15);
}

TEST(ConditionalDiagonalNormal, SamplesHaveTheMomentsOfTheirContext) {
  Rng rng(3);
  ConditionalDiagonalNormal normal(1, 1, options({}), rng);
  Parameter& w = *normal.parameters()[0];  // μ = 2 e, log σ = log(0.5) + e log 2
  Parameter& b = *normal.parameters()[1];
  w.value = Matrix{{2.0}, {std::log(2.0)}};
  b.value = Matrix{{0.0, std::log(0.5)}};
  const Index n = 100000;
  Matrix context({n, 1});
  for (Index i = 0; i < n; ++i) context(i, 0) = i % 2 == 0 ? -1.0 : 1.0;
  const Matrix s = normal.sample(n, context, rng);
  // e = -1: N(-2, 0.25²); e = 1: N(2, 1²).
  for (int parity : {0, 1}) {
    Real mean = 0, sq = 0;
    for (Index i = parity; i < n; i += 2) mean += s(i, 0);
    mean /= Real(n / 2);
    for (Index i = parity; i < n; i += 2) sq += (s(i, 0) - mean) * (s(i, 0) - mean);
    const Real sd = std::sqrt(sq / Real(n / 2));
    const Real expected_sd = parity == 0 ? 0.25 : 1.0;
    EXPECT_NEAR(mean, parity == 0 ? -2.0 : 2.0, 5 * expected_sd / std::sqrt(Real(n / 2)));
    EXPECT_NEAR(sd, expected_sd, 0.02 * expected_sd);
  }
}

// dL/dz, dL/dθ and dL/de of L = Σ r_i log p(z_i | e_i) by central differences,
// with the input [z | e]; dL/de must be added to what grad_context holds.
TEST(ConditionalDiagonalNormal, GradientsMatchFiniteDifferences) {
  for (const std::vector<Index>& hidden : {std::vector<Index>{}, std::vector<Index>{6, 5}}) {
    SCOPED_TRACE("hidden layers: " + std::to_string(hidden.size()));
    Rng rng(4);
    const Index d = 3, k = 2;
    ConditionalDiagonalNormal normal(d, k, options(hidden), rng);
    perturb(normal, 5, 0.4);
    Matrix last;
    testing::DifferentiableFunction f;
    f.forward = [&](const Matrix& in) {
      last = in;
      const Matrix z = xt::view(in, xt::all(), xt::range(0, d));
      const Matrix e = xt::view(in, xt::all(), xt::range(d, d + k));
      const Vector lp = normal.log_prob(z, e);
      Matrix y({lp.size(), 1});
      for (Index i = 0; i < lp.size(); ++i) y(i, 0) = lp(i);
      return y;
    };
    f.backward = [&](const Matrix& grad_y) {
      const Index n = grad_y.shape(0);
      Vector w = xt::empty<Real>({n});
      for (Index i = 0; i < n; ++i) w(i) = grad_y(i, 0);
      const Matrix z = xt::view(last, xt::all(), xt::range(0, d));
      const Matrix e = xt::view(last, xt::all(), xt::range(d, d + k));
      Matrix grad_z;
      Matrix grad_e = Matrix(std::array<Index, 2>{n, k}, 0.75);
      normal.log_prob_backward(z, e, w, grad_z, &grad_e);
      Matrix grad({n, d + k});
      xt::view(grad, xt::all(), xt::range(0, d)) = grad_z;
      xt::view(grad, xt::all(), xt::range(d, d + k)) = grad_e - 0.75;
      return grad;
    };
    f.params = normal.parameters();
    const auto result = testing::check_gradients(f, rng.normal(6, d + k));
    EXPECT_TRUE(result.ok) << result.report;
  }
}

TEST(ConditionalDiagonalNormal, ContextGradientIsOptional) {
  Rng rng(6);
  ConditionalDiagonalNormal normal(2, 2, options({4}), rng);
  perturb(normal, 7);
  const Matrix z = rng.normal(3, 2), e = rng.normal(3, 2);
  const Vector w = {1.0, -0.5, 2.0};
  Matrix grad_z_with, grad_z_without, grad_e = xt::zeros<Real>({3, 2});
  normal.log_prob_backward(z, e, w, grad_z_with, &grad_e);
  normal.log_prob_backward(z, e, w, grad_z_without, nullptr);
  EXPECT_EQ(grad_z_with, grad_z_without);
}

TEST(ConditionalDiagonalNormal, AMissingOrWrongContextIsADataErrorNamingTheShape) {
  Rng rng(7);
  ConditionalDiagonalNormal normal(2, 3, options({4}), rng);
  const Matrix z = rng.normal(4, 2);
  try {
    normal.log_prob(z, {});
    FAIL() << "no error without a context";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("3 columns"), std::string::npos) << e.what();
  }
  try {
    normal.log_prob(z, rng.normal(4, 2));
    FAIL() << "no error for a context of 2 columns";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("[4 x 2], expected [4 x 3]"), std::string::npos)
        << e.what();
  }
  EXPECT_THROW(normal.log_prob(z, rng.normal(3, 3)), DataError);
  EXPECT_THROW(normal.sample(5, rng.normal(4, 3), rng), DataError);
  Matrix grad_z;
  EXPECT_THROW(
      normal.log_prob_backward(z, rng.normal(4, 1), Vector(xt::ones<Real>({4})), grad_z, nullptr),
      DataError);
  Matrix wrong_grad = xt::zeros<Real>({4, 2});
  EXPECT_THROW(normal.log_prob_backward(z, rng.normal(4, 3), Vector(xt::ones<Real>({4})), grad_z,
                                        &wrong_grad),
               DataError);
  EXPECT_THROW(normal.log_prob(rng.normal(4, 3), rng.normal(4, 3)), DataError);
}

class ConditionalDiagonalNormalFactory : public ::testing::Test {
 protected:
  void SetUp() override { register_builtins(registry_); }
  std::shared_ptr<BaseDistribution> build(const std::string& yaml, Index dim, Index context_dim) {
    ConfigNode node = ConfigNode::parse(yaml, "base.yaml");
    return registry_.make<BaseDistribution>(node, BuildContext{dim, context_dim, 3, &registry_});
  }
  std::string config_error(const std::string& yaml, Index context_dim = 2) {
    try {
      build(yaml, 2, context_dim);
    } catch (const ConfigError& e) {
      return e.what();
    }
    return "";
  }
  Registry registry_;
};

TEST_F(ConditionalDiagonalNormalFactory, BuildsFromYamlWithItsContextWidth) {
  auto base = build("{type: conditional_diagonal_normal, hidden: [5], activation: silu}", 3, 4);
  EXPECT_EQ(base->dim(), 3u);
  EXPECT_EQ(base->context_dim(), 4u);
  EXPECT_EQ(base->parameters().size(), 4u);  // two layers, weight and bias each
  EXPECT_EQ(base->parameters()[0]->value.shape(1), 4u);
  EXPECT_EQ(base->parameters()[2]->value.shape(0), 6u);
  auto linear = build("{type: conditional_diagonal_normal, hidden: []}", 2, 1);
  EXPECT_EQ(linear->parameters().size(), 2u);
}

TEST_F(ConditionalDiagonalNormalFactory, RefusesAModelWithoutContextNamingContextColumns) {
  const std::string message = config_error("{type: conditional_diagonal_normal}", 0);
  EXPECT_NE(message.find("context_columns"), std::string::npos) << message;
  EXPECT_NE(message.find("base.yaml"), std::string::npos) << message;
}

TEST_F(ConditionalDiagonalNormalFactory, BadOptionsAreConfigErrorsNamingTheKey) {
  EXPECT_NE(config_error("{type: conditional_diagonal_normal, hidden: [4, 0]}").find("hidden"),
            std::string::npos);
  EXPECT_NE(
      config_error("{type: conditional_diagonal_normal, activation: sigmoid}").find("activation"),
      std::string::npos);
  EXPECT_NE(config_error("{type: conditional_diagonal_normal, widths: [4]}").find("widths"),
            std::string::npos);
}

TEST_F(ConditionalDiagonalNormalFactory, TheSameSeedBuildsTheSameNetwork) {
  auto a = build("{type: conditional_diagonal_normal, hidden: [4]}", 2, 2);
  auto b = build("{type: conditional_diagonal_normal, hidden: [4]}", 2, 2);
  ASSERT_EQ(a->parameters().size(), b->parameters().size());
  for (Index k = 0; k < a->parameters().size(); ++k)
    EXPECT_EQ(a->parameters()[k]->value, b->parameters()[k]->value) << k;
}

}  // namespace
}  // namespace flows
