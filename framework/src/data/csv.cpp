#include "flows/data/csv.hpp"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string_view>

#include <fmt/format.h>

#include "flows/detail/file_io.hpp"
#include "flows/error.hpp"
#include "flows/function_ref.hpp"
#include "flows/resources.hpp"

namespace flows {
namespace {

std::string_view trim(std::string_view s) {
  const char* ws = " \t\r\f\v";
  const auto first = s.find_first_not_of(ws);
  if (first == std::string_view::npos) return {};
  const auto last = s.find_last_not_of(ws);
  return s.substr(first, last - first + 1);
}

enum class Parsed { number, empty, text, out_of_range };

// Locale-independent, whole-field parse of a decimal or scientific number.
// from_chars also accepts "nan" and "inf", which the caller rejects by name.
Parsed parse_number(std::string_view field, Real& out) {
  if (field.empty()) return Parsed::empty;
  const char* first = field.data();
  const char* last = field.data() + field.size();
  if (*first == '+' && field.size() > 1 && first[1] != '-' && first[1] != '+') ++first;
  const auto result = std::from_chars(first, last, out, std::chars_format::general);
  if (result.ec == std::errc::result_out_of_range && result.ptr == last)
    return Parsed::out_of_range;
  if (result.ec != std::errc() || result.ptr != last) return Parsed::text;
  return Parsed::number;
}

std::string unquote(std::string_view s) {
  if (s.size() >= 2 && s.front() == '"' && s.back() == '"') s = s.substr(1, s.size() - 2);
  return std::string(s);
}

// The number of fields of the first line that is not blank or a comment (0: none).
Index first_line_fields(std::string_view rest) {
  while (!rest.empty()) {
    const auto newline = rest.find('\n');
    const std::string_view content = trim(rest.substr(0, newline));
    if (!content.empty() && content.front() != '#')
      return static_cast<Index>(std::count(content.begin(), content.end(), ',')) + 1;
    rest = newline == std::string_view::npos ? std::string_view() : rest.substr(newline + 1);
  }
  return 0;
}

// The data rows of a CSV text, fed one line at a time: the first row that
// is not blank or a comment fixes the number of fields (and may be the
// header); every data row must have that many. A row that `keep` takes is
// parsed and stored; the others are only counted and their fields counted.
class CsvRows {
 public:
  // `keep` must outlive the reader (FunctionRef does not own it).
  CsvRows(const std::string& path, CsvHeader mode, FunctionRef<bool(Index row)> keep)
      : path_(path), mode_(mode), keep_(keep) {}

  void add(std::string_view line, Index line_no) {
    const std::string_view content = trim(line);
    if (content.empty() || content.front() == '#') return;
    if (first_row_) {
      first_row_ = false;
      fields_ = split_fields(content);
      cols_ = fields_.size();
      width_line_ = line_no;
      if (is_header(fields_)) {
        for (const auto& f : fields_) names_.push_back(unquote(f));
        return;
      }
    }
    const bool kept = keep_(rows_);
    if (!kept) {
      const Index found = static_cast<Index>(std::count(content.begin(), content.end(), ',')) + 1;
      if (found != cols_) wrong_width(found, line_no);
      ++rows_;
      return;
    }
    split_fields(content, fields_);
    if (fields_.size() != cols_) wrong_width(fields_.size(), line_no);
    if (sink_) values_.clear();
    for (Index c = 0; c < cols_; ++c) values_.push_back(number(fields_[c], line_no, c));
    if (sink_) (*sink_)(rows_, values_.data());
    ++rows_;
    ++kept_;
  }

  // Hands each kept row to `sink` (row, its values) instead of storing it;
  // finish() then returns no rows. The sink must outlive the reader.
  void send_rows_to(const FunctionRef<void(Index, const Real*)>* sink) { sink_ = sink; }

  Index rows() const { return rows_; }
  Index columns() const { return cols_; }

  // The kept rows; DataError when the text had no data rows.
  Matrix finish(bool text_empty, std::vector<std::string>* header) {
    if (rows_ == 0)
      throw DataError(fmt::format("{}: no data rows ({})", path_,
                                  text_empty        ? "the file is empty"
                                  : !names_.empty() ? "only a header"
                                                    : "only blank lines and comments"));
    Matrix m({sink_ ? 0 : kept_, cols_});
    if (!sink_) std::copy(values_.begin(), values_.end(), m.begin());
    if (header != nullptr) *header = std::move(names_);
    return m;
  }

