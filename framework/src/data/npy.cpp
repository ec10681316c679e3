#include "flows/data/npy.hpp"

#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <sstream>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include "flows/detail/file_io.hpp"
#include "flows/error.hpp"
#include "flows/resources.hpp"

// The .npy format: a 6-byte magic "\x93NUMPY", a major and minor version byte,
// the header length (uint16 in 1.0, uint32 in 2.0 and 3.0, little-endian), the
// header (a Python dict literal with 'descr', 'fortran_order' and 'shape',
// padded with spaces and a newline), then the raw array data.
// https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html

namespace flows {
namespace {

constexpr char kMagic[] = "\x93NUMPY";
constexpr std::size_t kMagicSize = 6;

std::uint64_t load_le(const unsigned char* p, std::size_t bytes) {
  std::uint64_t v = 0;
  for (std::size_t i = bytes; i-- > 0;) v = (v << 8) | p[i];
  return v;
}

void store_le(unsigned char* p, std::uint64_t v, std::size_t bytes) {
  for (std::size_t i = 0; i < bytes; ++i, v >>= 8) p[i] = static_cast<unsigned char>(v & 0xFF);
}

// One value of the header dict: a string, a boolean or a tuple of integers.
struct HeaderValue {
  enum class Type { string, boolean, tuple } type = Type::string;
  std::string text;
  bool flag = false;
  std::vector<std::uint64_t> dims;
};

// A recursive-descent reader for the small Python dict literal numpy writes.
class HeaderParser {
 public:
  HeaderParser(std::string_view text, const std::string& path) : s_(text), path_(path) {}

  std::map<std::string, HeaderValue> parse() {
    std::map<std::string, HeaderValue> out;
    expect('{');
    while (true) {
      skip_space();
      if (peek() == '}') break;
      const std::string key = parse_string();
      expect(':');
      out[key] = parse_value();
      skip_space();
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      if (peek() == '}') break;
      fail("expected ',' or '}'");
    }
    ++pos_;
    skip_space();
    if (pos_ != s_.size()) fail("unexpected text after the dict");
    return out;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw DataError(fmt::format("{}: corrupt .npy header: {} at offset {} of '{}'", path_, what,
                                pos_, std::string(s_.substr(0, 200))));
  }
  void skip_space() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\n' || s_[pos_] == '\t')) ++pos_;
  }
  char peek() const { return pos_ < s_.size() ? s_[pos_] : '\0'; }
  void expect(char c) {
    skip_space();
    if (peek() != c) fail(fmt::format("expected '{}'", c));
    ++pos_;
  }
  std::string parse_string() {
    skip_space();
    const char quote = peek();
    if (quote != '\'' && quote != '"') fail("expected a quoted string");
    const auto end = s_.find(quote, pos_ + 1);
    if (end == std::string_view::npos) fail("unterminated string");
    std::string out(s_.substr(pos_ + 1, end - pos_ - 1));
    pos_ = end + 1;
    return out;
  }
  std::uint64_t parse_integer() {
    skip_space();
    if (!std::isdigit(static_cast<unsigned char>(peek()))) fail("expected a non-negative integer");
    std::uint64_t v = 0;
    while (std::isdigit(static_cast<unsigned char>(peek()))) {
      const std::uint64_t digit = static_cast<std::uint64_t>(s_[pos_++] - '0');
      if (v > (std::numeric_limits<std::uint64_t>::max() - digit) / 10) fail("dimension too large");
      v = v * 10 + digit;
    }
    if (peek() == 'L') ++pos_;  // Python 2 long literals
    return v;
  }
  HeaderValue parse_value() {
    skip_space();
    HeaderValue v;
    if (peek() == '\'' || peek() == '"') {
      v.type = HeaderValue::Type::string;
      v.text = parse_string();
    } else if (s_.substr(pos_, 4) == "True") {
      v.type = HeaderValue::Type::boolean;
      v.flag = true;
      pos_ += 4;
    } else if (s_.substr(pos_, 5) == "False") {
      v.type = HeaderValue::Type::boolean;
      pos_ += 5;
    } else if (peek() == '(') {
      v.type = HeaderValue::Type::tuple;
      ++pos_;
      while (true) {
        skip_space();
        if (peek() == ')') break;
        v.dims.push_back(parse_integer());
        skip_space();
        if (peek() == ',') {
          ++pos_;
          continue;
        }
        if (peek() != ')') fail("expected ',' or ')' in the shape");
      }
      ++pos_;
    } else if (peek() == '[') {
      fail("structured dtypes are not supported");
    } else {
      fail("expected a string, True, False or a tuple");
    }
    return v;
  }

