#pragma once
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "flows/bijector.hpp"
#include "flows/config.hpp"
#include "flows/export.hpp"
#include "flows/tensor.hpp"

namespace flows {

struct BuildContext;

// The interval one column lives in; either end may be open (infinite).
struct ColumnBounds {
  Real low = -std::numeric_limits<Real>::infinity();
  Real high = std::numeric_limits<Real>::infinity();
  bool lower_bounded() const { return low > -std::numeric_limits<Real>::infinity(); }
  bool upper_bounded() const { return high < std::numeric_limits<Real>::infinity(); }
  bool bounded() const { return lower_bounded() || upper_bounded(); }
};

// The bounds of the data as part of the model (model.bounds): an elementwise
// map from the box to R^d at the front of the chain, so that log-densities are
// in the data's own units and samples never leave the box. Per column:
//   [lo, hi]:   y = log(x − lo) − log(hi − x)   (the logit of (x − lo)/(hi − lo))
//   [lo, ∞):    y = softplus⁻¹(x − lo) = log(expm1(x − lo))
//   (−∞, hi]:   y = −softplus⁻¹(hi − x)
//   (−∞, ∞):    y = x
// with the log-determinant of each. Every map is increasing. The data must lie
// strictly inside (a value on or outside a finite end is a DataError naming
// the row and the column); samples lie in the closed box (the inverse is
// evaluated so that rounding never crosses an end).
class FLOWS_API Bounds final : public Bijector {
 public:
  // One interval per column (lo < hi); `columns` (empty, or one name per
  // column) names them in messages.
  explicit Bounds(std::vector<ColumnBounds> bounds, std::vector<std::string> columns = {});

  const std::vector<ColumnBounds>& bounds() const { return bounds_; }
  const std::vector<std::string>& columns() const { return columns_; }
  // A column's name in messages: its name, or "x<j+1>"-style position.
  std::string column_name(Index j) const;

  // DataError for the first value of x that is not strictly inside its
  // column's bounds, naming `what` (e.g. "the train split"), the 1-based row
  // and the column. bin_width (empty, or one per column; 0 = continuous
  // column): a dequantized column's value x must satisfy lo <= x and
  // x + bin_width <= hi, so that every dequantized x + u lies inside.
  // x may be a share of the split's rows, beginning at its row first_row.
  void check(const Matrix& x, const std::string& what, const std::vector<Real>& bin_width = {},
             Index first_row = 0) const;
  // A copy of `x` with every value moved into the closed box (for plotting
  // and for quantizing samples).
  Matrix clamp(const Matrix& x) const;
  // Whether every value of x lies in the closed box.
  bool contains(const Matrix& x) const;

  // A human-readable list: "p1 in [0, 1], p2 in [0, inf)".
  std::string describe() const;

  ParameterList parameters() override { return {}; }

 private:
  Transformed forward_impl(const Matrix& x, const Matrix& context) const override;
  Transformed inverse_impl(const Matrix& z, const Matrix& context) const override;
  void forward_train_impl(const Matrix& x, const Matrix& context, Matrix& z,
                          Vector& logdet) override;
  void backward_impl(const Matrix& grad_z, const Vector& grad_logdet, Matrix& grad_x,
                     Matrix* grad_context) override;

  std::vector<ColumnBounds> bounds_;
  std::vector<std::string> columns_;
  Matrix x_;  // the training pass's input
};

// Reads bounds from node[key] for `dim` columns named `columns` (may be
// empty): [lo, hi] for every column, a list of `dim` such pairs, or a mapping
// {column name: [lo, hi]} for some columns (the others unbounded); an end may
// be null (open). ConfigError naming the key for anything else (lo >= hi, an
// unknown column name, a pair of nulls is allowed and means unbounded).
FLOWS_API std::vector<ColumnBounds> read_bounds(ConfigNode& node, const std::string& key, Index dim,
                                                const std::vector<std::string>& columns);

// The standalone `logit` bijector with the α-squeeze of RealNVP (Dinh et al.
// 2017, "Density estimation using Real NVP", Sec. 4.1): for x in [low, high],
//   s = (x − low)/(high − low),  p = α + (1 − 2α) s,  y = logit(p) = log p − log(1 − p),
// log|dy/dx| = log((1 − 2α)/(high − low)) − log p − log(1 − p). Its inverse
// maps R onto the open interval where p in (0, 1), which is [low, high]
// widened by α/(1 − 2α) of its width on each side (α = 0: exactly (low,
// high)); a forward input outside that interval is a DataError naming row and
// column. For a hard box that samples never leave, use model.bounds.
class FLOWS_API Logit final : public Bijector {
 public:
  Logit(Index dim, Real alpha = 0.05, Real low = 0, Real high = 1);
  Real alpha() const { return alpha_; }
  ParameterList parameters() override { return {}; }

 private:
  Transformed forward_impl(const Matrix& x, const Matrix& context) const override;
  Transformed inverse_impl(const Matrix& z, const Matrix& context) const override;
  void forward_train_impl(const Matrix& x, const Matrix& context, Matrix& z,
                          Vector& logdet) override;
  void backward_impl(const Matrix& grad_z, const Vector& grad_logdet, Matrix& grad_x,
                     Matrix* grad_context) override;

  Real alpha_, low_, high_;
  Real c_;    // (1 − 2α)/(high − low) = dp/dx
  Matrix x_;  // the training pass's input
};

// log_prob(x) for the rows of x strictly inside the bounds, −inf for the
// others (where the density is 0 and the bounds' map would refuse the row):
// for plotting a bounded model's density on a grid that crosses the box.
FLOWS_API Vector log_prob_inside(const Bounds& bounds,
                                 const std::function<Vector(const Matrix&)>& log_prob,
                                 const Matrix& x);

// Factories of the `bounds` and `logit` bijectors (keys: bounds; alpha, low, high).
FLOWS_API std::unique_ptr<Bijector> make_bounds(ConfigNode& node, const BuildContext& context);
FLOWS_API std::unique_ptr<Bijector> make_logit(ConfigNode& node, const BuildContext& context);

}  // namespace flows
