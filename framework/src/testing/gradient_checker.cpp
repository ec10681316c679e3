#include "flows/testing/gradient_checker.hpp"

#include <algorithm>
#include <cmath>
#include <iomanip>
#include <limits>
#include <sstream>
#include <vector>

#include "flows/error.hpp"
#include "flows/rng.hpp"

namespace flows::testing {

namespace {

std::string shape_text(const Matrix& m) {
  std::ostringstream out;
  out << "[" << m.shape(0) << " x " << m.shape(1) << "]";
  return out.str();
}

std::string index_text(const Matrix& m, Index flat, Index first_col = 0) {
  const Index cols = std::max<Index>(m.shape(1), 1);
  std::ostringstream out;
  out << "[" << flat / cols << "," << flat % cols - first_col << "]";
  return out.str();
}

// Columns [first, first + count) of the checked input, reported as `label`
// (a bijector's input is [x | context]).
struct InputBlock {
  std::string label;
  Index first = 0;
  Index count = 0;
};

// The worst disagreement found in one tensor (the input or one parameter).
struct TensorComparison {
  std::string label;  // "input" or "param 'name'"
  std::string shape;
  Index entries = 0;
  Real worst_error = 0;
  Index worst_index = 0;
  std::string worst_index_text;
  Real analytic = 0;
  Real numeric = 0;
};

// A central difference and the rounding it carries at the least: each
// output entry is rounded to within ε|y|, so the difference of two
// evaluations is uncertain by Σ |r| ε (|y⁺| + |y⁻|) / (u⁺ − u⁻) even when
// the forward computes exactly otherwise.
struct CentralDifference {
  Real value = 0;
  Real rounding = 0;
};

// (|a - n| - rounding)⁺ / max(|a|, |n|, floor): a disagreement no larger than
// the difference's own rounding is none (a gradient that is exactly 0, such
// as that of a shift a batch norm removes, is compared with pure rounding
// noise); NaN or Inf anywhere counts as infinitely wrong.
Real relative_error(Real analytic, const CentralDifference& numeric, Real floor) {
  if (!std::isfinite(analytic) || !std::isfinite(numeric.value))
    return std::numeric_limits<Real>::infinity();
  const Real scale = std::max({std::abs(analytic), std::abs(numeric.value), floor});
  const Real gap = std::max(Real(0), std::abs(analytic - numeric.value) - numeric.rounding);
  return scale > 0 ? gap / scale : gap;
}

// The projection's change Σ r_ij (y⁺_ij − y⁻_ij) / (u⁺ − u⁻). Differencing
// entry by entry before summing keeps the outputs the perturbation does not
// touch at an exact zero; dividing by the step actually taken, u⁺ − u⁻ (exact
// in floating point), rather than 2h removes the error of rounding u ± h.
CentralDifference projected_central_difference(const Matrix& y_plus, const Matrix& y_minus,
                                               const Matrix& r, Real taken_step) {
  if (y_plus.shape() != r.shape() || y_minus.shape() != r.shape())
    throw Error(
        "gradient check: forward returned an output of another shape for a perturbed input");
  constexpr Real eps = std::numeric_limits<Real>::epsilon();
  CentralDifference d;
  for (Index k = 0; k < r.size(); ++k) {
    d.value += r.flat(k) * (y_plus.flat(k) - y_minus.flat(k));
    d.rounding +=
        std::abs(r.flat(k)) * eps * (std::abs(y_plus.flat(k)) + std::abs(y_minus.flat(k)));
  }
  d.value /= taken_step;
  d.rounding /= taken_step;
  return d;
}

void validate_options(const GradientCheckOptions& options) {
  if (!(options.step > 0) || !std::isfinite(options.step))
    throw Error("gradient check: step must be a positive finite number");
  if (!(options.relative_tolerance > 0))
    throw Error("gradient check: relative_tolerance must be > 0");
  if (!(options.absolute_floor >= 0)) throw Error("gradient check: absolute_floor must be >= 0");
}

void compare(TensorComparison& c, const Matrix& shape_of, Index k, Real analytic,
             const CentralDifference& numeric, Real floor, Index first_col = 0) {
  const Real error = relative_error(analytic, numeric, floor);
  ++c.entries;
  if (c.entries == 1 || error > c.worst_error) {
    c.worst_error = error;
    c.worst_index = k;
    c.worst_index_text = index_text(shape_of, k, first_col);
    c.analytic = analytic;
    c.numeric = numeric.value;
  }
}

std::string format_report(const std::vector<TensorComparison>& tensors,
                          const GradientCheckResult& result, const GradientCheckOptions& options) {
  std::ostringstream out;
  out << std::setprecision(3) << std::scientific;
  out << "gradient check " << (result.ok ? "passed" : "FAILED") << ": worst relative error "
      << result.worst_relative_error << " at "
      << (result.worst_entry.empty() ? "-" : result.worst_entry) << " (tolerance "
      << options.relative_tolerance << ", step " << options.step << ", floor "
      << options.absolute_floor << ")\n";
  std::size_t width = 5;
  for (const auto& t : tensors) width = std::max(width, t.label.size());
  for (const auto& t : tensors) {
    out << "  " << std::left << std::setw(static_cast<int>(width)) << t.label << "  "
        << std::setw(12) << t.shape << std::right;
    if (t.entries == 0) {
      out << "  (no entries)\n";
      continue;
    }
    out << "  worst " << std::setprecision(3) << t.worst_error << " at " << std::left
        << std::setw(9) << t.worst_index_text << std::right << std::setprecision(10)
        << "  analytic " << std::setw(17) << t.analytic << "  numeric " << std::setw(17)
        << t.numeric << "\n";
  }
  return out.str();
}

}  // namespace

// Gradient checking in the spirit of Ceres' GradientChecker: the analytic
// gradient of the scalar L = Σ_ij r_ij y_ij(x; θ), with r a fixed random
// matrix, against central differences ∂L/∂u ≈ (L(u + h) − L(u − h)) / 2h for
// every entry u of the input and of every parameter. A random projection
// checks every output's gradient at once: a wrong backward for any y_ij shows
// up unless r happens to be orthogonal to the error, which has probability 0.
namespace {

GradientCheckResult check_gradients_by_block(const DifferentiableFunction& f, const Matrix& x,
                                             const GradientCheckOptions& options,
                                             const std::vector<InputBlock>& blocks) {
  validate_options(options);
  if (!f.forward || !f.backward)
    throw Error("gradient check: the function needs both forward and backward");
  for (const Parameter* p : f.params) {
    if (p == nullptr) throw Error("gradient check: null parameter in the list");
    if (p->grad.shape() != p->value.shape())
      throw Error("gradient check: parameter '" + p->name + "' has a gradient of shape " +
                  shape_text(p->grad) + " but a value of shape " + shape_text(p->value));
  }

  // Analytic pass, from zeroed gradients.
  zero_grad(f.params);
  const Matrix y = f.forward(x);
  Rng rng(options.seed);
  const Matrix r = rng.normal(y.shape(0), y.shape(1));
  const Matrix grad_x = f.backward(r);
  if (grad_x.shape() != x.shape())
    throw Error("gradient check: backward returned dL/dx of shape " + shape_text(grad_x) +
                " for an input of shape " + shape_text(x));
  std::vector<Matrix> grad_params;
  grad_params.reserve(f.params.size());
  for (const Parameter* p : f.params) grad_params.push_back(p->grad);

  std::vector<TensorComparison> tensors;
  const Real h = options.step;

  // Input entries, block by block of columns.
  Matrix xp = x;
  const Index cols = x.shape(1);
  for (const InputBlock& block : blocks) {
    TensorComparison c;
    c.label = block.label;
    c.shape = "[" + std::to_string(x.shape(0)) + " x " + std::to_string(block.count) + "]";
    for (Index k = 0; k < x.size(); ++k) {
      const Index col = k % std::max<Index>(cols, 1);
      if (col < block.first || col >= block.first + block.count) continue;
      const Real original = x.flat(k);
      const Real up = original + h;
      const Real down = original - h;
      xp.flat(k) = up;
      const Matrix y_plus = f.forward(xp);
      xp.flat(k) = down;
      const Matrix y_minus = f.forward(xp);
      xp.flat(k) = original;
      compare(c, x, k, grad_x.flat(k), projected_central_difference(y_plus, y_minus, r, up - down),
              options.absolute_floor, block.first);
    }
    tensors.push_back(std::move(c));
  }

  // Parameter entries; each value is written back bit for bit.
  for (std::size_t i = 0; i < f.params.size(); ++i) {
    Parameter& p = *f.params[i];
    TensorComparison c;
    c.label = "param '" + p.name + "'";
    c.shape = shape_text(p.value);
    for (Index k = 0; k < p.value.size(); ++k) {
      const Real original = p.value.flat(k);
      const Real up = original + h;
      const Real down = original - h;
      p.value.flat(k) = up;
      Matrix y_plus;
      Matrix y_minus;
      try {
        y_plus = f.forward(x);
        p.value.flat(k) = down;
        y_minus = f.forward(x);
      } catch (...) {
        p.value.flat(k) = original;
        throw;
      }
      p.value.flat(k) = original;
      compare(c, p.value, k, grad_params[i].flat(k),
              projected_central_difference(y_plus, y_minus, r, up - down), options.absolute_floor);
    }
    tensors.push_back(std::move(c));
  }

  // Leave the function recorded at x, as the analytic pass left it (the
  // parameters still hold the analytic gradients: forward does not touch them).
  f.forward(x);

  GradientCheckResult result;
  result.ok = true;
  bool first = true;
  for (const auto& t : tensors) {
    if (t.entries == 0) continue;
    if (first || t.worst_error > result.worst_relative_error) {
      result.worst_relative_error = t.worst_error;
      result.worst_entry = t.label + t.worst_index_text;
      first = false;
    }
    if (t.worst_error > options.relative_tolerance) result.ok = false;
  }
  result.report = format_report(tensors, result, options);
  return result;
}

}  // namespace

GradientCheckResult check_gradients(const DifferentiableFunction& f, const Matrix& x,
                                    const GradientCheckOptions& options) {
  return check_gradients_by_block(f, x, options, {InputBlock{"input", 0, x.shape(1)}});
}

// The bijector's training pass seen as one function [x | c] -> [z | logdet]:
// the log-determinant is one extra output column, so the projection gives it
// its own random weights s_i and L = Σ r_ij z_ij + Σ s_i logdet_i. The
// context columns are checked only for a conditional bijector, whose backward
// must *add* dL/dc to grad_context: it is handed one filled with a constant,
// which is subtracted again, so a backward that overwrites fails the check.
GradientCheckResult check_bijector_gradients(Bijector& bijector, const Matrix& x,
                                             const Matrix& context,
                                             const GradientCheckOptions& options) {
  const Index d = bijector.dim();
  const Index k = bijector.context_dim();
  if (k > 0 && (context.shape(0) != x.shape(0) || context.shape(1) != k))
    throw Error("gradient check: the context is " + shape_text(context) + " but the bijector " +
                bijector.name() + " needs " + std::to_string(x.shape(0)) + " x " +
                std::to_string(k));
  if (x.shape(1) != d)
    throw Error("gradient check: the input is " + shape_text(x) + " but the bijector " +
                bijector.name() + " has dimension " + std::to_string(d));
  const Index n = x.shape(0);
  Matrix input({n, d + k});
  xt::view(input, xt::all(), xt::range(0, d)) = x;
  if (k > 0) xt::view(input, xt::all(), xt::range(d, d + k)) = context;
  const Matrix& unconditional_context = context;  // passed through untouched when k = 0

  DifferentiableFunction f;
  f.forward = [&bijector, d, k, &unconditional_context](const Matrix& in) {
    const Matrix xs = xt::view(in, xt::all(), xt::range(0, d));
    Matrix z;
    Vector logdet;
    if (k > 0) {
      const Matrix c = xt::view(in, xt::all(), xt::range(d, d + k));
      bijector.forward_train(xs, c, z, logdet);
    } else {
      bijector.forward_train(xs, unconditional_context, z, logdet);
    }
    if (z.shape(0) != in.shape(0) || z.shape(1) != d || logdet.size() != in.shape(0))
      throw Error("gradient check: forward_train returned z of shape " + shape_text(z) + " and " +
                  std::to_string(logdet.size()) + " log-determinants for an input of shape " +
                  shape_text(xs));
    Matrix y({in.shape(0), d + 1});
    xt::view(y, xt::all(), xt::range(0, d)) = z;
    xt::view(y, xt::all(), d) = logdet;
    return y;
  };
  f.backward = [&bijector, d, k](const Matrix& grad_y) {
    const Index rows = grad_y.shape(0);
    const Matrix grad_z = xt::view(grad_y, xt::all(), xt::range(0, d));
    const Vector grad_logdet = xt::view(grad_y, xt::all(), d);
    Matrix grad_x;
    constexpr Real kStart = 0.25;
    Matrix grad_context = Matrix(std::array<Index, 2>{rows, k}, kStart);
    bijector.backward(grad_z, grad_logdet, grad_x, k > 0 ? &grad_context : nullptr);
    if (grad_x.shape(0) != rows || grad_x.shape(1) != d)
      throw Error("gradient check: backward returned dL/dx of shape " + shape_text(grad_x) +
                  " for an input of " + std::to_string(rows) + " x " + std::to_string(d));
    Matrix grad_in({rows, d + k});
    xt::view(grad_in, xt::all(), xt::range(0, d)) = grad_x;
    if (k > 0) xt::view(grad_in, xt::all(), xt::range(d, d + k)) = grad_context - kStart;
    return grad_in;
  };
  f.params = bijector.parameters();
  std::vector<InputBlock> blocks{InputBlock{"input", 0, d}};
  if (k > 0) blocks.push_back(InputBlock{"context", d, k});
  return check_gradients_by_block(f, input, options, blocks);
}

GradientCheckResult check_bijector_gradients(Bijector& bijector, const Matrix& x,
                                             const GradientCheckOptions& options) {
  return check_bijector_gradients(bijector, x, Matrix(), options);
}

// J_kj = ∂y_k/∂x_j ≈ (y_k(x + h e_j) − y_k(x − h e_j)) / 2h, with y and x
// flattened row-major (for one row x, d_out x d); 2h is taken as the step
// actually made, (x_j + h) − (x_j − h).
Matrix numerical_jacobian(const std::function<Matrix(const Matrix&)>& f, const Matrix& x,
                          Real step) {
  if (!(step > 0) || !std::isfinite(step))
    throw Error("numerical_jacobian: step must be a positive finite number");
  const Matrix y = f(x);
  Matrix jacobian({y.size(), x.size()});
  Matrix xp = x;
  for (Index j = 0; j < x.size(); ++j) {
    const Real original = x.flat(j);
    const Real up = original + step;
    const Real down = original - step;
    xp.flat(j) = up;
    const Matrix y_plus = f(xp);
    xp.flat(j) = down;
    const Matrix y_minus = f(xp);
    xp.flat(j) = original;
    if (y_plus.size() != y.size() || y_minus.size() != y.size())
      throw Error("numerical_jacobian: f returned outputs of different sizes");
    for (Index k = 0; k < y.size(); ++k)
      jacobian(k, j) = (y_plus.flat(k) - y_minus.flat(k)) / (up - down);
  }
  return jacobian;
}

}  // namespace flows::testing
