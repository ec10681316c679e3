#pragma once
// Picking columns of a table by name: how data sets split x from the context
// (context_columns:) and how commands read a model's columns from a file.
#include <string>
#include <vector>

#include "flows/export.hpp"
#include "flows/tensor.hpp"

namespace flows {

// Positions of `wanted` in `header`, in the order of `wanted`. DataError
// "<where>: no column 'a' (columns: x, y, z)" when a name is missing, and
// "<where>: column 'a' is listed twice" for a repeated name.
FLOWS_API std::vector<Index> column_indices(const std::vector<std::string>& header,
                                            const std::vector<std::string>& wanted,
                                            const std::string& where);

// The listed columns of m, in that order (every index < m.shape(1)).
FLOWS_API Matrix take_columns(const Matrix& m, const std::vector<Index>& columns);

// The names an unnamed source's columns get: "x0", "x1", ... (0-based, as
// context_columns indices count).
FLOWS_API std::vector<std::string> positional_column_names(Index columns);

// "a, b, c" (for messages).
FLOWS_API std::string join_column_names(const std::vector<std::string>& names);

}  // namespace flows
