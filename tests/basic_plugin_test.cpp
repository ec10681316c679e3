// Behaviour of the `basic` plugin's bijectors beyond the shared contract
// (which bijector_contract_test.cpp runs on each of them).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>

#include "flows/bijector.hpp"
#include "flows/config.hpp"
#include "flows/error.hpp"
#include "flows/log_scale.hpp"
#include "flows/plugin_loader.hpp"
#include "flows/registry.hpp"
#include "flows/rng.hpp"
#include "flows/state.hpp"
#include "flows/testing/assertions.hpp"
#include "flows/testing/gradient_checker.hpp"

namespace {

using flows::Index;
using flows::Matrix;
using flows::Real;
using flows::Vector;

class BasicPlugin : public ::testing::Test {
 protected:
  void SetUp() override { flows::load_plugin(FLOWS_PLUGIN_BASIC, registry_); }

  std::shared_ptr<flows::Bijector> build(const std::string& yaml, Index dim,
                                         std::uint64_t seed = 0) {
    flows::ConfigNode node = flows::ConfigNode::parse(yaml, "test.yaml");
    return registry_.make<flows::Bijector>(node, flows::BuildContext{dim, 0, seed, &registry_});
  }

  // The message of the ConfigError that building `yaml` raises, or "" if none.
  std::string config_error(const std::string& yaml, Index dim = 3) {
    try {
      build(yaml, dim);
    } catch (const flows::ConfigError& e) {
      return e.what();
    }
    return "";
  }

