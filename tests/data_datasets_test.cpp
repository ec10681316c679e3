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

}  // namespace
}  // namespace flows
