#pragma once
#include <string>
#include <string_view>
#include <vector>

#include "flows/export.hpp"
#include "flows/function_ref.hpp"
#include "flows/tensor.hpp"

namespace flows {

// Whether the first row of a CSV file is a header. `detect` treats it as one
// when none of its fields is a number.
enum class CsvHeader { detect, present, absent };

// Reads a comma-separated file of numbers, one sample per row. Blank lines and
// lines starting with '#' are skipped; fields may be padded with spaces. The
// header's names go to `header` when given (left empty when there is none).
// Raises IoError when the file cannot be read, and DataError naming the file,
// row (its 1-based line number) and column for text in a numeric field, NaN or
// Inf, a row with the wrong number of fields, or a file without data rows.
FLOWS_API Matrix read_csv(const std::string& path, std::vector<std::string>* header = nullptr,
                          CsvHeader mode = CsvHeader::detect);
// The same for the text of a file; `origin` stands for the path in messages.
FLOWS_API Matrix parse_csv(std::string_view text, const std::string& origin,
                           std::vector<std::string>* header = nullptr,
                           CsvHeader mode = CsvHeader::detect);

// A share of a CSV file's rows, for a process of a job that holds only its
// own (issue 14). Both read the file line by line, never whole, and number
// the data rows (the rows read_csv returns) from 0 in file order.
struct CsvRowCount {
  Index rows = 0;                   // data rows
  Index columns = 0;                // fields per row
  std::vector<std::string> header;  // the header's names (empty when there is none)
};
// The data rows of a file, without parsing a number; a row with the wrong
// number of fields is a DataError as in read_csv.
FLOWS_API CsvRowCount count_csv_rows(const std::string& path, CsvHeader mode = CsvHeader::detect);
// The data rows r with keep[r] (rows past keep's end are not kept), in file
// order: read_csv's rows with the others left out. Only the kept rows are
// parsed, so a fault in a number of another row is that row's reader's to
// report; every row's number of fields is checked.
FLOWS_API Matrix read_csv_rows(const std::string& path, const std::vector<bool>& keep,
                               std::vector<std::string>* header = nullptr,
                               CsvHeader mode = CsvHeader::detect);

// The same rows handed one by one to take(row, values) (row: the data row
// of the file, values: its fields), in file order, none of them stored: a
// caller puts them where they belong. The checks are read_csv_rows'.
FLOWS_API void read_csv_rows_into(const std::string& path, const std::vector<bool>& keep,
                                  FunctionRef<void(Index row, const Real* values)> take,
                                  std::vector<std::string>* header = nullptr,
                                  CsvHeader mode = CsvHeader::detect);

// Writes `m` with every digit a double needs (%.17g) and an optional header
// line (one name per column, without commas or quotes). The file is written to
// a temporary in the same folder and renamed into place, so a failed write
// never leaves a half-written file. Raises IoError when writing fails and
// DataError when the header does not fit `m`.
FLOWS_API void write_csv(const std::string& path, const Matrix& m,
                         const std::vector<std::string>& header = {});

}  // namespace flows
