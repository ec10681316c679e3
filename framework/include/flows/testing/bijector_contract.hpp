#pragma once
// The laws every bijector obeys, as a value-parameterized GoogleTest suite
// (in the spirit of Ceres' EXPECT_THAT_MANIFOLD_INVARIANTS_HOLD and TensorFlow
// Probability's bijector test helpers). A bijector joins with one line:
//
//   #include <flows/testing/bijector_contract.hpp>
//   INSTANTIATE_TEST_SUITE_P(Basic, BijectorContract,
//       ::testing::Values(BijectorCase{"affine_2", PLUGIN_PATH, "{type: affine}", 2}),
//       flows::testing::bijector_case_name);
//
// The TEST_P definitions below must be compiled exactly once per test binary
// (a second copy is a "multiple definition" link error). In a binary whose
// suite is already defined by another file, instantiate from a file that
// defines FLOWS_BIJECTOR_CONTRACT_INSTANTIATE_ONLY before the include.
//
// Every law runs at a generic point: the fixture builds the bijector from its
// YAML, runs one forward_train on a random batch (data-dependent
// initialisation such as ActNorm's happens there), then adds a little noise to
// every parameter so that identity-like initialisations hide nothing.
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <ostream>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "flows/bijector.hpp"
#include "flows/config.hpp"
#include "flows/error.hpp"
#include "flows/plugin_loader.hpp"
#include "flows/registry.hpp"
#include "flows/rng.hpp"
#include "flows/tensor.hpp"
#include "flows/testing/gradient_checker.hpp"

