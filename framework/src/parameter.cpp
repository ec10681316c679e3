#include "flows/parameter.hpp"

#include <algorithm>
#include <cmath>

namespace flows {

Parameter::Parameter(std::string name_, Matrix value_, bool trainable_)
    : name(std::move(name_)),
      value(std::move(value_)),
      grad(xt::zeros_like(value)),
      trainable(trainable_) {}

void Parameter::zero_grad() {
  std::fill(grad.begin(), grad.end(), Real(0));
}

namespace {

// The parameter keeps only some entries of its saved tensor (saved_extent set).
bool keeps_a_subset(const Parameter& p) {
  return p.saved_extent[0] != 0 || p.saved_extent[1] != 0;
}

}  // namespace

std::array<Index, 2> Parameter::saved_shape() const {
  if (keeps_a_subset(*this)) return saved_extent;
  return {value.shape(0), value.shape(1)};
}

Matrix in_saved_order(const Parameter& p, const Matrix& m) {
  if (p.saved_index.empty()) return m;
  Matrix saved = keeps_a_subset(p) ? Matrix(xt::zeros<Real>(p.saved_extent)) : Matrix(m.shape());
  for (Index k = 0; k < m.size(); ++k) saved.flat(p.saved_index[k]) = m.flat(k);
  return saved;
}

void from_saved_order(const Parameter& p, const Matrix& saved, Matrix& m) {
  if (p.saved_index.empty()) {
    m = saved;
    return;
  }
  if (keeps_a_subset(p))
    m.resize({1, p.saved_index.size()});
  else
    m.resize(saved.shape());
  for (Index k = 0; k < m.size(); ++k) m.flat(k) = saved.flat(p.saved_index[k]);
}

void zero_grad(const ParameterList& params) {
  for (Parameter* p : params) p->zero_grad();
}

Index parameter_count(const ParameterList& params) {
  Index n = 0;
  for (const Parameter* p : params)
    if (p->trainable) n += p->size();
  return n;
}

namespace {

// Σ g² over every gradient in kLanes interleaved partial sums (value i of a
// parameter goes to lane i mod kLanes), added up in a fixed order at the end:
// the loop vectorizes, and the result depends on the values alone.
Real sum_of_squares(const ParameterList& params) {
  constexpr Index kLanes = 8;
  Real lane[kLanes] = {};
  for (const Parameter* p : params) {
    const Real* g = p->grad.data();
    const Index n = p->grad.size(), whole = n - n % kLanes;
    for (Index i = 0; i < whole; i += kLanes)
      for (Index j = 0; j < kLanes; ++j) lane[j] += g[i + j] * g[i + j];
    for (Index i = whole; i < n; ++i) lane[i - whole] += g[i] * g[i];
  }
  return ((lane[0] + lane[1]) + (lane[2] + lane[3])) + ((lane[4] + lane[5]) + (lane[6] + lane[7]));
}

}  // namespace

// One pass of Σ g² in the common case. When that overflows (or a value is
// not finite) a second pass finds m = max |g|: a NaN or infinite gradient
// gives a NaN or infinite norm, and otherwise the norm is m sqrt(Σ (g/m)²),
// which cannot overflow (issue 15: an overflowed norm made clipping zero
// every gradient).
Real gradient_norm(const ParameterList& params) {
  const Real sum = sum_of_squares(params);
  if (std::isfinite(sum)) return std::sqrt(sum);
  Real largest = 0;
  for (const Parameter* p : params)
    for (Real g : p->grad) {
      if (!std::isfinite(g)) return std::isnan(g) ? g : std::abs(g);
      largest = std::max(largest, std::abs(g));
    }
  Real scaled = 0;
  for (const Parameter* p : params)
    for (Real g : p->grad) scaled += (g / largest) * (g / largest);
  return largest * std::sqrt(scaled);
}

void append(ParameterList& list, const ParameterList& more) {
  list.insert(list.end(), more.begin(), more.end());
}

}  // namespace flows
