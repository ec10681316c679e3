#include "flows/bounds.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include "flows/error.hpp"
#include "flows/registry.hpp"

namespace flows {

namespace {

// log(1 + e^y), without overflow.
Real softplus(Real y) {
  return y > 0 ? y + std::log1p(std::exp(-y)) : std::log1p(std::exp(y));
}
// 1 / (1 + e^-y).
Real sigmoid(Real y) {
  if (y >= 0) return 1 / (1 + std::exp(-y));
  const Real e = std::exp(y);
  return e / (1 + e);
}
// softplus⁻¹(t) = log(e^t − 1) = t + log(1 − e^−t), t > 0.
Real softplus_inverse(Real t) {
  return t + std::log(-std::expm1(-t));
}

std::string number(Real v) {
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  return fmt::format("{:g}", v);
}

std::string interval(const ColumnBounds& b) {
  return fmt::format("{}{}, {}{}", b.lower_bounded() ? "[" : "(", number(b.low), number(b.high),
                     b.upper_bounded() ? "]" : ")");
}

std::vector<std::string> checked_columns(std::vector<std::string> columns, Index dim) {
  if (!columns.empty() && static_cast<Index>(columns.size()) != dim)
    throw DataError(fmt::format("bounds: {} column names for {} columns", columns.size(), dim));
  return columns;
}

}  // namespace

Bounds::Bounds(std::vector<ColumnBounds> bounds, std::vector<std::string> columns)
    : Bijector("bounds", bounds.size()),
      bounds_(std::move(bounds)),
      columns_(checked_columns(std::move(columns), bounds_.size())) {
  for (Index j = 0; j < dim(); ++j) {
    const ColumnBounds& b = bounds_[j];
    if (std::isnan(b.low) || std::isnan(b.high) || !(b.low < b.high) ||
        b.low == std::numeric_limits<Real>::infinity() ||
        b.high == -std::numeric_limits<Real>::infinity())
      throw ConfigError(fmt::format("bounds of column '{}': [{}, {}] is not an interval (lo < hi)",
                                    column_name(j), number(b.low), number(b.high)));
  }
}

std::string Bounds::column_name(Index j) const {
  return columns_.empty() ? fmt::format("x{}", j) : columns_[j];
}

void Bounds::check(const Matrix& x, const std::string& what, const std::vector<Real>& bin_width,
                   Index first_row) const {
  if (x.shape(1) != dim())
    throw DataError(
        fmt::format("bounds: {} has {} columns, the bounds {}", what, x.shape(1), dim()));
  for (Index i = 0; i < x.shape(0); ++i)
    for (Index j = 0; j < dim(); ++j) {
      const ColumnBounds& b = bounds_[j];
      if (!b.bounded()) continue;
      const Real v = x(i, j);
      const Real w = bin_width.empty() ? 0 : bin_width[j];
      if (w > 0) {
        if (!(v >= b.low && v + w <= b.high))
          throw DataError(fmt::format(
              "{}: row {}, column '{}': {} is outside the bounds {}; a dequantized value x fills "
              "[x, x + {}), which must lie inside them",
              what, first_row + i + 1, column_name(j), number(v), interval(b), number(w)));
      } else if (!(v > b.low && v < b.high)) {
        throw DataError(fmt::format(
            "{}: row {}, column '{}': {} is {} the bounds {} (model.bounds needs every value "
            "strictly inside)",
            what, first_row + i + 1, column_name(j), number(v),
            v == b.low || v == b.high ? "on" : "outside", interval(b)));
      }
    }
}

Matrix Bounds::clamp(const Matrix& x) const {
  Matrix out = x;
  for (Index i = 0; i < out.shape(0); ++i)
    for (Index j = 0; j < dim(); ++j)
      out(i, j) = std::min(std::max(out(i, j), bounds_[j].low), bounds_[j].high);
  return out;
}

bool Bounds::contains(const Matrix& x) const {
  for (Index i = 0; i < x.shape(0); ++i)
    for (Index j = 0; j < dim(); ++j)
      if (!(x(i, j) >= bounds_[j].low && x(i, j) <= bounds_[j].high)) return false;
  return true;
}

std::string Bounds::describe() const {
  std::string out;
  for (Index j = 0; j < dim(); ++j) {
    if (!bounds_[j].bounded()) continue;
    out += fmt::format("{}{} in {}", out.empty() ? "" : ", ", column_name(j), interval(bounds_[j]));
  }
  return out.empty() ? "none" : out;
}

Transformed Bounds::forward_impl(const Matrix& x, const Matrix&) const {
  check(x, "bounds: the batch");
  const Index n = x.shape(0);
  Transformed out{Matrix(x.shape()), xt::zeros<Real>({n})};
  for (Index i = 0; i < n; ++i) {
    Real logdet = 0;
    for (Index j = 0; j < dim(); ++j) {
      const ColumnBounds& b = bounds_[j];
      const Real v = x(i, j);
      if (b.lower_bounded() && b.upper_bounded()) {
        const Real a = v - b.low, c = b.high - v;
        out.value(i, j) = std::log(a) - std::log(c);
        logdet += std::log(b.high - b.low) - std::log(a) - std::log(c);
      } else if (b.lower_bounded()) {
        const Real t = v - b.low;
        out.value(i, j) = softplus_inverse(t);
        logdet -= std::log(-std::expm1(-t));
      } else if (b.upper_bounded()) {
        const Real t = b.high - v;
        out.value(i, j) = -softplus_inverse(t);
        logdet -= std::log(-std::expm1(-t));
      } else {
        out.value(i, j) = v;
      }
    }
    out.logdet(i) = logdet;
  }
  return out;
}

Transformed Bounds::inverse_impl(const Matrix& z, const Matrix&) const {
  const Index n = z.shape(0);
  Transformed out{Matrix(z.shape()), xt::zeros<Real>({n})};
  for (Index i = 0; i < n; ++i) {
    Real logdet = 0;
    for (Index j = 0; j < dim(); ++j) {
      const ColumnBounds& b = bounds_[j];
      const Real y = z(i, j);
      Real v = y;
      if (b.lower_bounded() && b.upper_bounded()) {
        const Real width = b.high - b.low;
        // From the nearer end, so that x keeps its digits there.
        v = y >= 0 ? b.high - width * sigmoid(-y) : b.low + width * sigmoid(y);
        v = std::min(std::max(v, b.low), b.high);
        logdet += std::log(width) - softplus(y) - softplus(-y);
      } else if (b.lower_bounded()) {
        v = b.low + softplus(y);
        logdet -= softplus(-y);
      } else if (b.upper_bounded()) {
        v = b.high - softplus(-y);
        logdet -= softplus(y);
      }
      out.value(i, j) = v;
    }
    out.logdet(i) = logdet;
  }
  return out;
}

void Bounds::forward_train_impl(const Matrix& x, const Matrix& context, Matrix& z, Vector& logdet) {
  Transformed t = forward_impl(x, context);
  z = std::move(t.value);
  logdet = std::move(t.logdet);
  x_ = x;
}

// dy/dx and d(log|dy/dx|)/dx per column kind:
//   [lo, hi]:  1/a + 1/c and −1/a + 1/c   (a = x − lo, c = hi − x)
//   [lo, ∞):   1/(1 − e^−t) and −1/expm1(t)   (t = x − lo)
//   (−∞, hi]:  1/(1 − e^−t) and 1/expm1(t)    (t = hi − x)
void Bounds::backward_impl(const Matrix& grad_z, const Vector& grad_logdet, Matrix& grad_x,
                           Matrix*) {
  if (grad_x.shape() != grad_z.shape()) grad_x.resize(grad_z.shape());
  for (Index i = 0; i < grad_z.shape(0); ++i)
    for (Index j = 0; j < dim(); ++j) {
      const ColumnBounds& b = bounds_[j];
      const Real v = x_(i, j);
      Real dy = 1, dlogdet = 0;
      if (b.lower_bounded() && b.upper_bounded()) {
        const Real a = 1 / (v - b.low), c = 1 / (b.high - v);
        dy = a + c;
        dlogdet = c - a;
      } else if (b.lower_bounded()) {
        const Real t = v - b.low;
        dy = 1 / -std::expm1(-t);
        dlogdet = -1 / std::expm1(t);
      } else if (b.upper_bounded()) {
        const Real t = b.high - v;
        dy = 1 / -std::expm1(-t);
        dlogdet = 1 / std::expm1(t);
      }
      grad_x(i, j) = grad_z(i, j) * dy + grad_logdet(i) * dlogdet;
    }
}

namespace {

// One [lo, hi] pair of YAML (an end may be null).
ColumnBounds read_pair(const YAML::Node& pair, ConfigNode& node, const std::string& key,
                       const std::string& what) {
  if (!pair.IsSequence() || pair.size() != 2)
    throw node.error(key, fmt::format("{}: expected [lo, hi] (an end may be null, for an open "
                                      "end), got {}",
                                      what, YAML::Dump(pair)));
  ColumnBounds b;
  Real* ends[] = {&b.low, &b.high};
  for (int k = 0; k < 2; ++k) {
    if (pair[k].IsNull() || (pair[k].IsScalar() && pair[k].Scalar() == "~")) continue;
    try {
      *ends[k] = pair[k].as<Real>();
    } catch (const YAML::Exception&) {
      throw node.error(key,
                       fmt::format("{}: '{}' is not a number or null", what, YAML::Dump(pair[k])));
    }
    if (!std::isfinite(*ends[k]))
      throw node.error(key, fmt::format("{}: an end must be finite or null", what));
  }
  if (!(b.low < b.high))
    throw node.error(
        key, fmt::format("{}: lo = {} must be < hi = {}", what, number(b.low), number(b.high)));
  return b;
}

}  // namespace

std::vector<ColumnBounds> read_bounds(ConfigNode& node, const std::string& key, Index dim,
                                      const std::vector<std::string>& columns) {
  node.mark_read(key);
  std::vector<ColumnBounds> out(dim);
  if (!node.has(key)) return out;
  const YAML::Node value = YAML::Load(node.dump())[key];
  if (value.IsSequence() && value.size() == 2 && !value[0].IsSequence() && !value[1].IsSequence()) {
    const ColumnBounds b = read_pair(value, node, key, "every column");
    std::fill(out.begin(), out.end(), b);
  } else if (value.IsSequence()) {
    if (static_cast<Index>(value.size()) != dim)
      throw node.error(
          key, fmt::format("a list of {} [lo, hi] pairs for {} columns", value.size(), dim));
    for (Index j = 0; j < dim; ++j)
      out[j] = read_pair(value[j], node, key,
                         columns.empty() ? fmt::format("column {}", j) : "column " + columns[j]);
  } else if (value.IsMap()) {
    for (const auto& item : value) {
      // A key that is not plain text (a tagged or null key, a list) names no column.
      if (!item.first.IsScalar())
        throw node.error(key, "every key of the mapping must be a column name");
      const std::string name = item.first.Scalar();
      const auto at = std::find(columns.begin(), columns.end(), name);
      if (at == columns.end()) {
        std::string known;
        for (const auto& c : columns) known += (known.empty() ? "" : ", ") + c;
        throw node.error(key, fmt::format("no column '{}' in the data (its columns: {})", name,
                                          known.empty() ? "unnamed" : known));
      }
      out[at - columns.begin()] = read_pair(item.second, node, key, "column " + name);
    }
  } else {
    throw node.error(key,
                     "expected [lo, hi] for every column, a list of [lo, hi] per column, or "
                     "a mapping {column: [lo, hi]}");
  }
  return out;
}

Logit::Logit(Index dim, Real alpha, Real low, Real high)
    : Bijector("logit", dim), alpha_(alpha), low_(low), high_(high) {
  if (!(alpha >= 0 && alpha < 0.5))
    throw ConfigError(fmt::format("logit: alpha = {} must be in [0, 0.5)", alpha));
  if (!(low < high) || !std::isfinite(low) || !std::isfinite(high))
    throw ConfigError(fmt::format("logit: low = {} must be < high = {}, both finite", low, high));
  c_ = (1 - 2 * alpha) / (high - low);
}

Transformed Logit::forward_impl(const Matrix& x, const Matrix&) const {
  const Index n = x.shape(0);
  Transformed out{Matrix(x.shape()), xt::zeros<Real>({n})};
  const Real log_c = std::log(c_);
  for (Index i = 0; i < n; ++i) {
    Real logdet = 0;
    for (Index j = 0; j < dim(); ++j) {
      // p and 1 − p, each from its own end for accuracy.
      const Real p = alpha_ + c_ * (x(i, j) - low_);
      const Real q = alpha_ + c_ * (high_ - x(i, j));
      if (!(p > 0 && q > 0))
        throw DataError(fmt::format(
            "logit: row {} of the batch, column {}: {} is outside the logit's domain ({} widened "
            "by alpha = {})",
            i + 1, j, x(i, j), fmt::format("[{:g}, {:g}]", low_, high_), alpha_));
      out.value(i, j) = std::log(p) - std::log(q);
      logdet += log_c - std::log(p) - std::log(q);
    }
    out.logdet(i) = logdet;
  }
  return out;
}

Transformed Logit::inverse_impl(const Matrix& z, const Matrix&) const {
  const Index n = z.shape(0);
  Transformed out{Matrix(z.shape()), xt::zeros<Real>({n})};
  const Real log_c = std::log(c_);
  for (Index i = 0; i < n; ++i) {
    Real logdet = 0;
    for (Index j = 0; j < dim(); ++j) {
      const Real y = z(i, j);
      out.value(i, j) =
          y >= 0 ? high_ - (sigmoid(-y) - alpha_) / c_ : low_ + (sigmoid(y) - alpha_) / c_;
      logdet += -log_c - softplus(y) - softplus(-y);
    }
    out.logdet(i) = logdet;
  }
  return out;
}

void Logit::forward_train_impl(const Matrix& x, const Matrix& context, Matrix& z, Vector& logdet) {
  Transformed t = forward_impl(x, context);
  z = std::move(t.value);
  logdet = std::move(t.logdet);
  x_ = x;
}

// dy/dx = c (1/p + 1/q), d(log|dy/dx|)/dx = c (−1/p + 1/q), q = 1 − p.
void Logit::backward_impl(const Matrix& grad_z, const Vector& grad_logdet, Matrix& grad_x,
                          Matrix*) {
  if (grad_x.shape() != grad_z.shape()) grad_x.resize(grad_z.shape());
  for (Index i = 0; i < grad_z.shape(0); ++i)
    for (Index j = 0; j < dim(); ++j) {
      const Real p = alpha_ + c_ * (x_(i, j) - low_);
      const Real q = alpha_ + c_ * (high_ - x_(i, j));
      grad_x(i, j) = grad_z(i, j) * c_ * (1 / p + 1 / q) + grad_logdet(i) * c_ * (1 / q - 1 / p);
    }
}

std::unique_ptr<Bijector> make_bounds(ConfigNode& node, const BuildContext& context) {
  node.expect(node.has("bounds"), "bounds", "is required: [lo, hi] or one [lo, hi] per column");
  std::vector<ColumnBounds> bounds = read_bounds(node, "bounds", context.dim, {});
  node.finish();
  return std::make_unique<Bounds>(std::move(bounds));
}

std::unique_ptr<Bijector> make_logit(ConfigNode& node, const BuildContext& context) {
  Real alpha = 0.05, low = 0, high = 1;
  node.read("alpha", alpha);
  node.read("low", low);
  node.read("high", high);
  node.expect(alpha >= 0 && alpha < 0.5, "alpha", "must be in [0, 0.5)");
  node.expect(std::isfinite(low) && std::isfinite(high) && low < high, "high",
              "low < high, both finite");
  node.finish();
  return std::make_unique<Logit>(context.dim, alpha, low, high);
}

Vector log_prob_inside(const Bounds& bounds, const std::function<Vector(const Matrix&)>& log_prob,
                       const Matrix& x) {
  const Index n = x.shape(0);
  std::vector<Index> inside;
  for (Index i = 0; i < n; ++i) {
    bool ok = true;
    for (Index j = 0; j < bounds.dim() && ok; ++j) {
      const ColumnBounds& b = bounds.bounds()[j];
      ok = x(i, j) > b.low && x(i, j) < b.high;
    }
    if (ok) inside.push_back(i);
  }
  Vector out = xt::empty<Real>({n});
  out.fill(-std::numeric_limits<Real>::infinity());
  if (inside.empty()) return out;
  Matrix rows = xt::empty<Real>({static_cast<Index>(inside.size()), x.shape(1)});
  for (std::size_t r = 0; r < inside.size(); ++r) xt::row(rows, r) = xt::row(x, inside[r]);
  const Vector lp = log_prob(rows);
  for (std::size_t r = 0; r < inside.size(); ++r) out(inside[r]) = lp(r);
  return out;
}

}  // namespace flows
