#pragma once
#include "flows/config.hpp"
#include "flows/export.hpp"
#include "flows/tensor.hpp"
#include "flows/transformer.hpp"

namespace flows {

// The affine transformer of RealNVP (Dinh, Sohl-Dickstein and Bengio 2017,
// "Density estimation using Real NVP", eq. 6-7) with a bounded log-scale:
// parameters (t, r) per element, in that order, and
//   s = S tanh(r / S),   y = x e^{s} + t,   log dy/dx = s,
// so |s| < S (log_scale_bound) keeps one layer from scaling by more than e^S,
// the soft clamp of Glow-like implementations; near r = 0, s ≈ r.
class FLOWS_API AffineTransformer final : public Transformer {
 public:
  explicit AffineTransformer(Real log_scale_bound);
  Real log_scale_bound() const { return bound_; }

  Index params_per_dim() const override { return 2; }
  Index cache_size() const override { return 3; }
  Real identity_value(Index) const override { return 0; }

  void forward(const Matrix& in, Matrix& out, Vector& logdet, const ColumnSet& set,
               const Matrix& params, Real* cache) const override;
  void inverse(const Matrix& in, Matrix& out, Vector& logdet, const ColumnSet& set,
               const Matrix& params) const override;
  void backward(const Real* cache, const Matrix& grad_out, const Vector& grad_logdet,
                const ColumnSet& set, Matrix& grad_in, Matrix& grad_params) const override;

 private:
  Real bound_;
};

struct FLOWS_API AffineTransformerOptions {
  Real log_scale_bound = 3.0;  // S in s = S tanh(r / S): |log-scale| < S per layer, > 0

  // Reads and checks log_scale_bound, without finish() (maf reads it at its own level).
  static AffineTransformerOptions read(ConfigNode& node);
};

}  // namespace flows
