#include "flows/affine_transformer.hpp"

#include <algorithm>
#include <cmath>

#include <xsimd/xsimd.hpp>

#include "flows/error.hpp"

namespace flows {

AffineTransformer::AffineTransformer(Real log_scale_bound) : bound_(log_scale_bound) {
  if (!(bound_ > 0) || !std::isfinite(bound_))
    throw ConfigError("affine transformer: log_scale_bound must be a positive number");
}

AffineTransformerOptions AffineTransformerOptions::read(ConfigNode& node) {
  AffineTransformerOptions o;
  node.read("log_scale_bound", o.log_scale_bound);
  node.expect(std::isfinite(o.log_scale_bound) && o.log_scale_bound > 0, "log_scale_bound",
              "must be a positive number");
  return o;
}

namespace {

// Elements per vectorized pass, kept on the stack so that a pass allocates nothing.
constexpr Index kChunk = 256;
using Batch = xsimd::batch<Real>;

// The log-scales s = S tanh(r / S) and the factors e^{sign·s} of the elements
// [first, first + n) of a ColumnSet, element e = row · count + j, for n ≤ kChunk.
// tanh and exp go through xsimd on whole batches, the last one padded, so that
// an element's value does not depend on where it falls in a pass: results stay
// independent of how a batch is cut into row blocks.
void bounded_log_scales(const Matrix& params, const ColumnSet& set, Index first, Index n,
                        Real bound, Real sign, Real* s, Real* factor) {
  const Index pcols = params.shape(1);
  Index r = first / set.count, j = first - r * set.count;
  for (Index k = 0; k < n; ++k) {
    s[k] = params.data()[r * pcols + set.offset + set.stride + j];
    if (++j == set.count) j = 0, ++r;
  }
  const Index padded = (n + Batch::size - 1) / Batch::size * Batch::size;
  std::fill(s + n, s + padded, Real(0));
  const Batch b(bound), sg(sign);
  for (Index k = 0; k < padded; k += Batch::size) {
    const Batch v = b * xsimd::tanh(Batch::load_unaligned(s + k) / b);
    v.store_unaligned(s + k);
    xsimd::exp(sg * v).store_unaligned(factor + k);
  }
}

}  // namespace

void AffineTransformer::forward(const Matrix& in, Matrix& out, Vector& logdet, const ColumnSet& set,
                                const Matrix& params, Real* cache) const {
  const Index rows = in.shape(0), cols = in.shape(1), pcols = params.shape(1);
  alignas(64) Real s[kChunk + Batch::size], scale[kChunk + Batch::size];
  const Index total = rows * set.count;
  Real sum = 0;  // the row's Σ s, added to its logdet at its last element as before
  for (Index first = 0; first < total; first += kChunk) {
    const Index n = std::min(kChunk, total - first);
    bounded_log_scales(params, set, first, n, bound_, 1, s, scale);
    Index r = first / set.count, j = first - r * set.count;
    for (Index k = 0; k < n; ++k) {
      const Index c = set.cols[j];
      const Real x = in.data()[r * cols + c];
      out.data()[r * cols + c] = x * scale[k] + params.data()[r * pcols + set.offset + j];
      sum += s[k];
      if (cache) {
        Real* slot = cache + (first + k) * 3;
        slot[0] = x;
        slot[1] = scale[k];
        slot[2] = s[k];
      }
      if (++j == set.count) {
        logdet(r++) += sum;
        sum = 0;
        j = 0;
      }
    }
  }
}

// x = (y - t) e^{-s}, log dx/dy = -s.
void AffineTransformer::inverse(const Matrix& in, Matrix& out, Vector& logdet, const ColumnSet& set,
                                const Matrix& params) const {
  const Index rows = in.shape(0), cols = in.shape(1), pcols = params.shape(1);
  alignas(64) Real s[kChunk + Batch::size], factor[kChunk + Batch::size];
  const Index total = rows * set.count;
  Real sum = 0;
  for (Index first = 0; first < total; first += kChunk) {
    const Index n = std::min(kChunk, total - first);
    bounded_log_scales(params, set, first, n, bound_, -1, s, factor);
    Index r = first / set.count, j = first - r * set.count;
    for (Index k = 0; k < n; ++k) {
      const Index c = set.cols[j];
      out.data()[r * cols + c] =
          (in.data()[r * cols + c] - params.data()[r * pcols + set.offset + j]) * factor[k];
      sum -= s[k];
      if (++j == set.count) {
        logdet(r++) += sum;
        sum = 0;
        j = 0;
      }
    }
  }
}

// With g = dL/dy and γ = dL/dlogdet:
//   dL/dx = g e^{s},  dL/dt = g,  dL/dr = (g x e^{s} + γ) (1 - (s/S)²).
void AffineTransformer::backward(const Real* cache, const Matrix& grad_out,
                                 const Vector& grad_logdet, const ColumnSet& set, Matrix& grad_in,
                                 Matrix& grad_params) const {
  const Index rows = grad_out.shape(0), cols = grad_out.shape(1), pcols = grad_params.shape(1);
  for (Index r = 0; r < rows; ++r) {
    Real* gtheta = grad_params.data() + r * pcols + set.offset;
    for (Index j = 0; j < set.count; ++j) {
      const Index c = set.cols[j];
      const Real* slot = cache + (r * set.count + j) * 3;
      const Real g = grad_out.data()[r * cols + c];
      const Real ratio = slot[2] / bound_;
      gtheta[j] = g;
      gtheta[set.stride + j] = (g * slot[0] * slot[1] + grad_logdet(r)) * (1 - ratio * ratio);
      grad_in.data()[r * cols + c] = g * slot[1];
    }
  }
}

}  // namespace flows
