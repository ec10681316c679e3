// The ODE solvers through the registry: order of convergence, adaptive error
// control, failure instead of looping, backwards integration.
#include <gtest/gtest.h>

#include <cmath>
#include <sstream>
#include <string>

#include <flows/error.hpp>
#include <flows/ode_solver.hpp>

#include "fm_test_support.hpp"

namespace {

using flows::Index;
using flows::Matrix;
using flows::OdeSolver;
using flows::OdeStats;
using flows::Real;

// x' = −λ x per column, λ = (1, 2): x(t) = x(t0) e^{−λ (t − t0)}.
void decay(const Matrix& x, Real, Matrix& dxdt) {
  dxdt.resize(x.shape());
  for (Index i = 0; i < x.shape(0); ++i) {
    dxdt(i, 0) = -x(i, 0);
    dxdt(i, 1) = -2 * x(i, 1);
  }
}

// q' = p, p' = −q: a rotation, (q, p)(t) = R(t − t0) (q, p)(t0).
void oscillator(const Matrix& x, Real, Matrix& dxdt) {
  dxdt.resize(x.shape());
  for (Index i = 0; i < x.shape(0); ++i) {
    dxdt(i, 0) = x(i, 1);
    dxdt(i, 1) = -x(i, 0);
  }
}

Matrix start() {
  Matrix x({3, 2});
  x(0, 0) = 1.0, x(0, 1) = 0.0;
  x(1, 0) = -0.5, x(1, 1) = 2.0;
  x(2, 0) = 0.3, x(2, 1) = -1.2;
  return x;
}

Matrix exact(bool rotation, const Matrix& x0, Real span) {
  Matrix x(x0.shape());
  for (Index i = 0; i < x0.shape(0); ++i) {
    if (rotation) {
      x(i, 0) = std::cos(span) * x0(i, 0) + std::sin(span) * x0(i, 1);
      x(i, 1) = -std::sin(span) * x0(i, 0) + std::cos(span) * x0(i, 1);
    } else {
      x(i, 0) = x0(i, 0) * std::exp(-span);
      x(i, 1) = x0(i, 1) * std::exp(-2 * span);
    }
  }
  return x;
}

Real max_error(const Matrix& a, const Matrix& b) {
  Real worst = 0;
  for (Index k = 0; k < a.size(); ++k) worst = std::max(worst, std::abs(a.flat(k) - b.flat(k)));
  return worst;
}

struct OrderCase {
  std::string method;
  int order;
  Index steps;  // the coarser of the two step counts
};

class FixedStepOrder : public ::testing::TestWithParam<OrderCase> {};

// Halving the step divides the global error by about 2^order.
TEST_P(FixedStepOrder, HalvingTheStepCutsTheErrorByTwoToTheOrder) {
  const OrderCase c = GetParam();
  for (bool rotation : {false, true}) {
    for (Real direction : {1.0, -1.0}) {
      SCOPED_TRACE(std::string(rotation ? "oscillator" : "decay") +
                   (direction > 0 ? " forwards" : " backwards"));
      const Real t0 = 0.5, t1 = t0 + direction * 2.0;
      Real error[2];
      for (int k = 0; k < 2; ++k) {
        auto solver = fm_test::make<OdeSolver>("{type: " + c.method +
                                               ", steps: " + std::to_string(c.steps << k) + "}");
        Matrix x = start();
        const OdeStats stats = solver->integrate(rotation ? oscillator : decay, x, t0, t1);
        EXPECT_EQ(stats.function_evaluations, (c.steps << k) * static_cast<Index>(c.order));
        error[k] = max_error(x, exact(rotation, start(), t1 - t0));
      }
      const Real observed = std::log2(error[0] / error[1]);
      EXPECT_NEAR(observed, c.order, 0.25) << "errors " << error[0] << ", " << error[1];
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Methods, FixedStepOrder,
                         ::testing::Values(OrderCase{"euler", 1, 400},
                                           OrderCase{"midpoint", 2, 100}, OrderCase{"rk4", 4, 20}),
                         [](const auto& info) { return info.param.method; });

TEST(Dopri5, MeetsItsToleranceForwardsAndBackwards) {
  for (Real tol : {1e-4, 1e-6, 1e-8, 1e-10}) {
    for (Real direction : {1.0, -1.0}) {
      SCOPED_TRACE("tolerance " + std::to_string(tol) + (direction > 0 ? " fwd" : " bwd"));
      std::ostringstream yaml;
      yaml << "{type: dopri5, rtol: " << tol << ", atol: " << tol << ", norm: max}";
      auto solver = fm_test::make<OdeSolver>(yaml.str());
      for (bool rotation : {false, true}) {
        Matrix x = start();
        solver->integrate(rotation ? oscillator : decay, x, 0.0, direction * 3.0);
        // The controller bounds the local error per step relative to the
        // state (atol + rtol |x|); the global error of a non-stiff problem
        // stays within a small multiple of it. (Decay run backwards grows
        // the state to e^6 |x0|.)
        const Matrix expected = exact(rotation, start(), direction * 3.0);
        for (Index k = 0; k < x.size(); ++k)
          EXPECT_LT(std::abs(x.flat(k) - expected.flat(k)),
                    20 * tol * (1 + std::abs(expected.flat(k))));
      }
    }
  }
}

TEST(Dopri5, CountsEveryFunctionEvaluation) {
  for (const char* yaml : {"{type: dopri5, rtol: 1.0e-7, atol: 1.0e-7}",
                           "{type: dopri5, rtol: 1.0e-7, atol: 1.0e-7, first_step: 0.5}"}) {
    SCOPED_TRACE(yaml);
    auto solver = fm_test::make<OdeSolver>(yaml);
    Index calls = 0;
    Matrix x = start();
    const OdeStats stats = solver->integrate(
        [&calls](const Matrix& s, Real t, Matrix& d) {
          ++calls;
          oscillator(s, t, d);
        },
        x, 0.0, 4.0);
    EXPECT_EQ(stats.function_evaluations, calls);
    // Six new stages per attempted step (FSAL), f(x0), and one more for the
    // automatic starting step.
    const Index start_cost = std::string(yaml).find("first_step") == std::string::npos ? 2 : 1;
    EXPECT_EQ(calls, start_cost + 6 * (stats.steps_accepted + stats.steps_rejected));
    EXPECT_GT(stats.steps_accepted, 3u);
  }
}

TEST(Dopri5, RejectsATooLargeStepAndStillMeetsTheTolerance) {
  // A first step of the whole span at tolerance 1e-9 must be rejected.
  auto solver =
      fm_test::make<OdeSolver>("{type: dopri5, rtol: 1.0e-9, atol: 1.0e-9, first_step: 3.0}");
  Matrix x = start();
  const OdeStats stats = solver->integrate(oscillator, x, 0.0, 3.0);
  EXPECT_GE(stats.steps_rejected, 1u);
  EXPECT_LT(max_error(x, exact(true, start(), 3.0)), 1e-7);
}

TEST(Dopri5, RejectsStepsOnAStiffProblemAndNotOnAnEasyOne) {
  // x' = −500 (x − cos t): explicit stability limits the step, so the
  // controller keeps running into rejections.
  auto stiff = [](const Matrix& x, Real t, Matrix& d) {
    d.resize(x.shape());
    for (Index k = 0; k < x.size(); ++k) d.flat(k) = -500 * (x.flat(k) - std::cos(t));
  };
  auto solver = fm_test::make<OdeSolver>("{type: dopri5, rtol: 1.0e-6, atol: 1.0e-6}");
  Matrix x = start();
  const OdeStats hard = solver->integrate(stiff, x, 0.0, 2.0);
  EXPECT_GT(hard.steps_rejected, 5u);
  // Near the slow manifold x ≈ cos t + sin t / 500.
  EXPECT_NEAR(x(0, 0), std::cos(2.0), 1e-2);

  Matrix y = start();
  const OdeStats easy = solver->integrate(decay, y, 0.0, 2.0);
  EXPECT_LE(easy.steps_rejected, 1u);
}

// b − b̂ for the two embedded order-4 solutions of the Dormand–Prince pair:
// Dormand & Prince 1980 (b̂ = 5179/57600, 0, 7571/16695, 393/640,
// −92097/339200, 187/2100, 1/40) and Shampine 1986 (b̂ = 1951/21600, 0,
// 22642/50085, 451/720, −12231/42400, 649/6300, 1/60), b = 35/384, 0,
// 500/1113, 125/192, −2187/6784, 11/84, 0. The solver's `shampine` scales
// the former's estimate by 2/3; that is exact only if every weight agrees.
TEST(Dopri5, ShampinesErrorWeightsAreTwoThirdsOfDormandAndPrinces) {
  const Real b[7] = {35.0 / 384, 0, 500.0 / 1113, 125.0 / 192, -2187.0 / 6784, 11.0 / 84, 0};
  const Real dormand_prince[7] = {
      5179.0 / 57600, 0, 7571.0 / 16695, 393.0 / 640, -92097.0 / 339200, 187.0 / 2100, 1.0 / 40};
  const Real shampine[7] = {1951.0 / 21600, 0,       22642.0 / 50085, 451.0 / 720, -12231.0 / 42400,
                            649.0 / 6300,   1.0 / 60};
  for (int i = 0; i < 7; ++i)
    EXPECT_NEAR(b[i] - shampine[i], (b[i] - dormand_prince[i]) * 2 / 3, 1e-15) << "weight " << i;
}

// Scaling the estimate by 2/3 is scaling both tolerances by 3/2 in the step
// control: from the same first step (the automatic one reads the tolerances
// too), the same steps, evaluations and end point.
TEST(Dopri5, ShampinesEstimateTakesTheStepsOfDormandAndPrincesAtOneAndAHalfTimesTheTolerance) {
  auto shampine = fm_test::make<OdeSolver>(
      "{type: dopri5, rtol: 1.0e-6, atol: 1.0e-6, first_step: 0.1, error_estimate: shampine}");
  auto wider =
      fm_test::make<OdeSolver>("{type: dopri5, rtol: 1.5e-6, atol: 1.5e-6, first_step: 0.1}");
  auto standard =
      fm_test::make<OdeSolver>("{type: dopri5, rtol: 1.0e-6, atol: 1.0e-6, first_step: 0.1}");
  Matrix a = start(), b = start(), c = start();
  const OdeStats sa = shampine->integrate(oscillator, a, 0.0, 6.0);
  const OdeStats sb = wider->integrate(oscillator, b, 0.0, 6.0);
  const OdeStats sc = standard->integrate(oscillator, c, 0.0, 6.0);
  EXPECT_EQ(sa.function_evaluations, sb.function_evaluations);
  EXPECT_EQ(sa.steps_accepted, sb.steps_accepted);
  EXPECT_LT(max_error(a, b), 1e-12);
  EXPECT_LT(sa.function_evaluations, sc.function_evaluations);
  EXPECT_LT(max_error(a, exact(true, start(), 6.0)), 20 * 1.5e-6 * 2);
}

TEST(Dopri5, ABlowUpFailsWithNumericalErrorInsteadOfLooping) {
  // x' = x² from x(0) = 1 is 1 / (1 − t): infinite at t = 1.
  auto blow_up = [](const Matrix& x, Real, Matrix& d) {
    d.resize(x.shape());
    for (Index k = 0; k < x.size(); ++k) d.flat(k) = x.flat(k) * x.flat(k);
  };
  auto solver = fm_test::make<OdeSolver>(
      "{type: dopri5, rtol: 1.0e-6, atol: 1.0e-6, min_step: 1.0e-8, max_steps: 1000000}");
  Matrix x = xt::ones<Real>({1, 1});
  try {
    solver->integrate(blow_up, x, 0.0, 2.0);
    FAIL() << "no error";
  } catch (const flows::NumericalError& e) {
    EXPECT_NE(std::string(e.what()).find("min_step"), std::string::npos) << e.what();
  }
  auto capped = fm_test::make<OdeSolver>("{type: dopri5, max_steps: 20}");
  Matrix y = xt::ones<Real>({1, 1});
  try {
    capped->integrate(blow_up, y, 0.0, 2.0);
    FAIL() << "no error";
  } catch (const flows::NumericalError& e) {
    EXPECT_NE(std::string(e.what()).find("max_steps"), std::string::npos) << e.what();
  }
}

TEST(Dopri5, ANonFiniteFieldIsANumericalError) {
  auto nan_field = [](const Matrix& x, Real t, Matrix& d) {
    d.resize(x.shape());
    for (Index k = 0; k < x.size(); ++k) d.flat(k) = t > 0.5 ? NAN : 1.0;
  };
  for (const char* yaml : {"{type: dopri5}", "{type: rk4, steps: 10}"}) {
    auto solver = fm_test::make<OdeSolver>(yaml);
    Matrix x = start();
    EXPECT_THROW(solver->integrate(nan_field, x, 0.0, 1.0), flows::NumericalError) << yaml;
  }
}

// A pure relative tolerance has no scale where a component is 0, and the
// log-determinant column of every density solve starts at exactly 0: atol: 0
// is refused when the pipeline is read, naming the key.
TEST(Dopri5, ZeroAbsoluteToleranceIsRefusedNamingTheKey) {
  for (const char* yaml : {"{type: dopri5, atol: 0}", "{type: dopri5, rtol: 0, atol: 0}"}) {
    try {
      fm_test::make<OdeSolver>(yaml);
      FAIL() << yaml << ": no error";
    } catch (const flows::ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find("atol"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("> 0"), std::string::npos) << e.what();
    }
  }
  EXPECT_NO_THROW(fm_test::make<OdeSolver>("{type: dopri5, rtol: 0, atol: 1.0e-6}"));
}

TEST(OdeSolvers, BadOptionsAreConfigErrors) {
  EXPECT_THROW(fm_test::make<OdeSolver>("{type: rk4, steps: 0}"), flows::ConfigError);
  EXPECT_THROW(fm_test::make<OdeSolver>("{type: dopri5, rtol: -1}"), flows::ConfigError);
  EXPECT_THROW(fm_test::make<OdeSolver>("{type: dopri5, norm: l1}"), flows::ConfigError);
  EXPECT_THROW(fm_test::make<OdeSolver>("{type: dopri5, error_estimate: fehlberg}"),
               flows::ConfigError);
  EXPECT_THROW(fm_test::make<OdeSolver>("{type: dopri5, stpes: 3}"), flows::ConfigError);
  EXPECT_THROW(fm_test::make<OdeSolver>("{type: rk5}"), flows::ConfigError);
}

}  // namespace
