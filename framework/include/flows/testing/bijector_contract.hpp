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
//
// A conditional case (context_dim > 0) is built with that context width, and
// every law draws a random context (standard normal, one row per data row)
// and runs with it; the Jacobian laws hold the context fixed. Conditional
// cases add laws for the context: dL/dc against finite differences (inside
// GradientsMatchFiniteDifferences), a context of the wrong shape is a
// DataError, and the map depends on the context. An unconditional bijector
// must ignore any context it is given. A bijector fit by another trainer
// than maximum likelihood (flow_matching) must refuse forward_train with a
// ConfigError naming that trainer; the training-pass laws skip it.
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
#include "flows/testing/assertions.hpp"
#include "flows/testing/gradient_checker.hpp"

namespace flows::testing {

// One bijector configuration under test. Only the first four fields are
// needed; the rest have defaults that suit smooth, exactly invertible maps.
struct BijectorCase {
  std::string name_for_test;  // test name suffix; characters outside [A-Za-z0-9_] become '_'
  std::string plugin_file;    // plugin to load (from CMake's $<TARGET_FILE:...>); "" if built in
  std::string yaml;           // the bijector's options, e.g. "{type: affine, log_scale: 0.5}"
  Index dim = 2;              // data dimension given to the factory
  // Context width given to the factory (BuildContext::context_dim); > 0 makes
  // the case conditional, and the bijector must then report it as context_dim().
  Index context_dim = 0;
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
  *out << c.name_for_test << ": " << c.yaml << ", dim " << c.dim;
  if (c.context_dim > 0) *out << ", context " << c.context_dim;
  *out << (c.plugin_file.empty() ? std::string(" (built-in)") : " from " + c.plugin_file);
}

// The name printer for INSTANTIATE_TEST_SUITE_P: the case's name_for_test.
inline std::string bijector_case_name(const ::testing::TestParamInfo<BijectorCase>& info) {
  std::string name;
  for (char ch : info.param.name_for_test)
    name += std::isalnum(static_cast<unsigned char>(ch)) ? ch : '_';
  return name.empty() ? "case" + std::to_string(info.index) : name;
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
    BuildContext context;
    context.dim = c.dim;
    context.context_dim = c.context_dim;
    context.seed = c.seed;
    context.registry = registry_.get();
    std::shared_ptr<Bijector> bijector = registry_->make<Bijector>(node, context);
    if (!bijector) throw Error("the factory of " + c.yaml + " returned nothing");

    Rng rng = Rng(c.seed).derive(1);
    if (bijector->trains_by_likelihood()) {
      Rng context_rng = Rng(c.seed).derive(3);
      const Matrix init_context =
          c.context_dim > 0 ? context_rng.normal(16, c.context_dim) : Matrix();
      Matrix z;
      Vector logdet;
      bijector->forward_train(rng.normal(16, c.dim) * c.input_scale, init_context, z, logdet);
    }
    for (Parameter* p : bijector->parameters()) {
      p->value += c.parameter_noise * rng.normal(p->value.shape(0), p->value.shape(1));
      p->zero_grad();
    }
    return bijector;
  }

  bool conditional() const { return GetParam().context_dim > 0; }
  bool trains() const { return bijector_->trains_by_likelihood(); }

  // A random data-side batch; each call draws new rows.
  Matrix random_input(Index rows) {
    return rng_.normal(rows, GetParam().dim) * GetParam().input_scale;
  }
  // A random latent-side batch (the base distribution is a standard normal).
  Matrix random_latent(Index rows) { return rng_.normal(rows, GetParam().dim); }
  // A random context for `rows` rows (standard normal, as a standardized
  // context is); empty for an unconditional case.
  Matrix random_context(Index rows) {
    return conditional() ? rng_.normal(rows, GetParam().context_dim) : Matrix();
  }
  static const Matrix& no_context() {
    static const Matrix empty;
    return empty;
  }

  // Declared first: the bijector is destroyed before the registry.
  std::unique_ptr<Registry> registry_;
  std::shared_ptr<Bijector> bijector_;
  Rng rng_ = Rng(GetParam().seed).derive(2);
};

