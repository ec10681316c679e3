// An elementwise sinh-arcsinh bijector as a flows plugin: a worked example of
// the plugin interface, built outside the flows tree.
//
// Jones & Pewsey (2009), "Sinh-arcsinh distributions", Biometrika 96(4):
// per dimension, with skew ε and tail weight δ = exp(τ) > 0,
//   z = sinh(δ · asinh(x) − ε),
//   dz/dx = cosh(u) · δ / sqrt(1 + x²),  u = δ · asinh(x) − ε,
//   x = sinh((asinh(z) + ε) / δ).
#include <cmath>
#include <memory>

#include <flows/plugin.hpp>

namespace {

using flows::Index;
using flows::Matrix;
using flows::Real;
using flows::Vector;

struct SinhArcsinhOptions {
  Real skew = 0.0;      // initial ε of every dimension
  Real log_tail = 0.0;  // initial τ = log δ of every dimension
  static SinhArcsinhOptions from(flows::ConfigNode& node) {
    SinhArcsinhOptions o;
    node.read("skew", o.skew);
    node.read("log_tail", o.log_tail);
    node.expect(std::abs(o.log_tail) < 10, "log_tail", "must be in (-10, 10)");
    node.finish();
    return o;
  }
};

// The SDK's Bijector checks every call's shapes (columns, context, backward
// after forward_train) before it reaches the private *_impl functions below.
class SinhArcsinh : public flows::Bijector {
 public:
  SinhArcsinh(Index dim, const SinhArcsinhOptions& o)
      : Bijector("sinh_arcsinh", dim),
        skew_("skew", Matrix(std::array<Index, 2>{1, dim}, o.skew)),
        log_tail_("log_tail", Matrix(std::array<Index, 2>{1, dim}, o.log_tail)) {}

  flows::ParameterList parameters() override { return {&skew_, &log_tail_}; }

 private:
  flows::Transformed forward_impl(const Matrix& x, const Matrix&) const override {
    const Index n = x.shape(0), d = dim();
    flows::Transformed out{Matrix({n, d}), xt::zeros<Real>({n})};
    for (Index i = 0; i < n; ++i)
      for (Index j = 0; j < d; ++j) {
        const Real delta = std::exp(log_tail_.value(0, j));
        const Real u = delta * std::asinh(x(i, j)) - skew_.value(0, j);
        out.value(i, j) = std::sinh(u);
        out.logdet(i) += log_cosh(u) + log_tail_.value(0, j) - 0.5 * std::log1p(x(i, j) * x(i, j));
      }
    return out;
  }

  flows::Transformed inverse_impl(const Matrix& z, const Matrix&) const override {
    const Index n = z.shape(0), d = dim();
    flows::Transformed out{Matrix({n, d}), xt::zeros<Real>({n})};
    for (Index i = 0; i < n; ++i)
      for (Index j = 0; j < d; ++j) {
        const Real delta = std::exp(log_tail_.value(0, j));
        const Real x = std::sinh((std::asinh(z(i, j)) + skew_.value(0, j)) / delta);
        const Real u = delta * std::asinh(x) - skew_.value(0, j);
        out.value(i, j) = x;
        out.logdet(i) -= log_cosh(u) + log_tail_.value(0, j) - 0.5 * std::log1p(x * x);
      }
    return out;
  }

  void forward_train_impl(const Matrix& x, const Matrix& context, Matrix& z,
                          Vector& logdet) override {
    x_ = x;
    flows::Transformed t = forward_impl(x, context);
    z = std::move(t.value);
    logdet = std::move(t.logdet);
  }

  // With a = asinh(x), u = δa − ε and L depending on z = sinh(u) and on
  // logdet = Σ log cosh u + τ − ½ log(1 + x²):
  //   ∂L/∂u = g_z cosh u + g_l tanh u,   ∂u/∂ε = −1,   ∂u/∂τ = δa,
  //   ∂L/∂x = ∂L/∂u · δ/sqrt(1+x²) − g_l · x/(1+x²),   ∂logdet/∂τ = 1 directly.
  void backward_impl(const Matrix& grad_z, const Vector& grad_logdet, Matrix& grad_x,
                     Matrix* /*grad_context: unconditional*/) override {
    const Index n = x_.shape(0), d = dim();
    grad_x.resize({n, d});
    for (Index i = 0; i < n; ++i)
      for (Index j = 0; j < d; ++j) {
        const Real x = x_(i, j), delta = std::exp(log_tail_.value(0, j));
        const Real a = std::asinh(x), u = delta * a - skew_.value(0, j);
        const Real gu = grad_z(i, j) * std::cosh(u) + grad_logdet(i) * std::tanh(u);
        skew_.grad(0, j) -= gu;
        log_tail_.grad(0, j) += gu * delta * a + grad_logdet(i);
        grad_x(i, j) = gu * delta / std::sqrt(1 + x * x) - grad_logdet(i) * x / (1 + x * x);
      }
  }

  // log cosh u without overflow: |u| + log1p(exp(−2|u|)) − log 2.
  static Real log_cosh(Real u) {
    const Real a = std::abs(u);
    return a + std::log1p(std::exp(-2 * a)) - std::log(2.0);
  }
  flows::Parameter skew_, log_tail_;
  Matrix x_;
};

void register_sinh_arcsinh(flows::Registry& registry) {
  registry.add<flows::Bijector>(
      "sinh_arcsinh", [](flows::ConfigNode& node, const flows::BuildContext& context) {
        return std::make_unique<SinhArcsinh>(context.dim, SinhArcsinhOptions::from(node));
      });
}

}  // namespace

FLOWS_PLUGIN(register_sinh_arcsinh)