 private:
  static void split_fields(std::string_view line, std::vector<std::string_view>& fields) {
    fields.clear();
    std::size_t start = 0;
    while (true) {
      const auto comma = line.find(',', start);
      if (comma == std::string_view::npos) {
        fields.push_back(trim(line.substr(start)));
        return;
      }
      fields.push_back(trim(line.substr(start, comma - start)));
      start = comma + 1;
    }
  }
  static std::vector<std::string_view> split_fields(std::string_view line) {
    std::vector<std::string_view> fields;
    split_fields(line, fields);
    return fields;
  }

  bool is_header(const std::vector<std::string_view>& fields) const {
    if (mode_ != CsvHeader::detect) return mode_ == CsvHeader::present;
    for (const auto& f : fields) {
      Real v;
      if (parse_number(f, v) == Parsed::number) return false;
    }
    return true;
  }

  std::string column_name(Index c) const {
    return c < names_.size() && !names_[c].empty() ? fmt::format(" ('{}')", names_[c])
                                                   : std::string();
  }

  [[noreturn]] void wrong_width(Index found, Index line_no) const {
    const Index column = std::min<Index>(found, cols_) + 1;
    throw DataError(fmt::format(
        "{}: row {}, column {}: found {} field{} where {} {} expected (as in {} at row {})", path_,
        line_no, column, found, found == 1 ? "" : "s", cols_, cols_ == 1 ? "is" : "are",
        names_.empty() ? "the first data row" : "the header", width_line_));
  }

  Real number(std::string_view field, Index line_no, Index c) const {
    Real v = 0;
    const Parsed parsed = parse_number(field, v);
    const auto where = [&] {
      return fmt::format("{}: row {}, column {}{}", path_, line_no, c + 1, column_name(c));
    };
    switch (parsed) {
      case Parsed::empty:
        throw DataError(fmt::format("{}: empty field where a number is expected", where()));
      case Parsed::text:
        throw DataError(fmt::format("{}: text '{}' where a number is expected{}", where(), field,
                                    rows_ == 0 && names_.empty() && mode_ == CsvHeader::detect
                                        ? " (a header row must have no numeric field)"
                                        : ""));
      case Parsed::out_of_range:
        throw DataError(fmt::format("{}: '{}' is out of the range of a double", where(), field));
      case Parsed::number:
        break;
    }
    if (std::isnan(v)) throw DataError(fmt::format("{}: value is NaN ('{}')", where(), field));
    if (std::isinf(v)) throw DataError(fmt::format("{}: value is infinite ('{}')", where(), field));
    return v;
  }

  const std::string& path_;
  CsvHeader mode_;
  FunctionRef<bool(Index row)> keep_;
  bool first_row_ = true;
  std::vector<std::string_view> fields_;
  std::vector<std::string> names_;
  std::vector<Real> values_;
  const FunctionRef<void(Index, const Real*)>* sink_ = nullptr;
  Index cols_ = 0;
  Index rows_ = 0;        // data rows seen
  Index kept_ = 0;        // of them, parsed and stored
  Index width_line_ = 0;  // the line that fixed the number of fields
};

// Feeds every line of `text` to `rows`.
void add_lines(std::string_view rest, CsvRows& rows) {
  for (Index line_no = 1; !rest.empty(); ++line_no) {
    const auto newline = rest.find('\n');
    rows.add(rest.substr(0, newline), line_no);
    rest = newline == std::string_view::npos ? std::string_view() : rest.substr(newline + 1);
  }
}

// Feeds every line of the file at `path` to `rows`, reading it line by line
// (never whole); returns its size in bytes.
std::uint64_t add_file_lines(const std::string& path, CsvRows& rows) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec))
    throw IoError(fmt::format("{}: cannot read: it is a folder, not a file", path));
  std::ifstream in(path, std::ios::binary);
  if (!in) detail::read_whole_file(path);  // raises the IoError that says why
  std::uint64_t bytes = 0;
  std::string line;
  for (Index line_no = 1; std::getline(in, line); ++line_no) {
    bytes += line.size() + 1;
    std::string_view view(line);
    if (line_no == 1 && view.substr(0, 3) == "\xEF\xBB\xBF") view.remove_prefix(3);  // UTF-8 BOM
    rows.add(view, line_no);
  }
  if (in.bad()) throw IoError(fmt::format("{}: read failed", path));
  return bytes;
}

}  // namespace

