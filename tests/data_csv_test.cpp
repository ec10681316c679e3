#include "flows/data/csv.hpp"

#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <limits>

#include "flows/error.hpp"

namespace flows {
namespace {

namespace fs = std::filesystem;

// A fresh folder per test under the system's temporary directory.
class CsvTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() /
           (std::string("flows_csv_test_") + info->name() + "_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string file(const std::string& name, const std::string& text) const {
    const std::string path = (dir_ / name).string();
    std::ofstream(path, std::ios::binary) << text;
    return path;
  }
  // The message of the DataError reading `text` raises.
  std::string data_error(const std::string& text) const {
    const std::string path = file("bad.csv", text);
    try {
      read_csv(path);
    } catch (const DataError& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find(path), std::string::npos) << what;
      return what;
    }
    ADD_FAILURE() << "no DataError for:\n" << text;
    return "";
  }

  fs::path dir_;
};

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

TEST_F(CsvTest, RoundTripKeepsEveryBit) {
  Matrix m = {{1.0 / 3, -2.5e-300, 3.141592653589793},
              {1e300, -0.0, std::numeric_limits<double>::denorm_min() * 1e10},
              {0.1, 123456789.123456789, -7}};
  const std::string path = (dir_ / "m.csv").string();
  write_csv(path, m);
  std::vector<std::string> header = {"stale"};
  const Matrix back = read_csv(path, &header);
  EXPECT_TRUE(header.empty());
  ASSERT_EQ(back.shape(), m.shape());
  for (Index i = 0; i < m.size(); ++i) EXPECT_EQ(back.flat(i), m.flat(i)) << i;
}

TEST_F(CsvTest, WritesAndReadsAHeader) {
  const Matrix m = {{1, 2}, {3, 4}};
  const std::string path = (dir_ / "h.csv").string();
  write_csv(path, m, {"x", "y"});
  std::ifstream in(path);
  std::string first;
  std::getline(in, first);
  EXPECT_EQ(first, "x,y");
  std::vector<std::string> header;
  EXPECT_EQ(read_csv(path, &header), m);
  EXPECT_EQ(header, (std::vector<std::string>{"x", "y"}));
}

TEST_F(CsvTest, SkipsBlankLinesCommentsAndCarriageReturns) {
  const std::string path =
      file("c.csv", "# a comment\r\n\r\n \"a\" , b\r\n1, 2\r\n   \r\n  # another\r\n3,4e1\r\n");
  std::vector<std::string> header;
  const Matrix m = read_csv(path, &header);
  EXPECT_EQ(m, (Matrix{{1, 2}, {3, 40}}));
  EXPECT_EQ(header, (std::vector<std::string>{"a", "b"}));
}

TEST_F(CsvTest, HeaderModeOverridesDetection) {
  const std::string path = file("n.csv", "1,2\n3,4\n");
  std::vector<std::string> header;
  EXPECT_EQ(read_csv(path, &header, CsvHeader::present), (Matrix{{3, 4}}));
  EXPECT_EQ(header, (std::vector<std::string>{"1", "2"}));
  EXPECT_EQ(read_csv(path, &header, CsvHeader::absent), (Matrix{{1, 2}, {3, 4}}));
  EXPECT_TRUE(header.empty());
}

TEST_F(CsvTest, TextInAFieldIsNamedByRowAndColumn) {
  const std::string what = data_error("x,y\n1,2\n\n3,abc\n");
  EXPECT_TRUE(contains(what, "row 4, column 2 ('y')")) << what;
  EXPECT_TRUE(contains(what, "'abc'")) << what;
}

TEST_F(CsvTest, AFirstRowWithSomeNumbersIsNotAHeader) {
  const std::string what = data_error("a,1\n2,3\n");
  EXPECT_TRUE(contains(what, "row 1, column 1")) << what;
  EXPECT_TRUE(contains(what, "header")) << what;
}