// Rows [i, i + 1) of m (m may be empty: an unconditional context).
inline Matrix row_of(const Matrix& m, Index i) {
  if (m.size() == 0) return m;
  return xt::view(m, xt::range(i, i + 1), xt::all());
}

#ifndef FLOWS_BIJECTOR_CONTRACT_INSTANTIATE_ONLY

GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(BijectorContract);

TEST_P(BijectorContract, HasTheConfiguredDimension) {
  EXPECT_EQ(bijector_->dim(), GetParam().dim);
  EXPECT_EQ(bijector_->context_dim(), GetParam().context_dim)
      << "a bijector built with BuildContext::context_dim = " << GetParam().context_dim
      << " must read that context";
}

// f⁻¹(f(x)) = x.
TEST_P(BijectorContract, InverseUndoesForward) {
  const Matrix x = random_input(kBatch);
  const Matrix c = random_context(kBatch);
  const Matrix z = bijector_->forward(x, c).value;
  EXPECT_TRUE(
      all_near(bijector_->inverse(z, c).value, x, GetParam().tolerance, "inverse(forward(x))"));
}

// f(f⁻¹(z)) = z.
TEST_P(BijectorContract, ForwardUndoesInverse) {
  const Matrix z = random_latent(kBatch);
  const Matrix c = random_context(kBatch);
  const Matrix x = bijector_->inverse(z, c).value;
  EXPECT_TRUE(
      all_near(bijector_->forward(x, c).value, z, GetParam().tolerance, "forward(inverse(z))"));
}

// log|det ∂f⁻¹/∂z| at z = f(x) is −log|det ∂f/∂x| (inverse function theorem).
TEST_P(BijectorContract, InverseLogDetIsMinusForwardLogDet) {
  const Matrix x = random_input(kBatch);
  const Matrix c = random_context(kBatch);
  const Transformed forward = bijector_->forward(x, c);
  const Transformed inverse = bijector_->inverse(forward.value, c);
  EXPECT_TRUE(all_near(inverse.logdet, Vector(-forward.logdet), GetParam().tolerance,
                       "inverse logdet at f(x) against -(forward logdet at x)"));
}

// forward's logdet is log|det J| of the central-difference Jacobian ∂f(x; c)/∂x,
// row by row, at that row's context.
TEST_P(BijectorContract, LogDetMatchesNumericalJacobian) {
  const Matrix x = random_input(4);
  const Matrix c = random_context(4);
  const Vector logdet = bijector_->forward(x, c).logdet;
  ASSERT_EQ(logdet.size(), x.shape(0));
  for (Index i = 0; i < x.shape(0); ++i) {
    const Matrix row = row_of(x, i);
    const Matrix context = row_of(c, i);
    const auto f = [this, &context](const Matrix& r) {
      return bijector_->forward(r, context).value;
    };
    const Real expected = log_abs_det(numerical_jacobian(f, row));
    EXPECT_NEAR(logdet(i), expected, GetParam().jacobian_tolerance * (1 + std::abs(expected)))
        << "row " << i << " of the batch";
  }
}

// The training pass computes the same map as inference.
TEST_P(BijectorContract, TrainingForwardMatchesInference) {
  if (!trains()) GTEST_SKIP() << "fit by trainer " << bijector_->trainer() << ", no training pass";
  if (!GetParam().train_matches_inference)
    GTEST_SKIP() << "forward_train uses batch statistics (train_matches_inference = false)";
  const Matrix x = random_input(kBatch);
  const Matrix c = random_context(kBatch);
  const Transformed expected = bijector_->forward(x, c);
  Matrix z;
  Vector logdet;
  bijector_->forward_train(x, c, z, logdet);
  EXPECT_TRUE(all_near(z, expected.value, GetParam().tolerance, "forward_train z"));
  EXPECT_TRUE(all_near(logdet, expected.logdet, GetParam().tolerance, "forward_train logdet"));
  // Nor does a training pass change the map (only an optimizer step may).
  const Transformed after = bijector_->forward(x, c);
  EXPECT_TRUE(
      all_near(after.value, expected.value, GetParam().tolerance, "forward after a forward_train"));
}

