#include "velocity_field.hpp"

#include <algorithm>
#include <cmath>
#include <string>

#include <flows/checks.hpp>
#include <flows/error.hpp>
#include <flows/nn/dense.hpp>

namespace flows::flow_matching {

namespace {

constexpr Real kPi = 3.14159265358979323846;

}  // namespace

void VelocityFieldOptions::read_from(ConfigNode& node) {
  node.read("hidden", hidden);
  node.read("activation", activation);
  node.read("time_frequencies", time_frequencies);
  for (Index h : hidden) node.expect(h > 0, "hidden", "every width must be > 0");
  node.expect_one_of("activation", activation, nn::Activation::names());
  node.expect(time_frequencies <= 32, "time_frequencies", "must be at most 32");
}

VelocityField::VelocityField(Index dim, Index context_dim, const VelocityFieldOptions& options,
                             Rng& rng)
    : dim_(dim),
      context_dim_(context_dim),
      frequencies_(options.time_frequencies),
      mlp_(dim + 1 + 2 * options.time_frequencies + (context_dim > 0 ? context_dim + 1 : 0),
           options.hidden, dim, nn::Activation::from_name(options.activation), rng,
           options.precision),
      params_(mlp_.parameters()) {}

void VelocityField::embed_time(Real t, Real* out) const {
  out[0] = t;
  Real omega = kPi;
  for (Index k = 0; k < frequencies_; ++k, omega *= 2) {
    out[1 + 2 * k] = std::sin(omega * t);
    out[2 + 2 * k] = std::cos(omega * t);
  }
}

// Callers inside the plugin (the bijector, the trainer) pass checked shapes;
// this guards the layout the rows are copied with.
void VelocityField::features(const Matrix& x, const Vector& t, const Matrix& context,
                             const std::vector<char>& dropped, Matrix& out) const {
  const Index n = x.shape(0);
  if (x.shape(1) != dim_ || t.size() != n || (!dropped.empty() && dropped.size() != n) ||
      (context_dim_ > 0 && (context.shape(0) != n || context.shape(1) != context_dim_)))
    throw Error("flow_matching: the velocity field got x of [" + std::to_string(n) + " x " +
                std::to_string(x.shape(1)) + "], " + std::to_string(t.size()) +
                " times and a context of [" + std::to_string(context.shape(0)) + " x " +
                std::to_string(context.shape(1)) + "]; it needs " + std::to_string(dim_) +
                " columns, one time per row and " + std::to_string(context_dim_) +
                " context columns");
  const Index width = input_features(), e = time_features();
  ensure(out, n, width);
  for (Index i = 0; i < n; ++i) {
    Real* row = out.data() + i * width;
    std::copy_n(x.data() + i * dim_, dim_, row);
    embed_time(t(i), row + dim_);
    if (context_dim_ == 0) continue;
    Real* c = row + dim_ + e;
    const bool null = !dropped.empty() && dropped[i];
    if (null)
      std::fill_n(c, context_dim_, Real(0));
    else
      std::copy_n(context.data() + i * context_dim_, context_dim_, c);
    c[context_dim_] = null ? 1 : 0;
  }
}

void VelocityField::forward(const Matrix& x, const Vector& t, const Matrix& context, Matrix& v,
                            const std::vector<char>& dropped) {
  features(x, t, context, dropped, features_);
  dropped_ = dropped;
  mlp_.forward(features_, v);
}

// The features are [x, e(t), c, m], so dL/dx is the first d columns of
// dL/d(features) and dL/dc the k columns after e(t).
void VelocityField::backward(const Matrix& grad_v, Matrix& grad_x, bool accumulate_param_grads,
                             Matrix* grad_context) {
  mlp_.backward(grad_v, grad_features_, accumulate_param_grads);
  const Index n = grad_features_.shape(0), width = input_features();
  ensure(grad_x, n, dim_);
  for (Index i = 0; i < n; ++i)
    std::copy_n(grad_features_.data() + i * width, dim_, grad_x.data() + i * dim_);
  if (!grad_context || context_dim_ == 0) return;
  if (grad_context->shape(0) != n || grad_context->shape(1) != context_dim_)
    throw Error("flow_matching: the context gradient is [" +
                std::to_string(grad_context->shape(0)) + " x " +
                std::to_string(grad_context->shape(1)) + "], expected [" + std::to_string(n) +
                " x " + std::to_string(context_dim_) + "]");
  const Index offset = dim_ + time_features();
  for (Index i = 0; i < n; ++i) {
    if (!dropped_.empty() && dropped_[i]) continue;
    const Real* g = grad_features_.data() + i * width + offset;
    Real* gc = grad_context->data() + i * context_dim_;
    for (Index j = 0; j < context_dim_; ++j) gc[j] += g[j];
  }
}

class VelocityField::Evaluator::Impl {
 public:
  virtual ~Impl() = default;
  virtual void velocity(const Matrix& x, Real t, Matrix& v) = 0;
  virtual void velocity_and_divergence(const Matrix& x, Real t, Matrix& v, Vector& div) = 0;
  virtual void velocity_and_divergence_estimate(const Matrix& x, Real t,
                                                const std::vector<Matrix>& probes, Matrix& v,
                                                Vector& div) = 0;
};

// The evaluator's arithmetic in T (float or double): the network's weights
// are copied into T once per solve, each call converts the state x to T and
// the velocity and divergence back to float64.
template <class T>
class EvaluatorOf final : public VelocityField::Evaluator::Impl {
 public:
  using M = MatrixOf<T>;
  EvaluatorOf(const VelocityField& field, const Matrix& context, Real guidance);
  void velocity(const Matrix& x, Real t, Matrix& v) override;
  void velocity_and_divergence(const Matrix& x, Real t, Matrix& v, Vector& div) override;
  void velocity_and_divergence_estimate(const Matrix& x, Real t, const std::vector<Matrix>& probes,
                                        Matrix& v, Vector& div) override;

