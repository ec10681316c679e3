#include "flows/data/npy.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "flows/error.hpp"

namespace flows {
namespace {

namespace fs = std::filesystem;

// Little-endian bytes of a value (the machines we run on are little-endian;
// the test checks that too).
template <class T>
std::string bytes_of(T v) {
  std::string out(sizeof(T), '\0');
  std::memcpy(out.data(), &v, sizeof(T));
  return out;
}

// The preamble and header numpy writes for `dict` in format `major`.0, padded
// to a multiple of 64 bytes.
std::string npy_header(const std::string& dict, int major = 1) {
  const std::size_t length_bytes = major == 1 ? 2 : 4;
  std::string header = dict;
  const std::size_t total = 8 + length_bytes + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header += '\n';
  std::string out = std::string("\x93NUMPY", 6) + char(major) + '\0';
  if (major == 1)
    out += bytes_of(static_cast<std::uint16_t>(header.size()));
  else
    out += bytes_of(static_cast<std::uint32_t>(header.size()));
  return out + header;
}

class NpyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() /
           (std::string("flows_npy_test_") + info->name() + "_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string file(const std::string& name, const std::string& bytes) const {
    const std::string path = (dir_ / name).string();
    std::ofstream(path, std::ios::binary) << bytes;
    return path;
  }
  std::string slurp(const std::string& path) const {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  std::string data_error(const std::string& bytes) const {
    const std::string path = file("bad.npy", bytes);
    try {
      read_npy(path);
    } catch (const DataError& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find(path), std::string::npos) << what;
      return what;
    }
    ADD_FAILURE() << "no DataError";
    return "";
  }