// backward's dL/dx, dL/dθ and, for a conditional bijector, dL/dc (added to
// grad_context) against central differences of forward_train.
TEST_P(BijectorContract, GradientsMatchFiniteDifferences) {
  if (!GetParam().check_gradients) GTEST_SKIP() << "check_gradients = false";
  const Matrix x = random_input(kBatch);
  const Matrix c = random_context(kBatch);
  const GradientCheckResult result =
      check_bijector_gradients(*bijector_, x, c, GetParam().gradient_check);
  EXPECT_TRUE(result.ok) << result.report;
  if (conditional()) {
    EXPECT_NE(result.report.find("context"), std::string::npos)
        << "the context gradient was not checked:\n"
        << result.report;
  }
}

// backward adds to the parameters' gradients instead of overwriting them.
TEST_P(BijectorContract, BackwardAccumulatesParameterGradients) {
  if (!GetParam().check_gradients) GTEST_SKIP() << "check_gradients = false";
  const ParameterList params = bijector_->parameters();  // none: the law holds vacuously
  const Matrix x = random_input(kBatch);
  const Matrix c = random_context(kBatch);
  const Matrix grad_z = rng_.normal(kBatch, GetParam().dim);
  const Vector grad_logdet = xt::view(rng_.normal(1, kBatch), 0, xt::all());
  zero_grad(params);
  Matrix z, grad_x;
  Vector logdet;
  bijector_->forward_train(x, c, z, logdet);
  bijector_->backward(grad_z, grad_logdet, grad_x);
  std::vector<Matrix> once;
  for (const Parameter* p : params) once.push_back(p->grad);
  bijector_->forward_train(x, c, z, logdet);
  bijector_->backward(grad_z, grad_logdet, grad_x);
  for (std::size_t k = 0; k < params.size(); ++k)
    EXPECT_TRUE(all_near(params[k]->grad, Matrix(2.0 * once[k]), GetParam().tolerance,
                         "gradient of '" + params[k]->name + "' after two backward passes"));
}

