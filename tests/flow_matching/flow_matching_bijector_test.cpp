// The flow_matching bijector: the contract suite, the instantiated change of
// variables on fields with closed forms, and its options.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <memory>
#include <string>

#include <flows/bijector.hpp>
#include <flows/chain.hpp>
#include <flows/error.hpp>
#include <flows/flow.hpp>
#include <flows/normal.hpp>
#include <flows/state.hpp>
#include <flows/testing/bijector_contract.hpp>

#include "fm_test_support.hpp"

namespace {

using flows::Bijector;
using flows::Index;
using flows::Matrix;
using flows::Real;
using flows::Rng;
using flows::Transformed;
using flows::Vector;

// An ODE map solved to 1e-10: round trips and the numerical Jacobian hold to
// about 1e-8, not to round-off. Gradients: see BackwardExplainsThatMleIsNotSupported.
// SELU's derivative jumps at 0, so div v jumps where a unit changes sign and
// an adaptive solver at 1e-10 spends thousands of rejected steps on the
// jumps: the adaptive cases use smooth activations, SELU runs with rk4.
BijectorCase fm_case(const std::string& name, const std::string& yaml, Index dim,
                     Index context_dim = 0) {
  BijectorCase c{name, FLOWS_PLUGIN_FLOW_MATCHING, yaml, dim};
  c.context_dim = context_dim;
  c.check_gradients = false;
  c.tolerance = 1e-7;
  c.jacobian_tolerance = 1e-5;
  return c;
}

INSTANTIATE_TEST_SUITE_P(
    FlowMatching, BijectorContract,
    ::testing::Values(
        fm_case("dopri5_silu_2d",
                "{type: flow_matching, hidden: [16, 16], activation: silu, time_frequencies: 2, "
                "solver: {type: dopri5, rtol: 1.0e-10, atol: 1.0e-10}}",
                2),
        fm_case("dopri5_tanh_3d",
                "{type: flow_matching, hidden: [12], activation: tanh, time_frequencies: 0, "
                "solver: {type: dopri5, rtol: 1.0e-10, atol: 1.0e-10, norm: max}}",
                3),
        fm_case("rk4_selu_1d",
                "{type: flow_matching, hidden: [8, 8], activation: selu, "
                "solver: {type: rk4, steps: 400}}",
                1),
        fm_case("dopri5_silu_2d_context_3",
                "{type: flow_matching, hidden: [16, 16], activation: silu, time_frequencies: 1, "
                "solver: {type: dopri5, rtol: 1.0e-10, atol: 1.0e-10}}",
                2, 3),
        fm_case("rk4_tanh_3d_context_1",
                "{type: flow_matching, hidden: [8], activation: tanh, "
                "solver: {type: rk4, steps: 400}}",
                3, 1)),
    flows::testing::bijector_case_name);

// Sets a single-layer field v(x, t) = A x (no hidden layer, no time features).
std::shared_ptr<Bijector> linear_field(const Matrix& a, const std::string& solver,
                                       const std::string& options = "") {
  const Index d = a.shape(0);
  auto b = fm_test::make<Bijector>("{type: flow_matching, hidden: [], time_frequencies: 0, " +
                                       options + "solver: " + solver + "}",
                                   d);
  auto params = b->parameters();
  EXPECT_EQ(params.size(), 2u);
  Matrix& w = params[0]->value;  // d x (d + 1): [A | weight of t]
  EXPECT_EQ(w.shape(1), d + 1);
  w.fill(0);
  for (Index i = 0; i < d; ++i)
    for (Index j = 0; j < d; ++j) w(i, j) = a(i, j);
  params[1]->value.fill(0);
  return b;
}

// exp(M) by its Taylor series (‖M‖ here is below 2).
Matrix expm(const Matrix& m) {
  const Index d = m.shape(0);
  Matrix result = xt::eye<Real>(d), term = xt::eye<Real>(d);
  for (int k = 1; k < 40; ++k) {
    Matrix next = xt::zeros<Real>({d, d});
    for (Index i = 0; i < d; ++i)
      for (Index j = 0; j < d; ++j)
        for (Index l = 0; l < d; ++l) next(i, j) += term(i, l) * m(l, j) / k;
    term = next;
    result += term;
  }
  return result;
}

// For v = A x the flow over a time t is x ↦ e^{tA} x, and the log-density
// changes by −t·trace(A) (the divergence is trace A everywhere). The field tA
// over [0, 1] is the field A over [0, t].
TEST(FlowMatchingBijector, LinearFieldChangesLogDensityByMinusTTimesTrace) {
  Matrix a = {{0.3, -0.8, 0.1}, {0.5, -0.2, 0.0}, {0.2, 0.4, -0.6}};
  const Real trace = 0.3 - 0.2 - 0.6;
  Rng rng(1);
  const Matrix x = rng.normal(5, 3);
  for (const char* solver :
       {"{type: dopri5, rtol: 1.0e-10, atol: 1.0e-10}", "{type: rk4, steps: 200}"}) {
    for (Real t : {0.25, 0.5, 1.0}) {
      SCOPED_TRACE(std::string(solver) + " at t = " + std::to_string(t));
      const Matrix ta = t * a;
      auto b = linear_field(ta, solver);
      // forward maps data (time 1) back to noise (time 0): z = e^{−tA} x.
      const Transformed fwd = b->forward(x, Matrix());
      const Matrix back = expm(Matrix(-ta));
      for (Index i = 0; i < 5; ++i) {
        EXPECT_NEAR(fwd.logdet(i), -t * trace, 1e-9);
        for (Index j = 0; j < 3; ++j) {
          Real expected = 0;
          for (Index k = 0; k < 3; ++k) expected += back(j, k) * x(i, k);
          EXPECT_NEAR(fwd.value(i, j), expected, 1e-8);
        }
      }
      // log p_t(x_t) − log p_0(x_0) = −t·trace(A) along the inverse solve.
      const Transformed inv = b->inverse(x, Matrix());
      for (Index i = 0; i < 5; ++i) EXPECT_NEAR(-inv.logdet(i), -t * trace, 1e-9);
    }
  }
}

TEST(FlowMatchingBijector, ZeroFieldGivesTheBaseLogDensity) {
  auto b = fm_test::make<Bijector>("{type: flow_matching, hidden: [8, 8]}", 2);
  for (auto* p : b->parameters()) p->value.fill(0);
  auto base = std::make_shared<flows::StandardNormal>(2);
  flows::Flow flow(base, {b});
  Rng rng(2);
  const Matrix x = rng.normal(6, 2) * 2.0;
  const Vector lp = flow.log_prob(x);
  const Vector expected = base->log_prob(x, Matrix());
  for (Index i = 0; i < 6; ++i) EXPECT_NEAR(lp(i), expected(i), 1e-12);
  const Matrix s = flow.sample(4, rng);
  EXPECT_EQ(s.shape(0), 4u);
}

// Hutchinson's estimate through a whole solve: unbiased, so its mean over
// many probes is close to the exact log-determinant; one probe is not exact.
TEST(FlowMatchingBijector, HutchinsonLogDetMatchesExactOnAverage) {
  const std::string field = "hidden: [16, 16], activation: tanh, time_frequencies: 1";
  const std::string solver = "solver: {type: rk4, steps: 50}";
  auto exact = fm_test::make<Bijector>("{type: flow_matching, " + field + ", " + solver + "}", 3);
  auto many = fm_test::make<Bijector>(
      "{type: flow_matching, divergence: hutchinson, probes: 3000, " + field + ", " + solver + "}",
      3);
  auto one = fm_test::make<Bijector>(
      "{type: flow_matching, divergence: hutchinson, probe: "
      "gaussian, " +
          field + ", " + solver + "}",
      3);
  // Same seed and YAML for the field: the same parameters.
  for (Index k = 0; k < exact->parameters().size(); ++k)
    ASSERT_EQ(exact->parameters()[k]->value, many->parameters()[k]->value);
  Rng rng(3);
  const Matrix x = rng.normal(4, 3);
  const Transformed e = exact->forward(x, Matrix());
  const Transformed m = many->forward(x, Matrix());
  const Transformed o = one->forward(x, Matrix());
  Real spread = 0;
  for (Index i = 0; i < 4; ++i) {
    EXPECT_NEAR(m.logdet(i), e.logdet(i), 0.02 * (1 + std::abs(e.logdet(i)))) << i;
    for (Index j = 0; j < 3; ++j) EXPECT_NEAR(m.value(i, j), e.value(i, j), 1e-12);
    spread += std::abs(o.logdet(i) - e.logdet(i));
  }
  EXPECT_GT(spread, 1e-6) << "a single probe should not be exact";
}

// Hutchinson's probe of a row is keyed by the seed and the row itself: the
// same wherever the row sits and however the batch is cut, and independent
// between rows (before, rows at the same offset of two 1024-row blocks of a
// chain shared one probe). On v = A x the estimate of the log-determinant is
// −εᵀAε for the row's probe ε, exactly (a constant integrand), so it shows
// the probe.
TEST(FlowMatchingBijector, HutchinsonProbesFollowTheRowNotItsPosition) {
  const Matrix a = {{0.3, -0.8, 0.1}, {0.5, -0.2, 0.0}, {0.2, 0.4, -0.6}};
  auto b = linear_field(a, "{type: rk4, steps: 4}", "divergence: hutchinson, probe: gaussian, ");
  const flows::Chain chain("chain", 3, {b});
  Rng rng(8);
  const Index n = 2100;  // three cache blocks of the chain
  const Matrix x = rng.normal(n, 3);
  const Vector logdet = chain.forward(x).logdet;
  for (Index i : {Index(3), Index(40)}) {
    EXPECT_NE(logdet(i), logdet(i + 1024)) << "rows " << i << " and " << i + 1024;
    EXPECT_NE(logdet(i), logdet(i + 2048)) << "rows " << i << " and " << i + 2048;
  }
  for (Index i : {Index(0), Index(3), Index(1027), Index(2099)}) {
    const Matrix row = xt::view(x, xt::range(i, i + 1), xt::all());
    EXPECT_NEAR(b->forward(row).logdet(0), logdet(i), 1e-12) << "row " << i << " alone";
  }
  // Unbiased: E[εᵀAε] = trace A, Var = 2 ‖(A + Aᵀ)/2‖²_F for Gaussian ε.
  Real mean = 0;
  for (Real v : logdet) mean -= v / static_cast<Real>(n);
  const Matrix sym = (a + xt::transpose(a)) / 2.0;
  const Real sd = std::sqrt(2 * xt::sum(sym * sym)() / static_cast<Real>(n));
  EXPECT_NEAR(mean, 0.3 - 0.2 - 0.6, 4 * sd);
}

// Flow's promise for every model: log_prob and sample do not depend on the
// thread count, and scoring rows in two calls cut at a multiple of
// kInferenceRowGroup gives the same values. An adaptive solve shares its step
// sizes among the rows it integrates together, so those rows must be the same
// whatever the threads: fixed groups of kInferenceRowGroup rows.
TEST(FlowMatchingBijector, ResultsDoNotDependOnTheThreadCountOrTheBatchSplit) {
  const char* saved = std::getenv("FLOWS_NUM_THREADS");
  const std::string previous = saved ? saved : "";
  auto threads = [](const char* count) { setenv("FLOWS_NUM_THREADS", count, 1); };
  for (const char* divergence : {"exact", "hutchinson"}) {
    SCOPED_TRACE(divergence);
    auto b = fm_test::make<Bijector>(std::string("{type: flow_matching, hidden: [16, 16], ") +
                                         "activation: tanh, divergence: " + divergence + "}",
                                     2);
    for (auto* p : b->parameters()) p->value *= 2.0;  // a field that bends the paths
    flows::Flow flow(std::make_shared<flows::StandardNormal>(2), {b});
    Rng rng(9);
    const Index n = 2 * flows::kInferenceRowGroup + 100;  // three groups, the last short
    EXPECT_FALSE(flow.rows_independent_in_inference());
    EXPECT_EQ(flow.row_granule(), flows::kInferenceRowGroup);
    const Matrix x = rng.normal(n, 2) * 1.5;
    threads("1");
    const Vector lp = flow.log_prob(x);
    Rng draw(10);
    const Transformed sampled = flow.sample_and_log_prob(n, draw);
    for (const char* count : {"2", "3"}) {
      threads(count);
      EXPECT_EQ(flow.log_prob(x), lp) << count << " threads";
      Rng again(10);
      const Transformed t = flow.sample_and_log_prob(n, again);
      EXPECT_EQ(t.value, sampled.value) << count << " threads";
      EXPECT_EQ(t.logdet, sampled.logdet) << count << " threads";
    }
    const Index cut = flows::kInferenceRowGroup;
    const Matrix head = xt::view(x, xt::range(0, cut), xt::all());
    const Matrix tail = xt::view(x, xt::range(cut, n), xt::all());
    const Vector lp_head = flow.log_prob(head), lp_tail = flow.log_prob(tail);
    for (Index i = 0; i < n; ++i)
      EXPECT_EQ(i < cut ? lp_head(i) : lp_tail(i - cut), lp(i)) << "row " << i;
  }
  if (saved)
    setenv("FLOWS_NUM_THREADS", previous.c_str(), 1);
  else
    unsetenv("FLOWS_NUM_THREADS");
}

TEST(FlowMatchingBijector, SampleWithoutLogDetGivesTheSamePointsAndNaN) {
  const std::string field = "hidden: [8], solver: {type: rk4, steps: 20}";
  auto with = fm_test::make<Bijector>("{type: flow_matching, " + field + "}", 2);
  auto without =
      fm_test::make<Bijector>("{type: flow_matching, sample_logdet: false, " + field + "}", 2);
  Rng rng(4);
  const Matrix z = rng.normal(5, 2);
  const Transformed a = with->inverse(z, Matrix());
  const Transformed b = without->inverse(z, Matrix());
  for (Index k = 0; k < a.value.size(); ++k) EXPECT_NEAR(a.value.flat(k), b.value.flat(k), 1e-12);
  for (Real v : b.logdet) EXPECT_TRUE(std::isnan(v));
  // forward (log-likelihood) always integrates the log-determinant.
  for (Real v : without->forward(z, Matrix()).logdet) EXPECT_TRUE(std::isfinite(v));
}

// No maximum-likelihood pass: the interface says which trainer fits it, and
// a training pass is refused naming that trainer.
TEST(FlowMatchingBijector, IsFitByCfmAndRefusesALikelihoodPass) {
  auto b = fm_test::make<Bijector>("{type: flow_matching, hidden: [4]}", 2);
  EXPECT_FALSE(b->trains_by_likelihood());
  EXPECT_EQ(b->trainer(), "cfm");
  Matrix z;
  Vector logdet;
  try {
    b->forward_train(xt::zeros<Real>({3, 2}), Matrix(), z, logdet);
    FAIL() << "no error";
  } catch (const flows::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("cfm"), std::string::npos) << e.what();
  }
}

