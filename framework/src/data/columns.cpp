#include "flows/data/columns.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "flows/error.hpp"

namespace flows {

std::vector<Index> column_indices(const std::vector<std::string>& header,
                                  const std::vector<std::string>& wanted,
                                  const std::string& where) {
  std::vector<Index> out;
  out.reserve(wanted.size());
  for (std::size_t k = 0; k < wanted.size(); ++k) {
    if (std::find(wanted.begin(), wanted.begin() + k, wanted[k]) != wanted.begin() + k)
      throw DataError(fmt::format("{}: column '{}' is listed twice", where, wanted[k]));
    const auto at = std::find(header.begin(), header.end(), wanted[k]);
    if (at == header.end())
      throw DataError(fmt::format("{}: no column '{}' (columns: {})", where, wanted[k],
                                  header.empty() ? "none named" : join_column_names(header)));
    out.push_back(static_cast<Index>(at - header.begin()));
  }
  return out;
}

Matrix take_columns(const Matrix& m, const std::vector<Index>& columns) {
  const Index n = m.shape(0);
  Matrix out({n, static_cast<Index>(columns.size())});
  for (Index i = 0; i < n; ++i)
    for (Index j = 0; j < columns.size(); ++j) out(i, j) = m(i, columns[j]);
  return out;
}

std::vector<std::string> positional_column_names(Index columns) {
  std::vector<std::string> names;
  names.reserve(columns);
  for (Index j = 0; j < columns; ++j) names.push_back(fmt::format("x{}", j));
  return names;
}

std::string join_column_names(const std::vector<std::string>& names) {
  std::string out;
  for (const std::string& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

}  // namespace flows
