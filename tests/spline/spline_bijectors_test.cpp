// nsf_coupling, affine_coupling and nsf_autoregressive through the plugin:
// identity initialization, which columns each layer touches, the
// autoregressive structure, large inputs and option checking.
#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <string>

#include <flows/bijector.hpp>
#include <flows/config.hpp>
#include <flows/error.hpp>
#include <flows/plugin_loader.hpp>
#include <flows/registry.hpp>
#include <flows/rng.hpp>

namespace {

using flows::Index;
using flows::Matrix;
using flows::Real;
using flows::Vector;

std::shared_ptr<flows::Bijector> make(const std::string& yaml, Index dim, std::uint64_t seed = 0) {
  static flows::Registry* registry = [] {
    auto* r = new flows::Registry;
    flows::load_plugin(FLOWS_PLUGIN_SPLINE, *r);
    return r;
  }();
  flows::ConfigNode node = flows::ConfigNode::parse(yaml, "test.yaml");
  return registry->make<flows::Bijector>(node, flows::BuildContext{dim, 0, seed, registry});
}

Real max_abs_diff(const Matrix& a, const Matrix& b) {
  Real worst = 0;
  for (Index k = 0; k < a.size(); ++k) worst = std::max(worst, std::abs(a.flat(k) - b.flat(k)));
  return worst;
}

TEST(SplineBijectors, IdentityInitializationGivesTheIdentityMap) {
  flows::Rng rng(0);
  for (const std::string type : {"nsf_coupling", "affine_coupling", "nsf_autoregressive"})
    for (Index dim : {1, 2, 3, 5}) {
      SCOPED_TRACE(type + " dim " + std::to_string(dim));
      auto b = make("{type: " + type + ", layers: 3, hidden: [16, 16]}", dim);
      Matrix x = rng.normal(50, dim);
      x *= 3.0;  // inside and outside the spline's default [-5, 5]
      const flows::Transformed f = b->forward(x, {});
      EXPECT_LT(max_abs_diff(f.value, x), 1e-12);
      for (Real l : f.logdet) EXPECT_NEAR(l, 0, 1e-12);
    }
}

// With one layer and D = 4, columns {0, 1} condition and {2, 3} are
// transformed; the next layer swaps the halves.
TEST(SplineBijectors, CouplingLayersAlternateTheirMasks) {
  flows::Rng rng(1);
  for (const std::string type : {"nsf_coupling", "affine_coupling"}) {
    SCOPED_TRACE(type);
    const std::string options = ", hidden: [8], identity_init: false}";
    const Matrix x = rng.normal(20, 4);
    const Matrix one = make("{type: " + type + ", layers: 1" + options, 4)->forward(x, {}).value;
    for (Index r = 0; r < 20; ++r) {
      EXPECT_EQ(one(r, 0), x(r, 0));
      EXPECT_EQ(one(r, 1), x(r, 1));
      EXPECT_NE(one(r, 2), x(r, 2));
      EXPECT_NE(one(r, 3), x(r, 3));
    }
    const Matrix two = make("{type: " + type + ", layers: 2" + options, 4)->forward(x, {}).value;
    for (Index k = 0; k < two.size(); ++k) EXPECT_NE(two.flat(k), x.flat(k));
  }
}

// Dimension 1: every layer is an unconditional elementwise transform whose
// parameters are learned constants, so rows are transformed independently and
// identically.
TEST(SplineBijectors, CouplingInOneDimensionIsAnElementwiseTransform) {
  for (const std::string type : {"nsf_coupling", "affine_coupling"}) {
    SCOPED_TRACE(type);
    auto b = make("{type: " + type + ", layers: 2, identity_init: false}", 1);
    const flows::ParameterList params = b->parameters();
    ASSERT_EQ(params.size(), 2u);
    EXPECT_EQ(params[0]->name, "0.constant");
    // Move the constants away from zero (they start at zero).
    for (flows::Parameter* p : params)
      for (Index k = 0; k < p->value.size(); ++k) p->value.flat(k) = 0.3 * std::sin(Real(k + 1));
    const Matrix x = {{0.5}, {-1.0}, {0.5}};
    const flows::Transformed f = b->forward(x, {});
    EXPECT_EQ(f.value(0, 0), f.value(2, 0));
    EXPECT_NE(f.value(0, 0), 0.5);
    EXPECT_LT(f.value(1, 0), f.value(0, 0));
  }
}

// Output i of one autoregressive layer depends on inputs j ≤ i only (natural
// order); the second layer reverses the order.
TEST(SplineBijectors, AutoregressiveLayersAreTriangularInAlternatingOrders) {
  flows::Rng rng(2);
  const Matrix x = rng.normal(5, 4);
  for (Index layers : {1, 2}) {
    auto b = make("{type: nsf_autoregressive, layers: " + std::to_string(layers) +
                      ", hidden: [16], identity_init: false}",
                  4);
    const Matrix z = b->forward(x, {}).value;
    for (Index j = 0; j < 4; ++j) {
      Matrix moved = x;
      for (Index r = 0; r < 5; ++r) moved(r, j) += 0.25;
      const Matrix zm = b->forward(moved, {}).value;
      for (Index i = 0; i < 4; ++i) {
        const bool may_depend = layers == 1 ? j <= i : true;
        if (may_depend) continue;
        for (Index r = 0; r < 5; ++r) {
          EXPECT_EQ(zm(r, i), z(r, i)) << "z" << i << " moved with x" << j;
        }
      }
      if (layers == 1) {  // the first output of a 1-layer flow depends on x0 only
        EXPECT_EQ(j == 0, zm(0, 0) != z(0, 0));
      }
    }
  }
}

// Inputs far outside the tail bound, in every column, give finite values,
// log-determinants and gradients (they condition the networks too).
TEST(SplineBijectors, LargeInputsGiveFiniteValuesAndGradients) {
  for (const std::string type : {"nsf_coupling", "affine_coupling", "nsf_autoregressive"}) {
    SCOPED_TRACE(type);
    // Conditioners fed ±1e3 with random weights give splines so flat (slopes
    // below 1e-10) that the round trip below is only as good as that
    // conditioning; its tolerance was set with tail_bound 3, kept here.
    const std::string bound = type == "affine_coupling" ? "" : ", tail_bound: 3.0";
    auto b = make(
        "{type: " + type + ", layers: 3, hidden: [16, 16], identity_init: false" + bound + "}", 3);
    const Matrix x = {{1e3, -1e3, 0.5}, {-1e6, 2.0, 1e6}, {3.0, -3.0, 0.0}, {1e5, 1e5, -1e5}};
    const flows::Transformed f = b->forward(x, {});
    Matrix z, grad_x;
    Vector logdet;
    b->forward_train(x, {}, z, logdet);
    b->backward(xt::ones<Real>({Index(4), Index(3)}), xt::ones<Real>({Index(4)}), grad_x);
    for (Real v : f.value) EXPECT_TRUE(std::isfinite(v));
    for (Real v : f.logdet) EXPECT_TRUE(std::isfinite(v));
    for (Real v : grad_x) EXPECT_TRUE(std::isfinite(v));
    for (const flows::Parameter* p : b->parameters())
      for (Real v : p->grad) ASSERT_TRUE(std::isfinite(v)) << p->name;
    if (type != "affine_coupling") {  // the splines round-trip exactly
      const flows::Transformed back = b->inverse(f.value, {});
      EXPECT_LT(max_abs_diff(back.value, x), 1e-9 * 1e6);
    }
  }
}

TEST(SplineBijectors, OptionsAreChecked) {
  EXPECT_THROW(make("{type: nsf_coupling, hiden: [8]}", 2), flows::ConfigError);
  EXPECT_THROW(make("{type: nsf_coupling, bins: 0}", 2), flows::ConfigError);
  EXPECT_THROW(make("{type: nsf_coupling, layers: 0}", 2), flows::ConfigError);
  EXPECT_THROW(make("{type: nsf_coupling, activation: sigmoidish}", 2), flows::ConfigError);
  EXPECT_THROW(make("{type: affine_coupling, log_scale_bound: 0.0}", 2), flows::ConfigError);
  EXPECT_THROW(make("{type: affine_coupling, bins: 8}", 2), flows::ConfigError);
  EXPECT_THROW(make("{type: nsf_autoregressive, tail_bound: 0.0}", 2), flows::ConfigError);
  EXPECT_THROW(make("{type: nsf_autoregressive, hidden: []}", 2), flows::ConfigError);
  try {
    make("{type: nsf_coupling, bins: 8, tail_bund: 3.0}", 2);
    FAIL() << "no error for a misspelled key";
  } catch (const flows::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("tail_bund"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("tail_bound"), std::string::npos) << e.what();
  }
}

}  // namespace

