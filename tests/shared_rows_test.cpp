// Each rank of a job holds only its share of the training rows (issue 14):
// the readers' row selections are the whole readers' rows with the others
// left out, a file data set's shares are one process's rows, and a pipeline
// on shared rows fits, scores and trains as one process. The ranks are
// threads of this process (thread_ranks.hpp).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "flows/auto_tail_bound.hpp"
#include "flows/checkpoint.hpp"
#include "flows/data/csv.hpp"
#include "flows/data/datasets.hpp"
#include "flows/data/npy.hpp"
#include "flows/pipeline.hpp"
#include "flows/testing/assertions.hpp"
#include "flows/trainer.hpp"
#include "runner_support.hpp"
#include "thread_ranks.hpp"

namespace flows {
namespace {

namespace fs = std::filesystem;
using test_support::read_file;
using test_support::run_on_ranks;
using test_support::temp_dir;

Matrix kept_rows(const Matrix& m, const std::vector<bool>& keep) {
  std::vector<Index> rows;
  for (Index r = 0; r < m.shape(0); ++r)
    if (keep[r]) rows.push_back(r);
  Matrix out({static_cast<Index>(rows.size()), m.shape(1)});
  for (Index i = 0; i < rows.size(); ++i)
    for (Index c = 0; c < m.shape(1); ++c) out(i, c) = m(rows[i], c);
  return out;
}

std::vector<bool> every_third(Index rows) {
  std::vector<bool> keep(rows);
  for (Index r = 0; r < rows; ++r) keep[r] = r % 3 == 1;
  return keep;
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(SharedRows, CsvRowsAreReadCsvsRowsWithTheOthersLeftOut) {
  const fs::path dir = temp_dir("shared_csv");
  const fs::path path = dir / "rows.csv";
  {
    std::ofstream out(path);
    out << "\xEF\xBB\xBF"
        << "a, b ,c\n# a comment\n\n";
    for (int i = 0; i < 50; ++i) {
      out << i << "," << i * 0.5 << "," << -i << "\n";
      if (i % 7 == 0) out << "\n# between rows\n";
    }
  }
  std::vector<std::string> names;
  const Matrix whole = read_csv(path.string(), &names);
  const CsvRowCount count = count_csv_rows(path.string());
  EXPECT_EQ(count.rows, 50u);
  EXPECT_EQ(count.columns, 3u);
  EXPECT_EQ(count.header, names);
  const std::vector<bool> keep = every_third(50);
  std::vector<std::string> kept_names;
  const Matrix kept = read_csv_rows(path.string(), keep, &kept_names);
  EXPECT_EQ(kept_names, names);
  EXPECT_TRUE(testing::all_near(kept, kept_rows(whole, keep), 0.0, "every third row"));
  // Rows past the selection's end are not kept.
  EXPECT_EQ(read_csv_rows(path.string(), std::vector<bool>{true, true}).shape(0), 2u);
}

TEST(SharedRows, TheReadersHandEachKeptValueToTheCallerInFileOrder) {
  const fs::path dir = temp_dir("shared_into");
  Matrix m({Index{40}, Index{3}});
  for (Index i = 0; i < m.size(); ++i) m.data()[i] = 0.5 * static_cast<Real>(i) - 7;
  write_csv((dir / "rows.csv").string(), m, {"a", "b", "c"});
  write_npy((dir / "rows.npy").string(), m);
  const std::vector<bool> keep = every_third(40);
  const Matrix expected = kept_rows(m, keep);
  std::vector<Real> csv_values, npy_values;
  std::vector<Index> csv_rows;
  std::vector<std::string> names;
  read_csv_rows_into((dir / "rows.csv").string(), keep,
                     [&](Index row, const Real* values) {
                       csv_rows.push_back(row);
                       csv_values.insert(csv_values.end(), values, values + 3);
                     },
                     &names);
  read_npy_rows_into((dir / "rows.npy").string(), keep,
                     [&](Index, Index, Real value) { npy_values.push_back(value); });
  EXPECT_EQ(names, (std::vector<std::string>{"a", "b", "c"}));
  ASSERT_EQ(csv_rows.size(), expected.shape(0));
  for (Index k = 0; k < csv_rows.size(); ++k) EXPECT_EQ(csv_rows[k], 3 * k + 1);
  ASSERT_EQ(csv_values.size(), expected.size());
  ASSERT_EQ(npy_values.size(), expected.size());
  for (Index k = 0; k < expected.size(); ++k) {
    EXPECT_EQ(csv_values[k], expected.data()[k]);
    EXPECT_EQ(npy_values[k], expected.data()[k]);
  }
}

TEST(SharedRows, ACsvRowThatIsNotKeptIsNotParsedButItsFieldsAreCounted) {
  const fs::path dir = temp_dir("shared_csv_faults");
  const fs::path text = dir / "text.csv";
  std::ofstream(text) << "a,b\n1,2\n3,4\n5,oops\n7,8\n";
  // Data row 2 (line 4) holds the text: only the rank that keeps it parses it.
  EXPECT_EQ(read_csv_rows(text.string(), {true, true, false, true}).shape(0), 3u);
  const std::string kept = error_of([&] { read_csv_rows(text.string(), {false, false, true}); });
  EXPECT_TRUE(contains(kept, "row 4, column 2 ('b'): text 'oops'")) << kept;
  // A row of the wrong width is every reader's error.
  const fs::path narrow = dir / "narrow.csv";
  std::ofstream(narrow) << "a,b\n1,2\n3\n5,6\n";
  const std::string width = error_of([&] { read_csv_rows(narrow.string(), {true, false, true}); });
  EXPECT_TRUE(contains(width, "row 3, column 2: found 1 field where 2 are expected")) << width;
  EXPECT_TRUE(contains(error_of([&] { count_csv_rows(narrow.string()); }), "found 1 field"));
}

// A Fortran-ordered .npy file (columns one after another) of m.
void write_fortran_npy(const fs::path& path, const Matrix& m) {
  std::string header = "{'descr': '<f8', 'fortran_order': True, 'shape': (" +
                       std::to_string(m.shape(0)) + ", " + std::to_string(m.shape(1)) + "), }";
  header.append((64 - (10 + header.size() + 1) % 64) % 64, ' ');
  header.push_back('\n');
  std::ofstream out(path, std::ios::binary);
  out.write("\x93NUMPY\x01\x00", 8);
  const unsigned char length[2] = {static_cast<unsigned char>(header.size() & 0xFF),
                                   static_cast<unsigned char>(header.size() >> 8)};
  out.write(reinterpret_cast<const char*>(length), 2);
  out << header;
  for (Index c = 0; c < m.shape(1); ++c)
    for (Index r = 0; r < m.shape(0); ++r) {
      const double v = m(r, c);
      out.write(reinterpret_cast<const char*>(&v), 8);
    }
}

TEST(SharedRows, NpyRowsAreReadNpysRowsWithTheOthersLeftOut) {
  const fs::path dir = temp_dir("shared_npy");
  // 300,000 rows of 2 float64: more than one 4 MiB block, so that a block
  // with no kept row is skipped.
  const Index rows = 300000;
  Matrix m({rows, Index{2}});
  for (Index r = 0; r < rows; ++r) {
    m(r, 0) = static_cast<Real>(r);
    m(r, 1) = -0.5 * static_cast<Real>(r);
  }
  const fs::path c_order = dir / "c.npy";
  write_npy(c_order.string(), m);
  EXPECT_EQ(npy_shape(c_order.string()).rows, rows);
  EXPECT_EQ(npy_shape(c_order.string()).columns, 2u);
  std::vector<bool> late(rows, false);
  for (Index r = 290000; r < rows; r += 13) late[r] = true;
  EXPECT_TRUE(testing::all_near(read_npy_rows(c_order.string(), late), kept_rows(m, late), 0.0,
                                "rows of the last block only"));
  const std::vector<bool> keep = every_third(rows);
  EXPECT_TRUE(testing::all_near(read_npy_rows(c_order.string(), keep), kept_rows(m, keep), 0.0,
                                "every third row"));

  Matrix small({Index{7}, Index{3}});
  for (Index i = 0; i < small.size(); ++i) small.data()[i] = 0.25 * static_cast<Real>(i);
  small(2, 1) = std::nan("");
  const fs::path fortran = dir / "f.npy";
  write_fortran_npy(fortran, small);
  const std::vector<bool> without_nan = {true, false, false, true, true, false, true};
  EXPECT_TRUE(testing::all_near(read_npy_rows(fortran.string(), without_nan),
                                kept_rows(small, without_nan), 0.0, "Fortran order"));
  // A NaN is the error of the reader that keeps its row.
  const std::string nan = error_of([&] {
    read_npy_rows(fortran.string(), std::vector<bool>{false, true, true});
  });
  EXPECT_TRUE(contains(nan, "element [2, 1] (0-based) is NaN")) << nan;
}

// What each of two ranks loads of `data`, with the Rng of seed 5.
std::vector<DataSplits> shares_on_two_ranks(const Dataset& data) {
  std::vector<DataSplits> shares(2);
  run_on_ranks(2, [&](Ranks& ranks) {
    Rng rng(5);
    shares[ranks.rank()] = data.load_share(rng, &ranks);
  });
  return shares;
}

// The shares of rank 0 and rank 1, stacked, against one process's rows.
void expect_shares_are_one_process(const Dataset& data) {
  Rng rng(5);
  const DataSplits whole = data.load(rng);
  const std::vector<DataSplits> shares = shares_on_two_ranks(data);
  const Index n = whole.train.shape(0);
  ASSERT_GT(n, kInferenceRowGroup);
  for (int r = 0; r < 2; ++r) {
    const DataSplits& s = shares[r];
    EXPECT_TRUE(s.train_is_shared());
    EXPECT_EQ(s.train_rows(), n);
    EXPECT_EQ(s.train_begin, r == 0 ? 0 : shares[0].train.shape(0));
    EXPECT_EQ(s.columns, whole.columns);
    EXPECT_EQ(s.context_columns, whole.context_columns);
    EXPECT_TRUE(testing::all_near(s.val, whole.val, 0.0, "val"));
    EXPECT_TRUE(testing::all_near(s.test_context, whole.test_context, 0.0, "test context"));
    EXPECT_NE(s.source_digest, 0u);
    EXPECT_EQ(s.source_digest, shares[0].source_digest);
  }
  // Rank 0 holds half the row groups (rounded down) from the start, rank 1 the rest.
  const Index groups = (n + kInferenceRowGroup - 1) / kInferenceRowGroup;
  EXPECT_EQ(shares[0].train.shape(0), groups / 2 * kInferenceRowGroup);
  EXPECT_EQ(shares[0].train.shape(0) + shares[1].train.shape(0), n);
  const Matrix stacked = xt::concatenate(xt::xtuple(shares[0].train, shares[1].train), 0);
  EXPECT_TRUE(testing::all_near(stacked, whole.train, 0.0, "the training shares, stacked"));
  if (whole.context_dim() > 0) {
    const Matrix context =
        xt::concatenate(xt::xtuple(shares[0].train_context, shares[1].train_context), 0);
    EXPECT_TRUE(testing::all_near(context, whole.train_context, 0.0, "their context rows"));
  }
}

TEST(SharedRows, AFileDataSetsSharesAreTheRowsOfOneProcess) {
  const fs::path dir = temp_dir("shared_files");
  Matrix table({Index{4000}, Index{3}});  // more than two row groups of training rows
  Rng rng(1);
  for (Index i = 0; i < table.size(); ++i) table.data()[i] = rng.normal(1, 1)(0, 0);
  write_csv((dir / "rows.csv").string(), table, {"a", "b", "c"});
  write_npy((dir / "rows.npy").string(), table);
  const std::pair<const char*, int> files[] = {{"train", 2800}, {"val", 600}, {"test", 600}};
  for (const auto& [split, rows] : files)
    write_csv((dir / (std::string(split) + ".csv")).string(),
              Matrix(xt::view(table, xt::range(0, rows), xt::all())), {"a", "b", "c"});
  {
    SCOPED_TRACE("one CSV file, shuffled, with a context column");
    FileDatasetOptions o;
    o.path = (dir / "rows.csv").string();
    o.context_columns = {"b"};
    expect_shares_are_one_process(FileDataset(FileFormat::csv, o));
  }
  {
    SCOPED_TRACE("one NPY file, in file order");
    FileDatasetOptions o;
    o.path = (dir / "rows.npy").string();
    o.shuffle = false;
    expect_shares_are_one_process(FileDataset(FileFormat::npy, o));
  }
  {
    SCOPED_TRACE("a file per split");
    FileDatasetOptions o;
    o.train = (dir / "train.csv").string();
    o.val = (dir / "val.csv").string();
    o.test = (dir / "test.csv").string();
    expect_shares_are_one_process(FileDataset(FileFormat::csv, o));
  }
  {
    SCOPED_TRACE("a toy data set (the default, cutting what load() made)");
    ToyDatasetOptions o;
    const Index n = 2 * kInferenceRowGroup + 352;  // 3 row groups: 1 for rank 0, 2 for rank 1
    o.n_train = n;
    o.n_val = 50;
    o.n_test = 50;
    ToyDataset toy("moons", o);
    Rng toy_rng(5);
    const DataSplits whole = toy.load(toy_rng);
    const std::vector<DataSplits> shares = shares_on_two_ranks(toy);
    EXPECT_EQ(shares[1].train_begin, kInferenceRowGroup);
    EXPECT_TRUE(testing::all_near(
        shares[1].train, Matrix(xt::view(whole.train, xt::range(kInferenceRowGroup, n), xt::all())),
        0.0, "rank 1's rows"));
  }
}

TEST(SharedRows, WithoutHeldOutRowsEveryRankHoldsEveryTrainingRow) {
  // The evaluation and the report then judge the model on training rows,
  // which rank 0 needs whole.
  const fs::path dir = temp_dir("shared_no_held_out");
  Matrix table({Index{600}, Index{2}});
  for (Index i = 0; i < table.size(); ++i) table.data()[i] = static_cast<Real>(i % 17);
  write_csv((dir / "rows.csv").string(), table);
  FileDatasetOptions o;
  o.path = (dir / "rows.csv").string();
  o.val_fraction = 0;
  o.test_fraction = 0;
  const FileDataset data(FileFormat::csv, o);
  for (const DataSplits& s : shares_on_two_ranks(data)) {
    EXPECT_FALSE(s.train_is_shared());
    EXPECT_EQ(s.train.shape(0), 600u);
  }
}

TEST(SharedRows, ARowOfAShareIsNamedByItsRowOfTheSplit) {
  const Bounds bounds({ColumnBounds{0, 1}}, {"p"});
  Matrix share({Index{3}, Index{1}});
  share(0, 0) = 0.5;
  share(1, 0) = 0.25;
  share(2, 0) = 2;
  const std::string message =
      error_of([&] { bounds.check(share, "the train split", {}, /*first_row=*/512); });
  EXPECT_TRUE(contains(message, "the train split: row 515, column 'p'")) << message;
}

TEST(SharedRows, TheAutoTailBoundOfSharesIsThatOfAllRows) {
  // Rank 1's rows are five times wider than rank 0's, so that neither
  // share alone has the quantile of all the rows.
  Rng rng(3);
  const Matrix narrow = rng.normal(3000, 2);
  const Matrix wide = 5.0 * rng.normal(1000, 2);
  const Matrix all = xt::concatenate(xt::xtuple(narrow, wide), 0);
  const Real expected = auto_tail_bound(all);
  ASSERT_NE(auto_tail_bound(narrow), expected);
  ASSERT_NE(auto_tail_bound(wide), expected);
  std::vector<Real> got(2);
  run_on_ranks(2, [&](Ranks& ranks) {
    got[ranks.rank()] = auto_tail_bound(ranks.rank() == 0 ? narrow : wide, &ranks);
  });
  EXPECT_EQ(got[0], expected);
  EXPECT_EQ(got[1], expected);
}

TEST(SharedRows, RanksWhoseHeldOutRowsDifferAreRefusedOnEveryRank) {
  DataSplits same;
  same.train = xt::zeros<Real>({Index{4}, Index{2}});
  same.val = xt::ones<Real>({Index{3}, Index{2}});
  DataSplits other = same;
  other.val(2, 1) = 2;
  std::vector<std::string> errors(2);
  run_on_ranks(2, [&](Ranks& ranks) {
    check_same_data_on_every_rank(same, &ranks);  // agrees: no error
    errors[ranks.rank()] =
        error_of([&] { check_same_data_on_every_rank(ranks.rank() ? other : same, &ranks); });
  });
  for (const std::string& e : errors)
    EXPECT_TRUE(contains(e, "the training data differs between ranks")) << e;
}

// Trains `yaml` on one process and on two ranks that each read their share
// of the training rows, and compares what the ranks fitted and learned.
void expect_two_shared_ranks_train_as_one_process(const std::string& yaml) {
  Pipeline one = Pipeline::parse(yaml, "one.yaml");
  const Real train_nll_before = one.split_nll(0);
  const TrainReport alone = one.train({});
  const Real train_nll_after = one.split_nll(0);
  std::vector<std::unique_ptr<Pipeline>> job(2);
  std::vector<Real> before(2), after(2);
  std::vector<TrainReport> reports(2);
  run_on_ranks(2, [&](Ranks& ranks) {
    const int r = ranks.rank();
    job[r] = std::make_unique<Pipeline>(Pipeline::parse(yaml, "two.yaml", {}, {}, &ranks));
    before[r] = job[r]->split_nll(0, &ranks);
    TrainerCallbacks callbacks;
    callbacks.ranks = &ranks;
    reports[r] = job[r]->train(callbacks);
    after[r] = job[r]->split_nll(0, &ranks);
  });
  for (int r = 0; r < 2; ++r) {
    const Pipeline& p = *job[r];
    SCOPED_TRACE("rank " + std::to_string(r));
    ASSERT_TRUE(p.data.train_is_shared());
    EXPECT_LE(p.data.train.shape(0), one.data.train.shape(0));
    EXPECT_TRUE(testing::all_near(p.model.standardize->mean(), one.model.standardize->mean(), 1e-12,
                                  "the standardization's mean"));
    EXPECT_TRUE(testing::all_near(p.model.standardize->scale(), one.model.standardize->scale(),
                                  1e-12, "its scale"));
    EXPECT_EQ(p.model_node.dump(), one.model_node.dump());  // tail_bound: auto resolved alike
    EXPECT_NEAR(before[r], train_nll_before, 1e-12 * std::abs(train_nll_before));
    EXPECT_NEAR(after[r], train_nll_after, 1e-9 * std::abs(train_nll_after));
    EXPECT_NEAR(reports[r].best_val_loss, alone.best_val_loss, 1e-9);
    const ParameterList expected = one.model.flow->parameters();
    const ParameterList got = p.model.flow->parameters();
    ASSERT_EQ(got.size(), expected.size());
    for (std::size_t k = 0; k < got.size(); ++k)
      EXPECT_TRUE(testing::all_near(got[k]->value, expected[k]->value, 1e-9, got[k]->name));
  }
}

TEST(SharedRows, TwoRanksOnTheirSharesOfAFileTrainAsOneProcess) {
  // banana4d.csv's 4,800 training rows (after val and test), tail_bound:
  // auto from the standardized rows of both shares, and batch_norm.
  const std::string yaml =
      std::string("name: shared\nseed: 6\nthreads: 1\n") +
      "data: {type: csv, path: " + FLOWS_SOURCE_DIR + "/configs/data/banana4d.csv}\n" +
      "model:\n  precision: float64\n  bijectors:\n"
      "    - {type: nsf_autoregressive, layers: 1, hidden: [8], tail_bound: auto}\n"
      "    - {type: maf, layers: 2, hidden: [16], batch_norm: true}\n"
      "trainer: {type: mle, batch_size: 200, steps: 30, eval_every: 10}\n";
  expect_two_shared_ranks_train_as_one_process(yaml);
}

TEST(SharedRows, TwoRanksOnTheirSharesOfDequantizedRowsTrainAsOneProcess) {
  // Each rank makes the dequantization draws of the rows before its share,
  // for the standardization's fit and for the training split's NLL.
  const std::string yaml =
      "name: shared_integers\nseed: 4\nthreads: 1\n"
      "data: {type: binomials, n_train: 2000, n_val: 300, n_test: 300, trials: [6, 9], "
      "probs: [0.5, 0.4], dequantize: uniform, dequantize_samples: 2}\n"
      "model:\n  precision: float64\n"
      "  bijectors: [{type: maf, layers: 2, hidden: [16, 16]}]\n"
      "trainer: {type: mle, batch_size: 128, steps: 30, eval_every: 10}\n";
  expect_two_shared_ranks_train_as_one_process(yaml);
}

// 200 training rows are one row group: rank 1 holds them all, rank 0 none
// (rank_share of one run), and both are shared out alike (a rank that held everything and called
// itself unshared would disagree with the other at the data check).
TEST(SharedRows, ARankWithNoTrainingRowsTrainsAsOneProcess) {
  const std::string yaml =
      "name: shared_small\nseed: 2\nthreads: 1\n"
      "data: {type: moons, n_train: 200, n_val: 50, n_test: 50}\n"
      "model:\n  precision: float64\n"
      "  bijectors: [{type: maf, layers: 2, hidden: [8], batch_norm: true}]\n"
      "trainer: {type: mle, batch_size: 64, steps: 20, eval_every: 10}\n";
  expect_two_shared_ranks_train_as_one_process(yaml);
}

TEST(SharedRows, ARankWithNoConditionalTrainingRowsTrainsAsOneProcess) {
  // Its context share is 0 x 2 and still has its 2 columns in the batch.
  const std::string yaml =
      "name: shared_conditional\nseed: 2\nthreads: 1\n"
      "data: {type: conditional_gaussian, n_train: 200, n_val: 50, n_test: 50, context_dim: 2}\n"
      "model:\n  precision: float64\n"
      "  bijectors: [{type: maf, layers: 2, hidden: [8]}]\n"
      "trainer: {type: mle, batch_size: 64, steps: 20, eval_every: 10}\n";
  expect_two_shared_ranks_train_as_one_process(yaml);
}

TEST(SharedRows, FlowMatchingTrainsOnRanksWithAndWithoutTrainingRows) {
  // cfm draws each rank's noise from its own stream, so the job's model is
  // not one process's draw for draw; the ranks' models stay one model.
  const std::string yaml =
      "name: shared_cfm\nseed: 2\nthreads: 1\n"
      "data: {type: moons, n_train: 200, n_val: 50, n_test: 50}\n"
      "model:\n  bijectors: [{type: flow_matching, hidden: [16], solver: {type: rk4, steps: 8}}]\n"
      "trainer: {type: cfm, batch_size: 64, steps: 20, eval_every: 10}\n";
  std::vector<std::unique_ptr<Pipeline>> job(2);
  std::vector<Index> held(2);
  run_on_ranks(2, [&](Ranks& ranks) {
    const int r = ranks.rank();
    job[r] = std::make_unique<Pipeline>(Pipeline::parse(yaml, "cfm.yaml", {}, {}, &ranks));
    held[r] = job[r]->data.train.shape(0);
    TrainerCallbacks callbacks;
    callbacks.ranks = &ranks;
    job[r]->train(callbacks);
  });
  EXPECT_EQ(held[0], 0u);
  EXPECT_EQ(held[1], 200u);
  const ParameterList a = job[0]->model.flow->parameters(), b = job[1]->model.flow->parameters();
  for (std::size_t k = 0; k < a.size(); ++k)
    EXPECT_TRUE(testing::all_near(b[k]->value, a[k]->value, 0.0, a[k]->name));
  const Real nll = job[0]->split_nll(2);
  EXPECT_TRUE(std::isfinite(nll)) << nll;
}

}  // namespace
}  // namespace flows
