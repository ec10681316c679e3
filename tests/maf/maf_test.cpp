// Structure of the maf plugin's bijectors: autoregressive Jacobians, batch
// normalisation's train and evaluation modes, options.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include <flows/bijector.hpp>
#include <flows/config.hpp>
#include <flows/error.hpp>
#include <flows/plugin_loader.hpp>
#include <flows/registry.hpp>
#include <flows/rng.hpp>
// all_near; the suite itself is compiled in maf_contract_test.cpp.
#define FLOWS_BIJECTOR_CONTRACT_INSTANTIATE_ONLY
#include <flows/testing/bijector_contract.hpp>
#include <flows/testing/gradient_checker.hpp>

namespace {

using flows::Bijector;
using flows::Index;
using flows::Matrix;
using flows::Real;
using flows::Rng;
using flows::Vector;

class MafPlugin : public ::testing::Test {
 protected:
  MafPlugin() {
    flows::register_builtins(registry_);
    flows::load_plugin(FLOWS_PLUGIN_MAF, registry_);
  }
  std::shared_ptr<Bijector> make(const std::string& yaml, Index dim, std::uint64_t seed = 0) {
    auto node = flows::ConfigNode::parse(yaml, "test");
    return registry_.make<Bijector>(node, flows::BuildContext{dim, 0, seed, &registry_});
  }
  static const Matrix& none() {
    static const Matrix empty;
    return empty;
  }
  // Moves parameters off their initial values.
  static void perturb(Bijector& b, Rng& rng, Real scale = 0.3) {
    for (flows::Parameter* p : b.parameters())
      p->value += scale * rng.normal(p->value.shape(0), p->value.shape(1));
  }
  flows::Registry registry_;
};

// Checks that `jac` (D x D) is triangular under some ordering of the inputs:
// with every allowed dependence present (generic weights, tanh), row i has
// exactly position(i) + 1 non-zero entries, its own diagonal and the inputs
// that come earlier. Returns the ordering (position of each dimension).
std::vector<Index> check_triangular(const Matrix& jac, const std::string& what) {
  const Index d = jac.shape(0);
  std::vector<Index> count(d, 0);
  for (Index i = 0; i < d; ++i)
    for (Index j = 0; j < d; ++j) count[i] += jac(i, j) != 0 ? 1 : 0;
  std::vector<Index> position(d);
  std::vector<bool> taken(d, false);
  for (Index i = 0; i < d; ++i) {
    EXPECT_GE(count[i], 1u) << what << ": row " << i << " is zero";
    position[i] = count[i] - 1;
    EXPECT_FALSE(taken[position[i]]) << what << ": two rows with " << count[i] << " non-zeros";
    taken[position[i]] = true;
  }
  for (Index i = 0; i < d; ++i) {
    EXPECT_NE(jac(i, i), 0.0) << what << ": diagonal " << i;
    for (Index j = 0; j < d; ++j)
      if (position[j] > position[i]) {
        EXPECT_EQ(jac(i, j), 0.0) << what << ": z_" << i << " depends on later x_" << j;
      }
  }
  return position;
}

// One MAF layer: z_i depends on x_j only for order_j ≤ order_i, and the
// entries outside that pattern are exactly zero; likewise for its inverse and
// for an IAF layer in both directions.
TEST_F(MafPlugin, OneLayerJacobianIsTriangularInItsOrdering) {
  struct Case {
    std::string yaml;
    std::vector<Index> expected_position;  // empty: any ordering (random)
  };
  const std::vector<Case> cases{
      {"{type: maf, layers: 1, hidden: [16, 16], activation: tanh}", {0, 1, 2, 3}},
      {"{type: maf, layers: 1, hidden: [16, 16], activation: tanh, order: reversed}", {3, 2, 1, 0}},
      {"{type: maf, layers: 1, hidden: [16], activation: tanh, order: random, seed: 4}", {}},
      {"{type: maf, layers: 1, hidden: [16], residual_blocks: 2, activation: tanh}", {0, 1, 2, 3}},
      {"{type: iaf, layers: 1, hidden: [16, 16], activation: tanh}", {0, 1, 2, 3}},
      {"{type: iaf, layers: 1, hidden: [16], activation: tanh, order: random, seed: 9}", {}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.yaml);
    auto b = make(c.yaml, 4);
    Rng rng(1);
    perturb(*b, rng);
    const Matrix x = rng.normal(1, 4);
    const Matrix jf = flows::testing::numerical_jacobian(
        [&](const Matrix& row) { return b->forward(row, none()).value; }, x);
    const std::vector<Index> position = check_triangular(jf, "forward");
    if (!c.expected_position.empty()) {
      EXPECT_EQ(position, c.expected_position);
    }
    const Matrix z = b->forward(x, none()).value;
    const Matrix ji = flows::testing::numerical_jacobian(
        [&](const Matrix& row) { return b->inverse(row, none()).value; }, z);
    EXPECT_EQ(check_triangular(ji, "inverse"), position);
  }
}

// With layers: 2 the second layer's ordering is the reverse of the first, so
// the composition is dense; with permute: none it stays triangular.
TEST_F(MafPlugin, OrderingsAlternateBetweenLayers) {
  Rng rng(2);
  const Matrix x = rng.normal(1, 3);
  auto jacobian = [&](Bijector& b) {
    return flows::testing::numerical_jacobian(
        [&](const Matrix& row) { return b.forward(row, none()).value; }, x);
  };
  auto stacked = make("{type: maf, layers: 2, hidden: [8], activation: tanh}", 3);
  perturb(*stacked, rng);
  const Matrix dense = jacobian(*stacked);
  for (Real v : dense) EXPECT_NE(v, 0.0);
  auto same = make("{type: maf, layers: 2, hidden: [8], activation: tanh, permute: none}", 3);
  perturb(*same, rng);
  EXPECT_EQ(check_triangular(jacobian(*same), "permute: none"), (std::vector<Index>{0, 1, 2}));
}

// An IAF layer is a MAF layer read the other way round: the same weights give
// iaf.inverse = maf.forward.
TEST_F(MafPlugin, IafIsMafTheOtherWayRound) {
  Rng rng(3);
  auto maf1 = make("{type: maf, layers: 1, hidden: [8]}", 3, 5);
  auto iaf1 = make("{type: iaf, layers: 1, hidden: [8]}", 3, 5);
  perturb(*maf1, rng);
  for (std::size_t k = 0; k < maf1->parameters().size(); ++k)
    iaf1->parameters()[k]->value = maf1->parameters()[k]->value;
  const Matrix x = rng.normal(6, 3);
  const auto f = maf1->forward(x, none());
  const auto g = iaf1->inverse(x, none());
  EXPECT_TRUE(flows::testing::all_near(g.value, f.value, 1e-14, "iaf inverse vs maf forward"));
  EXPECT_TRUE(flows::testing::all_near(g.logdet, f.logdet, 1e-14, "logdets"));
}

// The soft clamp keeps every log-scale inside ±log_scale_bound, whatever the
// network outputs: huge weights give finite outputs and a bounded logdet.
TEST_F(MafPlugin, LogScaleIsBounded) {
  auto b = make("{type: maf, layers: 1, hidden: [8], log_scale_bound: 2.0}", 2);
  for (flows::Parameter* p : b->parameters()) p->value *= 1e6;
  Rng rng(0);
  const Matrix x = rng.normal(50, 2) * 10.0;
  const auto t = b->forward(x, none());
  for (Index i = 0; i < x.shape(0); ++i) {
    EXPECT_TRUE(std::isfinite(t.logdet(i)));
    EXPECT_LE(std::abs(t.logdet(i)), 2.0 * 2 + 1e-12);
  }
}

// Training mode normalises with the batch's statistics; evaluation mode uses
// running averages, which momentum 1 sets to the last batch's.
TEST_F(MafPlugin, BatchNormUsesBatchStatisticsInTrainingAndRunningAveragesOtherwise) {
  Rng rng(1);
  Matrix x = rng.normal(200, 2);
  for (Index i = 0; i < x.shape(0); ++i) {
    x(i, 0) = 3 + 2 * x(i, 0);
    x(i, 1) = -1 + 0.5 * x(i, 1);
  }
  auto bn = make("{type: batch_norm, momentum: 1.0, epsilon: 1.0e-5}", 2);
  // Fresh: running mean 0, variance 1: evaluation is almost the identity.
  const auto fresh = bn->forward(x, none());
  EXPECT_TRUE(flows::testing::all_near(fresh.value, x, 1e-5, "fresh evaluation"));

  Matrix z;
  Vector logdet;
  bn->forward_train(x, none(), z, logdet);
  Real expected_logdet = 0;
  for (Index j = 0; j < 2; ++j) {
    Real mean = 0, var = 0;
    for (Index i = 0; i < x.shape(0); ++i) mean += x(i, j);
    mean /= 200;
    for (Index i = 0; i < x.shape(0); ++i) var += (x(i, j) - mean) * (x(i, j) - mean);
    var /= 200;
    expected_logdet -= 0.5 * std::log(var + 1e-5);
    Real zm = 0, zv = 0;
    for (Index i = 0; i < x.shape(0); ++i) zm += z(i, j);
    zm /= 200;
    for (Index i = 0; i < x.shape(0); ++i) zv += (z(i, j) - zm) * (z(i, j) - zm);
    zv /= 200;
    EXPECT_NEAR(zm, 0.0, 1e-12) << "column " << j;
    EXPECT_NEAR(zv, 1.0, 1e-4) << "column " << j;
  }
  for (Index i = 0; i < x.shape(0); ++i) EXPECT_NEAR(logdet(i), expected_logdet, 1e-12);

  // Momentum 1: the running averages are this batch's, so evaluation now
  // computes what training did, and inverts it.
  const auto evaluated = bn->forward(x, none());
  EXPECT_TRUE(flows::testing::all_near(evaluated.value, z, 1e-12, "evaluation after training"));
  EXPECT_TRUE(flows::testing::all_near(evaluated.logdet, logdet, 1e-12, "logdet"));
  EXPECT_TRUE(flows::testing::all_near(bn->inverse(z, none()).value, x, 1e-12, "inverse"));

  // A second, different batch in training mode is normalised by its own
  // statistics, and evaluation follows it.
  const Matrix y = rng.normal(100, 2) * 5.0;
  Matrix zy;
  bn->forward_train(y, none(), zy, logdet);
  EXPECT_FALSE(flows::testing::all_near(bn->forward(x, none()).value, z, 1e-3, "x after y"));
  EXPECT_TRUE(flows::testing::all_near(bn->forward(y, none()).value, zy, 1e-12, "y"));
}

// Momentum m: running ← (1 − m) running + m batch, from mean 0, variance 1.
TEST_F(MafPlugin, BatchNormRunningAveragesFollowTheMomentum) {
  auto bn = make("{type: batch_norm, momentum: 0.25, epsilon: 1.0e-9}", 1);
  const Matrix a{{1.0}, {3.0}};   // mean 2, variance 1
  const Matrix b{{6.0}, {10.0}};  // mean 8, variance 4
  Matrix z;
  Vector logdet;
  bn->forward_train(a, none(), z, logdet);
  bn->forward_train(b, none(), z, logdet);
  const Real mean = 0.75 * (0.75 * 0 + 0.25 * 2) + 0.25 * 8;
  const Real var = 0.75 * (0.75 * 1 + 0.25 * 1) + 0.25 * 4;
  const auto t = bn->forward(Matrix{{5.0}}, none());
  EXPECT_NEAR(t.value(0, 0), (5.0 - mean) / std::sqrt(var + 1e-9), 1e-12);
  EXPECT_NEAR(t.logdet(0), -0.5 * std::log(var + 1e-9), 1e-12);
}

TEST_F(MafPlugin, StackParametersAreNamedPerLayer) {
  auto b = make("{type: maf, layers: 3, hidden: [8], batch_norm: true}", 2);
  const auto params = b->parameters();
  // 3 MADEs (input, output: 4 tensors each) and 2 batch norms (γ, β and the
  // two running averages, which travel with the parameters but are not trained).
  ASSERT_EQ(params.size(), 20u);
  EXPECT_EQ(params.front()->name, "0.input.weight");
  EXPECT_EQ(params[4]->name, "1.log_gamma");
  EXPECT_EQ(params[6]->name, "1.running_mean");
  EXPECT_FALSE(params[6]->trainable);
  EXPECT_FALSE(params[7]->trainable);
  EXPECT_TRUE(params[4]->trainable);
  EXPECT_EQ(params.back()->name, "4.output.bias");
}

TEST_F(MafPlugin, BadOptionsAreConfigErrors) {
  for (const char* yaml :
       {"{type: maf, layers: 0}", "{type: maf, hidden: []}", "{type: maf, order: sideways}",
        "{type: maf, permute: shuffle}", "{type: maf, log_scale_bound: 0}",
        "{type: maf, activation: relu7}", "{type: iaf, batch_norm_momentum: 1.5}",
        "{type: maf, hiden: [8]}", "{type: batch_norm, momentum: 0}",
        "{type: batch_norm, epsilon: -1}", "{type: maf, hidden: [8, 4], residual_blocks: 1}"}) {
    SCOPED_TRACE(yaml);
    EXPECT_THROW(make(yaml, 2), flows::ConfigError);
  }
}

TEST_F(MafPlugin, IdentityInitStartsAsTheIdentity) {
  auto b = make("{type: maf, layers: 3, hidden: [8], identity_init: true}", 2);
  Rng rng(0);
  const Matrix x = rng.normal(5, 2);
  const auto t = b->forward(x, none());
  EXPECT_TRUE(flows::testing::all_near(t.value, x, 0.0, "identity"));
  for (Index i = 0; i < 5; ++i) EXPECT_EQ(t.logdet(i), 0.0);
}

}  // namespace
