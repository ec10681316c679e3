#include "flows/auto_tail_bound.hpp"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include "flows/bounds.hpp"
#include "flows/diagnostics.hpp"
#include "flows/pipeline.hpp"
#include "flows/standardize.hpp"

namespace flows {

namespace {

// Dotted paths (as ConfigNode::set takes them, list items by index) of every
// `tail_bound: auto` below `node`.
void find_auto(const YAML::Node& node, const std::string& path, std::vector<std::string>& out) {
  auto join = [&](const std::string& key) { return path.empty() ? key : path + "." + key; };
  if (node.IsMap()) {
    for (const auto& item : node) {
      const std::string key = item.first.Scalar();
      if (key == "tail_bound" && item.second.IsScalar() && item.second.Scalar() == "auto")
        out.push_back(join(key));
      else
        find_auto(item.second, join(key), out);
    }
  } else if (node.IsSequence()) {
    for (std::size_t i = 0; i < node.size(); ++i) find_auto(node[i], join(std::to_string(i)), out);
  }
}

}  // namespace

Real auto_tail_bound(const Matrix& x) {
  const std::vector<Real> values(x.begin(), x.end());
  const Real suggested = suggested_tail_bound(values);
  return std::isfinite(suggested) ? std::max(kAutoTailBoundFloor, suggested) : kAutoTailBoundFloor;
}

Real auto_tail_bound(const Matrix& x, Ranks* ranks) {
  if (ranks == nullptr || ranks->size() <= 1) return auto_tail_bound(x);
  std::vector<Real> magnitudes;
  magnitudes.reserve(x.size());
  for (Real v : x)
    if (std::isfinite(v)) magnitudes.push_back(std::abs(v));
  Real total = static_cast<Real>(magnitudes.size());
  ranks->sum(&total, 1);
  // The order statistic ⌈coverage · n⌉ of all n values is the t-th largest,
  // t = n − ⌈coverage · n⌉ + 1; a rank's values below its own t largest
  // cannot be it.
  const auto n = static_cast<Index>(total);
  const Index k = static_cast<Index>(std::max(1.0, std::ceil(kTailCoverage * total)));
  const Index t = std::min(n, n - std::min(k, n) + 1);
  const Index own = std::min<Index>(t, magnitudes.size());
  std::nth_element(magnitudes.begin(), magnitudes.begin() + static_cast<std::ptrdiff_t>(own),
                   magnitudes.end(), std::greater<Real>());
  std::vector<Real> top = ranks->gather(magnitudes.data(), own);
  Real bound = 0;
  if (ranks->rank() == 0) {
    Real at = std::numeric_limits<Real>::quiet_NaN();
    if (t > 0 && top.size() >= t) {
      std::nth_element(top.begin(), top.begin() + static_cast<std::ptrdiff_t>(t - 1), top.end(),
                       std::greater<Real>());
      at = top[t - 1];
    }
    const Real suggested =
        std::isnan(at) ? at : suggested_tail_bound(std::vector<Real>{at}, kTailCoverage);
    bound =
        std::isfinite(suggested) ? std::max(kAutoTailBoundFloor, suggested) : kAutoTailBoundFloor;
  }
  ranks->sum(&bound, 1);  // rank 0's, on every rank
  return bound;
}

std::optional<Real> resolve_auto_tail_bounds(Pipeline& p, Ranks* ranks) {
  std::vector<std::string> paths;
  try {
    find_auto(YAML::Load(p.model_node.dump()), "", paths);
  } catch (const YAML::Exception&) {
    // yaml-cpp may write a section it cannot read back (found by
    // fuzz/pipeline_fuzzer.cpp: stray bytes inside a quoted key). No auto is
    // resolved then, and a `tail_bound: auto` left in it is refused by the
    // spline, which names the key.
    return std::nullopt;
  }
  if (paths.empty()) return std::nullopt;
  // The rows as fit_data_layers prepares them for the standardization.
  Matrix rows = p.data.train;
  if (p.dequantize.enabled()) {
    Rng rng = p.eval_rng(0);
    p.dequantize.skip_noise(p.data.train_begin, rng);  // the draws of the rows before this share
    p.dequantize.add_noise(rows, rng);
  }
  // model.bounds read from a copy, so that the section's keys stay unread
  // for build_model (which checks them).
  ConfigNode copy = ConfigNode::parse(p.model_node.dump(), p.model_node.origin());
  std::vector<ColumnBounds> bounds;
  try {
    bounds = read_bounds(copy, "bounds", rows.shape(1), p.data.columns);
  } catch (const ConfigError&) {
    // build_model reports it, with the key's place in the file.
  }
  if (std::any_of(bounds.begin(), bounds.end(),
                  [](const ColumnBounds& b) { return b.bounded(); })) {
    const Bounds map(std::move(bounds), p.data.columns);
    // Rows outside the box are refused later, by fit_data_layers, with their row and column.
    if (map.contains(rows)) rows = map.forward(rows).value;
  }
  if (p.options.standardize) rows = Standardize::fit(rows, ranks).forward(rows).value;
  const Real bound = auto_tail_bound(rows, ranks);
  for (const std::string& path : paths) p.model_node.set(path, fmt::format("{:.1f}", bound));
  return bound;
}

}  // namespace flows