namespace flows::testing {

// One bijector configuration under test. Only the first four fields are
// needed; the rest have defaults that suit smooth, exactly invertible maps.
struct BijectorCase {
  std::string name_for_test;  // test name suffix; characters outside [A-Za-z0-9_] become '_'
  std::string plugin_file;    // plugin to load (from CMake's $<TARGET_FILE:...>); "" if built in
  std::string yaml;           // the bijector's options, e.g. "{type: affine, log_scale: 0.5}"
  Index dim = 2;              // data dimension given to the factory
  // forward_train returns what forward returns (false for batch statistics).
  bool train_matches_inference = true;
  // Checks parameter and input gradients against finite differences.
  bool check_gradients = true;
  std::uint64_t seed = 0;          // BuildContext seed; also seeds the random batches
  Real input_scale = 1.0;          // standard deviation of the random data-side inputs
  Real parameter_noise = 0.1;      // standard deviation of the noise added to each parameter
  Real tolerance = 1e-8;           // round trips, logdet identities, train vs inference
  Real jacobian_tolerance = 1e-5;  // logdet against the finite-difference Jacobian
  // The gradient check; the floor of 1e-4 keeps central-difference round-off
  // (≈1e-10 at step 1e-6) from failing gradient entries that are nearly zero.
  GradientCheckOptions gradient_check{1e-6, 1e-5, 1e-4, 0};
};

inline void PrintTo(const BijectorCase& c, std::ostream* out) {
  *out << c.name_for_test << ": " << c.yaml << ", dim " << c.dim
       << (c.plugin_file.empty() ? std::string(" (built-in)") : " from " + c.plugin_file);
}

// The name printer for INSTANTIATE_TEST_SUITE_P: the case's name_for_test.
inline std::string bijector_case_name(const ::testing::TestParamInfo<BijectorCase>& info) {
  std::string name;
  for (char ch : info.param.name_for_test)
    name += std::isalnum(static_cast<unsigned char>(ch)) ? ch : '_';
  return name.empty() ? "case" + std::to_string(info.index) : name;
}

// log|det A| of a square matrix by LU decomposition with partial pivoting
// (Golub & Van Loan, "Matrix Computations", alg. 3.4.1): det A = ±Π u_ii.
// A singular matrix gives −∞.
inline Real log_abs_det(Matrix a) {
  const Index n = a.shape(0);
  if (a.shape(1) != n) throw Error("log_abs_det: the matrix is not square");
  Real log_det = 0;
  for (Index k = 0; k < n; ++k) {
    Index pivot = k;
    for (Index i = k + 1; i < n; ++i)
      if (std::abs(a(i, k)) > std::abs(a(pivot, k))) pivot = i;
    if (a(pivot, k) == 0) return -std::numeric_limits<Real>::infinity();
    if (pivot != k)
      for (Index j = 0; j < n; ++j) std::swap(a(k, j), a(pivot, j));
    log_det += std::log(std::abs(a(k, k)));
    for (Index i = k + 1; i < n; ++i) {
      const Real factor = a(i, k) / a(k, k);
      for (Index j = k + 1; j < n; ++j) a(i, j) -= factor * a(k, j);
    }
  }
  return log_det;
}

// Passes when |actual − expected| ≤ tolerance · (1 + |expected|) entrywise;
// the message names the worst entry.
inline ::testing::AssertionResult all_near(const xt::xtensor<Real, 2>& actual,
                                           const xt::xtensor<Real, 2>& expected, Real tolerance,
                                           const std::string& what) {
  if (actual.shape() != expected.shape())
    return ::testing::AssertionFailure()
           << what << ": shape [" << actual.shape(0) << " x " << actual.shape(1) << "], expected ["
           << expected.shape(0) << " x " << expected.shape(1) << "]";
  Real worst = 0;
  Index worst_k = 0;
  for (Index k = 0; k < actual.size(); ++k) {
    const Real a = actual.flat(k);
    const Real e = expected.flat(k);
    // Equal infinities agree; NaN never does.
    const Real error = std::isfinite(a) && std::isfinite(e)
                           ? std::abs(a - e) / (1 + std::abs(e))
                           : (a == e ? 0 : std::numeric_limits<Real>::infinity());
    if (error > worst) {
      worst = error;
      worst_k = k;
    }
  }
  if (worst <= tolerance) return ::testing::AssertionSuccess();
  const Index cols = std::max<Index>(actual.shape(1), 1);
  std::ostringstream out;
  out.precision(12);
  out << what << ": entry [" << worst_k / cols << "," << worst_k % cols << "] is "
      << actual.flat(worst_k) << ", expected " << expected.flat(worst_k) << " (error " << worst
      << " > tolerance " << tolerance << ")";
  return ::testing::AssertionFailure() << out.str();
}

inline ::testing::AssertionResult all_near(const Vector& actual, const Vector& expected,
                                           Real tolerance, const std::string& what) {
  Matrix a({1, actual.size()});
  Matrix e({1, expected.size()});
  std::copy(actual.begin(), actual.end(), a.begin());
  std::copy(expected.begin(), expected.end(), e.begin());
  return all_near(a, e, tolerance, what);
}

inline ::testing::AssertionResult all_finite(const Matrix& m, const std::string& what) {
  for (Index k = 0; k < m.size(); ++k)
    if (!std::isfinite(m.flat(k)))
      return ::testing::AssertionFailure() << what << " has a non-finite entry at flat index " << k;
  return ::testing::AssertionSuccess();
}

inline ::testing::AssertionResult all_finite(const Vector& v, const std::string& what) {
  for (Index k = 0; k < v.size(); ++k)
    if (!std::isfinite(v(k)))
      return ::testing::AssertionFailure() << what << " has a non-finite entry at " << k;
  return ::testing::AssertionSuccess();
}

class BijectorContract : public ::testing::TestWithParam<BijectorCase> {
 protected:
  static constexpr Index kBatch = 7;

  void SetUp() override { bijector_ = build(); }

  // A bijector built from the case's YAML, initialised on one training batch
  // and moved to a generic point; the same case always gives the same one.
  std::shared_ptr<Bijector> build() {
    const BijectorCase& c = GetParam();
    if (!registry_) {
      registry_ = std::make_unique<Registry>();
      register_builtins(*registry_);
      if (!c.plugin_file.empty()) load_plugin(c.plugin_file, *registry_);
    }
    ConfigNode node = ConfigNode::parse(c.yaml, "BijectorCase " + c.name_for_test);
    std::shared_ptr<Bijector> bijector =
        registry_->make<Bijector>(node, BuildContext{c.dim, c.seed, registry_.get()});
    if (!bijector) throw Error("the factory of " + c.yaml + " returned nothing");

    Rng rng = Rng(c.seed).derive(1);
    Matrix z;
    Vector logdet;
    bijector->forward_train(rng.normal(16, c.dim) * c.input_scale, no_context(), z, logdet);
    for (Parameter* p : bijector->parameters()) {
      p->value += c.parameter_noise * rng.normal(p->value.shape(0), p->value.shape(1));
      p->zero_grad();
    }
    return bijector;
  }