  std::string_view s_;
  const std::string& path_;
  std::size_t pos_ = 0;
};

enum class DType { f8, f4, i8, i4 };

DType parse_dtype(const std::string& descr, const std::string& path) {
  if (descr.size() == 3 && (descr[0] == '<' || descr[0] == '=')) {
    const std::string kind = descr.substr(1);
    if (kind == "f8") return DType::f8;
    if (kind == "f4") return DType::f4;
    if (kind == "i8") return DType::i8;
    if (kind == "i4") return DType::i4;
  }
  if (!descr.empty() && descr[0] == '>')
    throw DataError(
        fmt::format("{}: big-endian dtype '{}' is not supported; save it as "
                    "little-endian (arr.astype('<f8'))",
                    path, descr));
  throw DataError(
      fmt::format("{}: unsupported dtype '{}'; flows reads float64 ('<f8'), float32 "
                  "('<f4'), int64 ('<i8') and int32 ('<i4')",
                  path, descr));
}

std::size_t item_size(DType t) {
  return t == DType::f8 || t == DType::i8 ? 8 : 4;
}

Real decode(const unsigned char* p, DType t) {
  switch (t) {
    case DType::f8: {
      const std::uint64_t bits = load_le(p, 8);
      double v;
      std::memcpy(&v, &bits, 8);
      return static_cast<Real>(v);
    }
    case DType::f4: {
      const auto bits = static_cast<std::uint32_t>(load_le(p, 4));
      float v;
      std::memcpy(&v, &bits, 4);
      return static_cast<Real>(v);
    }
    case DType::i8:
      return static_cast<Real>(static_cast<std::int64_t>(load_le(p, 8)));
    case DType::i4:
      return static_cast<Real>(
          static_cast<std::int32_t>(static_cast<std::uint32_t>(load_le(p, 4))));
  }
  return 0;
}

std::string shape_text(const std::vector<std::uint64_t>& dims) {
  std::string out = "(";
  for (std::size_t i = 0; i < dims.size(); ++i) out += fmt::format("{}{}", i ? ", " : "", dims[i]);
  return out + (dims.size() == 1 ? ",)" : ")");
}

// What the preamble and the header say: where the data starts, its type and shape.
struct Layout {
  DType dtype = DType::f8;
  std::string descr;
  bool fortran = false;
  std::vector<std::uint64_t> dims;
  std::uint64_t rows = 0, cols = 0;
  std::size_t data_offset = 0;   // preamble + header
  std::uint64_t data_bytes = 0;  // rows x cols x item size
};

// The bytes the preamble and header take (from the first bytes of a file of
// `size` bytes), checking the magic string and the version.
std::size_t header_end(std::string_view head, std::uint64_t size, const std::string& path) {
  const auto* data = reinterpret_cast<const unsigned char*>(head.data());
  if (head.size() < kMagicSize || std::memcmp(head.data(), kMagic, kMagicSize) != 0)
    throw DataError(fmt::format("{}: not an .npy file (it does not start with \\x93NUMPY)", path));
  if (head.size() < kMagicSize + 2)
    throw DataError(
        fmt::format("{}: truncated .npy file: {} bytes end inside the preamble", path, size));
  const unsigned major = data[6];
  const unsigned minor = data[7];
  std::size_t length_bytes = 0;
  if (major == 1)
    length_bytes = 2;
  else if (major == 2 || major == 3)
    length_bytes = 4;
  else
    throw DataError(
        fmt::format("{}: unsupported .npy format version {}.{} (flows reads 1.0, 2.0 "
                    "and 3.0)",
                    path, major, minor));
  const std::size_t preamble = kMagicSize + 2 + length_bytes;
  if (head.size() < preamble)
    throw DataError(
        fmt::format("{}: truncated .npy file: {} bytes end inside the preamble", path, size));
  const std::uint64_t header_length = load_le(data + kMagicSize + 2, length_bytes);
  if (header_length > size - preamble)
    throw DataError(fmt::format("{}: truncated .npy file: the header needs {} bytes, {} remain",
                                path, header_length, size - preamble));
  return preamble + static_cast<std::size_t>(header_length);
}

// Parses the preamble and header of a file of `size` bytes from `head`, its
// first bytes (at least header_end of them), and checks that the data that
// follows has the size the shape gives.
Layout parse_layout(std::string_view head, std::uint64_t size, const std::string& path) {
  Layout layout;
  layout.data_offset = header_end(head, size, path);
  const std::size_t preamble = head[6] == 1 ? kMagicSize + 4 : kMagicSize + 6;
  const std::string_view header_text = head.substr(preamble, layout.data_offset - preamble);

  auto header = HeaderParser(header_text, path).parse();
  for (const char* key : {"descr", "fortran_order", "shape"})
    if (!header.count(key))
      throw DataError(fmt::format("{}: corrupt .npy header: no '{}' in '{}'", path, key,
                                  std::string(header_text.substr(0, 200))));
  const HeaderValue& descr = header["descr"];
  const HeaderValue& fortran = header["fortran_order"];
  const HeaderValue& shape = header["shape"];
  if (descr.type != HeaderValue::Type::string)
    throw DataError(
        fmt::format("{}: unsupported dtype: 'descr' is not a simple type string", path));
  if (fortran.type != HeaderValue::Type::boolean)
    throw DataError(
        fmt::format("{}: corrupt .npy header: 'fortran_order' is not True or False", path));
  if (shape.type != HeaderValue::Type::tuple)
    throw DataError(fmt::format("{}: corrupt .npy header: 'shape' is not a tuple", path));
  layout.dtype = parse_dtype(descr.text, path);
  layout.descr = descr.text;
  layout.fortran = fortran.flag;
  layout.dims = shape.dims;

  if (shape.dims.empty() || shape.dims.size() > 2)
    throw DataError(
        fmt::format("{}: the array has shape {} ({} dimensions); flows reads 1-D and "
                    "2-D arrays",
                    path, shape_text(shape.dims), shape.dims.size()));
  layout.rows = shape.dims[0];
  layout.cols = shape.dims.size() == 2 ? shape.dims[1] : 1;
  if (layout.rows == 0 || layout.cols == 0)
    throw DataError(
        fmt::format("{}: the array holds no data (shape {})", path, shape_text(shape.dims)));

  const std::size_t item = item_size(layout.dtype);
  const std::uint64_t max_count = std::numeric_limits<std::uint64_t>::max() / item;
  if (layout.cols > max_count / layout.rows)
    throw DataError(fmt::format("{}: corrupt .npy header: shape {} is too large", path,
                                shape_text(shape.dims)));
  layout.data_bytes = layout.rows * layout.cols * item;
  const std::uint64_t available = size - layout.data_offset;
  if (available < layout.data_bytes)
    throw DataError(
        fmt::format("{}: truncated .npy file: shape {} of '{}' needs {} data bytes, "
                    "only {} are present",
                    path, shape_text(shape.dims), descr.text, layout.data_bytes, available));
  if (available > layout.data_bytes)
    throw DataError(fmt::format(
        "{}: corrupt .npy file: {} unexpected bytes after the {} data bytes "
        "of shape {}",
        path, available - layout.data_bytes, layout.data_bytes, shape_text(shape.dims)));
  return layout;
}

// Element (r, c) of the array, decoded from p; a NaN or Inf float is a
// DataError naming its index.
Real element(const unsigned char* p, const Layout& layout, std::uint64_t r, std::uint64_t c,
             const std::string& path) {
  const Real v = decode(p, layout.dtype);
  const bool is_float = layout.dtype == DType::f8 || layout.dtype == DType::f4;
  if (is_float && !std::isfinite(v)) {
    const std::string index =
        layout.dims.size() == 1 ? fmt::format("[{}]", r) : fmt::format("[{}, {}]", r, c);
    throw DataError(fmt::format("{}: element {} (0-based) is {}", path, index,
                                std::isnan(v) ? "NaN" : "infinite"));
  }
  return v;
}

// Refuses an array whose rows would not fit in memory, with `file_bytes`
// read besides (resources.hpp).
void check_layout_memory(const Layout& layout, const std::string& path, double file_bytes) {
  check_data_memory(
      double(layout.rows), double(layout.cols),
      fmt::format("an array of shape {}", shape_text(layout.dims)), path, file_bytes,
      file_bytes > 0 ? fmt::format("the file's {} read whole", format_bytes(file_bytes)) : "");
}

}  // namespace