// The state of a conditional field: its parameters and the context dropout it
// was trained with (guidance reads it); a bad saved value is refused. An
// unconditional field keeps the old layout (parameters only).
std::shared_ptr<Bijector> with_context_dropout(const std::string& yaml, Index dim,
                                               Index context_dim, Real p) {
  auto b = fm_test::make<Bijector>(yaml, dim, 0, context_dim);
  flows::TensorStore store;
  flows::StateSaver saver(store);
  b->visit_state(saver);
  for (auto& entry : store.entries)
    if (entry.name == "context_dropout") entry.value(0, 0) = p;
  flows::StateLoader loader(store, "test state");
  b->visit_state(loader);
  return b;
}

TEST(FlowMatchingBijector, StateKeepsTheContextDropout) {
  const std::string yaml = "{type: flow_matching, hidden: [4]}";
  flows::TensorStore plain;
  flows::StateSaver plain_saver(plain);
  fm_test::make<Bijector>(yaml, 2)->visit_state(plain_saver);
  EXPECT_EQ(plain.find("context_dropout"), nullptr);

  auto b = with_context_dropout(yaml, 2, 3, 0.25);
  flows::TensorStore store;
  flows::StateSaver saver(store);
  b->visit_state(saver);
  ASSERT_NE(store.find("context_dropout"), nullptr);
  EXPECT_EQ(store.find("context_dropout")->value(0, 0), 0.25);
  EXPECT_THROW(with_context_dropout(yaml, 2, 3, 1.5), flows::DataError);
}

