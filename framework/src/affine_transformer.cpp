#include "flows/affine_transformer.hpp"

#include <cmath>

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

void AffineTransformer::forward(const Matrix& in, Matrix& out, Vector& logdet, const ColumnSet& set,
                              const Matrix& params, Real* cache) const {
  const Index rows = in.shape(0), cols = in.shape(1), pcols = params.shape(1);
  for (Index r = 0; r < rows; ++r) {
    Real sum = 0;
    const Real* theta = params.data() + r * pcols + set.offset;
    for (Index j = 0; j < set.count; ++j) {
      const Index c = set.cols[j];
      const Real x = in.data()[r * cols + c];
      const Real s = bound_ * std::tanh(theta[set.stride + j] / bound_);
      const Real scale = std::exp(s);
      out.data()[r * cols + c] = x * scale + theta[j];
      sum += s;
      if (cache) {
        Real* slot = cache + (r * set.count + j) * 3;
        slot[0] = x;
        slot[1] = scale;
        slot[2] = s;
      }
    }
    logdet(r) += sum;
  }
}

// x = (y - t) e^{-s}, log dx/dy = -s.
void AffineTransformer::inverse(const Matrix& in, Matrix& out, Vector& logdet, const ColumnSet& set,
                              const Matrix& params) const {
  const Index rows = in.shape(0), cols = in.shape(1), pcols = params.shape(1);
  for (Index r = 0; r < rows; ++r) {
    Real sum = 0;
    const Real* theta = params.data() + r * pcols + set.offset;
    for (Index j = 0; j < set.count; ++j) {
      const Index c = set.cols[j];
      const Real s = bound_ * std::tanh(theta[set.stride + j] / bound_);
      out.data()[r * cols + c] = (in.data()[r * cols + c] - theta[j]) * std::exp(-s);
      sum -= s;
    }
    logdet(r) += sum;
  }
}

// With g = dL/dy and γ = dL/dlogdet:
//   dL/dx = g e^{s},  dL/dt = g,  dL/dr = (g x e^{s} + γ) (1 - (s/S)²).
void AffineTransformer::backward(const Real* cache, const Matrix& grad_out, const Vector& grad_logdet,
                               const ColumnSet& set, Matrix& grad_in, Matrix& grad_params) const {
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