namespace {

TEST(SplineBijectors, EmptyBatchesPassThrough) {
  for (const std::string type : {"nsf_coupling", "affine_coupling", "nsf_autoregressive"}) {
    SCOPED_TRACE(type);
    auto b = make("{type: " + type + ", layers: 2, hidden: [8]}", 3);
    const Matrix none = xt::zeros<Real>({Index(0), Index(3)});
    EXPECT_EQ(b->forward(none, {}).value.shape(0), 0u);
    EXPECT_EQ(b->inverse(none, {}).value.shape(0), 0u);
  }
}

// More rows than one inference block (2,048): blocks are stitched back in order.
TEST(SplineBijectors, LargeBatchesMatchRowByRowResults) {
  flows::Rng rng(9);
  const Matrix x = rng.normal(5000, 2);
  for (const std::string type : {"nsf_coupling", "nsf_autoregressive"}) {
    SCOPED_TRACE(type);
    auto b = make("{type: " + type + ", layers: 2, hidden: [8], identity_init: false}", 2);
    const flows::Transformed all = b->forward(x, {});
    for (Index r : {Index(0), Index(2047), Index(2048), Index(4999)}) {
      const Matrix row = xt::view(x, xt::range(r, r + 1), xt::all());
      const flows::Transformed one = b->forward(row, {});
      EXPECT_NEAR(one.value(0, 1), all.value(r, 1), 1e-12);
      EXPECT_NEAR(one.logdet(0), all.logdet(r), 1e-12);
    }
    const flows::Transformed back = b->inverse(all.value, {});
    EXPECT_LT(max_abs_diff(back.value, x), 1e-9);
  }
}

}  // namespace