// The context gradient is optional: backward without grad_context gives the
// same dL/dx and dL/dθ, and with it *adds* dL/dc to what grad_context holds.
TEST_P(BijectorContract, ContextGradientIsAddedAndOptional) {
  if (!conditional()) GTEST_SKIP() << "unconditional (context_dim = 0)";
  if (!GetParam().check_gradients) GTEST_SKIP() << "check_gradients = false";
  const ParameterList params = bijector_->parameters();
  const Matrix x = random_input(kBatch);
  const Matrix c = random_context(kBatch);
  const Matrix grad_z = rng_.normal(kBatch, GetParam().dim);
  const Vector grad_logdet = xt::view(rng_.normal(1, kBatch), 0, xt::all());
  Matrix z, grad_x_without, grad_x_with;
  Vector logdet;

  zero_grad(params);
  bijector_->forward_train(x, c, z, logdet);
  bijector_->backward(grad_z, grad_logdet, grad_x_without);
  std::vector<Matrix> without;
  for (const Parameter* p : params) without.push_back(p->grad);

  zero_grad(params);
  const Matrix start = random_context(kBatch);
  Matrix grad_context = start;
  bijector_->forward_train(x, c, z, logdet);
  bijector_->backward(grad_z, grad_logdet, grad_x_with, &grad_context);
  EXPECT_TRUE(all_near(grad_x_with, grad_x_without, GetParam().tolerance,
                       "dL/dx with a context gradient against without"));
  for (std::size_t k = 0; k < params.size(); ++k)
    EXPECT_TRUE(
        all_near(params[k]->grad, without[k], GetParam().tolerance,
                 "gradient of '" + params[k]->name + "' with a context gradient against without"));

  // Twice from the same start adds dL/dc twice.
  Matrix twice = start;
  bijector_->forward_train(x, c, z, logdet);
  bijector_->backward(grad_z, grad_logdet, grad_x_with, &twice);
  bijector_->forward_train(x, c, z, logdet);
  bijector_->backward(grad_z, grad_logdet, grad_x_with, &twice);
  EXPECT_TRUE(all_near(Matrix(twice - start), Matrix(2.0 * (grad_context - start)),
                       GetParam().tolerance, "grad_context after two backward passes"));
  EXPECT_TRUE(all_finite(grad_context, "dL/dc"));
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
    const Matrix c = random_context(rows);
    const Transformed forward = bijector_->forward(x, c);
    EXPECT_EQ(forward.value.shape(0), rows);
    EXPECT_EQ(forward.value.shape(1), d);
    EXPECT_EQ(forward.logdet.size(), rows);
    EXPECT_TRUE(all_finite(forward.value, "forward z"));
    EXPECT_TRUE(all_finite(forward.logdet, "forward logdet"));

    const Transformed inverse = bijector_->inverse(random_latent(rows), c);
    EXPECT_EQ(inverse.value.shape(0), rows);
    EXPECT_EQ(inverse.value.shape(1), d);
    EXPECT_EQ(inverse.logdet.size(), rows);
    EXPECT_TRUE(all_finite(inverse.value, "inverse x"));
    EXPECT_TRUE(all_finite(inverse.logdet, "inverse logdet"));

    if (!GetParam().check_gradients || !trains()) continue;
    Matrix z, grad_x;
    Vector logdet;
    bijector_->forward_train(x, c, z, logdet);
    EXPECT_EQ(z.shape(0), rows);
    EXPECT_EQ(z.shape(1), d);
    EXPECT_EQ(logdet.size(), rows);
    EXPECT_TRUE(all_finite(z, "forward_train z"));
    EXPECT_TRUE(all_finite(logdet, "forward_train logdet"));
    const Vector grad_logdet = xt::ones<Real>({rows});
    Matrix grad_context = xt::zeros<Real>({rows, GetParam().context_dim});
    bijector_->backward(rng_.normal(rows, d), grad_logdet, grad_x,
                        conditional() ? &grad_context : nullptr);
    EXPECT_EQ(grad_x.shape(0), rows);
    EXPECT_EQ(grad_x.shape(1), d);
    EXPECT_TRUE(all_finite(grad_x, "dL/dx"));
    EXPECT_TRUE(all_finite(grad_context, "dL/dc"));
    for (const Parameter* p : bijector_->parameters())
      EXPECT_TRUE(all_finite(p->grad, "gradient of '" + p->name + "'"));
  }
}

// Input with the wrong number of columns is a DataError, not a crash.
TEST_P(BijectorContract, WrongInputDimensionIsADataError) {
  const Index d = GetParam().dim;
  std::vector<Index> wrong_columns = {d + 1};
  if (d > 1) wrong_columns.push_back(d - 1);
  const Matrix c = random_context(3);
  for (Index cols : wrong_columns) {
    SCOPED_TRACE(std::to_string(cols) + " columns");
    const Matrix wrong = rng_.normal(3, cols);
    Matrix z;
    Vector logdet;
    EXPECT_THROW(bijector_->forward(wrong, c), DataError);
    EXPECT_THROW(bijector_->inverse(wrong, c), DataError);
    if (trains()) {
      EXPECT_THROW(bijector_->forward_train(wrong, c, z, logdet), DataError);
    }
  }
}

