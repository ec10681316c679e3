#include "flows/data/dequantize.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include <fmt/format.h>

#include "flows/bijector.hpp"
#include "flows/data/columns.hpp"
#include "flows/error.hpp"

namespace flows {

Dequantizer::Dequantizer(Index dim, std::vector<Index> columns, Index samples,
                         std::vector<std::string> names)
    : dim_(dim), columns_(std::move(columns)), samples_(samples), names_(std::move(names)) {
  std::sort(columns_.begin(), columns_.end());
  columns_.erase(std::unique(columns_.begin(), columns_.end()), columns_.end());
  for (Index j : columns_)
    if (j >= dim_)
      throw ConfigError(fmt::format("dequantize: column {} of data with {} columns", j, dim_));
  if (samples_ < 1) throw ConfigError("dequantize_samples: must be >= 1");
  if (!names_.empty() && static_cast<Index>(names_.size()) != dim_)
    throw ConfigError(fmt::format("dequantize: {} names for {} columns", names_.size(), dim_));
}

std::vector<std::string> Dequantizer::column_names() const {
  const std::vector<std::string> all = names_.empty() ? positional_column_names(dim_) : names_;
  std::vector<std::string> out;
  for (Index j : columns_) out.push_back(all[j]);
  return out;
}

std::vector<Real> Dequantizer::bin_widths() const {
  std::vector<Real> w(dim_, 0);
  for (Index j : columns_) w[j] = 1;
  return w;
}

void Dequantizer::check_integer(const Matrix& x, const std::string& what, Index first_row) const {
  if (!enabled()) return;
  const std::vector<std::string> all = names_.empty() ? positional_column_names(dim_) : names_;
  for (Index i = 0; i < x.shape(0); ++i)
    for (Index j : columns_) {
      const Real v = x(i, j);
      if (!std::isfinite(v) || v != std::floor(v))
        throw DataError(fmt::format(
            "{}: row {}, column '{}' is {}, not an integer: dequantization (data.dequantize) "
            "adds U(0, 1) noise to integer-valued columns only; leave '{}' out of "
            "data.dequantize",
            what, first_row + i + 1, all[j], v, all[j]));
    }
}

namespace {

// One draw of the noise: u ~ U(0, 1), open at 0, so x + u is inside (x, x + 1).
Real noise(Rng& rng) {
  Real u = rng.uniform();
  while (u <= 0) u = rng.uniform();
  return u;
}

}  // namespace

void Dequantizer::add_noise(Matrix& x, Rng& rng) const {
  for (Index i = 0; i < x.shape(0); ++i)
    for (Index j : columns_) x(i, j) += noise(rng);
}

void Dequantizer::skip_noise(Index rows, Rng& rng) const {
  for (Index i = 0; i < rows * columns_.size(); ++i) noise(rng);
}

Matrix Dequantizer::dequantized(const Matrix& x, Rng& rng) const {
  Matrix out = x;
  add_noise(out, rng);
  return out;
}

Matrix Dequantizer::quantize(const Matrix& samples, const std::vector<Real>& upper) const {
  Matrix out = samples;
  for (Index i = 0; i < out.shape(0); ++i)
    for (Index j : columns_) {
      Real v = std::floor(out(i, j));
      if (!upper.empty() && std::isfinite(upper[j]) && v > upper[j] - 1)
        v = std::ceil(upper[j]) - 1;  // x = hi belongs to the last bin
      out(i, j) = v;
    }
  return out;
}

namespace {

// log (1/k) Σ_s p(x + u_s) of rows [begin, end) of x, k = samples, as a
// running log-sum-exp; every row of x gets its draws.
Vector nll_of_rows(const Dequantizer& dequantize, const Flow& flow, const Matrix& x,
                   const Matrix& context, Rng& rng, Index begin, Index end) {
  const Index rows = x.shape(0);
  const bool some = begin > 0 || end < rows;
  const Matrix own_context = some && context.size() != 0
                                 ? Matrix(xt::view(context, xt::range(begin, end), xt::all()))
                                 : context;
  if (!dequantize.enabled()) {
    if (!some) return -flow.log_prob(x, context);
    return -flow.log_prob(xt::view(x, xt::range(begin, end), xt::all()), own_context);
  }
  const Index n = end - begin;
  Vector acc = xt::empty<Real>({n});
  acc.fill(-std::numeric_limits<Real>::infinity());
  for (Index s = 0; s < dequantize.samples(); ++s) {
    Matrix noisy = dequantize.dequantized(x, rng);
    if (some) noisy = Matrix(xt::view(noisy, xt::range(begin, end), xt::all()));
    const Vector lp = flow.log_prob(noisy, own_context);
    for (Index i = 0; i < n; ++i) {
      const Real m = std::max(acc(i), lp(i));
      acc(i) =
          std::isinf(m) && m < 0 ? m : m + std::log(std::exp(acc(i) - m) + std::exp(lp(i) - m));
    }
  }
  const Real log_k = std::log(static_cast<Real>(dequantize.samples()));
  Vector out = xt::empty<Real>({n});
  for (Index i = 0; i < n; ++i) out(i) = log_k - acc(i);
  return out;
}

}  // namespace

Vector Dequantizer::nll(const Flow& flow, const Matrix& x, const Matrix& context, Rng& rng) const {
  return nll_of_rows(*this, flow, x, context, rng, 0, x.shape(0));
}

Real Dequantizer::mean_nll(const Flow& flow, const Matrix& x, const Matrix& context,
                           Rng& rng) const {
  const Index n = x.shape(0);
  if (n == 0) return std::numeric_limits<Real>::quiet_NaN();
  return nll_sum(flow, x, context, rng, 0, n) / static_cast<Real>(n);
}

namespace {

// The sum of the nll of rows [begin, end) of a split of `total` rows, of
// which x holds rows [first, first + x.shape(0)) (⊇ [begin, end)), in
// batches with the draws of one process over the whole split.
Real nll_sum_of_rows(const Dequantizer& dequantize, const Flow& flow, const Matrix& x,
                     const Matrix& context, Rng& rng, Index first, Index total, Index begin,
                     Index end) {
  const Index held = x.shape(0), cols = x.shape(1);
  const Index context_cols = context.size() == 0 ? 0 : context.shape(1);
  Real sum = 0;
  // Batches, so that memory stays bounded for large splits (a multiple of
  // kInferenceRowGroup, so that shares cut batches on whole groups).
  const Index batch = 8192;
  static_assert(batch % kInferenceRowGroup == 0, "batches of whole row groups");
  for (Index start = 0; start < total; start += batch) {
    const Index stop = std::min(total, start + batch);
    const Index own_begin = std::clamp(begin, start, stop), own_end = std::clamp(end, start, stop);
    if (own_end == own_begin) {
      // The draws of other ranks' rows (none without noise).
      for (Index s = 0; s < dequantize.samples() && dequantize.enabled(); ++s)
        dequantize.skip_noise(stop - start, rng);
      continue;
    }
    Matrix rows, c;
    if (start >= first && stop <= first + held) {
      rows = xt::view(x, xt::range(start - first, stop - first), xt::all());
      if (context_cols) c = xt::view(context, xt::range(start - first, stop - first), xt::all());
    } else {
      // Another rank's rows as zeros: the draws depend only on the number
      // of rows, and only this process's rows are scored.
      rows = xt::zeros<Real>({stop - start, cols});
      if (context_cols) c = xt::zeros<Real>({stop - start, context_cols});
      for (Index i = own_begin; i < own_end; ++i) {
        for (Index j = 0; j < cols; ++j) rows(i - start, j) = x(i - first, j);
        for (Index j = 0; j < context_cols; ++j) c(i - start, j) = context(i - first, j);
      }
    }
    const Vector v =
        nll_of_rows(dequantize, flow, rows, c, rng, own_begin - start, own_end - start);
    for (Real value : v) sum += value;
  }
  return sum;
}

}  // namespace

Real Dequantizer::nll_sum(const Flow& flow, const Matrix& x, const Matrix& context, Rng& rng,
                          Index begin, Index end) const {
  const Index n = x.shape(0);
  if (begin > end || end > n)
    throw Error(fmt::format("nll_sum: rows [{}, {}) are not rows of {}", begin, end, n));
  return nll_sum_of_rows(*this, flow, x, context, rng, 0, n, begin, end);
}

Real Dequantizer::nll_sum_of_held(const Flow& flow, const Matrix& held, const Matrix& context,
                                  Rng& rng, Index first, Index total) const {
  const Index m = held.shape(0);
  if (first + m > total)
    throw Error(
        fmt::format("nll_sum_of_held: rows [{}, {}) are not rows of {}", first, first + m, total));
  return nll_sum_of_rows(*this, flow, held, context, rng, first, total, first, first + m);
}

DequantizeOptions DequantizeOptions::from(ConfigNode& node) {
  DequantizeOptions o;
  o.where = node.where("dequantize") + ": " +
            (node.path().empty() ? std::string("dequantize") : node.path() + ".dequantize");
  if (node.has_list("dequantize")) {
    node.read("dequantize", o.columns);
    node.expect(!o.columns.empty(), "dequantize", "an empty list: leave dequantize out instead");
  } else {
    std::string mode = "none";
    node.read("dequantize", mode);
    node.expect_one_of("dequantize", mode, {"none", "uniform"});
    o.all = mode == "uniform";
  }
  node.read("dequantize_samples", o.samples);
  node.expect(o.samples >= 1, "dequantize_samples", "must be >= 1");
  node.expect(o.samples == 1 || o.enabled(), "dequantize_samples",
              "needs dequantize (uniform, or a list of columns)");
  return o;
}

Dequantizer DequantizeOptions::resolve(Index dim, const std::vector<std::string>& names) const {
  if (!enabled()) return Dequantizer(dim, {}, samples, names);
  std::vector<Index> picked;
  if (all) {
    for (Index j = 0; j < dim; ++j) picked.push_back(j);
  } else {
    const std::vector<std::string> known = names.empty() ? positional_column_names(dim) : names;
    for (const std::string& c : columns) {
      auto at = std::find(known.begin(), known.end(), c);
      if (at != known.end()) {
        picked.push_back(at - known.begin());
        continue;
      }
      const bool digits = !c.empty() && std::all_of(c.begin(), c.end(), ::isdigit);
      if (digits && std::stoull(c) < dim) {
        picked.push_back(std::stoull(c));
        continue;
      }
      throw ConfigError(fmt::format("{}: no column '{}' in the data (its columns: {})", where, c,
                                    join_column_names(known)));
    }
  }
  return Dequantizer(dim, picked, samples, names);
}

BitsPerDim bits_per_dim(Real nll, const Dequantizer& dequantizer, Index dim) {
  BitsPerDim b;
  Real log_volume = 0;
  const std::vector<Real> w =
      dequantizer.enabled() ? dequantizer.bin_widths() : std::vector<Real>();
  for (Real width : w)
    if (width > 0) log_volume += std::log(width);
  b.value = (nll - log_volume) / (static_cast<Real>(dim) * std::log(2.0));
  const Index k = dequantizer.columns().size();
  if (k == 0) {
    b.kind = "continuous density";
    b.meaning =
        "NLL / (D ln 2) of a continuous density: not a code length (the data are not "
        "dequantized, so it is no bound on the bits of a discrete data set and may be negative)";
  } else if (k == dim) {
    b.kind = "dequantized bound";
    b.meaning = fmt::format(
        "upper bound on the code length of the integer data in bits per dimension, "
        "(NLL - D log w) / (D ln 2) with bin width w = 1, {}",
        dequantizer.samples() == 1
            ? std::string("one fixed U(0, 1) draw per row")
            : fmt::format("-log of the mean likelihood over {} U(0, 1) draws per row",
                          dequantizer.samples()));
  } else {
    b.kind = "partly dequantized bound";
    b.meaning = fmt::format(
        "{} of {} columns are dequantized: a mixed mass-and-density value in bits per dimension", k,
        dim);
  }
  return b;
}

}  // namespace flows
