#include "flows/diagnostics.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include <fmt/format.h>

namespace flows {

Diagnosable::~Diagnosable() = default;
BoundedTransformer::~BoundedTransformer() = default;
NumericallySolved::~NumericallySolved() = default;

Real suggested_tail_bound(const std::vector<Real>& values, double coverage, double margin) {
  std::vector<Real> magnitudes;
  magnitudes.reserve(values.size());
  for (Real v : values)
    if (std::isfinite(v)) magnitudes.push_back(std::abs(v));
  if (magnitudes.empty()) return std::numeric_limits<Real>::quiet_NaN();
  // The order statistic ⌈coverage · n⌉ (1-based): at least `coverage` of the
  // values are at or below it.
  const double n = static_cast<double>(magnitudes.size());
  const Index rank = static_cast<Index>(std::max(1.0, std::ceil(coverage * n)));
  const auto at =
      magnitudes.begin() + static_cast<std::ptrdiff_t>(std::min(rank, magnitudes.size()) - 1);
  std::nth_element(magnitudes.begin(), at, magnitudes.end());
  return std::max(Real(0.5), std::ceil(2 * margin * *at) / 2);
}

std::vector<Finding> tail_findings(const Matrix& inputs, const std::vector<Index>& cols,
                                   Real bound) {
  std::vector<Real> values;
  values.reserve(inputs.shape(0) * cols.size());
  Index outside = 0;
  for (Index r = 0; r < inputs.shape(0); ++r)
    for (Index j : cols) {
      const Real v = inputs(r, j);
      if (!std::isfinite(v)) continue;
      values.push_back(v);
      outside += std::abs(v) > bound;
    }
  const double share = values.empty() ? 0.0 : static_cast<double>(outside) / values.size();
  const Real suggested = suggested_tail_bound(values);
  Finding tail{fmt::format("spline inputs outside [-{0:g}, {0:g}]", bound), share,
               kTailShareThreshold, share <= kTailShareThreshold, ""};
  if (!tail.ok)
    tail.advice = fmt::format(
        "{:.2g} % of this layer's inputs lie outside [-{:g}, {:g}], where the spline is the "
        "identity; tail_bound: {:g} covers {:g} % of them (or tail_bound: auto)",
        100 * share, bound, bound, suggested, 100 * kTailCoverage);
  Finding cover{fmt::format("tail_bound covering {:g} %", 100 * kTailCoverage), suggested,
                std::numeric_limits<double>::quiet_NaN(), true, ""};
  return {tail, cover};
}

}  // namespace flows