TEST_F(CsvTest, NanAndInfAreNamedByRowAndColumn) {
  std::string what = data_error("1,2\n3,nan\n");
  EXPECT_TRUE(contains(what, "row 2, column 2")) << what;
  EXPECT_TRUE(contains(what, "NaN")) << what;
  what = data_error("# c\n-inf,2\n");
  EXPECT_TRUE(contains(what, "row 2, column 1")) << what;
  EXPECT_TRUE(contains(what, "infinite")) << what;
  what = data_error("1,1e999\n");
  EXPECT_TRUE(contains(what, "row 1, column 2")) << what;
}

TEST_F(CsvTest, EmptyFieldIsNamedByRowAndColumn) {
  const std::string what = data_error("1,2,3\n4,,6\n");
  EXPECT_TRUE(contains(what, "row 2, column 2")) << what;
  EXPECT_TRUE(contains(what, "empty")) << what;
}

TEST_F(CsvTest, RaggedRowsNameExpectedAndFoundCounts) {
  std::string what = data_error("1,2,3\n4,5,6\n7,8\n");
  EXPECT_TRUE(contains(what, "row 3, column 3")) << what;
  EXPECT_TRUE(contains(what, "found 2 fields where 3 are expected")) << what;
  what = data_error("a,b\n1,2,3\n");
  EXPECT_TRUE(contains(what, "row 2, column 3")) << what;
  EXPECT_TRUE(contains(what, "found 3 fields where 2 are expected (as in the header at row 1)"))
      << what;
}

TEST_F(CsvTest, FileWithoutDataRowsIsADataError) {
  EXPECT_TRUE(contains(data_error(""), "empty"));
  EXPECT_TRUE(contains(data_error("x,y\n"), "only a header"));
  EXPECT_TRUE(contains(data_error("# nothing\n\n"), "no data rows"));
}

TEST_F(CsvTest, MissingFileIsAnIoErrorNamingThePath) {
  const std::string path = (dir_ / "absent.csv").string();
  try {
    read_csv(path);
    FAIL() << "no error";
  } catch (const IoError& e) {
    EXPECT_TRUE(contains(e.what(), path)) << e.what();
  }
}

TEST_F(CsvTest, WriteLeavesNoTemporaryAndReplacesTheFile) {
  const std::string path = (dir_ / "out.csv").string();
  write_csv(path, Matrix{{1, 2}});
  write_csv(path, Matrix{{3, 4}, {5, 6}});
  EXPECT_EQ(read_csv(path), (Matrix{{3, 4}, {5, 6}}));
  Index files = 0;
  for (const auto& entry : fs::directory_iterator(dir_)) {
    ++files;
    EXPECT_EQ(entry.path().filename(), "out.csv");
  }
  EXPECT_EQ(files, 1u);
}

TEST_F(CsvTest, FailedWriteKeepsTheOldFile) {
  const std::string path = (dir_ / "keep.csv").string();
  write_csv(path, Matrix{{1, 2}});
  EXPECT_THROW(write_csv(path, Matrix{{3, 4}}, {"only_one"}), DataError);
  EXPECT_EQ(read_csv(path), (Matrix{{1, 2}}));
  EXPECT_THROW(write_csv((dir_ / "no_such_folder" / "x.csv").string(), Matrix{{1}}), IoError);
}

// parse_csv reads text as read_csv reads a file, naming `origin` instead of a path.
TEST(CsvText, ParsesTextAndNamesItsOrigin) {
  std::vector<std::string> header;
  EXPECT_EQ(parse_csv("a,b\n1,2\n", "inline", &header), (Matrix{{1, 2}}));
  EXPECT_EQ(header, (std::vector<std::string>{"a", "b"}));
  try {
    parse_csv("1,2\n3,x\n", "inline");
    ADD_FAILURE() << "no error";
  } catch (const DataError& e) {
    EXPECT_EQ(std::string(e.what()).rfind("inline: row 2, column 2", 0), 0u) << e.what();
  }
}

}  // namespace
}  // namespace flows
