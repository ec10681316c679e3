#include "flows/data/datasets.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "flows/data/csv.hpp"
#include "flows/data/npy.hpp"
#include "flows/data/toys.hpp"
#include "flows/error.hpp"

namespace flows {
namespace {

namespace fs = std::filesystem;

class DatasetsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() /
           (std::string("flows_datasets_test_") + info->name() + "_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    register_datasets(registry_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::shared_ptr<Dataset> make(const std::string& yaml, const std::string& origin = "test.yaml") {
    ConfigNode node = ConfigNode::parse(yaml, origin);
    return registry_.make<Dataset>(node, BuildContext{});
  }
  // The message of the ConfigError that building `yaml` raises.
  std::string config_error(const std::string& yaml) {
    try {
      make(yaml);
    } catch (const ConfigError& e) {
      return e.what();
    }
    ADD_FAILURE() << "no ConfigError for: " << yaml;
    return "";
  }
  // n x d rows i * 10 + j, so every row is distinct.
  static Matrix numbered(Index n, Index d) {
    Matrix m({n, d});
    for (Index i = 0; i < n; ++i)
      for (Index j = 0; j < d; ++j) m(i, j) = Real(i * 10 + j);
    return m;
  }

  fs::path dir_;
  Registry registry_;
};

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// Rows of the three splits together, sorted, for comparing contents.
std::vector<std::vector<Real>> sorted_rows(const DataSplits& s) {
  std::vector<std::vector<Real>> rows;
  for (const Matrix* m : {&s.train, &s.val, &s.test})
    for (Index i = 0; i < m->shape(0); ++i) {
      std::vector<Real> row;
      for (Index j = 0; j < m->shape(1); ++j) row.push_back((*m)(i, j));
      rows.push_back(row);
    }
  std::sort(rows.begin(), rows.end());
  return rows;
}

TEST_F(DatasetsTest, EveryToyIsRegistered) {
  for (const auto& name : toy_names()) EXPECT_TRUE(registry_.contains(Kind::dataset, name)) << name;
  EXPECT_TRUE(registry_.contains(Kind::dataset, "csv"));
  EXPECT_TRUE(registry_.contains(Kind::dataset, "npy"));
}

TEST_F(DatasetsTest, RegistryBuildsMoonsWithTheRequestedSizes) {
  auto data = make("{type: moons, n_train: 300, n_val: 20, n_test: 50, noise: 0.1}");
  Rng rng(0);
  const DataSplits s = data->load(rng);
  EXPECT_EQ(s.train.shape(0), 300u);
  EXPECT_EQ(s.val.shape(0), 20u);
  EXPECT_EQ(s.test.shape(0), 50u);
  EXPECT_EQ(s.train.shape(1), 2u);
}

TEST_F(DatasetsTest, DefaultSizesAreTheDocumentedOnes) {
  Rng rng(0);
  const DataSplits s = make("{type: rings}")->load(rng);
  EXPECT_EQ(s.train.shape(0), 20000u);
  EXPECT_EQ(s.val.shape(0), 2000u);
  EXPECT_EQ(s.test.shape(0), 10000u);
}

TEST_F(DatasetsTest, ToySplitsAreIndependentAndSeeded) {
  auto unseeded = make("{type: moons, n_train: 50, n_val: 50, n_test: 50}");
  Rng a(1), b(1), c(2);
  const DataSplits sa = unseeded->load(a);
  EXPECT_EQ(sa.train, unseeded->load(b).train);
  EXPECT_NE(sa.train, unseeded->load(c).train);
  EXPECT_NE(sa.train, sa.val);
  EXPECT_NE(sa.val, sa.test);

  auto seeded = make("{type: moons, n_train: 50, n_val: 50, n_test: 50, seed: 9}");
  Rng d(1), e(2);
  EXPECT_EQ(seeded->load(d).train, seeded->load(e).train);
}

TEST_F(DatasetsTest, CsvIsShuffledAndSplitByFractions) {
  const std::string path = (dir_ / "data.csv").string();
  const Matrix all = numbered(100, 3);
  write_csv(path, all, {"a", "b", "c"});
  auto data = make("{type: csv, path: '" + path + "', val_fraction: 0.2, test_fraction: 0.1}");
  Rng rng(3);
  const DataSplits s = data->load(rng);
  EXPECT_EQ(s.train.shape(0), 70u);
  EXPECT_EQ(s.val.shape(0), 20u);
  EXPECT_EQ(s.test.shape(0), 10u);
  EXPECT_EQ(s.columns, (std::vector<std::string>{"a", "b", "c"}));
  // The same rows, shuffled.
  DataSplits original;
  original.train = all;
  original.val = Matrix({0, 3});
  original.test = Matrix({0, 3});
  EXPECT_EQ(sorted_rows(s), sorted_rows(original));
  EXPECT_NE(xt::view(s.train, xt::range(0, 10), xt::all()),
            xt::view(all, xt::range(0, 10), xt::all()));
  // shuffle: false keeps the file's order.
  auto ordered = make("{type: csv, path: '" + path + "', shuffle: false}");
  const DataSplits o = ordered->load(rng);
  EXPECT_EQ(o.train, xt::view(all, xt::range(0, 80), xt::all()));
  EXPECT_EQ(o.test, xt::view(all, xt::range(90, 100), xt::all()));
}

TEST_F(DatasetsTest, RelativePathsResolveAgainstTheYamlFolder) {
  fs::create_directories(dir_ / "configs" / "data");
  write_csv((dir_ / "configs" / "data" / "points.csv").string(), numbered(40, 2));
  const std::string yaml_path = (dir_ / "configs" / "pipeline.yaml").string();
  std::ofstream(yaml_path) << "data:\n  type: csv\n  path: data/points.csv\n";
  ConfigNode root = ConfigNode::load_file(yaml_path);
  ConfigNode node = root.child("data");
  auto data = registry_.make<Dataset>(node, BuildContext{});
  Rng rng(0);
  EXPECT_EQ(data->load(rng).train.shape(0), 32u);

  // The same relative path from a file elsewhere names the resolved path.
  const std::string other = (dir_ / "pipeline.yaml").string();
  std::ofstream(other) << "data:\n  type: csv\n  path: data/points.csv\n";
  ConfigNode root2 = ConfigNode::load_file(other);
  ConfigNode node2 = root2.child("data");
  try {
    registry_.make<Dataset>(node2, BuildContext{});
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    const std::string what = e.what();
    EXPECT_TRUE(contains(what, "data.path")) << what;
    EXPECT_TRUE(contains(what, (dir_ / "data" / "points.csv").string())) << what;
  }
}

TEST_F(DatasetsTest, SplitFilesLoadAsGivenAndMustAgreeInDimension) {
  write_npy((dir_ / "train.npy").string(), numbered(30, 2));
  write_npy((dir_ / "val.npy").string(), numbered(5, 2));
  write_npy((dir_ / "test.npy").string(), numbered(7, 2));
  write_npy((dir_ / "wide.npy").string(), numbered(7, 3));
  const std::string yaml = (dir_ / "p.yaml").string();
  auto data = make("{type: npy, train: train.npy, val: val.npy, test: test.npy}", yaml);
  Rng rng(0);
  const DataSplits s = data->load(rng);
  EXPECT_EQ(s.train, numbered(30, 2));
  EXPECT_EQ(s.val, numbered(5, 2));
  EXPECT_EQ(s.test, numbered(7, 2));

  auto bad = make("{type: npy, train: train.npy, val: val.npy, test: wide.npy}", yaml);
  try {
    bad->load(rng);
    FAIL() << "no error";
  } catch (const DataError& e) {
    const std::string what = e.what();
    EXPECT_TRUE(contains(what, "test '")) << what;
    EXPECT_TRUE(contains(what, "wide.npy' has 3 columns but train")) << what;
    EXPECT_TRUE(contains(what, "has 2")) << what;
  }
}

TEST_F(DatasetsTest, SplitCsvFilesMustAgreeInColumnNames) {
  write_csv((dir_ / "train.csv").string(), numbered(10, 2), {"x", "y"});
  write_csv((dir_ / "val.csv").string(), numbered(10, 2), {"x", "y"});
  write_csv((dir_ / "test.csv").string(), numbered(10, 2), {"y", "x"});
  const std::string yaml = (dir_ / "p.yaml").string();
  Rng rng(0);
  try {
    make("{type: csv, train: train.csv, val: val.csv, test: test.csv}", yaml)->load(rng);
    FAIL() << "no error";
  } catch (const DataError& e) {
    EXPECT_TRUE(contains(e.what(), "names column 1 'y' but train")) << e.what();
  }
}

TEST_F(DatasetsTest, TooFewRowsForTheFractionsIsADataError) {
  const std::string path = (dir_ / "tiny.csv").string();
  write_csv(path, numbered(2, 2));
  Rng rng(0);
  EXPECT_THROW(
      make("{type: csv, path: '" + path + "', val_fraction: 0.5, test_fraction: 0.4}")->load(rng),
      DataError);
}

TEST_F(DatasetsTest, BadOptionsAreNamedByKey) {
  EXPECT_TRUE(contains(config_error("{type: moons, n_train: 0}"), "n_train"));
  EXPECT_TRUE(contains(config_error("{type: moons, noise: -0.1}"), "noise"));
  EXPECT_TRUE(contains(config_error("{type: moons, n_trian: 10}"), "n_train"));
  EXPECT_TRUE(contains(config_error("{type: moons, n_val: -1}"), "n_val"));

  const std::string path = (dir_ / "d.csv").string();
  write_csv(path, numbered(10, 2));
  const std::string base = "{type: csv, path: '" + path + "', ";
  EXPECT_TRUE(contains(config_error(base + "val_fraction: 1.5}"), "val_fraction"));
  EXPECT_TRUE(contains(config_error(base + "test_fraction: -0.1}"), "test_fraction"));
  const std::string sum = config_error(base + "val_fraction: 0.5, test_fraction: 0.5}");
  EXPECT_TRUE(contains(sum, "test_fraction")) << sum;
  EXPECT_TRUE(contains(sum, "< 1")) << sum;
  EXPECT_TRUE(contains(config_error(base + "header: maybe}"), "header"));
  EXPECT_TRUE(contains(config_error(base + "train: x.csv}"), "not both"));
  EXPECT_TRUE(contains(config_error("{type: csv}"), "needs 'path'"));
  EXPECT_TRUE(
      contains(config_error("{type: csv, train: '" + path + "', val: '" + path + "'}"), "test"));
  EXPECT_TRUE(contains(config_error("{type: npy, path: '" + path + "', header: true}"), "header"));
  const std::string missing = config_error("{type: csv, path: '" + path + ".gone'}");
  EXPECT_TRUE(contains(missing, "path")) << missing;
  EXPECT_TRUE(contains(missing, "does not exist")) << missing;
}

// --- context_columns: conditional data from files ---------------------------

// The ConfigError that loading `yaml` raises (context columns are resolved
// when the file's columns are known).
std::string load_config_error(const std::shared_ptr<Dataset>& data) {
  try {
    Rng rng(0);
    data->load(rng);
  } catch (const ConfigError& e) {
    return e.what();
  }
  ADD_FAILURE() << "no ConfigError";
  return "";
}

TEST_F(DatasetsTest, UnconditionalDataHasNoContext) {
  const std::string path = (dir_ / "d.csv").string();
  write_csv(path, numbered(20, 3), {"a", "b", "c"});
  Rng rng(0);
  const DataSplits s = make("{type: csv, path: '" + path + "'}")->load(rng);
  EXPECT_EQ(s.context_dim(), 0u);
  EXPECT_TRUE(s.context_columns.empty());
  EXPECT_EQ(s.train_context.size(), 0u);
  EXPECT_EQ(s.val_context.size(), 0u);
  EXPECT_EQ(s.test_context.size(), 0u);
  const DataSplits m = make("{type: moons, n_train: 10, n_val: 2, n_test: 2}")->load(rng);
  EXPECT_EQ(m.context_dim(), 0u);
  EXPECT_EQ(m.train_context.size(), 0u);
}

// Context columns by name leave the other columns as x, in file order, and
// every split keeps each x row with its own context row.
TEST_F(DatasetsTest, CsvContextColumnsByNameSplitEveryRow) {
  const std::string path = (dir_ / "d.csv").string();
  write_csv(path, numbered(50, 4), {"a", "b", "c", "d"});
  Rng rng(2);
  const DataSplits s =
      make("{type: csv, path: '" + path + "', context_columns: [d, b]}")->load(rng);
  EXPECT_EQ(s.columns, (std::vector<std::string>{"a", "c"}));
  EXPECT_EQ(s.context_columns, (std::vector<std::string>{"d", "b"}));
  EXPECT_EQ(s.context_dim(), 2u);
  EXPECT_EQ(s.train.shape(0) + s.val.shape(0) + s.test.shape(0), 50u);
  for (auto [x, c] : {std::pair{&s.train, &s.train_context},
                      {&s.val, &s.val_context},
                      {&s.test, &s.test_context}}) {
    ASSERT_EQ(x->shape(1), 2u);
    ASSERT_EQ(c->shape(1), 2u);
    ASSERT_EQ(c->shape(0), x->shape(0));
    for (Index i = 0; i < x->shape(0); ++i) {
      const Real row = (*x)(i, 0) / 10;  // numbered: entry (i, j) = 10 i + j
      EXPECT_EQ((*x)(i, 1), 10 * row + 2);
      EXPECT_EQ((*c)(i, 0), 10 * row + 3);
      EXPECT_EQ((*c)(i, 1), 10 * row + 1);
    }
  }
}

// Indices count from 0; unnamed columns are then named by position, the
// context ones and the x ones alike.
TEST_F(DatasetsTest, NpyAndHeaderlessCsvTakeContextColumnsByIndex) {
  const std::string npy = (dir_ / "d.npy").string();
  write_npy(npy, numbered(30, 4));
  Rng rng(0);
  const DataSplits n =
      make("{type: npy, path: '" + npy + "', shuffle: false, context_columns: [3, 0]}")->load(rng);
  EXPECT_EQ(n.columns, (std::vector<std::string>{"x1", "x2"}));
  EXPECT_EQ(n.context_columns, (std::vector<std::string>{"x3", "x0"}));
  EXPECT_EQ(n.train(0, 0), 1.0);
  EXPECT_EQ(n.train(0, 1), 2.0);
  EXPECT_EQ(n.train_context(0, 0), 3.0);
  EXPECT_EQ(n.train_context(0, 1), 0.0);
  EXPECT_EQ(n.train_context(5, 0), 53.0);

  const std::string csv = (dir_ / "d.csv").string();
  write_csv(csv, numbered(30, 3));
  const DataSplits c =
      make("{type: csv, path: '" + csv + "', shuffle: false, context_columns: [x1]}")->load(rng);
  EXPECT_EQ(c.columns, (std::vector<std::string>{"x0", "x2"}));
  EXPECT_EQ(c.context_columns, (std::vector<std::string>{"x1"}));
  EXPECT_EQ(c.train_context(2, 0), 21.0);

  // A CSV with a header takes an index too (a digit string that is not a name).
  write_csv(csv, numbered(30, 3), {"p", "q", "r"});
  const DataSplits h =
      make("{type: csv, path: '" + csv + "', shuffle: false, context_columns: [2]}")->load(rng);
  EXPECT_EQ(h.context_columns, (std::vector<std::string>{"r"}));
  EXPECT_EQ(h.columns, (std::vector<std::string>{"p", "q"}));
}

TEST_F(DatasetsTest, SplitFilesTakeTheSameContextColumns) {
  write_csv((dir_ / "train.csv").string(), numbered(12, 3), {"a", "b", "c"});
  write_csv((dir_ / "val.csv").string(), numbered(4, 3), {"a", "b", "c"});
  write_csv((dir_ / "test.csv").string(), numbered(5, 3), {"a", "b", "c"});
  const std::string yaml = (dir_ / "p.yaml").string();
  Rng rng(0);
  const DataSplits s =
      make("{type: csv, train: train.csv, val: val.csv, test: test.csv, context_columns: [a]}",
           yaml)
          ->load(rng);
  EXPECT_EQ(s.columns, (std::vector<std::string>{"b", "c"}));
  EXPECT_EQ(s.context_columns, (std::vector<std::string>{"a"}));
  EXPECT_EQ(s.val_context.shape(0), 4u);
  EXPECT_EQ(s.test_context(4, 0), 40.0);
  EXPECT_EQ(s.test(4, 1), 42.0);
}

TEST_F(DatasetsTest, BadContextColumnsNameTheKeyAndTheColumnsAvailable) {
  const std::string csv = (dir_ / "d.csv").string();
  write_csv(csv, numbered(20, 3), {"a", "b", "c"});
  const std::string base = "{type: csv, path: '" + csv + "', context_columns: ";

  const std::string missing = load_config_error(make(base + "[a, z]}"));
  EXPECT_TRUE(contains(missing, "context_columns")) << missing;
  EXPECT_TRUE(contains(missing, "no column 'z'")) << missing;
  EXPECT_TRUE(contains(missing, "a (0), b (1), c (2)")) << missing;

  const std::string twice = load_config_error(make(base + "[b, 1]}"));
  EXPECT_TRUE(contains(twice, "context_columns")) << twice;
  EXPECT_TRUE(contains(twice, "'b' (1) is listed twice")) << twice;

  const std::string range = load_config_error(make(base + "[3]}"));
  EXPECT_TRUE(contains(range, "index 3 is out of range")) << range;
  EXPECT_TRUE(contains(range, "has 3 columns")) << range;

  const std::string all = load_config_error(make(base + "[a, b, c]}"));
  EXPECT_TRUE(contains(all, "no x")) << all;

  EXPECT_TRUE(contains(config_error(base + "[]}"), "context_columns"));

  const std::string npy = (dir_ / "d.npy").string();
  write_npy(npy, numbered(20, 3));
  const std::string named = config_error("{type: npy, path: '" + npy + "', context_columns: [a]}");
  EXPECT_TRUE(contains(named, "context_columns")) << named;
  EXPECT_TRUE(contains(named, "0-based indices")) << named;
  const std::string npy_range =
      load_config_error(make("{type: npy, path: '" + npy + "', context_columns: [7]}"));
  EXPECT_TRUE(contains(npy_range, "x0 (0), x1 (1), x2 (2)")) << npy_range;
}

// The message names the key in the YAML file, with its line.
TEST_F(DatasetsTest, AContextColumnErrorNamesTheYamlLine) {
  write_csv((dir_ / "d.csv").string(), numbered(20, 2), {"a", "b"});
  const std::string yaml_path = (dir_ / "pipeline.yaml").string();
  std::ofstream(yaml_path) << "data:\n  type: csv\n  path: d.csv\n  context_columns: [nope]\n";
  ConfigNode root = ConfigNode::load_file(yaml_path);
  ConfigNode node = root.child("data");
  auto data = registry_.make<Dataset>(node, BuildContext{});
  const std::string what = load_config_error(data);
  EXPECT_TRUE(contains(what, yaml_path + ":4:")) << what;
  EXPECT_TRUE(contains(what, "data.context_columns: no column 'nope'")) << what;
}

// --- the conditional toys ---------------------------------------------------

TEST_F(DatasetsTest, ConditionalToysAreRegisteredWithTheirColumns) {
  for (const auto& name : conditional_toy_names())
    EXPECT_TRUE(registry_.contains(Kind::dataset, name)) << name;
  Rng rng(0);
  const DataSplits g =
      make("{type: conditional_gaussian, n_train: 40, n_val: 5, n_test: 6, context_dim: 3}")
          ->load(rng);
  EXPECT_EQ(g.columns, (std::vector<std::string>{"x1", "x2"}));
  EXPECT_EQ(g.context_columns, (std::vector<std::string>{"c1", "c2", "c3"}));
  EXPECT_EQ(g.train.shape(0), 40u);
  EXPECT_EQ(g.train_context.shape(0), 40u);
  EXPECT_EQ(g.train_context.shape(1), 3u);
  EXPECT_EQ(g.test_context.shape(0), 6u);
  EXPECT_EQ(g.val.shape(0), 5u);

  const DataSplits l =
      make("{type: linear_gaussian, n_train: 30, theta_dim: 3, obs_dim: 4, obs_noise: 0.2}")
          ->load(rng);
  EXPECT_EQ(l.columns, (std::vector<std::string>{"theta1", "theta2", "theta3"}));
  EXPECT_EQ(l.context_columns, (std::vector<std::string>{"xobs1", "xobs2", "xobs3", "xobs4"}));
  EXPECT_EQ(l.train.shape(1), 3u);
  EXPECT_EQ(l.train_context.shape(1), 4u);
  EXPECT_EQ(l.val.shape(0), 2000u);  // the toys' default sizes

  // Default context_dim is 1.
  EXPECT_EQ(make("{type: conditional_gaussian, n_train: 5}")->load(rng).context_dim(), 1u);
}

TEST_F(DatasetsTest, ConditionalToysAreSeededLikeTheOtherToys) {
  auto unseeded = make("{type: conditional_gaussian, n_train: 20, n_val: 20, n_test: 20}");
  Rng a(1), b(1), c(2);
  const DataSplits sa = unseeded->load(a);
  const DataSplits sb = unseeded->load(b);
  EXPECT_EQ(sa.train, sb.train);
  EXPECT_EQ(sa.train_context, sb.train_context);
  EXPECT_NE(sa.train, unseeded->load(c).train);
  EXPECT_NE(sa.train_context, sa.val_context);
  auto seeded = make("{type: linear_gaussian, n_train: 20, seed: 4}");
  Rng d(1), e(2);
  EXPECT_EQ(seeded->load(d).train_context, seeded->load(e).train_context);
}

TEST_F(DatasetsTest, ConditionalToyOptionsAreChecked) {
  EXPECT_TRUE(
      contains(config_error("{type: conditional_gaussian, context_dim: 0}"), "context_dim"));
  EXPECT_TRUE(contains(config_error("{type: conditional_gaussian, theta_dim: 2}"), "theta_dim"));
  EXPECT_TRUE(contains(config_error("{type: linear_gaussian, obs_noise: 0}"), "obs_noise"));
  EXPECT_TRUE(contains(config_error("{type: linear_gaussian, obs_dim: 0}"), "obs_dim"));
  EXPECT_TRUE(contains(config_error("{type: linear_gaussian, context_dim: 2}"), "context_dim"));
  EXPECT_TRUE(contains(config_error("{type: linear_gaussian, n_train: 0}"), "n_train"));
}

}  // namespace
}  // namespace flows