// The header first: its shape tells what the array needs, so a file too big
// for the machine is refused before its body is read.
Matrix read_npy(const std::string& path) {
  std::error_code ec;
  const std::uint64_t size =
      std::filesystem::is_regular_file(path, ec) ? std::filesystem::file_size(path, ec) : 0;
  if (size > 0 && !ec) {
    constexpr std::size_t kPreamble = kMagicSize + 6;
    std::string head = detail::read_prefix(path, kPreamble);
    const std::size_t end = header_end(head, size, path);
    if (end > head.size()) head = detail::read_prefix(path, end);
    if (head.size() >= end) check_layout_memory(parse_layout(head, size, path), path, double(size));
  }
  return parse_npy(detail::read_whole_file(path), path);
}

Matrix parse_npy(std::string_view bytes, const std::string& path) {
  const Layout layout = parse_layout(bytes, bytes.size(), path);
  check_layout_memory(layout, path, 0);
  const auto rows = layout.rows;
  const auto cols = layout.cols;
  const std::size_t item = item_size(layout.dtype);
  Matrix m({static_cast<Index>(rows), static_cast<Index>(cols)});
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data()) + layout.data_offset;
  for (std::uint64_t k = 0; k < rows * cols; ++k, p += item) {
    // C order stores rows one after another; Fortran order stores columns.
    const std::uint64_t r = layout.fortran ? k % rows : k / cols;
    const std::uint64_t c = layout.fortran ? k / rows : k % cols;
    m(static_cast<Index>(r), static_cast<Index>(c)) = element(p, layout, r, c, path);
  }
  return m;
}

