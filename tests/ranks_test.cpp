// Work shared across the ranks of a job (issue 14), on ranks that are
// threads of this process (thread_ranks.hpp), so that the sharing itself is
// tested without MPI and under the sanitizers: each rank scores, samples
// and trains on its share, and the job gets the numbers of one process.
#include "flows/ranks.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "flows/bijector.hpp"
#include "flows/pipeline.hpp"
#include "flows/rng.hpp"
#include "flows/testing/assertions.hpp"
#include "flows/trainer.hpp"
#include "runner_support.hpp"
#include "thread_ranks.hpp"

namespace flows {
namespace {

using test_support::run_on_ranks;
using test_support::ThreadRanks;

TEST(Ranks, SharesCoverTheRowsInRankOrderOnWholeGroups) {
  for (int size : {1, 2, 3}) {
    ThreadRanks::Job job(size);
    for (Index granule : {Index(1), kInferenceRowGroup})
      for (Index rows : {0, 1, 255, 256, 257, 1000, 5000}) {
        Index next = 0;
        for (int r = 0; r < size; ++r) {
          ThreadRanks ranks(job, r);
          const auto [begin, end] = share_of(rows, &ranks, granule);
          EXPECT_EQ(begin, next) << rows << " rows, rank " << r << " of " << size;
          EXPECT_LE(begin, end);
          EXPECT_EQ(begin % granule, 0) << rows << " rows, rank " << r << " of " << size;
          next = end;
        }
        EXPECT_EQ(next, rows) << size << " ranks";
      }
  }
  EXPECT_EQ(share_of(300, nullptr, kInferenceRowGroup), std::make_pair(Index(0), Index(300)));
}

TEST(Ranks, TheMeanOverRanksIsOneProcesssMeanAndEachRankSumsItsShare) {
  Rng rng(5);
  const Matrix values = rng.normal(1000, 1);
  Real direct = 0;
  for (Real v : values) direct += v;
  direct /= 1000;
  std::vector<std::pair<Index, Index>> asked(3);
  std::vector<Real> got(3);
  run_on_ranks(3, [&](Ranks& ranks) {
    got[ranks.rank()] = mean_over_ranks(&ranks, 1000, [&](Index begin, Index end) {
      asked[ranks.rank()] = {begin, end};
      Real sum = 0;
      for (Index i = begin; i < end; ++i) sum += values(i, 0);
      return sum;
    });
  });
  for (int r = 0; r < 3; ++r) {
    EXPECT_NEAR(got[r], direct, 1e-14) << "rank " << r;
    EXPECT_EQ(asked[r], rank_share(1000, r, 3));
  }
}

TEST(Ranks, RankZeroGathersEveryRanksRowsInOrderEvenWithAnEmptyShare) {
  const Matrix all = {{1, 2, 3}, {4, 5, 6}, {7, 8, 9}, {10, 11, 12}, {13, 14, 15}};
  for (Index rows : {Index(5), Index(1)}) {
    const Matrix used = xt::view(all, xt::range(0, rows), xt::all());
    std::vector<Matrix> got(2);
    run_on_ranks(2, [&](Ranks& ranks) {
      const auto [begin, end] = share_of(rows, &ranks);
      const Matrix share = xt::view(used, xt::range(begin, end), xt::all());
      got[ranks.rank()] = gather_rows(&ranks, share, 3);
    });
    EXPECT_TRUE(testing::all_near(got[0], used, 0, "gathered rows")) << rows << " rows";
    EXPECT_EQ(got[1].size(), 0u);
  }
}

// A trained MAF on integer data with two dequantization draws per row, so
// that the NLL of a split depends on every draw lining up with its row.
std::string dequantized_pipeline() {
  return "name: ranks\nseed: 4\nthreads: 1\n"
         "data: {type: binomials, n_train: 2000, n_val: 300, n_test: 1000, trials: [6, 9], "
         "probs: [0.5, 0.4], dequantize: uniform, dequantize_samples: 2}\n"
         "model:\n  precision: float64\n"
         "  bijectors: [{type: maf, layers: 2, hidden: [16, 16]}]\n"
         "trainer: {type: mle, batch_size: 128, steps: 60, eval_every: 20}\n";
}

TEST(Ranks, TheNllOfASplitOnTwoRanksIsOneProcesssWithTheSameDraws) {
  Pipeline p = Pipeline::parse(dequantized_pipeline(), "ranks.yaml");
  p.train({});
  const Real expected = p.split_nll(2);
  // The draws matter: other noise gives another value.
  Rng other = p.eval_rng(1);
  const Real with_other_noise =
      p.dequantize.mean_nll(*p.model.flow, p.data.test, p.data.test_context, other);
  ASSERT_GT(std::abs(with_other_noise - expected), 1e-6);
  // 1000 rows: rank 0 scores [0, 512), rank 1 [512, 1000).
  std::vector<Real> got(2);
  run_on_ranks(2, [&](Ranks& ranks) { got[ranks.rank()] = p.split_nll(2, &ranks); });
  EXPECT_NEAR(got[0], expected, 1e-12 * std::abs(expected));
  EXPECT_EQ(got[0], got[1]);
}

TEST(Ranks, SamplesOnTwoRanksAreOneProcesssRowsOnRankZero) {
  Pipeline p = Pipeline::parse(dequantized_pipeline(), "ranks.yaml");
  p.train({});
  Rng rng(11);
  const Matrix expected = p.sample(1000, rng);
  std::vector<Matrix> got(2);
  run_on_ranks(2, [&](Ranks& ranks) {
    Rng same(11);
    got[ranks.rank()] = p.sample(1000, same, {}, &ranks);
  });
  EXPECT_TRUE(testing::all_near(got[0], expected, 1e-12, "samples gathered on rank 0"));
  EXPECT_EQ(got[1].size(), 0u);
  // Fewer samples than a row group: rank 1 has none to invert.
  Rng few_rng(12);
  const Matrix few = p.sample(100, few_rng);
  run_on_ranks(2, [&](Ranks& ranks) {
    Rng same(12);
    got[ranks.rank()] = p.sample(100, same, {}, &ranks);
  });
  EXPECT_TRUE(testing::all_near(got[0], few, 1e-12, "100 samples gathered on rank 0"));
}

// batch_norm between the MAF layers and an actnorm in front: both normalize
// by statistics of the whole mini-batch (actnorm for its initialisation),
// which on two ranks are summed over the ranks' shares, forward and
// backward. The parameters after training, the running averages among
// them, and the validation loss are one process's up to summation order.
TEST(Ranks, BatchNormAndActnormTrainOnTwoRanksAsOnOneProcess) {
  const std::string yaml =
      "name: ranks_bn\nseed: 2\nthreads: 1\n"
      "data: {type: moons, n_train: 1000, n_val: 300, n_test: 100}\n"
      "model:\n  precision: float64\n"
      "  bijectors:\n    - {type: actnorm}\n"
      "    - {type: maf, layers: 3, hidden: [16, 16], batch_norm: true}\n"
      "trainer: {type: mle, batch_size: 100, steps: 40, eval_every: 10,\n"
      "          optimizer: {type: adam, lr: 3.0e-3}}\n";
  Pipeline one = Pipeline::parse(yaml, "bn.yaml");
  const TrainReport alone = one.train({});
  std::vector<Pipeline> job;
  job.push_back(Pipeline::parse(yaml, "bn.yaml"));
  job.push_back(Pipeline::parse(yaml, "bn.yaml"));
  std::vector<TrainReport> reports(2);
  run_on_ranks(2, [&](Ranks& ranks) {
    TrainerCallbacks callbacks;
    callbacks.ranks = &ranks;
    reports[ranks.rank()] = job[ranks.rank()].train(callbacks);
  });
  const ParameterList expected = one.model.flow->parameters();
  for (int r = 0; r < 2; ++r) {
    const ParameterList got = job[r].model.flow->parameters();
    ASSERT_EQ(got.size(), expected.size());
    for (std::size_t k = 0; k < got.size(); ++k)
      EXPECT_TRUE(testing::all_near(got[k]->value, expected[k]->value, 1e-9,
                                    "rank " + std::to_string(r) + ": " + got[k]->name));
    EXPECT_NEAR(reports[r].best_val_loss, alone.best_val_loss, 1e-9);
  }
}

// A rank with no row of a batch is fine for independent rows: its gradient
// is zero and the others carry the batch.
TEST(Ranks, ABatchSmallerThanTheRanksTrainsAsOneProcess) {
  const std::string yaml =
      "name: ranks_small\nseed: 2\nthreads: 1\n"
      "data: {type: moons, n_train: 200, n_val: 50, n_test: 50}\n"
      "model:\n  precision: float64\n  bijectors: [{type: maf, layers: 1, hidden: [8]}]\n"
      "trainer: {type: mle, batch_size: 2, steps: 20, eval_every: 10}\n";
  Pipeline one = Pipeline::parse(yaml, "small.yaml");
  one.train({});
  std::vector<Pipeline> job;
  for (int r = 0; r < 3; ++r) job.push_back(Pipeline::parse(yaml, "small.yaml"));
  run_on_ranks(3, [&](Ranks& ranks) {
    TrainerCallbacks callbacks;
    callbacks.ranks = &ranks;
    job[ranks.rank()].train(callbacks);
  });
  const ParameterList expected = one.model.flow->parameters();
  const ParameterList got = job[2].model.flow->parameters();
  for (std::size_t k = 0; k < got.size(); ++k)
    EXPECT_TRUE(testing::all_near(got[k]->value, expected[k]->value, 1e-9, got[k]->name));
}

}  // namespace
}  // namespace flows
