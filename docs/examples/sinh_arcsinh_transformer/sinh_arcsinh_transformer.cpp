// A flows plugin that registers only a transformer: the sinh-arcsinh map as a
// monotone elementwise function whose parameters come from a conditioner.
// With it, {type: autoregressive, transformer: {type: sinh_arcsinh}} and
// {type: coupling, transformer: {type: sinh_arcsinh}} are flows, with no
// more code: the SDK's MADE and coupling networks supply the parameters.
//
// Jones & Pewsey (2009), "Sinh-arcsinh distributions", Biometrika 96(4),
// eq. (2): with skew ε and tail weight δ > 0,
//   y = τ(x) = sinh(δ · asinh(x) − ε),
//   log τ'(x) = log δ + log cosh(u) − ½ log(1 + x²),   u = δ · asinh(x) − ε,
//   x = τ⁻¹(y) = sinh((asinh(y) + ε) / δ).
// τ is strictly increasing for every ε and δ > 0. Per element the conditioner
// gives two unconstrained reals (a, b): ε = a and log δ = B tanh(b / B), a
// soft bound |log δ| < B (log_tail_bound) that keeps one layer from squeezing
// or stretching the tails without limit. a = b = 0 is the identity.
#include <cmath>
#include <memory>

#include <flows/error.hpp>
#include <flows/plugin.hpp>
#include <flows/transformer.hpp>

namespace {

using flows::ColumnSet;
using flows::Index;
using flows::Matrix;
using flows::Real;
using flows::Vector;

struct SinhArcsinhOptions {
  Real log_tail_bound = 2.0;  // B: |log δ| < B, so δ lies in (e^−B, e^B)
  static SinhArcsinhOptions from(flows::ConfigNode& node) {
    SinhArcsinhOptions o;
    node.read("log_tail_bound", o.log_tail_bound);
    node.expect(std::isfinite(o.log_tail_bound) && o.log_tail_bound > 0 && o.log_tail_bound <= 10,
                "log_tail_bound", "must be in (0, 10]");
    node.finish();
    return o;
  }
};

// log cosh u without overflow: |u| + log1p(exp(−2|u|)) − log 2.
Real log_cosh(Real u) {
  const Real a = std::abs(u);
  return a + std::log1p(std::exp(-2 * a)) - std::log(2.0);
}

class SinhArcsinhTransformer final : public flows::Transformer {
 public:
  explicit SinhArcsinhTransformer(Real bound) : bound_(bound) {}

  // Parameter 0 is the skew ε, parameter 1 the unconstrained tail weight b.
  Index params_per_dim() const override { return 2; }
  // Per element: x, asinh(x), u, δ and log δ, what backward needs.
  Index cache_size() const override { return 5; }
  Real identity_value(Index) const override { return 0; }

  // Column cols[j] of row r reads its parameter p at column
  // p · stride + offset + j of `params` (flows::ColumnSet).
  void forward(const Matrix& in, Matrix& out, Vector& logdet, const ColumnSet& set,
               const Matrix& params, Real* cache) const override {
    const Index rows = in.shape(0);
    for (Index r = 0; r < rows; ++r) {
      Real sum = 0;
      for (Index j = 0; j < set.count; ++j) {
        const Index c = set.cols[j];
        const Shape e = shape(params, set, r, j);
        const Real x = in(r, c);
        const Real a = std::asinh(x);
        const Real u = e.delta * a - e.skew;
        out(r, c) = std::sinh(u);
        sum += log_derivative(e.log_delta, u, x);
        if (cache) {
          Real* slot = cache + (r * set.count + j) * 5;
          slot[0] = x;
          slot[1] = a;
          slot[2] = u;
          slot[3] = e.delta;
          slot[4] = e.log_delta;
        }
      }
      logdet(r) += sum;
    }
  }

  // x = sinh((asinh(y) + ε)/δ); log (τ⁻¹)'(y) = −log τ'(x).
  void inverse(const Matrix& in, Matrix& out, Vector& logdet, const ColumnSet& set,
               const Matrix& params) const override {
    const Index rows = in.shape(0);
    for (Index r = 0; r < rows; ++r) {
      Real sum = 0;
      for (Index j = 0; j < set.count; ++j) {
        const Index c = set.cols[j];
        const Shape e = shape(params, set, r, j);
        const Real u = std::asinh(in(r, c));  // u of the forward map at x
        const Real x = std::sinh((u + e.skew) / e.delta);
        out(r, c) = x;
        sum -= log_derivative(e.log_delta, u, x);
      }
      logdet(r) += sum;
    }
  }

  // With g = dL/dy, γ = dL/dlogdet and ℓ = log τ':
  //   ∂L/∂u = g cosh u + γ tanh u,
  //   ∂L/∂x = ∂L/∂u · δ / sqrt(1 + x²) − γ x / (1 + x²),
  //   ∂L/∂ε = −∂L/∂u,
  //   ∂L/∂b = (∂L/∂u · δ asinh(x) + γ) (1 − (log δ / B)²).
  void backward(const Real* cache, const Matrix& grad_out, const Vector& grad_logdet,
                const ColumnSet& set, Matrix& grad_in, Matrix& grad_params) const override {
    const Index rows = grad_out.shape(0);
    for (Index r = 0; r < rows; ++r)
      for (Index j = 0; j < set.count; ++j) {
        const Index c = set.cols[j];
        const Real* slot = cache + (r * set.count + j) * 5;
        const Real x = slot[0], a = slot[1], u = slot[2], delta = slot[3], log_delta = slot[4];
        const Real g = grad_out(r, c), gamma = grad_logdet(r);
        const Real grad_u = g * std::cosh(u) + gamma * std::tanh(u);
        const Real ratio = log_delta / bound_;
        grad_params(r, set.offset + j) = -grad_u;
        grad_params(r, set.stride + set.offset + j) =
            (grad_u * delta * a + gamma) * (1 - ratio * ratio);
        grad_in(r, c) = grad_u * delta / std::sqrt(1 + x * x) - gamma * x / (1 + x * x);
      }
  }

 private:
  // ε, log δ and δ of element j of row r, from its parameters (a, b).
  struct Shape {
    Real skew, log_delta, delta;
  };
  Shape shape(const Matrix& params, const ColumnSet& set, Index r, Index j) const {
    const Real log_delta = bound_ * std::tanh(params(r, set.stride + set.offset + j) / bound_);
    return {params(r, set.offset + j), log_delta, std::exp(log_delta)};
  }
  // log τ'(x) = log δ + log cosh u − ½ log(1 + x²).
  static Real log_derivative(Real log_delta, Real u, Real x) {
    return log_delta + log_cosh(u) - 0.5 * std::log1p(x * x);
  }

  Real bound_;
};

void register_sinh_arcsinh_transformer(flows::Registry& registry) {
  registry.add<flows::Transformer>("sinh_arcsinh", [](flows::ConfigNode& node,
                                                      const flows::BuildContext&) {
    return std::make_unique<SinhArcsinhTransformer>(SinhArcsinhOptions::from(node).log_tail_bound);
  });
}

}  // namespace

FLOWS_PLUGIN(register_sinh_arcsinh_transformer)