  // A random data-side batch; each call draws new rows.
  Matrix random_input(Index rows) {
    return rng_.normal(rows, GetParam().dim) * GetParam().input_scale;
  }
  // A random latent-side batch (the base distribution is a standard normal).
  Matrix random_latent(Index rows) { return rng_.normal(rows, GetParam().dim); }
  static const Matrix& no_context() {
    static const Matrix empty;
    return empty;
  }

  // Declared first: the bijector is destroyed before the registry.
  std::unique_ptr<Registry> registry_;
  std::shared_ptr<Bijector> bijector_;
  Rng rng_ = Rng(GetParam().seed).derive(2);
};

#ifndef FLOWS_BIJECTOR_CONTRACT_INSTANTIATE_ONLY

GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(BijectorContract);

TEST_P(BijectorContract, HasTheConfiguredDimension) {
  EXPECT_EQ(bijector_->dim(), GetParam().dim);
}

// f⁻¹(f(x)) = x.
TEST_P(BijectorContract, InverseUndoesForward) {
  const Matrix x = random_input(kBatch);
  const Matrix z = bijector_->forward(x, no_context()).value;
  EXPECT_TRUE(all_near(bijector_->inverse(z, no_context()).value, x, GetParam().tolerance,
                       "inverse(forward(x))"));
}

// f(f⁻¹(z)) = z.
TEST_P(BijectorContract, ForwardUndoesInverse) {
  const Matrix z = random_latent(kBatch);
  const Matrix x = bijector_->inverse(z, no_context()).value;
  EXPECT_TRUE(all_near(bijector_->forward(x, no_context()).value, z, GetParam().tolerance,
                       "forward(inverse(z))"));
}

// log|det ∂f⁻¹/∂z| at z = f(x) is −log|det ∂f/∂x| (inverse function theorem).
TEST_P(BijectorContract, InverseLogDetIsMinusForwardLogDet) {
  const Matrix x = random_input(kBatch);
  const Transformed forward = bijector_->forward(x, no_context());
  const Transformed inverse = bijector_->inverse(forward.value, no_context());
  EXPECT_TRUE(all_near(inverse.logdet, Vector(-forward.logdet), GetParam().tolerance,
                       "inverse logdet at f(x) against -(forward logdet at x)"));
}

// forward's logdet is log|det J| of the central-difference Jacobian, row by row.
TEST_P(BijectorContract, LogDetMatchesNumericalJacobian) {
  const Matrix x = random_input(4);
  const Vector logdet = bijector_->forward(x, no_context()).logdet;
  ASSERT_EQ(logdet.size(), x.shape(0));
  const auto f = [this](const Matrix& row) { return bijector_->forward(row, no_context()).value; };
  for (Index i = 0; i < x.shape(0); ++i) {
    const Matrix row = xt::view(x, xt::range(i, i + 1), xt::all());
    const Real expected = log_abs_det(numerical_jacobian(f, row));
    EXPECT_NEAR(logdet(i), expected, GetParam().jacobian_tolerance * (1 + std::abs(expected)))
        << "row " << i << " of the batch";
  }
}

// The training pass computes the same map as inference.
TEST_P(BijectorContract, TrainingForwardMatchesInference) {
  if (!GetParam().train_matches_inference)
    GTEST_SKIP() << "forward_train uses batch statistics (train_matches_inference = false)";
  const Matrix x = random_input(kBatch);
  const Transformed expected = bijector_->forward(x, no_context());
  Matrix z;
  Vector logdet;
  bijector_->forward_train(x, no_context(), z, logdet);
  EXPECT_TRUE(all_near(z, expected.value, GetParam().tolerance, "forward_train z"));
  EXPECT_TRUE(all_near(logdet, expected.logdet, GetParam().tolerance, "forward_train logdet"));
  // Nor does a training pass change the map (only an optimizer step may).
  const Transformed after = bijector_->forward(x, no_context());
  EXPECT_TRUE(
      all_near(after.value, expected.value, GetParam().tolerance, "forward after a forward_train"));
}

// backward's dL/dx and dL/dθ against central differences of forward_train.
TEST_P(BijectorContract, GradientsMatchFiniteDifferences) {
  if (!GetParam().check_gradients) GTEST_SKIP() << "check_gradients = false";
  const GradientCheckResult result =
      check_bijector_gradients(*bijector_, random_input(kBatch), GetParam().gradient_check);
  EXPECT_TRUE(result.ok) << result.report;
}

// backward adds to the parameters' gradients instead of overwriting them.
TEST_P(BijectorContract, BackwardAccumulatesParameterGradients) {
  if (!GetParam().check_gradients) GTEST_SKIP() << "check_gradients = false";
  const ParameterList params = bijector_->parameters();  // none: the law holds vacuously
  const Matrix x = random_input(kBatch);
  const Matrix grad_z = rng_.normal(kBatch, GetParam().dim);
  const Vector grad_logdet = xt::view(rng_.normal(1, kBatch), 0, xt::all());
  zero_grad(params);
  Matrix z, grad_x;
  Vector logdet;
  bijector_->forward_train(x, no_context(), z, logdet);
  bijector_->backward(grad_z, grad_logdet, grad_x);
  std::vector<Matrix> once;
  for (const Parameter* p : params) once.push_back(p->grad);
  bijector_->forward_train(x, no_context(), z, logdet);
  bijector_->backward(grad_z, grad_logdet, grad_x);
  for (std::size_t k = 0; k < params.size(); ++k)
    EXPECT_TRUE(all_near(params[k]->grad, Matrix(2.0 * once[k]), GetParam().tolerance,
                         "gradient of '" + params[k]->name + "' after two backward passes"));
}

// Parameters have distinct non-empty names, gradients shaped like values, and
// a stable order.
TEST_P(BijectorContract, ParametersAreWellFormed) {
  const ParameterList params = bijector_->parameters();
  EXPECT_EQ(bijector_->parameters(), params) << "parameters() changed between calls";
  std::set<std::string> names;
  for (const Parameter* p : params) {
    ASSERT_NE(p, nullptr);
    EXPECT_FALSE(p->name.empty());
    EXPECT_TRUE(names.insert(p->name).second) << "parameter name '" << p->name << "' repeats";
    EXPECT_EQ(p->grad.shape(), p->value.shape()) << "parameter '" << p->name << "'";
    EXPECT_TRUE(all_finite(p->value, "parameter '" + p->name + "'"));
  }
}

// Outputs are finite and shaped right for a single row and for a batch.
TEST_P(BijectorContract, OutputsAreFiniteWithTheRightShapes) {
  const Index d = GetParam().dim;
  for (Index rows : {Index(1), kBatch}) {
    SCOPED_TRACE("batch of " + std::to_string(rows));
    const Matrix x = random_input(rows);
    const Transformed forward = bijector_->forward(x, no_context());
    EXPECT_EQ(forward.value.shape(0), rows);
    EXPECT_EQ(forward.value.shape(1), d);
    EXPECT_EQ(forward.logdet.size(), rows);
    EXPECT_TRUE(all_finite(forward.value, "forward z"));
    EXPECT_TRUE(all_finite(forward.logdet, "forward logdet"));

    const Transformed inverse = bijector_->inverse(random_latent(rows), no_context());
    EXPECT_EQ(inverse.value.shape(0), rows);
    EXPECT_EQ(inverse.value.shape(1), d);
    EXPECT_EQ(inverse.logdet.size(), rows);
    EXPECT_TRUE(all_finite(inverse.value, "inverse x"));
    EXPECT_TRUE(all_finite(inverse.logdet, "inverse logdet"));

    if (!GetParam().check_gradients) continue;
    Matrix z, grad_x;
    Vector logdet;
    bijector_->forward_train(x, no_context(), z, logdet);
    EXPECT_EQ(z.shape(0), rows);
    EXPECT_EQ(z.shape(1), d);
    EXPECT_EQ(logdet.size(), rows);
    EXPECT_TRUE(all_finite(z, "forward_train z"));
    EXPECT_TRUE(all_finite(logdet, "forward_train logdet"));
    const Vector grad_logdet = xt::ones<Real>({rows});
    bijector_->backward(rng_.normal(rows, d), grad_logdet, grad_x);
    EXPECT_EQ(grad_x.shape(0), rows);
    EXPECT_EQ(grad_x.shape(1), d);
    EXPECT_TRUE(all_finite(grad_x, "dL/dx"));
    for (const Parameter* p : bijector_->parameters())
      EXPECT_TRUE(all_finite(p->grad, "gradient of '" + p->name + "'"));
  }
}

// Input with the wrong number of columns is a DataError, not a crash.
TEST_P(BijectorContract, WrongInputDimensionIsADataError) {
  const Index d = GetParam().dim;
  std::vector<Index> wrong_columns = {d + 1};
  if (d > 1) wrong_columns.push_back(d - 1);
  for (Index cols : wrong_columns) {
    SCOPED_TRACE(std::to_string(cols) + " columns");
    const Matrix wrong = rng_.normal(3, cols);
    Matrix z;
    Vector logdet;
    EXPECT_THROW(bijector_->forward(wrong, no_context()), DataError);
    EXPECT_THROW(bijector_->inverse(wrong, no_context()), DataError);
    EXPECT_THROW(bijector_->forward_train(wrong, no_context(), z, logdet), DataError);
  }
}

// The same case and seed build the same map (checkpoints rebuild from YAML).
TEST_P(BijectorContract, SameSeedBuildsTheSameBijector) {
  const std::shared_ptr<Bijector> again = build();
  const Matrix x = random_input(kBatch);
  const Transformed a = bijector_->forward(x, no_context());
  const Transformed b = again->forward(x, no_context());
  EXPECT_TRUE(all_near(b.value, a.value, 0.0, "forward of a second build"));
  EXPECT_TRUE(all_near(b.logdet, a.logdet, 0.0, "logdet of a second build"));
}

// Checkpoints: the state the bijector visits (Bijector::visit_state) holds
// every parameter and restores the bijector exactly into a second build whose
// parameters were moved away.
TEST_P(BijectorContract, SavedStateRestoresTheBijector) {
  TensorStore store;
  StateSaver saver(store);
  bijector_->visit_state(saver);
  for (Parameter* p : bijector_->parameters())
    EXPECT_NE(store.find(p->name), nullptr) << "parameter " << p->name << " is not saved";

  const std::shared_ptr<Bijector> restored = build();
  for (Parameter* p : restored->parameters()) {
    if (p->trainable)
      p->value += 0.5;
    else
      p->value *= 1.5;  // keeps running variances positive
  }
  StateLoader loader(store, "the contract's saved state");
  restored->visit_state(loader);
  EXPECT_TRUE(loader.unvisited("").empty());

  const Matrix x = random_input(kBatch);
  const Transformed a = bijector_->forward(x, no_context());
  const Transformed b = restored->forward(x, no_context());
  EXPECT_TRUE(all_near(b.value, a.value, 0.0, "forward after restoring"));
  EXPECT_TRUE(all_near(b.logdet, a.logdet, 0.0, "logdet after restoring"));
  const Matrix z = random_latent(kBatch);
  EXPECT_TRUE(all_near(restored->inverse(z, no_context()).value,
                       bijector_->inverse(z, no_context()).value, 0.0, "inverse after restoring"));
}

#endif  // FLOWS_BIJECTOR_CONTRACT_INSTANTIATE_ONLY

}  // namespace flows::testing

// INSTANTIATE_TEST_SUITE_P needs the suite's unqualified name.
using flows::testing::BijectorCase;
using flows::testing::BijectorContract;