// A conditional bijector given a context of the wrong width, of the wrong
// number of rows, or none at all raises DataError in every pass.
TEST_P(BijectorContract, WrongContextIsADataError) {
  if (!conditional()) GTEST_SKIP() << "unconditional (context_dim = 0)";
  const Index k = GetParam().context_dim;
  const Matrix x = random_input(3);
  std::vector<std::pair<std::string, Matrix>> wrong = {
      {"a context of " + std::to_string(k + 1) + " columns", rng_.normal(3, k + 1)},
      {"a context of 2 rows for 3", rng_.normal(2, k)},
      {"no context", Matrix()}};
  if (k > 1)
    wrong.push_back({"a context of " + std::to_string(k - 1) + " columns", rng_.normal(3, k - 1)});
  for (const auto& [what, c] : wrong) {
    SCOPED_TRACE(what);
    Matrix z;
    Vector logdet;
    EXPECT_THROW(bijector_->forward(x, c), DataError);
    EXPECT_THROW(bijector_->inverse(x, c), DataError);
    if (trains()) {
      EXPECT_THROW(bijector_->forward_train(x, c, z, logdet), DataError);
    }
  }
}

// A conditional bijector's map depends on its context (at a generic point).
TEST_P(BijectorContract, ConditionalMapDependsOnTheContext) {
  if (!conditional()) GTEST_SKIP() << "unconditional (context_dim = 0)";
  const Matrix x = random_input(kBatch);
  const Transformed a = bijector_->forward(x, random_context(kBatch));
  const Transformed b = bijector_->forward(x, random_context(kBatch));
  EXPECT_FALSE(all_near(a.value, b.value, 1e-10, "z at two contexts"))
      << "forward gives the same z for two different contexts";
}

// An unconditional bijector ignores any context it is given (a chain hands
// the model's context to every layer).
TEST_P(BijectorContract, UnconditionalBijectorIgnoresTheContext) {
  if (conditional()) GTEST_SKIP() << "conditional (context_dim > 0)";
  const Matrix x = random_input(kBatch);
  const Matrix some_context = rng_.normal(kBatch, 3);
  const Transformed a = bijector_->forward(x, no_context());
  const Transformed b = bijector_->forward(x, some_context);
  EXPECT_TRUE(all_near(b.value, a.value, 0.0, "forward with a context"));
  EXPECT_TRUE(all_near(b.logdet, a.logdet, 0.0, "forward logdet with a context"));
  const Matrix z = random_latent(kBatch);
  EXPECT_TRUE(all_near(bijector_->inverse(z, some_context).value,
                       bijector_->inverse(z, no_context()).value, 0.0, "inverse with a context"));
}

// A bijector fit by another trainer has no training pass: forward_train is a
// ConfigError naming the trainer to use, before any work.
TEST_P(BijectorContract, BijectorWithoutLikelihoodNamesItsTrainer) {
  if (trains()) GTEST_SKIP() << "trained by maximum likelihood";
  EXPECT_FALSE(bijector_->trainer().empty());
  Matrix z;
  Vector logdet;
  try {
    bijector_->forward_train(random_input(kBatch), random_context(kBatch), z, logdet);
    ADD_FAILURE() << "forward_train did not refuse";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find(bijector_->trainer()), std::string::npos) << e.what();
  }
}

// The same case and seed build the same map (checkpoints rebuild from YAML).
TEST_P(BijectorContract, SameSeedBuildsTheSameBijector) {
  const std::shared_ptr<Bijector> again = build();
  const Matrix x = random_input(kBatch);
  const Matrix c = random_context(kBatch);
  const Transformed a = bijector_->forward(x, c);
  const Transformed b = again->forward(x, c);
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
  const Matrix c = random_context(kBatch);
  const Transformed a = bijector_->forward(x, c);
  const Transformed b = restored->forward(x, c);
  EXPECT_TRUE(all_near(b.value, a.value, 0.0, "forward after restoring"));
  EXPECT_TRUE(all_near(b.logdet, a.logdet, 0.0, "logdet after restoring"));
  const Matrix z = random_latent(kBatch);
  EXPECT_TRUE(all_near(restored->inverse(z, c).value, bijector_->inverse(z, c).value, 0.0,
                       "inverse after restoring"));
}

#endif  // FLOWS_BIJECTOR_CONTRACT_INSTANTIATE_ONLY

}  // namespace flows::testing

// INSTANTIATE_TEST_SUITE_P needs the suite's unqualified name.
using flows::testing::BijectorCase;
using flows::testing::BijectorContract;