namespace {

// The layout of the file at `path` from its first bytes (header only).
Layout read_layout(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec))
    throw IoError(fmt::format("{}: cannot read: it is a folder, not a file", path));
  const std::uint64_t size = std::filesystem::file_size(path, ec);
  if (ec) detail::read_whole_file(path);  // raises the IoError that says why
  constexpr std::size_t kPreamble = kMagicSize + 6;
  std::string head = detail::read_prefix(path, kPreamble);
  const std::size_t end = header_end(head, size, path);
  if (end > head.size()) head = detail::read_prefix(path, end);
  return parse_layout(head, size, path);
}

}  // namespace

NpyShape npy_shape(const std::string& path) {
  const Layout layout = read_layout(path);
  return {static_cast<Index>(layout.rows), static_cast<Index>(layout.cols)};
}

// The body is read in blocks of whole rows (C order), skipping the blocks
// with no kept row; a Fortran-ordered body (columns one after another) is
// read through.
Matrix read_npy_rows(const std::string& path, const std::vector<bool>& keep) {
  const NpyShape shape = npy_shape(path);
  std::vector<Index> out_row(shape.rows, shape.rows);  // a kept row's row of the result
  Index kept = 0;
  for (Index r = 0; r < shape.rows; ++r)
    if (r < keep.size() && keep[r]) out_row[r] = kept++;
  check_data_memory(
      double(kept), double(shape.columns),
      fmt::format("{} of the {} rows of an array of {} columns", kept, shape.rows, shape.columns),
      path);
  Matrix m({kept, shape.columns});
  read_npy_rows_into(path, keep,
                     [&](Index row, Index column, Real value) { m(out_row[row], column) = value; });
  return m;
}

