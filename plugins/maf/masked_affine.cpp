#include "masked_affine.hpp"

#include <algorithm>
#include <cmath>

#include <flows/checks.hpp>

namespace flows::maf {

namespace {

// Rows per block of inference (see evaluate()).
constexpr Index kBlock = 1024;

nn::MadeOptions with_two_outputs(nn::MadeOptions options) {
  options.out_multiplier = 2;
  return options;
}

}  // namespace

MaskedAffine::MaskedAffine(const std::vector<Index>& order, const nn::MadeOptions& made,
                           Real log_scale_bound, bool inverted, Rng& rng)
    : made_(order, with_two_outputs(made), rng), bound_(log_scale_bound), inverted_(inverted) {}

void MaskedAffine::apply(const Real* u, const Matrix& m, Index rows, Real* v, Real* logdet) const {
  const Index d = dim();
  const Real inv_b = 1 / bound_;
  for (Index i = 0; i < rows; ++i) {
    const Real* mu = &m(i, 0);
    const Real* raw = mu + d;
    const Real* in = u + i * d;
    Real* out = v + i * d;
    Real sum = 0;
    for (Index j = 0; j < d; ++j) {
      const Real alpha = bound_ * std::tanh(raw[j] * inv_b);
      out[j] = (in[j] - mu[j]) * std::exp(-alpha);
      sum += alpha;
    }
    if (logdet) logdet[i] = -sum;
  }
}

// Inference runs in blocks of kBlock rows, so that the MADE's hidden
// activations (kBlock x width) stay in cache and one workspace serves every
// block, whatever the batch size (100,000 rows would otherwise allocate and
// stream several 50 MB buffers per layer).
void MaskedAffine::evaluate(const Matrix& u, Transformed& out) const {
  const Index n = u.shape(0), d = dim();
  out.value.resize({n, d});
  out.logdet.resize({n});
  nn::Made::Workspace workspace;
  Matrix block, m;
  for (Index start = 0; start < n; start += kBlock) {
    const Index rows = std::min(kBlock, n - start);
    ensure(block, rows, d);
    std::copy(u.data() + start * d, u.data() + (start + rows) * d, block.data());
    made_.infer(block, m, workspace);
    apply(block.data(), m, rows, out.value.data() + start * d, out.logdet.data() + start);
  }
}

// Pass t makes the inputs at positions ≤ t of the ordering exact (their μ, α
// depend only on earlier positions), so after D passes u = f⁻¹(v); the last
// pass's α is computed from inputs that were already exact. The parameters
// of position 0 depend on no input, so pass 0 is one MADE row (at u = 0)
// shared by every row: D − 1 full passes remain (one for D = 2). Blocks of
// kBlock rows as in evaluate().
void MaskedAffine::solve(const Matrix& v, Matrix& u, Vector& logdet) const {
  const Index n = v.shape(0), d = dim();
  u.resize({n, d});
  logdet.resize({n});
  nn::Made::Workspace workspace;
  const Real inv_b = 1 / bound_;
  // u_j = μ_j + v_j e^{α_j} from MADE outputs m (one row of m per row of the
  // block, or the single row m0 for all); returns Σ_j α_j.
  auto update = [&](const Real* mu, const Real* in, Real* out) {
    const Real* raw = mu + d;
    Real sum = 0;
    for (Index j = 0; j < d; ++j) {
      const Real alpha = bound_ * std::tanh(raw[j] * inv_b);
      out[j] = mu[j] + in[j] * std::exp(alpha);
      sum += alpha;
    }
    return sum;
  };
  Matrix m0;
  made_.infer(xt::zeros<Real>({Index(1), d}), m0, workspace);
  Matrix block, m;
  for (Index start = 0; start < n; start += kBlock) {
    const Index rows = std::min(kBlock, n - start);
    ensure(block, rows, d);
    for (Index i = 0; i < rows; ++i) {
      const Real sum = update(m0.data(), v.data() + (start + i) * d, &block(i, 0));
      if (d == 1) logdet(start + i) = sum;
    }
    for (Index pass = 1; pass < d; ++pass) {
      made_.infer(block, m, workspace);
      const bool last = pass + 1 == d;
      for (Index i = 0; i < rows; ++i) {
        const Real sum = update(&m(i, 0), v.data() + (start + i) * d, &block(i, 0));
        if (last) logdet(start + i) = sum;
      }
    }
    std::copy(block.begin(), block.end(), u.data() + start * d);
  }
}

Transformed MaskedAffine::forward(const Matrix& x, const Matrix&) const {
  require_columns(x, dim(), inverted_ ? "iaf" : "maf", "input");
  Transformed out;
  if (inverted_)
    solve(x, out.value, out.logdet);
  else
    evaluate(x, out);
  return out;
}

Transformed MaskedAffine::inverse(const Matrix& z, const Matrix&) const {
  require_columns(z, dim(), inverted_ ? "iaf" : "maf", "latent input");
  Transformed out;
  if (inverted_)
    evaluate(z, out);
  else
    solve(z, out.value, out.logdet);
  return out;
}

void MaskedAffine::record(const Matrix& u) {
  const Index n = u.shape(0), d = dim();
  ensure(scale_, n, d);
  ensure(dalpha_, n, d);
  ensure(f_, n, d);
  const Real inv_b = 1 / bound_;
  for (Index i = 0; i < n; ++i) {
    const Real* mu = &m_(i, 0);
    const Real* raw = mu + d;
    const Real* in = &u(i, 0);
    for (Index j = 0; j < d; ++j) {
      const Real t = std::tanh(raw[j] * inv_b);
      const Real e = std::exp(-bound_ * t);
      scale_(i, j) = e;
      dalpha_(i, j) = 1 - t * t;
      f_(i, j) = (in[j] - mu[j]) * e;
    }
  }
}

void MaskedAffine::forward_train(const Matrix& x, const Matrix&, Matrix& z, Vector& logdet) {
  require_columns(x, dim(), inverted_ ? "iaf" : "maf", "input");
  recorded_ = false;
  const Index n = x.shape(0), d = dim();
  if (!inverted_) {
    made_.forward(x, m_);
    record(x);
    ensure(z, n, d);
    ensure(logdet, n);
    std::copy(f_.begin(), f_.end(), z.begin());
    for (Index i = 0; i < n; ++i) {
      Real sum = 0;
      for (Index j = 0; j < d; ++j) sum += bound_ * std::tanh(m_(i, d + j) / bound_);
      logdet(i) = -sum;
    }
  } else {
    // z = f⁻¹(x) by D passes, then one recorded pass at z for backward.
    solve(x, z, logdet);
    made_.forward(z, m_);
    record(z);
  }
  recorded_ = true;
}

// maf: z = f(x), logdet = −Σα(x). With g = dL/dz, s = dL/dlogdet:
//   dL/dμ_i = −g_i e^{−α_i},  dL/dr_i = −(g_i z_i + s) α'_i,
//   dL/dx = g ⊙ e^{−α} + (MADE backward of dL/dm).
// iaf: z = f⁻¹(x), logdet = +Σα(z). By the implicit function theorem on
// f(z) = x, with J = ∂f/∂z (triangular in the ordering) and
// G = g + s ∂Σα/∂z the total derivative of L at fixed x,
//   dL/dx = v where Jᵀ v = G,   dL/dθ = s ∂Σα/∂θ − vᵀ ∂f/∂θ.
// Jᵀ v = e^{−α} ⊙ v + Nᵀ v, N strictly triangular: Nᵀ v is the MADE's input
// gradient for dL/dμ = −v e^{−α}, dL/dr = −v f α'. Back-substitution
// v ← e^{α} ⊙ (G − Nᵀ v) is exact after D sweeps (N is nilpotent), each one
// MADE backward pass; a last pass with dL/dμ = v e^{−α}, dL/dr = (v f + s) α'
// accumulates the parameter gradients.
void MaskedAffine::backward(const Matrix& grad_z, const Vector& grad_logdet, Matrix& grad_x) {
  const Index n = m_.shape(0), d = dim();
  require_backward_shapes(grad_z, grad_logdet, n, d, recorded_, inverted_ ? "iaf" : "maf");
  ensure(grad_m_, n, 2 * d);
  if (!inverted_) {
    for (Index i = 0; i < n; ++i) {
      const Real s = grad_logdet(i);
      for (Index j = 0; j < d; ++j) {
        const Real g = grad_z(i, j);
        grad_m_(i, j) = -g * scale_(i, j);
        grad_m_(i, d + j) = -(g * f_(i, j) + s) * dalpha_(i, j);
      }
    }
    made_.backward(grad_m_, grad_x, true);
    for (Index i = 0; i < n; ++i)
      for (Index j = 0; j < d; ++j) grad_x(i, j) += grad_z(i, j) * scale_(i, j);
    return;
  }

  // G = g + s ∂Σα/∂z.
  ensure(rhs_, n, d);
  for (Index i = 0; i < n; ++i)
    for (Index j = 0; j < d; ++j) {
      grad_m_(i, j) = 0;
      grad_m_(i, d + j) = grad_logdet(i) * dalpha_(i, j);
    }
  made_.backward(grad_m_, grad_u_, false);
  for (Index i = 0; i < n; ++i)
    for (Index j = 0; j < d; ++j) rhs_(i, j) = grad_z(i, j) + grad_u_(i, j);
  // Back-substitution: v = e^{α} ⊙ G, then D − 1 sweeps.
  ensure(v_, n, d);
  for (Index i = 0; i < n; ++i)
    for (Index j = 0; j < d; ++j) v_(i, j) = rhs_(i, j) / scale_(i, j);
  for (Index sweep = 1; sweep < d; ++sweep) {
    for (Index i = 0; i < n; ++i)
      for (Index j = 0; j < d; ++j) {
        grad_m_(i, j) = -v_(i, j) * scale_(i, j);
        grad_m_(i, d + j) = -v_(i, j) * f_(i, j) * dalpha_(i, j);
      }
    made_.backward(grad_m_, grad_u_, false);
    for (Index i = 0; i < n; ++i)
      for (Index j = 0; j < d; ++j) v_(i, j) = (rhs_(i, j) - grad_u_(i, j)) / scale_(i, j);
  }
  for (Index i = 0; i < n; ++i)
    for (Index j = 0; j < d; ++j) {
      grad_m_(i, j) = v_(i, j) * scale_(i, j);
      grad_m_(i, d + j) = (v_(i, j) * f_(i, j) + grad_logdet(i)) * dalpha_(i, j);
    }
  made_.backward(grad_m_, grad_u_, true);
  ensure(grad_x, n, d);
  std::copy(v_.begin(), v_.end(), grad_x.begin());
}

}  // namespace flows::maf
