#pragma once
#include <string>
#include <string_view>
#include <vector>

#include "flows/export.hpp"
#include "flows/function_ref.hpp"
#include "flows/tensor.hpp"

namespace flows {

// Reads a NumPy .npy file (format versions 1.0, 2.0 and 3.0) holding a 2-D
// array, or a 1-D array read as n x 1. Little-endian float64 is read as is;
// float32, int64 and int32 are converted; Fortran-ordered arrays are
// transposed into rows. Raises IoError when the file cannot be read and
// DataError naming the file and the fault for anything else: a bad magic
// string or header, an unsupported dtype or rank, a truncated file, no data,
// or a NaN/Inf entry (named by its index).
FLOWS_API Matrix read_npy(const std::string& path);
// The same for the bytes of a file; `origin` stands for the path in messages.
FLOWS_API Matrix parse_npy(std::string_view bytes, const std::string& origin);

// A share of an .npy file's rows, for a process of a job that holds only its
// own (issue 14). Both read the header first, and read_npy_rows the body in
// blocks, skipping those (of a C-ordered array) that hold no kept row.
struct NpyShape {
  Index rows = 0;
  Index columns = 0;
};
// The array's shape (n x 1 for a 1-D array), checked as read_npy checks it.
FLOWS_API NpyShape npy_shape(const std::string& path);
// The rows r with keep[r] (rows past keep's end are not kept), in order:
// read_npy's rows with the others left out. A NaN or Inf in a row that is
// not kept is not looked at.
FLOWS_API Matrix read_npy_rows(const std::string& path, const std::vector<bool>& keep);
// The same values handed one by one to take(row, column, value), none of
// them stored: a caller puts them where they belong. In file order: row by
// row for a C-ordered array, column by column for a Fortran-ordered one.
FLOWS_API void read_npy_rows_into(const std::string& path, const std::vector<bool>& keep,
                                  FunctionRef<void(Index row, Index column, Real value)> take);

// Writes `m` as format 1.0, dtype '<f8', C order, shape (rows, cols): the file
// np.load reads. Written to a temporary in the same folder and renamed into
// place, so a failed write never leaves a half-written file.
FLOWS_API void write_npy(const std::string& path, const Matrix& m);

}  // namespace flows