 private:
  // x in T (stacked twice when guided) into rows_.
  void network_rows(const Matrix& x);
  // c0_ = b_0 + W_0t e(t).
  void fold_time(Real t);
  // The network on rows_ into out, with the activations' derivatives into
  // deriv_ when asked for.
  void forward(Real t, M& out, bool derivatives);
  // out = f(in W_kᵀ + b_k [+ out]), f' into *slope when given: the fused
  // kernel when the layers are packed, else BLAS and then f.
  void layer(Index k, const M& in, const nn::Activation& f, M& out, bool accumulate, M* slope);
  // (1 + w) top half − w bottom half of raw (2n x width), row by row, into out (float64).
  template <class Out>
  void combine(const T* raw, Index n, Index width, Out* out) const;
  // g (rows x width of the last hidden layer) → dL/d(pre-activation of layer 0).
  void backpropagate_hidden(M& g);
  // The output (and divergence) of the network rows, combined when guided.
  void finish(Index n, Matrix& v, Vector* divergence);

  const VelocityField& field_;
  Index layers_;
  bool conditional_;
  bool guided_;
  Real guidance_;
  Index context_rows_ = 0;  // n: the rows of every call when conditional
  std::vector<M> weight_;   // W_k in T, out x in (weight_[0] unused: split below)
  std::vector<M> bias_;     // b_k in T, 1 x out
  M w0x_;                   // W_0's first d columns (h_0 x d)
  M w0x_t_;                 // its transpose (d x h_0)
  Matrix w0t_;              // W_0's time columns (h_0 x (1 + 2F)), float64: folded per call
  M context_pre_;           // [c, m] W_0cᵀ per network row: layer 0's context term
  std::vector<Real> embedding_;
  std::vector<T> c0_;  // b_0 + W_0t e(t)
  std::vector<M> act_, deriv_, grad_;
  M rows_, out_, probe_, input_grad_;
  std::vector<T> div_;
  // The layers packed for small_dense_forward, when every layer suits it:
  // the weights are fixed for the evaluator's life (layer 0's bias, c0_,
  // is written before each pass).
  std::vector<nn::PackedDense<T>> packed_;
  // And transposed, for the divergence's products dL/da_k W_k (k ≥ 1).
  std::vector<nn::PackedDense<T>> packed_transposed_;
};

template <class T>
EvaluatorOf<T>::EvaluatorOf(const VelocityField& field, const Matrix& context, Real guidance)
    : field_(field),
      layers_(field.params_.size() / 2),
      conditional_(field.context_dim_ > 0),
      guided_(conditional_ && guidance != 0),
      guidance_(guidance) {
  weight_.resize(layers_);
  bias_.resize(layers_);
  for (Index k = 0; k < layers_; ++k) {
    if (k > 0) convert(field.params_[2 * k]->value, weight_[k]);
    convert(field.params_[2 * k + 1]->value, bias_[k]);
  }
  const Matrix& w0 = field.params_[0]->value;
  const Index h0 = w0.shape(0), d = field.dim_, e = field.time_features();
  w0x_.resize({h0, d});
  w0x_t_.resize({d, h0});
  w0t_.resize({h0, e});
  for (Index r = 0; r < h0; ++r) {
    for (Index j = 0; j < d; ++j) w0x_t_(j, r) = w0x_(r, j) = static_cast<T>(w0(r, j));
    for (Index j = 0; j < e; ++j) w0t_(r, j) = w0(r, d + j);
  }
  if (conditional_) {
    // Layer 0's context term [c, m] W_0cᵀ is fixed for the solve: computed
    // once here, for the n rows with their context and, when guided, n more
    // with ∅ = [0, 1].
    const Index k = field.context_dim_, q = k + 1;
    if (context.shape(1) != k)
      throw Error("flow_matching: the velocity field needs a context of " + std::to_string(k) +
                  " columns, got " + std::to_string(context.shape(1)));
    context_rows_ = context.shape(0);
    const Index rows = guided_ ? 2 * context_rows_ : context_rows_;
    M inputs = xt::zeros<T>({rows, q});
    for (Index i = 0; i < context_rows_; ++i)
      for (Index j = 0; j < k; ++j) inputs(i, j) = static_cast<T>(context(i, j));
    for (Index i = context_rows_; i < rows; ++i) inputs(i, k) = 1;
    M w0c({h0, q});
    for (Index r = 0; r < h0; ++r)
      for (Index j = 0; j < q; ++j) w0c(r, j) = static_cast<T>(w0(r, d + e + j));
    context_pre_.resize({rows, h0});
    nn::dense_forward(inputs, w0c, static_cast<const T*>(nullptr), context_pre_);
  }
  embedding_.resize(e);
  c0_.resize(h0);
  bool small = nn::small_dense_suits<T>(d, h0);
  for (Index k = 1; k < layers_; ++k)
    small = small && nn::small_dense_suits<T>(weight_[k].shape(1), weight_[k].shape(0));
  if (small) {
    packed_.resize(layers_);
    packed_[0].pack(w0x_, c0_.data(), nullptr);
    packed_transposed_.resize(layers_);
    for (Index k = 1; k < layers_; ++k) {
      packed_[k].pack(weight_[k], bias_[k].data(), nullptr);
      packed_transposed_[k].pack_transposed(weight_[k], nullptr);
    }
  }
  act_.resize(layers_);
  deriv_.resize(layers_);
  grad_.resize(layers_);
}

template <class T>
void EvaluatorOf<T>::network_rows(const Matrix& x) {
  if (conditional_ && x.shape(0) != context_rows_)
    throw Error("flow_matching: the velocity field's evaluator holds " +
                std::to_string(context_rows_) + " context rows but got " +
                std::to_string(x.shape(0)) + " rows");
  const Index n = x.shape(0), d = x.shape(1);
  ensure(rows_, guided_ ? 2 * n : n, d);
  std::copy(x.begin(), x.end(), rows_.begin());
  if (guided_) std::copy(x.begin(), x.end(), rows_.begin() + static_cast<std::ptrdiff_t>(n * d));
}

template <class T>
template <class Out>
void EvaluatorOf<T>::combine(const T* raw, Index n, Index width, Out* out) const {
  const Index size = n * width;
  const Real a = 1 + guidance_, b = guidance_;
  for (Index k = 0; k < size; ++k) out[k] = static_cast<Out>(a * raw[k] - b * raw[size + k]);
}

template <class T>
void EvaluatorOf<T>::finish(Index n, Matrix& v, Vector* divergence) {
  const Index d = field_.dim_;
  ensure(v, n, d);
  if (guided_) {
    combine(out_.data(), n, d, v.data());
    if (divergence) {
      ensure(*divergence, n);
      combine(div_.data(), n, 1, divergence->data());
    }
    return;
  }
  std::copy(out_.begin(), out_.end(), v.begin());
  if (divergence) {
    ensure(*divergence, n);
    std::copy(div_.begin(), div_.end(), divergence->begin());
  }
}

// Layer 0 acts on [x, e(t), c, m] with one t for the batch, so its time
// columns fold into the bias and its context columns into the fixed per-row
// term: a_0 = x W_0xᵀ + (b_0 + W_0t e(t)) + [c, m] W_0cᵀ.
template <class T>
void EvaluatorOf<T>::fold_time(Real t) {
  field_.embed_time(t, embedding_.data());
  for (Index r = 0; r < c0_.size(); ++r) {
    Real s = bias_[0](0, r);
    for (Index j = 0; j < embedding_.size(); ++j) s += w0t_(r, j) * embedding_[j];
    c0_[r] = static_cast<T>(s);
  }
}

template <class T>
void EvaluatorOf<T>::layer(Index k, const M& in, const nn::Activation& f, M& out, bool accumulate,
                           M* slope) {
  if (!packed_.empty()) {
    nn::small_dense_forward(in, packed_[k], f, out, accumulate, slope);
    return;
  }
  nn::dense_forward(in, k == 0 ? w0x_ : weight_[k], k == 0 ? c0_.data() : bias_[k].data(), out,
                    accumulate);
  if (f.kind() != nn::Activation::Kind::identity || slope) f.forward(out, out, slope);
}

// h_0 = f(x W_0xᵀ + c0 [+ [c, m] W_0cᵀ]), h_k = f(h_{k-1} W_kᵀ + b_k), the
// last layer without f.
template <class T>
void EvaluatorOf<T>::forward(Real t, M& out, bool derivatives) {
  fold_time(t);
  if (!packed_.empty()) packed_[0].set_bias(c0_.data());
  const nn::Activation identity(nn::Activation::Kind::identity);
  const nn::Activation& activation = field_.mlp_.activation();
  const Index rows = rows_.shape(0), last = layers_ - 1;
  M& first = last == 0 ? out : act_[0];
  ensure(first, rows, w0x_.shape(0));
  if (conditional_) std::copy(context_pre_.begin(), context_pre_.end(), first.begin());
  layer(0, rows_, last == 0 ? identity : activation, first, /*accumulate=*/conditional_,
        derivatives && last > 0 ? &deriv_[0] : nullptr);
  for (Index k = 0; k < last; ++k) {
    const bool output = k + 1 == last;
    M& next = output ? out : act_[k + 1];
    ensure(next, rows, weight_[k + 1].shape(0));
    layer(k + 1, act_[k], output ? identity : activation, next, false,
          derivatives && !output ? &deriv_[k + 1] : nullptr);
  }
}

template <class T>
void EvaluatorOf<T>::velocity(const Matrix& x, Real t, Matrix& v) {
  network_rows(x);
  forward(t, out_, false);
  finish(x.shape(0), v, nullptr);
}

// g holds dL/da_{L-2} for one or more stacked copies of the network's rows
// (rows b·m + r); each hidden layer k maps dL/da_k to dL/da_{k-1} = (dL/da_k
// W_k) ⊙ f'(a_{k-1}), the same f' for every copy.
template <class T>
void EvaluatorOf<T>::backpropagate_hidden(M& g) {
  for (Index k = layers_ - 2; k > 0; --k) {
    ensure(grad_[k], g.shape(0), weight_[k].shape(1));
    if (!packed_transposed_.empty())
      nn::small_dense_input_gradient<T>(packed_transposed_[k], g, grad_[k], nullptr);
    else
      nn::dense_input_gradient(g, weight_[k], grad_[k]);
    const M& deriv = deriv_[k - 1];
    const Index n = deriv.shape(0), width = deriv.shape(1), rows = grad_[k].shape(0);
    for (Index row = 0; row < rows; ++row) {
      T* gr = grad_[k].data() + row * width;
      const T* dr = deriv.data() + (row % n) * width;
      for (Index j = 0; j < width; ++j) gr[j] *= dr[j];
    }
    std::swap(g, grad_[k]);
  }
}

// div v = Σ_i e_iᵀ (∂v/∂x) e_i: one vector-Jacobian product per output i. For
// output i, dL/dh_{L-1} is row i of the last weight, so the first product is
// elementwise; the d products are stacked into one matrix (d·m rows) so each
// hidden layer is one BLAS call; the input layer contributes ∂a_0/∂x_i =
// W_0[:, i]. The context enters layer 0 as a constant, so it changes the
// activations' derivatives but adds no term of its own.
template <class T>
void EvaluatorOf<T>::velocity_and_divergence(const Matrix& x, Real t, Matrix& v,
                                             Vector& divergence) {
  network_rows(x);
  forward(t, out_, true);
  const Index m = rows_.shape(0), d = field_.dim_;
  div_.assign(m, T(0));
  if (layers_ == 1) {
    T trace = 0;
    for (Index i = 0; i < d; ++i) trace += w0x_(i, i);
    std::fill(div_.begin(), div_.end(), trace);
  } else {
    const M& w_last = weight_[layers_ - 1];
    const M& d_last = deriv_[layers_ - 2];
    const Index width = d_last.shape(1);
    M& g = grad_[0];
    ensure(g, d * m, width);
    for (Index i = 0; i < d; ++i) {
      const T* w_row = w_last.data() + i * width;
      for (Index r = 0; r < m; ++r) {
        const T* dr = d_last.data() + r * width;
        T* gr = g.data() + (i * m + r) * width;
        for (Index j = 0; j < width; ++j) gr[j] = dr[j] * w_row[j];
      }
    }
    backpropagate_hidden(g);
    // Block i of g is dL/da_0 for output i; the diagonal entry is g · W_0[:, i].
    const Index h0 = g.shape(1);
    for (Index i = 0; i < d; ++i) {
      const T* column = w0x_t_.data() + i * h0;
      for (Index r = 0; r < m; ++r) {
        const T* gr = g.data() + (i * m + r) * h0;
        T s = 0;
        for (Index j = 0; j < h0; ++j) s += gr[j] * column[j];
        div_[r] += s;
      }
    }
  }
  finish(x.shape(0), v, &divergence);
}

template <class T>
void EvaluatorOf<T>::velocity_and_divergence_estimate(const Matrix& x, Real t,
                                                      const std::vector<Matrix>& probes, Matrix& v,
                                                      Vector& divergence) {
  if (probes.empty()) throw Error("flow_matching: Hutchinson's estimator needs probes");
  network_rows(x);
  forward(t, out_, true);
  const Index n = x.shape(0), m = rows_.shape(0), d = field_.dim_;
  div_.assign(m, T(0));
  ensure(input_grad_, m, d);
  ensure(probe_, m, d);
  M& g = grad_[0];
  for (const Matrix& probe : probes) {
    if (probe.shape(0) != n || probe.shape(1) != d)
      throw Error("flow_matching: a Hutchinson probe does not match the batch");
    // The guided halves see the same probe: the estimate is linear in the field.
    std::copy(probe.begin(), probe.end(), probe_.begin());
    if (guided_)
      std::copy(probe.begin(), probe.end(), probe_.begin() + static_cast<std::ptrdiff_t>(n * d));
    if (layers_ == 1) {
      // v = x W_0xᵀ + c: εᵀ ∂v/∂x = ε W_0x.
      nn::dense_input_gradient(probe_, w0x_, input_grad_);
    } else {
      // εᵀ ∂v/∂h_{L-1} = ε W_{L-1}, then through the hidden layers to
      // dL/da_0, and εᵀ ∂v/∂x = (dL/da_0) W_0x.
      const M& w_last = weight_[layers_ - 1];
      ensure(g, m, w_last.shape(1));
      nn::dense_input_gradient(probe_, w_last, g);
      xt::noalias(g) *= deriv_[layers_ - 2];
      backpropagate_hidden(g);
      nn::dense_input_gradient(g, w0x_, input_grad_);
    }
    for (Index r = 0; r < m; ++r) {
      T s = 0;
      for (Index j = 0; j < d; ++j) s += input_grad_(r, j) * probe_(r, j);
      div_[r] += s;
    }
  }
  const T scale = T(1) / static_cast<T>(probes.size());
  for (T& value : div_) value *= scale;
  finish(n, v, &divergence);
}

VelocityField::Evaluator::Evaluator(const VelocityField& field, const Matrix& context,
                                    Real guidance) {
  if (field.mlp_.precision() == Precision::float32)
    impl_ = std::make_unique<EvaluatorOf<float>>(field, context, guidance);
  else
    impl_ = std::make_unique<EvaluatorOf<double>>(field, context, guidance);
}

VelocityField::Evaluator::~Evaluator() = default;
VelocityField::Evaluator::Evaluator(Evaluator&&) noexcept = default;

void VelocityField::Evaluator::velocity(const Matrix& x, Real t, Matrix& v) {
  impl_->velocity(x, t, v);
}

void VelocityField::Evaluator::velocity_and_divergence(const Matrix& x, Real t, Matrix& v,
                                                       Vector& divergence) {
  impl_->velocity_and_divergence(x, t, v, divergence);
}

void VelocityField::Evaluator::velocity_and_divergence_estimate(const Matrix& x, Real t,
                                                                const std::vector<Matrix>& probes,
                                                                Matrix& v, Vector& divergence) {
  impl_->velocity_and_divergence_estimate(x, t, probes, v, divergence);
}

}  // namespace flows::flow_matching
