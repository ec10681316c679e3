#include "flows/testing/gradient_checker.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <memory>

#include "flows/error.hpp"
#include "flows/rng.hpp"

namespace {

using flows::Index;
using flows::Matrix;
using flows::Parameter;
using flows::Real;
using flows::Vector;
using flows::testing::check_bijector_gradients;
using flows::testing::check_gradients;
using flows::testing::DifferentiableFunction;
using flows::testing::numerical_jacobian;

// y = tanh(x W + b) with a hand-written backward; `mistake` breaks one part of
// it on purpose.
enum class Mistake { none, input_missing_tanh_factor, bias_doubled, weight_transposed_sign };

struct TanhLayer {
  Parameter weight;
  Parameter bias;
  Matrix x;
  Matrix y;
  Mistake mistake = Mistake::none;

  TanhLayer(Index in, Index out, std::uint64_t seed) {
    flows::Rng rng(seed);
    weight = Parameter("weight", rng.normal(in, out) * 0.7);
    bias = Parameter("bias", rng.normal(1, out) * 0.3);
  }

  Matrix forward(const Matrix& input) {
    x = input;
    y = Matrix({input.shape(0), weight.value.shape(1)});
    for (Index i = 0; i < y.shape(0); ++i)
      for (Index k = 0; k < y.shape(1); ++k) {
        Real a = bias.value(0, k);
        for (Index j = 0; j < x.shape(1); ++j) a += x(i, j) * weight.value(j, k);
        y(i, k) = std::tanh(a);
      }
    return y;
  }

  Matrix backward(const Matrix& grad_y) {
    Matrix grad_a = grad_y * (1.0 - y * y);
    Matrix grad_x = xt::zeros<Real>({x.shape(0), x.shape(1)});
    for (Index i = 0; i < x.shape(0); ++i)
      for (Index k = 0; k < y.shape(1); ++k) {
        const Real g = grad_a(i, k);
        const Real g_input = mistake == Mistake::input_missing_tanh_factor ? grad_y(i, k) : g;
        bias.grad(0, k) += mistake == Mistake::bias_doubled ? 2 * g : g;
        for (Index j = 0; j < x.shape(1); ++j) {
          grad_x(i, j) += g_input * weight.value(j, k);
          const Real gw = g * x(i, j);
          weight.grad(j, k) +=
              (mistake == Mistake::weight_transposed_sign && j == 1 && k == 0) ? -gw : gw;
        }
      }
    return grad_x;
  }