// v = (1 + w) v(x, t, c) − w v(x, t, ∅) along the whole solve: w = 0 is the
// plain map; any w is still a bijection whose log-determinant is the
// Jacobian's; the map depends on w.
TEST(FlowMatchingBijector, GuidedMapIsABijectionWithTheJacobiansLogDet) {
  const std::string field =
      "type: flow_matching, hidden: [12, 12], activation: silu, time_frequencies: 1, "
      "solver: {type: dopri5, rtol: 1.0e-10, atol: 1.0e-10}";
  auto plain = with_context_dropout("{" + field + "}", 2, 2, 0.2);
  auto zero = with_context_dropout("{" + field + ", guidance: 0.0}", 2, 2, 0.2);
  auto guided = with_context_dropout("{" + field + ", guidance: 2.0}", 2, 2, 0.2);
  // Same YAML field keys and seed: the same parameters.
  Rng rng(6);
  const Matrix x = rng.normal(4, 2), c = rng.normal(4, 2);
  const Transformed a = plain->forward(x, c), b = zero->forward(x, c), g = guided->forward(x, c);
  EXPECT_TRUE(flows::testing::all_near(b.value, a.value, 0.0, "w = 0 against the plain map"));
  EXPECT_TRUE(flows::testing::all_near(b.logdet, a.logdet, 0.0, "w = 0 logdet"));
  Real difference = 0;
  for (Index k = 0; k < g.value.size(); ++k)
    difference += std::abs(g.value.flat(k) - a.value.flat(k));
  EXPECT_GT(difference, 1e-3) << "guidance should change the map";
  EXPECT_TRUE(flows::testing::all_near(guided->inverse(g.value, c).value, x, 1e-7,
                                       "guided inverse(forward(x))"));
  EXPECT_TRUE(flows::testing::all_near(guided->inverse(g.value, c).logdet, Vector(-g.logdet), 1e-7,
                                       "guided inverse logdet"));
  for (Index i = 0; i < 4; ++i) {
    const Matrix row = xt::view(x, xt::range(i, i + 1), xt::all());
    const Matrix row_c = xt::view(c, xt::range(i, i + 1), xt::all());
    const Real expected = flows::testing::log_abs_det(flows::testing::numerical_jacobian(
        [&](const Matrix& r) { return guided->forward(r, row_c).value; }, row));
    EXPECT_NEAR(g.logdet(i), expected, 1e-5 * (1 + std::abs(expected))) << "row " << i;
  }
  // Without the recorded dropout the field never learnt ∅: guidance refuses.
  auto untrained = fm_test::make<Bijector>("{" + field + ", guidance: 2.0}", 2, 0, 2);
  EXPECT_THROW(untrained->forward(x, c), flows::ConfigError);
}

