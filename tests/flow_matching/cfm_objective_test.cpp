// The cfm objective: its gradients with respect to the field's parameters and
// to the context against finite differences (with independent and optimal-
// transport couplings, with and without context dropout), and the pairing
// that keeps each context row with its own data row.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "cfm_objective.hpp"

namespace {

using flows::Index;
using flows::Matrix;
using flows::Real;
using flows::Rng;
using flows::flow_matching::CfmObjective;
using flows::flow_matching::CfmOptions;
using flows::flow_matching::VelocityField;
using flows::flow_matching::VelocityFieldOptions;

struct ObjectiveCase {
  std::string name;
  std::string coupling;
  std::string ot_solver;
  Real context_dropout;
};

class CfmObjectiveTest : public ::testing::TestWithParam<ObjectiveCase> {
 protected:
  CfmObjectiveTest() : field_(2, 3, field_options(), init_) {
    options_.coupling = GetParam().coupling;
    options_.ot_solver = GetParam().ot_solver;
    options_.context_dropout = GetParam().context_dropout;
  }
  static VelocityFieldOptions field_options() {
    VelocityFieldOptions o;
    o.hidden = {12, 12};
    o.activation = "silu";
    o.time_frequencies = 1;
    return o;
  }
  // Noise from the objective's own draws, so one seed fixes every draw.
  static void noise(Index n, Rng& rng, Matrix& x0) { x0 = rng.normal(n, 2); }

  Rng init_{4};
  VelocityField field_;
  CfmOptions options_;
};

// With the draws fixed by a seed, L is a smooth function of the context and
// the parameters (the pairing depends on x0 and x1 only).
TEST_P(CfmObjectiveTest, GradientsMatchFiniteDifferences) {
  CfmObjective objective(options_, field_, &noise);
  Rng rng(1);
  const Matrix x1 = rng.normal(8, 2), c = rng.normal(8, 3);
  auto loss_at = [&](const Matrix& context) {
    Rng draws(42);
    return objective.loss(x1, context, draws);
  };
  for (auto* p : field_.parameters()) p->zero_grad();
  Matrix grad_c = xt::zeros<Real>({Index(8), Index(3)});
  Rng draws(42);
  const Real loss = objective.loss_and_gradient(x1, c, draws, &grad_c);
  EXPECT_NEAR(loss, loss_at(c), 1e-12);
  const Real h = 1e-6;
  Real norm = 0;
  for (Index i = 0; i < 8; ++i)
    for (Index j = 0; j < 3; ++j) {
      Matrix cp = c, cm = c;
      cp(i, j) += h;
      cm(i, j) -= h;
      const Real numeric = (loss_at(cp) - loss_at(cm)) / (2 * h);
      EXPECT_NEAR(grad_c(i, j), numeric, 1e-6 * (1 + std::abs(numeric))) << "dL/dc " << i << j;
      norm += std::abs(numeric);
    }
  EXPECT_GT(norm, 1e-4) << "the loss should depend on the context";
  for (auto* p : field_.parameters())
    for (Index k = 0; k < p->value.size(); k += 5) {  // every fifth entry: plenty, and quick
      const Real saved = p->value.flat(k);
      p->value.flat(k) = saved + h;
      const Real up = loss_at(c);
      p->value.flat(k) = saved - h;
      const Real down = loss_at(c);
      p->value.flat(k) = saved;
      const Real numeric = (up - down) / (2 * h);
      EXPECT_NEAR(p->grad.flat(k), numeric, 1e-6 * (1 + std::abs(numeric))) << p->name << k;
    }
}

INSTANTIATE_TEST_SUITE_P(Couplings, CfmObjectiveTest,
                         ::testing::Values(ObjectiveCase{"independent", "independent", "exact", 0},
                                           ObjectiveCase{"exact_ot", "ot", "exact", 0},
                                           ObjectiveCase{"sinkhorn", "ot", "sinkhorn", 0},
                                           ObjectiveCase{"exact_ot_dropout", "ot", "exact", 0.4}),
                         [](const auto& info) { return info.param.name; });

// Exact OT pairs noise to data rows whatever order the rows come in, so
// shuffling the data rows together with their context rows leaves the loss
// unchanged; shuffling the context alone changes it.
TEST(CfmObjective, OptimalTransportKeepsEachContextWithItsDataRow) {
  Rng init(2);
  VelocityFieldOptions field_options;
  field_options.hidden = {8};
  VelocityField field(2, 1, field_options, init);
  CfmOptions options;
  options.coupling = "ot";
  CfmObjective objective(options, field,
                         [](Index n, Rng& rng, Matrix& x0) { x0 = rng.normal(n, 2); });
  Rng rng(3);
  const Index n = 16;
  const Matrix x1 = rng.normal(n, 2) * 2.0;
  Matrix c({n, 1});
  for (Index i = 0; i < n; ++i) c(i, 0) = x1(i, 0) - x1(i, 1);  // each row's own context
  Matrix x1_shuffled({n, 2}), c_shuffled({n, 1});
  for (Index i = 0; i < n; ++i) {
    const Index from = (7 * i + 3) % n;  // a permutation (7 and 16 are coprime)
    x1_shuffled(i, 0) = x1(from, 0);
    x1_shuffled(i, 1) = x1(from, 1);
    c_shuffled(i, 0) = c(from, 0);
  }
  auto loss = [&](const Matrix& x, const Matrix& context) {
    Rng draws(9);
    return objective.loss(x, context, draws);
  };
  const Real reference = loss(x1, c);
  EXPECT_NEAR(loss(x1_shuffled, c_shuffled), reference, 1e-12 * (1 + reference));
  EXPECT_GT(std::abs(loss(x1, c_shuffled) - reference), 1e-6);
}

}  // namespace