  DifferentiableFunction function() {
    DifferentiableFunction f;
    f.forward = [this](const Matrix& input) { return forward(input); };
    f.backward = [this](const Matrix& grad_y) { return backward(grad_y); };
    f.params = {&weight, &bias};
    return f;
  }
};

Matrix random_input(Index rows, Index cols, std::uint64_t seed) {
  flows::Rng rng(seed);
  return rng.normal(rows, cols);
}

TEST(GradientChecker, PassesOnACorrectBackward) {
  TanhLayer layer(3, 2, 1);
  const auto result = check_gradients(layer.function(), random_input(5, 3, 2));
  EXPECT_TRUE(result.ok) << result.report;
  EXPECT_LT(result.worst_relative_error, 1e-5);
  EXPECT_FALSE(result.worst_entry.empty());
}

TEST(GradientChecker, CatchesAWrongInputGradient) {
  TanhLayer layer(3, 2, 1);
  layer.mistake = Mistake::input_missing_tanh_factor;
  const auto result = check_gradients(layer.function(), random_input(5, 3, 2));
  EXPECT_FALSE(result.ok) << result.report;
  EXPECT_EQ(result.worst_entry.rfind("input[", 0), 0u) << result.worst_entry;
  EXPECT_GT(result.worst_relative_error, 1e-2);
}

TEST(GradientChecker, CatchesAWrongBiasGradient) {
  TanhLayer layer(3, 2, 1);
  layer.mistake = Mistake::bias_doubled;
  const auto result = check_gradients(layer.function(), random_input(5, 3, 2));
  EXPECT_FALSE(result.ok) << result.report;
  EXPECT_EQ(result.worst_entry.rfind("param 'bias'[0,", 0), 0u) << result.worst_entry;
}

TEST(GradientChecker, NamesTheWrongWeightEntry) {
  TanhLayer layer(3, 2, 1);
  layer.mistake = Mistake::weight_transposed_sign;
  const auto result = check_gradients(layer.function(), random_input(5, 3, 2));
  EXPECT_FALSE(result.ok) << result.report;
  EXPECT_EQ(result.worst_entry, "param 'weight'[1,0]") << result.report;
}

TEST(GradientChecker, ReportHasOneLinePerTensor) {
  TanhLayer layer(3, 2, 1);
  const auto result = check_gradients(layer.function(), random_input(4, 3, 2));
  EXPECT_NE(result.report.find("input"), std::string::npos) << result.report;
  EXPECT_NE(result.report.find("[4 x 3]"), std::string::npos) << result.report;
  EXPECT_NE(result.report.find("param 'weight'"), std::string::npos) << result.report;
  EXPECT_NE(result.report.find("[3 x 2]"), std::string::npos) << result.report;
  EXPECT_NE(result.report.find("param 'bias'"), std::string::npos) << result.report;
  EXPECT_NE(result.report.find("analytic"), std::string::npos) << result.report;
  EXPECT_NE(result.report.find("numeric"), std::string::npos) << result.report;
}

TEST(GradientChecker, ZeroesStaleGradientsBeforeTheAnalyticPass) {
  TanhLayer layer(3, 2, 1);
  layer.weight.grad.fill(123.0);
  layer.bias.grad.fill(-7.0);
  const auto result = check_gradients(layer.function(), random_input(5, 3, 2));
  EXPECT_TRUE(result.ok) << result.report;
}

TEST(GradientChecker, RestoresParameterValuesExactly) {
  TanhLayer layer(3, 2, 1);
  const Matrix weight = layer.weight.value;
  const Matrix bias = layer.bias.value;
  check_gradients(layer.function(), random_input(5, 3, 2));
  for (Index k = 0; k < weight.size(); ++k) EXPECT_EQ(layer.weight.value.flat(k), weight.flat(k));
  for (Index k = 0; k < bias.size(); ++k) EXPECT_EQ(layer.bias.value.flat(k), bias.flat(k));
}

TEST(GradientChecker, LeavesTheAnalyticGradientsInTheParameters) {
  TanhLayer layer(3, 2, 1);
  const Matrix x = random_input(5, 3, 2);
  check_gradients(layer.function(), x);
  const Matrix checked = layer.weight.grad;
  // The same analytic pass by hand, with the checker's projection.
  layer.weight.zero_grad();
  layer.bias.zero_grad();
  const Matrix y = layer.forward(x);
  flows::Rng rng(flows::testing::GradientCheckOptions{}.seed);
  layer.backward(rng.normal(y.shape(0), y.shape(1)));
  for (Index k = 0; k < checked.size(); ++k) EXPECT_EQ(checked.flat(k), layer.weight.grad.flat(k));
}

TEST(GradientChecker, SeedChangesTheProjectionButNotTheVerdict) {
  TanhLayer layer(3, 2, 1);
  flows::testing::GradientCheckOptions options;
  options.seed = 99;
  const auto result = check_gradients(layer.function(), random_input(5, 3, 2), options);
  EXPECT_TRUE(result.ok) << result.report;
}

TEST(GradientChecker, NanGradientFails) {
  DifferentiableFunction f;
  f.forward = [](const Matrix& x) { return Matrix(x * 2.0); };
  f.backward = [](const Matrix& g) {
    Matrix out = g * 2.0;
    out(0, 0) = std::nan("");
    return out;
  };
  const auto result = check_gradients(f, random_input(2, 2, 3));
  EXPECT_FALSE(result.ok) << result.report;
  EXPECT_EQ(result.worst_entry, "input[0,0]");
}

TEST(GradientChecker, BackwardOfTheWrongShapeIsAnError) {
  DifferentiableFunction f;
  f.forward = [](const Matrix& x) { return x; };
  f.backward = [](const Matrix& g) {
    return Matrix(xt::zeros<Real>({g.shape(0), g.shape(1) + 1}));
  };
  EXPECT_THROW(check_gradients(f, random_input(2, 2, 3)), flows::Error);
}

TEST(GradientChecker, NumericalJacobianOfALinearMapIsItsMatrix) {
  const Matrix a = {{1.0, -2.0, 0.5}, {3.0, 0.25, -1.0}};  // y = A x for a row x
  const auto f = [&a](const Matrix& row) {
    Matrix y({1, a.shape(0)});
    for (Index k = 0; k < a.shape(0); ++k) {
      y(0, k) = 0;
      for (Index j = 0; j < a.shape(1); ++j) y(0, k) += a(k, j) * row(0, j);
    }
    return y;
  };
  const Matrix x = {{0.3, -1.2, 2.0}};
  const Matrix jacobian = numerical_jacobian(f, x);
  ASSERT_EQ(jacobian.shape(0), 2u);
  ASSERT_EQ(jacobian.shape(1), 3u);
  for (Index k = 0; k < 2; ++k)
    for (Index j = 0; j < 3; ++j) EXPECT_NEAR(jacobian(k, j), a(k, j), 1e-8);
}

// z = x · exp(s) elementwise, logdet = Σ s; `forget_logdet` drops the logdet
// term from dL/ds, the classic bijector mistake.
class ScaleBijector : public flows::Bijector {
 public:
  ScaleBijector(Index dim, bool forget_logdet)
      : Bijector("scale", dim),
        log_scale_("log_scale", Matrix({1, dim}, 0.2)),
        forget_logdet_(forget_logdet) {
    for (Index j = 0; j < dim; ++j) log_scale_.value(0, j) = 0.1 * static_cast<Real>(j) - 0.2;
  }
  flows::ParameterList parameters() override { return {&log_scale_}; }

