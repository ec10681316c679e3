#include "flows/flow.hpp"

#include <algorithm>
#include <cmath>
#include <exception>
#include <thread>

#include <fmt/format.h>

#include "flows/error.hpp"
#include "flows/threads.hpp"

namespace flows {

Flow::Flow(std::shared_ptr<BaseDistribution> base, std::vector<std::shared_ptr<Bijector>> chain,
           std::shared_ptr<ContextEncoder> context)
    : base_(std::move(base)), context_(std::move(context)) {
  if (!base_) throw Error("Flow: no base distribution");
  // Before any model computes: flows' threads, not BLAS's, use the cores.
  limit_blas_threads();
  chain_ = std::make_shared<Chain>("flow", base_->dim(), std::move(chain), "bijector", false);
  const Index width = context_ ? context_->output_dim() : 0;
  auto check = [&](Index reads, const std::string& what) {
    if (reads != 0 && reads != width)
      throw ConfigError(
          width == 0
              ? fmt::format("Flow: {} reads a context of {} columns, but the model has no context",
                            what, reads)
              : fmt::format("Flow: {} reads a context of {} columns, the context encoder gives {}",
                            what, reads, width));
  };
  check(chain_->context_dim(), "the chain");
  check(base_->context_dim(), "the base distribution");
}

void Flow::prepend(std::shared_ptr<Bijector> bijector) {
  chain_->prepend(std::move(bijector));
  ++data_layers_;
}

namespace {

// Blocks smaller than this are not worth a thread.
constexpr Index kMinRowsPerThread = 256;

// Inference runs fn(begin, end) on contiguous row blocks, one per thread
// (Bijector::forward and inverse are const and must be safe to call
// concurrently). Exceptions reach the caller. Blocks start on multiples of
// `granule` rows (Flow::row_granule): kInferenceRowGroup when a bijector
// solves groups of rows together (bijector.hpp), so that it sees the same
// groups whatever the thread count.
template <class Fn>
void for_row_blocks(Index n, Index granule, const Fn& fn) {
  const Index granules = (n + granule - 1) / granule;
  const Index threads = std::min({thread_count(), n / kMinRowsPerThread, granules});
  if (threads <= 1) {
    fn(Index{0}, n);
    return;
  }
  auto start = [&](Index t) { return std::min(n, granule * (granules * t / threads)); };
  std::vector<std::exception_ptr> errors(threads);
  std::vector<std::thread> pool;
  for (Index t = 0; t < threads; ++t)
    pool.emplace_back([&, t] {
      try {
        fn(start(t), start(t + 1));
      } catch (...) {
        errors[t] = std::current_exception();
      }
    });
  for (auto& thread : pool) thread.join();
  for (auto& error : errors)
    if (error) std::rethrow_exception(error);
}

// Rows [begin, end) of m; a context with other than n rows (none) is passed whole.
Matrix row_block(const Matrix& m, Index n, Index begin, Index end) {
  if (m.dimension() != 2 || m.shape(0) != n || m.size() == 0) return m;
  return xt::view(m, xt::range(begin, end), xt::all());
}

}  // namespace

void Flow::check_context(const Matrix& context, Index rows) const {
  const Index want = context_dim();
  if (want == 0) {
    if (context.size() != 0)
      throw DataError(fmt::format(
          "a context of {} column{} was given, but the model is unconditional (it reads none)",
          context.shape(1), context.shape(1) == 1 ? "" : "s"));
    return;
  }
  if (context.size() == 0 && rows > 0)
    throw DataError(fmt::format("the model is conditional: it needs a context of {} column{}", want,
                                want == 1 ? "" : "s"));
  if (context.shape(1) != want || context.shape(0) != rows)
    throw DataError(fmt::format("the context is [{} x {}]; the model needs [{} x {}]",
                                context.shape(0), context.shape(1), rows, want));
}

Matrix Flow::encode_context(const Matrix& context, Index rows) const {
  check_context(context, rows);
  if (!context_) return {};
  return context_->encode(context);
}

Vector Flow::log_prob(const Matrix& x, const Matrix& context) const {
  if (x.shape(1) != dim())
    throw DataError(
        fmt::format("the model has {} dimensions but the data has {} columns", dim(), x.shape(1)));
  const Index n = x.shape(0);
  const Matrix encoded = encode_context(context, n);
  Vector total = xt::empty<Real>({n});
  for_row_blocks(n, row_granule(), [&](Index begin, Index end) {
    Vector part = log_prob_rows(row_block(x, n, begin, end), row_block(encoded, n, begin, end));
    std::copy(part.begin(), part.end(), total.begin() + static_cast<std::ptrdiff_t>(begin));
  });
  return total;
}

Vector Flow::log_prob_rows(const Matrix& x, const Matrix& encoded) const {
  Transformed t = chain_->forward(x, encoded);
  return t.logdet + base_->log_prob(t.value, encoded);
}

Real Flow::mean_nll(const Matrix& x, const Matrix& context, Index batch) const {
  const Index n = x.shape(0);
  if (n == 0) throw DataError("mean_nll: no rows");
  check_context(context, n);
  Real sum = 0;
  for (Index start = 0; start < n; start += batch) {
    const Index stop = std::min(n, start + batch);
    Matrix rows = xt::view(x, xt::range(start, stop), xt::all());
    Matrix c;
    if (context.size() != 0) c = xt::view(context, xt::range(start, stop), xt::all());
    Vector lp = log_prob(rows, c);
    for (Real v : lp) sum -= v;
  }
  return sum / static_cast<Real>(n);
}

// The base draws come first, in one stream, so samples do not depend on the
// number of threads (or processes) that invert them.
Matrix Flow::sample(Index n, Rng& rng, const Matrix& context) const {
  return sample_and_log_prob(n, rng, context, /*with_log_prob=*/false, 0, n).value;
}

Matrix Flow::sample_rows(Index n, Rng& rng, const Matrix& context, Index begin, Index end) const {
  if (begin > end || end > n)
    throw Error(fmt::format("sample_rows: rows [{}, {}) are not rows of {}", begin, end, n));
  return sample_and_log_prob(n, rng, context, /*with_log_prob=*/false, begin, end).value;
}

Transformed Flow::sample_and_log_prob(Index n, Rng& rng, const Matrix& context) const {
  return sample_and_log_prob(n, rng, context, /*with_log_prob=*/true, 0, n);
}

Transformed Flow::sample_and_log_prob(Index n, Rng& rng, const Matrix& context, bool with_log_prob,
                                      Index first, Index last) const {
  // One context row is shared by every sample.
  Matrix rows = context;
  if (context_dim() > 0 && context.shape(0) == 1 && n != 1) {
    rows.resize({n, context.shape(1)});
    for (Index i = 0; i < n; ++i)
      std::copy(context.begin(), context.end(), rows.data() + i * context.shape(1));
  }
  const Matrix encoded = encode_context(rows, n);
  Matrix z = base_->sample(n, encoded, rng);
  // The rows inverted here: [first, last) of the n drawn.
  const Index m = last - first;
  if (m != n) z = row_block(z, n, first, last);
  const Matrix own_context = m != n ? row_block(encoded, n, first, last) : encoded;
  Transformed out{Matrix({m, dim()}), xt::zeros<Real>({with_log_prob ? m : 0})};
  if (m == 0) return out;  // another process's rows only
  for_row_blocks(m, row_granule(), [&](Index begin, Index end) {
    const Matrix c = row_block(own_context, m, begin, end);
    const Matrix block = row_block(z, m, begin, end);
    Transformed t = chain_->inverse(block, c);
    std::copy(t.value.begin(), t.value.end(),
              out.value.begin() + static_cast<std::ptrdiff_t>(begin * dim()));
    if (with_log_prob) {
      const Vector lp = base_->log_prob(block, c) - t.logdet;
      std::copy(lp.begin(), lp.end(), out.logdet.begin() + static_cast<std::ptrdiff_t>(begin));
    }
  });
  return out;
}

// L = -(1/n) Σ_i [log p_z(z_i | e_i) + logdet_i]; the logdet and the base
// log-density get the same weight -1/n per row, and dL/de from the chain and
// the base flows back into the context embedding.
Real Flow::nll_gradient(const Matrix& batch, const Matrix& context, Index total_rows) {
  if (batch.shape(1) != dim())
    throw DataError(fmt::format("the model has {} dimensions but the batch has {} columns", dim(),
                                batch.shape(1)));
  const Index n = batch.shape(0);
  check_context(context, n);
  static const Matrix kNone;
  const Matrix& encoded = context_ ? context_->encode_train(context) : kNone;
  chain_->forward_train(batch, encoded, z_, logdet_);
  base_->log_prob_into(z_, encoded, log_prob_);
  Real sum = 0;
  for (Index i = 0; i < n; ++i) sum += log_prob_(i) + logdet_(i);

  const Real rows = static_cast<Real>(total_rows > 0 ? total_rows : n);
  const Real weight = -1.0 / rows;
  grad_logdet_.resize({n});
  std::fill(grad_logdet_.begin(), grad_logdet_.end(), weight);
  Matrix* grad_context = nullptr;
  if (context_) {
    grad_context_ = xt::zeros<Real>({n, context_->output_dim()});
    grad_context = &grad_context_;
  }
  base_->log_prob_backward(z_, encoded, grad_logdet_, grad_z_,
                           base_->context_dim() > 0 ? grad_context : nullptr);
  chain_->backward(grad_z_, grad_logdet_, grad_x_, grad_context);
  if (context_) context_->backward(grad_context_);
  return -sum / rows;
}

namespace {

// One flag per row: does it hold a non-finite value?
std::vector<char> nonfinite_rows(const Matrix& m, const Vector* logdet = nullptr) {
  const Index n = m.shape(0), d = m.size() / std::max<Index>(n, 1);
  std::vector<char> bad(n, 0);
  for (Index i = 0; i < n; ++i) {
    const Real* row = m.data() + i * d;
    bad[i] = std::any_of(row, row + d, [](Real v) { return !std::isfinite(v); }) ||
             (logdet && !std::isfinite((*logdet)(i)));
  }
  return bad;
}

// Rows bad in `after` that were good in `before`.
Index newly_bad(const std::vector<char>& before, const std::vector<char>& after) {
  Index count = 0;
  for (std::size_t i = 0; i < after.size(); ++i) count += after[i] && !before[i];
  return count;
}

bool nonfinite_gradients(const ParameterList& params) {
  for (const Parameter* p : params)
    if (std::any_of(p->grad.begin(), p->grad.end(), [](Real g) { return !std::isfinite(g); }))
      return true;
  return false;
}

}  // namespace

Flow::NonFinite Flow::find_nonfinite(const Matrix& batch, const Matrix& context) {
  // A diagnosis, not a step: the training pass below may move running
  // statistics and adds gradients, so both are put back afterwards.
  const ParameterList params = parameters();
  std::vector<Matrix> values, grads;
  for (const Parameter* p : params) {
    values.push_back(p->value);
    grads.push_back(p->grad);
  }
  auto label = [this](Index k) {
    const std::string& name = chain()[k]->name();
    return k < data_layers_ ? fmt::format("the data layer {} (before model.bijectors)", name)
                            : fmt::format("bijectors[{}] ({})", k - data_layers_, name);
  };
  auto locate = [&]() -> NonFinite {
    const Index n = batch.shape(0);
    check_context(context, n);
    static const Matrix kNone;
    const Matrix& encoded = context_ ? context_->encode_train(context) : kNone;
    if (context_ && newly_bad(nonfinite_rows(context), nonfinite_rows(encoded)) > 0)
      return {"the context encoder", newly_bad(nonfinite_rows(context), nonfinite_rows(encoded))};
    const auto& layers = chain();
    const Index count = layers.size();
    std::vector<Matrix> outputs(count);
    std::vector<Vector> logdets(count);
    const Matrix* in = &batch;
    for (Index k = 0; k < count; ++k) {
      layers[k]->forward_train(*in, encoded, outputs[k], logdets[k]);
      const Index rows = newly_bad(nonfinite_rows(*in), nonfinite_rows(outputs[k], &logdets[k]));
      if (rows > 0) return {label(k) + ", forward pass", rows};
      in = &outputs[k];
    }
    const Matrix& z = *in;
    const Vector log_prob = base_->log_prob(z, encoded);
    Matrix as_column = xt::zeros<Real>({n, Index{1}});
    const Index base_rows = newly_bad(nonfinite_rows(z), nonfinite_rows(as_column, &log_prob));
    if (base_rows > 0) return {"the base distribution", base_rows};
    // Backward, in the order the gradient flows: base, then the last layer first.
    const Vector grad_logdet = xt::ones<Real>({n}) * (-1.0 / static_cast<Real>(n));
    Matrix upstream, grad_x;
    zero_grad(params);
    base_->log_prob_backward(z, encoded, grad_logdet, upstream, nullptr);
    if (const Index rows = newly_bad(nonfinite_rows(z), nonfinite_rows(upstream));
        rows > 0 || nonfinite_gradients(base_->parameters()))
      return {"the base distribution, backward pass", rows};
    for (Index k = count; k-- > 0;) {
      layers[k]->backward(upstream, grad_logdet, grad_x, nullptr);
      const Index rows = newly_bad(nonfinite_rows(upstream), nonfinite_rows(grad_x));
      if (rows > 0 || nonfinite_gradients(layers[k]->parameters()))
        return {label(k) + ", backward pass", rows};
      std::swap(upstream, grad_x);
    }
    return {};
  };
  NonFinite found;
  try {
    found = locate();
  } catch (const Error& e) {
    // A layer that refuses a non-finite input names itself.
    found = {std::string("an error in the training pass: ") + e.what(), 0};
  }
  for (std::size_t k = 0; k < params.size(); ++k) {
    params[k]->value = values[k];
    params[k]->grad = grads[k];
  }
  return found;
}

ParameterList Flow::parameters() {
  ParameterList params = context_ ? context_->parameters() : ParameterList{};
  append(params, base_->parameters());
  append(params, chain_->parameters());
  return params;
}

void Flow::visit_state(StateVisitor& visitor) {
  if (context_) {
    ScopedStateVisitor scoped(visitor, "context/");
    context_->visit_state(scoped);
  }
  ScopedStateVisitor base(visitor, "base/");
  base_->visit_state(base);
  chain_->visit_state(visitor);
}

}  // namespace flows