void read_npy_rows_into(const std::string& path, const std::vector<bool>& keep,
                        FunctionRef<void(Index row, Index column, Real value)> take) {
  const Layout layout = read_layout(path);
  auto kept = [&keep](std::uint64_t r) { return r < keep.size() && keep[r]; };
  std::ifstream in(path, std::ios::binary);
  if (!in) detail::read_whole_file(path);  // raises the IoError that says why
  const std::size_t item = item_size(layout.dtype);
  const std::uint64_t count = layout.rows * layout.cols;
  // Elements per block: whole rows in C order, about 4 MiB.
  const std::uint64_t row_items = layout.fortran ? 1 : layout.cols;
  const std::uint64_t block =
      std::max<std::uint64_t>(1, (std::uint64_t{4} << 20) / (item * row_items)) * row_items;
  std::vector<unsigned char> bytes;
  for (std::uint64_t first = 0; first < count; first += block) {
    const std::uint64_t last = std::min(count, first + block);
    if (!layout.fortran) {
      bool any = false;
      for (std::uint64_t r = first / layout.cols; r < last / layout.cols && !any; ++r)
        any = kept(r);
      if (!any) continue;
    }
    bytes.resize((last - first) * item);
    in.seekg(static_cast<std::streamoff>(layout.data_offset + first * item));
    in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    if (!in) throw IoError(fmt::format("{}: read failed", path));
    const unsigned char* p = bytes.data();
    for (std::uint64_t k = first; k < last; ++k, p += item) {
      const std::uint64_t r = layout.fortran ? k % layout.rows : k / layout.cols;
      const std::uint64_t c = layout.fortran ? k / layout.rows : k % layout.cols;
      if (!kept(r)) continue;
      take(static_cast<Index>(r), static_cast<Index>(c), element(p, layout, r, c, path));
    }
  }
}

void write_npy(const std::string& path, const Matrix& m) {
  std::string header = fmt::format(
      "{{'descr': '<f8', 'fortran_order': False, 'shape': ({}, {}), }}", m.shape(0), m.shape(1));
  // Pad with spaces so that the data starts on a 64-byte boundary, as numpy does.
  const std::size_t preamble = kMagicSize + 2 + 2;
  const std::size_t total = preamble + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header.push_back('\n');
  if (header.size() > 0xFFFF)
    throw DataError(fmt::format("{}: .npy header too long for format 1.0", path));

  detail::write_atomically(path, [&](std::FILE* file) {
    std::vector<unsigned char> buffer(preamble);
    std::memcpy(buffer.data(), kMagic, kMagicSize);
    buffer[6] = 1;
    buffer[7] = 0;
    store_le(buffer.data() + 8, header.size(), 2);
    buffer.insert(buffer.end(), header.begin(), header.end());
    auto flush = [&] {
      const bool ok = std::fwrite(buffer.data(), 1, buffer.size(), file) == buffer.size();
      buffer.clear();
      return ok;
    };
    for (Index r = 0; r < m.shape(0); ++r) {
      for (Index c = 0; c < m.shape(1); ++c) {
        const double v = static_cast<double>(m(r, c));
        std::uint64_t bits;
        std::memcpy(&bits, &v, 8);
        unsigned char le[8];
        store_le(le, bits, 8);
        buffer.insert(buffer.end(), le, le + 8);
      }
      if (buffer.size() > (1u << 16) && !flush()) return false;
    }
    return flush();
  });
}

}  // namespace flows
