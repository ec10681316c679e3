#include "lu_linear.hpp"

#include <cmath>
#include <cstdio>
#include <limits>
#include <utility>

#include <xtensor-blas/xlinalg.hpp>

#include <flows/checks.hpp>
#include <flows/nn/dense.hpp>

#include "permutation.hpp"

namespace flows::basic {

namespace {

// Position of L_ij (i > j), and of U_ji, in the packed "lower" and "upper" rows.
Index packed(Index i, Index j) {
  return i * (i - 1) / 2 + j;
}

Matrix row_of(Index size, Real value) {
  return Matrix(std::array<Index, 2>{1, size}, value);
}

}  // namespace

LuLinear::LuLinear(std::vector<Index> order)
    : Bijector("lu_linear", order.size()),
      order_(std::move(order)),
      lower_("lower", row_of(dim() * (dim() - 1) / 2, 0.0)),
      upper_("upper", row_of(dim() * (dim() - 1) / 2, 0.0)),
      log_diag_("log_diag", row_of(dim(), 0.0)),
      bias_("bias", row_of(dim(), 0.0)) {
  check_permutation(order_, name());
}

ParameterList LuLinear::parameters() {
  if (dim() == 1) return {&log_diag_, &bias_};
  return {&lower_, &upper_, &log_diag_, &bias_};
}

void LuLinear::visit_state(StateVisitor& visitor) {
  visit_parameters(parameters(), visitor);
  visit_order(visitor, order_, name());
}

void LuLinear::factors(Matrix& lower, Matrix& upper) const {
  const Index d = dim();
  lower = xt::zeros<Real>({d, d});
  upper = xt::zeros<Real>({d, d});
  for (Index i = 0; i < d; ++i) {
    lower(i, i) = 1;
    upper(i, i) = std::exp(log_diag_.value(0, i));
    for (Index j = 0; j < i; ++j) {
      lower(i, j) = lower_.value(0, packed(i, j));
      upper(j, i) = upper_.value(0, packed(i, j));
    }
  }
}

std::vector<Finding> LuLinear::diagnose(const Matrix&, const Matrix&) const {
  const auto svd = xt::linalg::svd(weight(), false, false);
  const auto& sigma = std::get<1>(svd);  // descending
  const double top = sigma(0), bottom = sigma(sigma.size() - 1);
  const double condition = bottom > 0 ? top / bottom : std::numeric_limits<double>::infinity();
  Finding f{"condition number of W", condition, kConditionThreshold,
            condition <= kConditionThreshold, ""};
  if (!f.ok) {
    char text[200];
    std::snprintf(text, sizeof text,
                  "W is nearly singular (singular values %.3g to %.3g): lower the learning "
                  "rate, or put a standardization or actnorm before it",
                  top, bottom);
    f.advice = text;
  }
  return {f};
}

Real LuLinear::log_det() const {
  Real sum = 0;
  for (Index i = 0; i < dim(); ++i) sum += log_diag_.value(0, i);
  return sum;
}

namespace {

// W = P (L U): row j of W is row order[j] of M = L U, with
// M_ij = Σ_{k ≤ min(i, j)} L_ik U_kj (L lower, U upper triangular).
Matrix permuted_product(const Matrix& lower, const Matrix& upper, const std::vector<Index>& order) {
  const Index d = lower.shape(0);
  Matrix w({d, d});
  for (Index r = 0; r < d; ++r) {
    const Index i = order[r];
    for (Index j = 0; j < d; ++j) {
      Real sum = 0;
      for (Index k = 0; k <= std::min(i, j); ++k) sum += lower(i, k) * upper(k, j);
      w(r, j) = sum;
    }
  }
  return w;
}

}  // namespace

Matrix LuLinear::weight() const {
  Matrix lower, upper;
  factors(lower, upper);
  return permuted_product(lower, upper, order_);
}

Transformed LuLinear::forward_impl(const Matrix& x, const Matrix&) const {
  Transformed out{Matrix({x.shape(0), dim()}), Vector::from_shape({x.shape(0)})};
  nn::dense_forward(x, weight(), bias_.value.data(), out.value);
  out.logdet.fill(log_det());
  return out;
}

// x = U⁻¹ L⁻¹ Pᵀ (z − b), row by row: v = Pᵀ(z − b) (v_{order[j]} = z_j − b_j),
// forward substitution L y = v (unit diagonal), back substitution U x = y.
Transformed LuLinear::inverse_impl(const Matrix& z, const Matrix&) const {
  const Index n = z.shape(0), d = dim();
  Matrix lower, upper;
  factors(lower, upper);
  Transformed out{Matrix({n, d}), Vector::from_shape({n})};
  std::vector<Real> y(d);
  for (Index r = 0; r < n; ++r) {
    for (Index j = 0; j < d; ++j) y[order_[j]] = z(r, j) - bias_.value(0, j);
    for (Index i = 1; i < d; ++i)
      for (Index k = 0; k < i; ++k) y[i] -= lower(i, k) * y[k];
    for (Index i = d; i-- > 0;) {
      Real sum = y[i];
      for (Index k = i + 1; k < d; ++k) sum -= upper(i, k) * out.value(r, k);
      out.value(r, i) = sum / upper(i, i);
    }
  }
  out.logdet.fill(-log_det());
  return out;
}

void LuLinear::forward_train_impl(const Matrix& x, const Matrix&, Matrix& z, Vector& logdet) {
  factors(l_, u_);
  w_ = permuted_product(l_, u_, order_);
  x_ = x;
  ensure(z, x.shape(0), dim());
  ensure(logdet, x.shape(0));
  nn::dense_forward(x, w_, bias_.value.data(), z);
  logdet.fill(log_det());
}

// With G = dL/dZ (rows z_r = W x_r + b) and γ = dL/dlogdet:
//   dL/dx_r = Wᵀ g_r,   dL/db = Σ_r g_r,   dL/dW = Gᵀ X,
//   dL/dM = Pᵀ dL/dW    (M = L U; row order[j] of dL/dM is row j of dL/dW),
//   dL/dL_ij = (dL/dM Uᵀ)_ij  for i > j,   dL/dU_ij = (Lᵀ dL/dM)_ij  for i ≤ j,
//   dL/ds_i = dL/dU_ii · e^{s_i} + Σ_r γ_r   (u_ii = e^{s_i}, logdet = Σ_i s_i).
void LuLinear::backward_impl(const Matrix& grad_z, const Vector& grad_logdet, Matrix& grad_x,
                             Matrix*) {
  const Index d = dim();
  ensure(grad_x, grad_z.shape(0), d);
  nn::dense_input_gradient(grad_z, w_, grad_x);
  nn::accumulate_bias_gradient(grad_z, bias_.grad);
  ensure(grad_w_, d, d);
  nn::dense_weight_gradient(x_, grad_z, grad_w_, Real(0));
  ensure(grad_m_, d, d);
  for (Index r = 0; r < d; ++r)
    for (Index j = 0; j < d; ++j) grad_m_(order_[r], j) = grad_w_(r, j);
  Real sum_grad_logdet = 0;
  for (Index r = 0; r < grad_logdet.size(); ++r) sum_grad_logdet += grad_logdet(r);
  for (Index i = 0; i < d; ++i)
    for (Index j = 0; j < d; ++j) {
      if (i > j) {  // L_ij: Σ_k dL/dM_ik U_jk, U_jk ≠ 0 for k ≥ j
        Real sum = 0;
        for (Index k = j; k < d; ++k) sum += grad_m_(i, k) * u_(j, k);
        lower_.grad(0, packed(i, j)) += sum;
      } else {  // U_ij: Σ_k L_ki dL/dM_kj, L_ki ≠ 0 for k ≥ i
        Real sum = 0;
        for (Index k = i; k < d; ++k) sum += l_(k, i) * grad_m_(k, j);
        if (i == j)
          log_diag_.grad(0, i) += sum * u_(i, i) + sum_grad_logdet;
        else
          upper_.grad(0, packed(j, i)) += sum;
      }
    }
}

LuLinearOptions LuLinearOptions::from(ConfigNode& node) {
  LuLinearOptions o;
  node.read("permute", o.permute);
  Index seed = 0;
  node.read("seed", seed);  // read even when absent, so that "did you mean" knows the key
  if (node.has("seed")) o.seed = seed;
  node.expect(!o.seed || o.permute, "seed", "only applies with permute: true");
  node.finish();
  return o;
}

std::unique_ptr<Bijector> make_lu_linear(ConfigNode& node, const BuildContext& context) {
  const LuLinearOptions options = LuLinearOptions::from(node);
  std::vector<Index> order(context.dim);
  for (Index j = 0; j < context.dim; ++j) order[j] = j;
  if (options.permute) order = random_permutation(context.dim, options.seed.value_or(context.seed));
  return std::make_unique<LuLinear>(std::move(order));
}

}  // namespace flows::basic