 private:
  flows::Transformed forward_impl(const Matrix& x, const Matrix&) const override {
    Matrix z = x * xt::exp(log_scale_.value);
    return {z, Vector(xt::ones<Real>({x.shape(0)}) * xt::sum(log_scale_.value)())};
  }
  flows::Transformed inverse_impl(const Matrix& z, const Matrix&) const override {
    Matrix x = z * xt::exp(-log_scale_.value);
    return {x, Vector(xt::ones<Real>({z.shape(0)}) * -xt::sum(log_scale_.value)())};
  }
  void forward_train_impl(const Matrix& x, const Matrix& context, Matrix& z,
                          Vector& logdet) override {
    auto t = forward_impl(x, context);
    z = t.value;
    logdet = t.logdet;
    z_ = z;
  }
  void backward_impl(const Matrix& grad_z, const Vector& grad_logdet, Matrix& grad_x,
                     Matrix*) override {
    grad_x = grad_z * xt::exp(log_scale_.value);
    for (Index j = 0; j < dim(); ++j)
      for (Index i = 0; i < grad_z.shape(0); ++i)
        log_scale_.grad(0, j) += grad_z(i, j) * z_(i, j) + (forget_logdet_ ? 0.0 : grad_logdet(i));
  }

  Parameter log_scale_;
  bool forget_logdet_;
  Matrix z_;
};

// A conditional bijector, z = x ⊙ exp(c A) with A learnable (k x d):
// logdet = Σ_j (c A)_j, dL/dc = (g ⊙ z + γ) Aᵀ. `mistake` breaks the context
// gradient on purpose.
enum class ContextMistake { none, overwrites, wrong_sign };

class ContextScaleBijector : public flows::Bijector {
 public:
  ContextScaleBijector(Index dim, Index context_dim, ContextMistake mistake)
      : Bijector("context_scale", dim, context_dim), mistake_(mistake) {
    flows::Rng rng(8);
    a_ = Parameter("a", rng.normal(context_dim, dim) * 0.4);
  }
  flows::ParameterList parameters() override { return {&a_}; }