// The file is read whole: its size must fit first (resources.hpp). The
// values are then bounded by its lines and the fields of its first row, and
// checked in parse_csv before any is parsed.
Matrix read_csv(const std::string& path, std::vector<std::string>* header, CsvHeader mode) {
  std::error_code ec;
  if (std::filesystem::is_regular_file(path, ec)) {
    const auto size = std::filesystem::file_size(path, ec);
    if (!ec)
      check_memory({double(size), fmt::format("a file of {}", format_bytes(double(size))),
                    "reading it whole", "its size in bytes"},
                   path);
  }
  return parse_csv(detail::read_whole_file(path), path, header, mode);
}

Matrix parse_csv(std::string_view text, const std::string& path, std::vector<std::string>* header,
                 CsvHeader mode) {
  std::string_view rest(text);
  if (rest.substr(0, 3) == "\xEF\xBB\xBF") rest.remove_prefix(3);  // UTF-8 byte order mark

  // Every data row is a line, so lines x the first row's fields bound the
  // values: refused before any is parsed when they would not fit.
  const Index lines = static_cast<Index>(std::count(rest.begin(), rest.end(), '\n')) + 1;
  const Index fields = first_line_fields(rest);
  check_data_memory(double(lines), double(fields),
                    fmt::format("{} line{} of {} field{}", lines, lines == 1 ? "" : "s", fields,
                                fields == 1 ? "" : "s"),
                    path, double(text.size()),
                    fmt::format("the text's {}", format_bytes(double(text.size()))));
  const auto every_row = [](Index) { return true; };
  CsvRows rows(path, mode, every_row);
  add_lines(rest, rows);
  return rows.finish(text.empty(), header);
}

CsvRowCount count_csv_rows(const std::string& path, CsvHeader mode) {
  const auto no_row = [](Index) { return false; };
  CsvRows rows(path, mode, no_row);
  const std::uint64_t bytes = add_file_lines(path, rows);
  CsvRowCount out;
  rows.finish(bytes == 0, &out.header);
  out.rows = rows.rows();
  out.columns = rows.columns();
  return out;
}

Matrix read_csv_rows(const std::string& path, const std::vector<bool>& keep,
                     std::vector<std::string>* header, CsvHeader mode) {
  const Index kept = static_cast<Index>(std::count(keep.begin(), keep.end(), true));
  const Index fields = first_line_fields(detail::read_prefix(path, 1 << 16));
  check_data_memory(double(kept), double(fields),
                    fmt::format("{} row{} of {} field{}", kept, kept == 1 ? "" : "s", fields,
                                fields == 1 ? "" : "s"),
                    path);
  const auto kept_row = [&keep](Index row) { return row < keep.size() && keep[row]; };
  CsvRows rows(path, mode, kept_row);
  const std::uint64_t bytes = add_file_lines(path, rows);
  return rows.finish(bytes == 0, header);
}

void read_csv_rows_into(const std::string& path, const std::vector<bool>& keep,
                        FunctionRef<void(Index row, const Real* values)> take,
                        std::vector<std::string>* header, CsvHeader mode) {
  const auto kept_row = [&keep](Index row) { return row < keep.size() && keep[row]; };
  CsvRows rows(path, mode, kept_row);
  rows.send_rows_to(&take);
  const std::uint64_t bytes = add_file_lines(path, rows);
  rows.finish(bytes == 0, header);
}

void write_csv(const std::string& path, const Matrix& m, const std::vector<std::string>& header) {
  if (!header.empty() && header.size() != m.shape(1))
    throw DataError(fmt::format("{}: the header has {} names but the data has {} columns", path,
                                header.size(), m.shape(1)));
  for (const auto& name : header)
    if (name.find_first_of(",\"\n\r") != std::string::npos)
      throw DataError(
          fmt::format("{}: column name '{}' contains a comma, quote or line break", path, name));
  detail::write_atomically(path, [&](std::FILE* file) {
    fmt::memory_buffer buffer;
    auto flush = [&] {
      const bool ok = std::fwrite(buffer.data(), 1, buffer.size(), file) == buffer.size();
      buffer.clear();
      return ok;
    };
    for (Index c = 0; c < header.size(); ++c)
      fmt::format_to(std::back_inserter(buffer), "{}{}", c ? "," : "", header[c]);
    if (!header.empty()) buffer.push_back('\n');
    for (Index r = 0; r < m.shape(0); ++r) {
      for (Index c = 0; c < m.shape(1); ++c)
        fmt::format_to(std::back_inserter(buffer), "{}{:.17g}", c ? "," : "", m(r, c));
      buffer.push_back('\n');
      if (buffer.size() > (1u << 16) && !flush()) return false;
    }
    return flush();
  });
}

}  // namespace flows
