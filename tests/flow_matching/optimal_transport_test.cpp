// Minibatch optimal transport: the assignment is optimal (against brute force)
// and Sinkhorn's plan concentrates on it as the regularization shrinks.
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <set>

#include <flows/error.hpp>

#include "optimal_transport.hpp"

namespace {

using flows::Index;
using flows::Matrix;
using flows::Real;
using flows::Rng;
using namespace flows::flow_matching;

Real total(const Matrix& cost, const std::vector<Index>& assignment) {
  Real s = 0;
  for (Index i = 0; i < assignment.size(); ++i) s += cost(i, assignment[i]);
  return s;
}

TEST(LinearAssignment, IsOptimalOnSmallCasesAgainstBruteForce) {
  Rng rng(3);
  for (Index n = 1; n <= 7; ++n) {
    for (int trial = 0; trial < 6; ++trial) {
      // Squared distances (the CFM cost) and, for generality, arbitrary costs
      // with ties.
      Matrix cost = trial % 2 ? squared_distances(rng.normal(n, 2), rng.normal(n, 2))
                              : Matrix(xt::floor(rng.uniform(n, n) * 4));
      const std::vector<Index> found = linear_assignment(cost);
      ASSERT_EQ(found.size(), n);
      EXPECT_EQ(std::set<Index>(found.begin(), found.end()).size(), n) << "not a permutation";
      std::vector<Index> p(n);
      std::iota(p.begin(), p.end(), Index{0});
      Real best = total(cost, p);
      while (std::next_permutation(p.begin(), p.end())) best = std::min(best, total(cost, p));
      EXPECT_NEAR(total(cost, found), best, 1e-12) << "n = " << n << ", trial " << trial;
    }
  }
}

TEST(LinearAssignment, FindsTheIdentityForPointsPairedWithThemselves) {
  Rng rng(4);
  const Matrix a = rng.normal(64, 3);
  const std::vector<Index> found = linear_assignment(squared_distances(a, a));
  for (Index i = 0; i < 64; ++i) EXPECT_EQ(found[i], i);
}

TEST(LinearAssignment, RejectsNonSquareAndNonFiniteCosts) {
  EXPECT_THROW(linear_assignment(Matrix({2, 3}, 1.0)), flows::DataError);
  Matrix bad({2, 2}, 1.0);
  bad(0, 0) = bad(0, 1) = INFINITY;
  EXPECT_THROW(linear_assignment(bad), flows::NumericalError);
}

TEST(Sinkhorn, SmallRegularizationRecoversTheOptimalPairing) {
  Rng rng(5);
  const Matrix a = rng.normal(20, 2);
  Matrix b = a + 0.01 * rng.normal(20, 2);
  const Matrix cost = squared_distances(a, b);
  const std::vector<Index> exact = linear_assignment(cost);
  const std::vector<Index> soft = sinkhorn_pairing(cost, 1e-3, 200, rng);
  Index agree = 0;
  for (Index i = 0; i < 20; ++i) agree += soft[i] == exact[i];
  EXPECT_GE(agree, 19u);
}

}  // namespace