TEST(FlowMatchingBijector, AConditionalFieldNeedsItsContext) {
  auto b = fm_test::make<Bijector>("{type: flow_matching, hidden: [4]}", 2, 0, 3);
  EXPECT_EQ(b->context_dim(), 3u);
  Rng rng(7);
  const Matrix x = rng.normal(3, 2);
  EXPECT_THROW(b->forward(x, Matrix()), flows::DataError);
  EXPECT_THROW(b->inverse(x, rng.normal(3, 2)), flows::DataError);
  EXPECT_THROW(b->forward(x, rng.normal(2, 3)), flows::DataError);
  EXPECT_NO_THROW(b->forward(x, rng.normal(3, 3)));
}

TEST(FlowMatchingBijector, SolverAndOptionsComeFromYaml) {
  EXPECT_NO_THROW(fm_test::make<Bijector>("{type: flow_matching, solver: {type: euler}}", 2));
  EXPECT_NO_THROW(fm_test::make<Bijector>("{type: flow_matching, solver: {type: midpoint}}", 2));
  EXPECT_THROW(fm_test::make<Bijector>("{type: flow_matching, solver: {type: rk45}}", 2),
               flows::ConfigError);
  EXPECT_THROW(fm_test::make<Bijector>("{type: flow_matching, divergence: approx}", 2),
               flows::ConfigError);
  EXPECT_THROW(fm_test::make<Bijector>("{type: flow_matching, activation: gelu}", 2),
               flows::ConfigError);
  EXPECT_THROW(fm_test::make<Bijector>("{type: flow_matching, hiden: [3]}", 2), flows::ConfigError);
  EXPECT_THROW(fm_test::make<Bijector>("{type: flow_matching, probes: 0}", 2), flows::ConfigError);
  EXPECT_THROW(fm_test::make<Bijector>("{type: flow_matching, guidance: .nan}", 2, 0, 1),
               flows::ConfigError);
  // Guidance needs a context to guide with.
  EXPECT_THROW(fm_test::make<Bijector>("{type: flow_matching, guidance: 1.0}", 2),
               flows::ConfigError);
}

}  // namespace
