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

std::vector<std::string_view> split_fields(std::string_view line) {
  std::vector<std::string_view> fields;
  std::size_t start = 0;
  while (true) {
    const auto comma = line.find(',', start);
    if (comma == std::string_view::npos) {
      fields.push_back(trim(line.substr(start)));
      return fields;
    }
    fields.push_back(trim(line.substr(start, comma - start)));
    start = comma + 1;
  }
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

  std::vector<std::string> names;
  std::vector<Real> values;
  Index cols = 0;
  Index rows = 0;
  Index width_line = 0;  // the line that fixed the number of fields
  bool first_row = true;

  auto column_name = [&](Index c) {
    return c < names.size() && !names[c].empty() ? fmt::format(" ('{}')", names[c]) : std::string();
  };

  for (Index line_no = 1; !rest.empty(); ++line_no) {
    const auto newline = rest.find('\n');
    const std::string_view line = rest.substr(0, newline);
    rest = newline == std::string_view::npos ? std::string_view() : rest.substr(newline + 1);

    const std::string_view content = trim(line);
    if (content.empty() || content.front() == '#') continue;
    const std::vector<std::string_view> fields = split_fields(content);

    if (first_row) {
      first_row = false;
      cols = fields.size();
      width_line = line_no;
      bool is_header = mode == CsvHeader::present;
      if (mode == CsvHeader::detect) {
        is_header = true;
        for (const auto& f : fields) {
          Real v;
          if (parse_number(f, v) == Parsed::number) is_header = false;
        }
      }
      if (is_header) {
        for (const auto& f : fields) names.push_back(unquote(f));
        continue;
      }
    }

    if (fields.size() != cols) {
      const Index column = std::min<Index>(fields.size(), cols) + 1;
      throw DataError(fmt::format(
          "{}: row {}, column {}: found {} field{} where {} {} expected (as in {} at row {})", path,
          line_no, column, fields.size(), fields.size() == 1 ? "" : "s", cols,
          cols == 1 ? "is" : "are", names.empty() ? "the first data row" : "the header",
          width_line));
    }
    for (Index c = 0; c < cols; ++c) {
      Real v = 0;
      const Parsed parsed = parse_number(fields[c], v);
      const auto where = [&] {
        return fmt::format("{}: row {}, column {}{}", path, line_no, c + 1, column_name(c));
      };
      switch (parsed) {
        case Parsed::empty:
          throw DataError(fmt::format("{}: empty field where a number is expected", where()));
        case Parsed::text:
          throw DataError(fmt::format("{}: text '{}' where a number is expected{}", where(),
                                      fields[c],
                                      rows == 0 && names.empty() && mode == CsvHeader::detect
                                          ? " (a header row must have no numeric field)"
                                          : ""));
        case Parsed::out_of_range:
          throw DataError(
              fmt::format("{}: '{}' is out of the range of a double", where(), fields[c]));
        case Parsed::number:
          break;
      }
      if (std::isnan(v))
        throw DataError(fmt::format("{}: value is NaN ('{}')", where(), fields[c]));
      if (std::isinf(v))
        throw DataError(fmt::format("{}: value is infinite ('{}')", where(), fields[c]));
      values.push_back(v);
    }
    ++rows;
  }

  if (rows == 0)
    throw DataError(fmt::format("{}: no data rows ({})", path,
                                text.empty()     ? "the file is empty"
                                : !names.empty() ? "only a header"
                                                 : "only blank lines and comments"));
  Matrix m({rows, cols});
  std::copy(values.begin(), values.end(), m.begin());
  if (header != nullptr) *header = std::move(names);
  return m;
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