 private:
  // s = c A, one row per sample.
  Matrix log_scale(const Matrix& c) const {
    Matrix s = xt::zeros<Real>({c.shape(0), dim()});
    for (Index i = 0; i < c.shape(0); ++i)
      for (Index j = 0; j < dim(); ++j)
        for (Index k = 0; k < context_dim(); ++k) s(i, j) += c(i, k) * a_.value(k, j);
    return s;
  }
  flows::Transformed forward_impl(const Matrix& x, const Matrix& c) const override {
    const Matrix s = log_scale(c);
    return {Matrix(x * xt::exp(s)), Vector(xt::sum(s, {1}))};
  }
  flows::Transformed inverse_impl(const Matrix& z, const Matrix& c) const override {
    const Matrix s = log_scale(c);
    return {Matrix(z * xt::exp(-s)), Vector(-xt::sum(s, {1}))};
  }
  void forward_train_impl(const Matrix& x, const Matrix& c, Matrix& z, Vector& logdet) override {
    auto t = forward_impl(x, c);
    z = t.value;
    logdet = t.logdet;
    z_ = z;
    s_ = log_scale(c);
    c_ = c;
  }
  void backward_impl(const Matrix& grad_z, const Vector& grad_logdet, Matrix& grad_x,
                     Matrix* grad_context) override {
    grad_x = grad_z * xt::exp(s_);
    const Index n = grad_z.shape(0);
    // dL/ds_ij = g_ij z_ij + γ_i.
    Matrix grad_s({n, dim()});
    for (Index i = 0; i < n; ++i)
      for (Index j = 0; j < dim(); ++j) grad_s(i, j) = grad_z(i, j) * z_(i, j) + grad_logdet(i);
    for (Index k = 0; k < context_dim(); ++k)
      for (Index j = 0; j < dim(); ++j)
        for (Index i = 0; i < n; ++i) a_.grad(k, j) += c_(i, k) * grad_s(i, j);
    if (!grad_context) return;
    if (mistake_ == ContextMistake::overwrites) grad_context->fill(0);
    const Real sign = mistake_ == ContextMistake::wrong_sign ? -1 : 1;
    for (Index i = 0; i < n; ++i)
      for (Index k = 0; k < context_dim(); ++k)
        for (Index j = 0; j < dim(); ++j)
          (*grad_context)(i, k) += sign * grad_s(i, j) * a_.value(k, j);
  }

  ContextMistake mistake_;
  Parameter a_;
  Matrix z_, s_, c_;
};

TEST(GradientChecker, BijectorCheckPassesOnACorrectBijector) {
  ScaleBijector bijector(3, false);
  const auto result = check_bijector_gradients(bijector, random_input(6, 3, 4));
  EXPECT_TRUE(result.ok) << result.report;
}

TEST(GradientChecker, BijectorCheckCatchesAMissingLogDetGradient) {
  ScaleBijector bijector(3, true);
  const auto result = check_bijector_gradients(bijector, random_input(6, 3, 4));
  EXPECT_FALSE(result.ok) << result.report;
  EXPECT_EQ(result.worst_entry.rfind("param 'log_scale'", 0), 0u) << result.report;
}

// The checker on a ContextScaleBijector of dim d and context width k.
flows::testing::GradientCheckResult check_context_scale(ContextMistake mistake, Index d, Index k) {
  ContextScaleBijector bijector(d, k, mistake);
  return check_bijector_gradients(bijector, random_input(5, d, 4), random_input(5, k, 5));
}

TEST(GradientChecker, BijectorCheckCoversTheContextOfAConditionalBijector) {
  const auto result = check_context_scale(ContextMistake::none, 3, 2);
  EXPECT_TRUE(result.ok) << result.report;
  EXPECT_NE(result.report.find("context"), std::string::npos) << result.report;
  EXPECT_NE(result.report.find("[5 x 2]"), std::string::npos) << result.report;
}

TEST(GradientChecker, BijectorCheckCatchesAWrongContextGradient) {
  const auto result = check_context_scale(ContextMistake::wrong_sign, 3, 2);
  EXPECT_FALSE(result.ok) << result.report;
  EXPECT_EQ(result.worst_entry.rfind("context[", 0), 0u) << result.report;
}

// backward must add dL/dc to grad_context; one that overwrites it fails.
TEST(GradientChecker, BijectorCheckCatchesAnOverwrittenContextGradient) {
  const auto result = check_context_scale(ContextMistake::overwrites, 2, 3);
  EXPECT_FALSE(result.ok) << result.report;
  EXPECT_EQ(result.worst_entry.rfind("context[", 0), 0u) << result.report;
}

TEST(GradientChecker, BijectorCheckWithAContextOfTheWrongShapeIsAnError) {
  ContextScaleBijector bijector(3, 2, ContextMistake::none);
  EXPECT_THROW(check_bijector_gradients(bijector, random_input(5, 3, 4), random_input(5, 3, 5)),
               flows::Error);
  EXPECT_THROW(check_bijector_gradients(bijector, random_input(5, 3, 4), random_input(4, 2, 5)),
               flows::Error);
}

// An unconditional bijector given a context: only x and θ are checked.
TEST(GradientChecker, BijectorCheckIgnoresAContextAnUnconditionalBijectorIgnores) {
  ScaleBijector bijector(3, false);
  const auto result =
      check_bijector_gradients(bijector, random_input(6, 3, 4), random_input(6, 2, 5));
  EXPECT_TRUE(result.ok) << result.report;
  EXPECT_EQ(result.report.find("context"), std::string::npos) << result.report;
}

}  // namespace