  flows::Registry registry_;
  const Matrix none_;
};

// Row i is (0, 1, ..., d-1) + 10 i, so every entry tells where it came from.
Matrix labelled(Index rows, Index dim) {
  Matrix x({rows, dim});
  for (Index i = 0; i < rows; ++i)
    for (Index j = 0; j < dim; ++j) x(i, j) = static_cast<Real>(j + 10 * i);
  return x;
}

TEST_F(BasicPlugin, RegistersItsBijectors) {
  for (const char* name : {"reverse", "permutation", "affine", "actnorm", "lu_linear"})
    EXPECT_TRUE(registry_.contains(flows::Kind::bijector, name)) << name;
}

TEST_F(BasicPlugin, ReverseReversesTheColumns) {
  auto reverse = build("{type: reverse}", 4);
  const auto out = reverse->forward(labelled(2, 4), none_);
  const Matrix expected = {{3, 2, 1, 0}, {13, 12, 11, 10}};
  EXPECT_EQ(out.value, expected);
  EXPECT_EQ(out.logdet, Vector(xt::zeros<Real>({2})));
  EXPECT_EQ(reverse->parameters().size(), 0u);
}

TEST_F(BasicPlugin, PermutationIsABijectionOfTheColumns) {
  auto permutation = build("{type: permutation}", 8, 5);
  const Matrix z = permutation->forward(labelled(1, 8), none_).value;
  std::vector<Real> values(z.begin(), z.end());
  std::sort(values.begin(), values.end());
  for (Index j = 0; j < 8; ++j) EXPECT_EQ(values[j], static_cast<Real>(j));
  EXPECT_NE(z, labelled(1, 8)) << "8 columns left in place: not shuffled";
  EXPECT_EQ(permutation->inverse(z, none_).value, labelled(1, 8));
}

TEST_F(BasicPlugin, PermutationIsReproducibleFromTheBuildSeed) {
  const Matrix x = labelled(1, 8);
  const Matrix a = build("{type: permutation}", 8, 7)->forward(x, none_).value;
  const Matrix b = build("{type: permutation}", 8, 7)->forward(x, none_).value;
  const Matrix c = build("{type: permutation}", 8, 8)->forward(x, none_).value;
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
}

TEST_F(BasicPlugin, PermutationSeedOptionOverridesTheBuildSeed) {
  const Matrix x = labelled(1, 8);
  const Matrix a = build("{type: permutation, seed: 42}", 8, 1)->forward(x, none_).value;
  const Matrix b = build("{type: permutation, seed: 42}", 8, 2)->forward(x, none_).value;
  const Matrix c = build("{type: permutation, seed: 43}", 8, 1)->forward(x, none_).value;
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
}

TEST_F(BasicPlugin, AffineMapsDataToStandardizedLatent) {
  // z = (x - shift) / e^log_scale, logdet = -dim * log_scale.
  auto affine = build("{type: affine, shift: 0.5, log_scale: 0.6931471805599453}", 3);
  const Matrix x = {{0.5, 2.5, -1.5}};
  const auto out = affine->forward(x, none_);
  const Matrix expected = {{0.0, 1.0, -1.0}};
  for (Index j = 0; j < 3; ++j) EXPECT_NEAR(out.value(0, j), expected(0, j), 1e-15);
  EXPECT_NEAR(out.logdet(0), -3 * std::log(2.0), 1e-15);
  const auto params = affine->parameters();
  ASSERT_EQ(params.size(), 2u);
  EXPECT_EQ(params[0]->name, "shift");
  EXPECT_EQ(params[1]->name, "log_scale");
  EXPECT_EQ(params[0]->value.shape(0), 1u);
  EXPECT_EQ(params[0]->value.shape(1), 3u);
}

// A log-scale far outside any sensible range (a diverged optimizer, a
// corrupted checkpoint) would make e^{±s} overflow or vanish: the map uses s
// clamped to ±kMaxLogScale, so it stays finite and invertible, and its
// gradient is the clamped map's (0 in s outside the bound).
TEST_F(BasicPlugin, AffineLogScaleIsClampedAgainstOverflow) {
  auto affine = build("{type: affine, shift: 0.25}", 3);
  Matrix& s = affine->parameters()[1]->value;
  s = Matrix{{800.0, -50.0, 0.5}};
  flows::Rng rng(5);
  const Matrix x = rng.normal(4, 3);
  const auto fwd = affine->forward(x, none_);
  const auto inv = affine->inverse(fwd.value, none_);
  for (Real v : inv.value) ASSERT_TRUE(std::isfinite(v));
  EXPECT_TRUE(flows::testing::all_near(inv.value, x, 1e-12, "inverse(forward(x))"));
  for (Index i = 0; i < 4; ++i) {
    EXPECT_NEAR(fwd.logdet(i), -(flows::kMaxLogScale - flows::kMaxLogScale + 0.5), 1e-12);
    EXPECT_NEAR(inv.logdet(i), -fwd.logdet(i), 1e-12);
  }
  s = Matrix{{31.0, -31.0, 0.5}};
  const auto result = flows::testing::check_bijector_gradients(*affine, x);
  EXPECT_TRUE(result.ok) << result.report;
}

TEST_F(BasicPlugin, ActNormNormalizesItsInitialisationBatch) {
  auto actnorm = build("{type: actnorm}", 3);
  flows::Rng rng(11);
  Matrix x = rng.normal(200, 3);
  for (Index i = 0; i < 200; ++i)
    for (Index j = 0; j < 3; ++j)
      x(i, j) = 3.0 - 2.0 * static_cast<Real>(j) + (1.0 + 2.0 * static_cast<Real>(j)) * x(i, j);
  Matrix z;
  Vector logdet;
  actnorm->forward_train(x, none_, z, logdet);
  for (Index j = 0; j < 3; ++j) {
    Real mean = 0, sq = 0;
    for (Index i = 0; i < 200; ++i) mean += z(i, j);
    mean /= 200;
    for (Index i = 0; i < 200; ++i) sq += (z(i, j) - mean) * (z(i, j) - mean);
    EXPECT_NEAR(mean, 0.0, 1e-12) << "column " << j;
    EXPECT_NEAR(std::sqrt(sq / 200), 1.0, 1e-6) << "column " << j;
  }
  // Later batches do not initialise again.
  const Matrix shift = actnorm->parameters()[0]->value;
  actnorm->forward_train(rng.normal(50, 3), none_, z, logdet);
  EXPECT_EQ(actnorm->parameters()[0]->value, shift);
}

TEST_F(BasicPlugin, ActNormKeepsParametersLoadedBeforeItsFirstBatch) {
  // As when training resumes from a checkpoint: the loaded values stay.
  auto actnorm = build("{type: actnorm}", 2);
  const auto params = actnorm->parameters();
  params[0]->value = Matrix({{1.0, -2.0}});
  params[1]->value = Matrix({{0.5, 0.0}});
  Matrix z;
  Vector logdet;
  actnorm->forward_train(Matrix({{1.0, 2.0}, {3.0, 4.0}, {0.0, 1.0}}), none_, z, logdet);
  EXPECT_EQ(params[0]->value, Matrix({{1.0, -2.0}}));
  EXPECT_EQ(params[1]->value, Matrix({{0.5, 0.0}}));
}

TEST_F(BasicPlugin, ActNormWithoutDataInitialisationStartsAsTheIdentity) {
  auto actnorm = build("{type: actnorm, init_from_data: false}", 2);
  const Matrix x = {{3.0, -4.0}, {5.0, 6.0}};
  Matrix z;
  Vector logdet;
  actnorm->forward_train(x, none_, z, logdet);
  EXPECT_EQ(z, x);
  EXPECT_EQ(logdet, Vector(xt::zeros<Real>({2})));
}

TEST_F(BasicPlugin, ActNormInitialisationNeedsTwoRows) {
  auto actnorm = build("{type: actnorm}", 2);
  Matrix z;
  Vector logdet;
  EXPECT_THROW(actnorm->forward_train(Matrix({{1.0, 2.0}}), none_, z, logdet), flows::DataError);
}

TEST_F(BasicPlugin, BadOptionsAreConfigErrorsNamingTheKey) {
  EXPECT_NE(config_error("{type: affine, log_scale: big}").find("log_scale"), std::string::npos);
  EXPECT_NE(config_error("{type: affine, log_scale: .nan}").find("log_scale"), std::string::npos);
  EXPECT_NE(config_error("{type: affine, shift: [1, 2]}").find("shift"), std::string::npos);
  EXPECT_NE(config_error("{type: actnorm, epsilon: 0}").find("epsilon"), std::string::npos);
  EXPECT_NE(config_error("{type: actnorm, init_from_data: maybe}").find("init_from_data"),
            std::string::npos);
  EXPECT_NE(config_error("{type: permutation, seed: -3}").find("seed"), std::string::npos);
  EXPECT_NE(config_error("{type: reverse, order: [1, 0]}").find("order"), std::string::npos);
  EXPECT_NE(config_error("{type: affine, sift: 1.0}").find("sift"), std::string::npos);
  EXPECT_NE(config_error("{type: affine}", 0), "") << "a dimension of 0 is accepted";
  EXPECT_NE(config_error("{type: lu_linear, permute: yes please}").find("permute"),
            std::string::npos);
  EXPECT_NE(config_error("{type: lu_linear, seed: 3}").find("permute: true"), std::string::npos)
      << "a seed without permute: true does nothing and must be refused";
  EXPECT_NE(config_error("{type: lu_linear, bias: false}").find("bias"), std::string::npos);
}

TEST_F(BasicPlugin, DimensionMismatchIsADataErrorNamingBothNumbers) {
  for (const char* yaml : {"{type: reverse}", "{type: permutation}", "{type: affine}",
                           "{type: actnorm}", "{type: lu_linear}"}) {
    auto bijector = build(yaml, 3);
    try {
      bijector->forward(labelled(2, 5), none_);
      ADD_FAILURE() << yaml << ": no error";
    } catch (const flows::DataError& e) {
      const std::string message = e.what();
      EXPECT_NE(message.find('5'), std::string::npos) << message;
      EXPECT_NE(message.find('3'), std::string::npos) << message;
    }
  }
}

// The parameters of a 3-dimensional lu_linear, in the packed layout of
// lu_linear.hpp, set to known values.
void set_lu(const std::shared_ptr<flows::Bijector>& lu, Real l10, Real l20, Real l21, Real u01,
            Real u02, Real u12) {
  const auto params = lu->parameters();
  ASSERT_EQ(params.size(), 4u);
  EXPECT_EQ(params[0]->name, "lower");
  EXPECT_EQ(params[1]->name, "upper");
  EXPECT_EQ(params[2]->name, "log_diag");
  EXPECT_EQ(params[3]->name, "bias");
  params[0]->value = Matrix{{l10, l20, l21}};  // L_10, L_20, L_21
  params[1]->value = Matrix{{u01, u02, u12}};  // U_01, U_02, U_12
}

TEST_F(BasicPlugin, LuLinearStartsAsTheIdentity) {
  auto lu = build("{type: lu_linear}", 4, 9);
  flows::Rng rng(2);
  const Matrix x = rng.normal(5, 4);
  const auto out = lu->forward(x, none_);
  EXPECT_EQ(out.value, x);
  EXPECT_EQ(out.logdet, Vector(xt::zeros<Real>({5})));
  Matrix z;
  Vector logdet;
  lu->forward_train(x, none_, z, logdet);
  EXPECT_EQ(z, x);
}

TEST_F(BasicPlugin, LuLinearWithPermuteStartsAsItsPermutation) {
  auto lu = build("{type: lu_linear, permute: true}", 8, 4);
  const Matrix z = lu->forward(labelled(1, 8), none_).value;
  std::vector<Real> values(z.begin(), z.end());
  std::sort(values.begin(), values.end());
  for (Index j = 0; j < 8; ++j) EXPECT_EQ(values[j], static_cast<Real>(j));
  EXPECT_NE(z, labelled(1, 8)) << "8 columns left in place: not permuted";
  EXPECT_EQ(lu->inverse(z, none_).value, labelled(1, 8));
  // The seed fixes P; another seed gives another one.
  EXPECT_EQ(build("{type: lu_linear, permute: true}", 8, 4)->forward(labelled(1, 8), none_).value,
            z);
  EXPECT_NE(build("{type: lu_linear, permute: true, seed: 5}", 8, 4)
                ->forward(labelled(1, 8), none_)
                .value,
            z);
}

// z = L U x + b worked by hand for d = 3, P = I.
TEST_F(BasicPlugin, LuLinearIsLTimesUPlusBias) {
  auto lu = build("{type: lu_linear}", 3);
  set_lu(lu, 0.5, -1.0, 2.0, 0.25, -0.5, 1.5);
  const auto params = lu->parameters();
  params[2]->value = Matrix{{0.0, std::log(2.0), std::log(0.5)}};
  params[3]->value = Matrix{{1.0, -1.0, 0.5}};
  // L = [1 0 0; .5 1 0; -1 2 1], U = [1 .25 -.5; 0 2 1.5; 0 0 .5]
  // W = L U = [1 .25 -.5; .5 2.125 1.25; -1 3.75 4]
  const Matrix x = {{1.0, 2.0, -1.0}};
  const auto out = lu->forward(x, none_);
  const Matrix expected = {{1.0 + 0.5 + 0.5 + 1.0, 0.5 + 4.25 - 1.25 - 1.0, -1 + 7.5 - 4 + 0.5}};
  for (Index j = 0; j < 3; ++j) EXPECT_NEAR(out.value(0, j), expected(0, j), 1e-14) << j;
  EXPECT_NEAR(out.logdet(0), 0.0, 1e-15);  // log 1 + log 2 + log 0.5
  const auto back = lu->inverse(out.value, none_);
  for (Index j = 0; j < 3; ++j) EXPECT_NEAR(back.value(0, j), x(0, j), 1e-14) << j;
}

TEST_F(BasicPlugin, LuLinearOfOneDimensionIsAScaleAndShift) {
  auto lu = build("{type: lu_linear}", 1);
  const auto params = lu->parameters();
  ASSERT_EQ(params.size(), 2u);
  EXPECT_EQ(params[0]->name, "log_diag");
  params[0]->value = Matrix{{std::log(3.0)}};
  params[1]->value = Matrix{{-2.0}};
  const auto out = lu->forward(Matrix{{1.0}, {2.0}}, none_);
  EXPECT_NEAR(out.value(0, 0), 1.0, 1e-15);
  EXPECT_NEAR(out.value(1, 0), 4.0, 1e-15);
  EXPECT_NEAR(out.logdet(1), std::log(3.0), 1e-15);
}

TEST_F(BasicPlugin, LuLinearRefusesAStoredOrderThatIsNotAPermutation) {
  auto lu = build("{type: lu_linear, permute: true}", 3);
  flows::TensorStore store;
  flows::StateSaver saver(store);
  lu->visit_state(saver);
  bool found = false;
  for (auto& entry : store.entries)
    if (entry.name == "order") {
      entry.value(0, 0) = entry.value(0, 1);  // a repeated column
      found = true;
    }
  ASSERT_TRUE(found) << "the permutation is not saved as 'order'";
  flows::StateLoader loader(store, "test");
  EXPECT_THROW(lu->visit_state(loader), flows::DataError);
}

}  // namespace