  fs::path dir_;
};

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

TEST(NpyHost, IsLittleEndian) {
  EXPECT_EQ(bytes_of<std::uint16_t>(1), std::string("\x01\x00", 2));
}

TEST_F(NpyTest, RoundTripKeepsEveryBit) {
  const Matrix m = {{1.0 / 3, -2.5e-300, 3.141592653589793}, {1e300, -0.0, 7}};
  const std::string path = (dir_ / "m.npy").string();
  write_npy(path, m);
  const Matrix back = read_npy(path);
  ASSERT_EQ(back.shape(), m.shape());
  for (Index i = 0; i < m.size(); ++i) EXPECT_EQ(back.flat(i), m.flat(i));
}

TEST_F(NpyTest, WritesTheBytesNumpyWrites) {
  // np.save of a (2, 3) float64 array: a 128-byte preamble and header, then data.
  const Matrix m = {{1, 2, 3}, {4, 5, 6}};
  const std::string path = (dir_ / "m.npy").string();
  write_npy(path, m);
  std::string expected = std::string("\x93NUMPY\x01\x00\x76\x00", 10) +
                         "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }";
  expected.append(127 - expected.size(), ' ');
  expected += '\n';
  for (Real v : m) expected += bytes_of(v);
  EXPECT_EQ(slurp(path), expected);
}

TEST_F(NpyTest, ReadsAHandBuiltVersion1File) {
  std::string bytes = npy_header("{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }");
  ASSERT_EQ(bytes.size(), 128u);
  for (double v : {1.5, -2.0, 3.0, 4.0, 5.0, 6.25}) bytes += bytes_of(v);
  EXPECT_EQ(read_npy(file("v1.npy", bytes)), (Matrix{{1.5, -2, 3}, {4, 5, 6.25}}));
}

TEST_F(NpyTest, ReadsVersion2AndOtherDtypes) {
  std::string v2 = npy_header("{'descr': '<f8', 'fortran_order': False, 'shape': (1, 2), }", 2);
  v2 += bytes_of(1.0) + bytes_of(2.0);
  EXPECT_EQ(read_npy(file("v2.npy", v2)), (Matrix{{1, 2}}));

  std::string f4 = npy_header("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 1), }");
  f4 += bytes_of(0.5f) + bytes_of(-1.25f);
  EXPECT_EQ(read_npy(file("f4.npy", f4)), (Matrix{{0.5}, {-1.25}}));

  std::string i8 = npy_header("{'descr': '<i8', 'fortran_order': False, 'shape': (1, 2), }");
  i8 += bytes_of(std::int64_t(-3)) + bytes_of(std::int64_t(1) << 40);
  EXPECT_EQ(read_npy(file("i8.npy", i8)), (Matrix{{-3, 1099511627776.0}}));
}

TEST_F(NpyTest, ReadsOneDimensionalArraysAsAColumn) {
  std::string bytes = npy_header("{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }");
  for (double v : {1.0, 2.0, 3.0}) bytes += bytes_of(v);
  EXPECT_EQ(read_npy(file("v.npy", bytes)), (Matrix{{1}, {2}, {3}}));
}

TEST_F(NpyTest, TransposesFortranOrder) {
  // Column-major storage of [[1, 2, 3], [4, 5, 6]].
  std::string bytes = npy_header("{'descr': '<f8', 'fortran_order': True, 'shape': (2, 3), }");
  for (double v : {1.0, 4.0, 2.0, 5.0, 3.0, 6.0}) bytes += bytes_of(v);
  EXPECT_EQ(read_npy(file("f.npy", bytes)), (Matrix{{1, 2, 3}, {4, 5, 6}}));
}

TEST_F(NpyTest, TruncatedFileIsADataError) {
  const std::string path = (dir_ / "m.npy").string();
  write_npy(path, Matrix{{1, 2}, {3, 4}});
  const std::string whole = slurp(path);
  std::string what = data_error(whole.substr(0, whole.size() - 5));
  EXPECT_TRUE(contains(what, "truncated")) << what;
  EXPECT_TRUE(contains(what, "needs 32 data bytes, only 27 are present")) << what;
  what = data_error(whole.substr(0, 40));
  EXPECT_TRUE(contains(what, "truncated")) << what;
  what = data_error(whole.substr(0, 7));
  EXPECT_TRUE(contains(what, "truncated")) << what;
}

TEST_F(NpyTest, CorruptFilesNameTheProblem) {
  EXPECT_TRUE(contains(data_error("PK\x03\x04 not numpy"), "not an .npy file"));
  EXPECT_TRUE(
      contains(data_error(npy_header("{'descr': '<f8', 'shape': (1, 1), }") + bytes_of(1.0)),
               "no 'fortran_order'"));
  EXPECT_TRUE(
      contains(data_error(npy_header("{'descr': '<f8', 'fortran_order': False, 'shape': (1, 1)") +
                          bytes_of(1.0)),
               "corrupt .npy header"));
  EXPECT_TRUE(
      contains(data_error(npy_header("{'descr': '>f8', 'fortran_order': False, 'shape': (1,), }") +
                          bytes_of(1.0)),
               "big-endian"));
  EXPECT_TRUE(
      contains(data_error(npy_header("{'descr': '<c16', 'fortran_order': False, 'shape': (1,), }") +
                          bytes_of(1.0) + bytes_of(0.0)),
               "unsupported dtype '<c16'"));
  EXPECT_TRUE(contains(
      data_error(npy_header("{'descr': '<f8', 'fortran_order': False, 'shape': (1, 1, 1), }") +
                 bytes_of(1.0)),
      "3 dimensions"));
  EXPECT_TRUE(contains(
      data_error(npy_header("{'descr': '<f8', 'fortran_order': False, 'shape': (0, 2), }")),
      "no data"));
  std::string nan = npy_header("{'descr': '<f8', 'fortran_order': False, 'shape': (2, 2), }");
  for (double v : {1.0, 2.0, 3.0, std::nan("")}) nan += bytes_of(v);
  EXPECT_TRUE(contains(data_error(nan), "element [1, 1] (0-based) is NaN"));
  std::string unknown_version =
      npy_header("{'descr': '<f8', 'fortran_order': False, 'shape': (1,), }");
  unknown_version[6] = 9;
  EXPECT_TRUE(contains(data_error(unknown_version + bytes_of(1.0)), "version 9.0"));
}

TEST_F(NpyTest, MissingFileIsAnIoErrorNamingThePath) {
  const std::string path = (dir_ / "absent.npy").string();
  try {
    read_npy(path);
    FAIL() << "no error";
  } catch (const IoError& e) {
    EXPECT_TRUE(contains(e.what(), path)) << e.what();
  }
}

// parse_npy reads bytes as read_npy reads a file, naming `origin` instead of a path.
TEST(NpyBytes, ParsesBytesAndNamesItsOrigin) {
  std::string bytes = npy_header("{'descr': '<f8', 'fortran_order': False, 'shape': (1, 2), }");
  for (double v : {1.5, -2.0}) bytes += bytes_of(v);
  EXPECT_EQ(parse_npy(bytes, "inline"), (Matrix{{1.5, -2}}));
  try {
    parse_npy(bytes.substr(0, bytes.size() - 1), "inline");
    ADD_FAILURE() << "no error";
  } catch (const DataError& e) {
    EXPECT_EQ(std::string(e.what()).rfind("inline: truncated .npy file", 0), 0u) << e.what();
  }
}

}  // namespace
}  // namespace flows
