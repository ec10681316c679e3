#include "flows/flow.hpp"

#include <algorithm>
#include <cstdlib>
#include <exception>
#include <thread>

#include <fmt/format.h>

#include "flows/error.hpp"

namespace flows {

Flow::Flow(std::shared_ptr<BaseDistribution> base, std::vector<std::shared_ptr<Bijector>> chain,
           std::shared_ptr<ContextEncoder> context)
    : base_(std::move(base)), context_(std::move(context)) {
  if (!base_) throw Error("Flow: no base distribution");
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
}

namespace {

// Blocks smaller than this are not worth a thread.
constexpr Index kMinRowsPerThread = 256;

// Threads for inference: $FLOWS_NUM_THREADS, else the machine's cores.
Index inference_threads() {
  if (const char* env = std::getenv("FLOWS_NUM_THREADS")) {
    const long value = std::strtol(env, nullptr, 10);
    if (value >= 1) return static_cast<Index>(value);
  }
  return std::max<Index>(1, std::thread::hardware_concurrency());
}

// Inference treats rows independently, so it runs fn(begin, end) on
// contiguous row blocks, one per thread (Bijector::forward and inverse are
// const and must be safe to call concurrently). Exceptions reach the caller.
template <class Fn>
void for_row_blocks(Index n, const Fn& fn) {
  const Index threads = std::min(inference_threads(), n / kMinRowsPerThread);
  if (threads <= 1) {
    fn(Index{0}, n);
    return;
  }
  std::vector<std::exception_ptr> errors(threads);
  std::vector<std::thread> pool;
  for (Index t = 0; t < threads; ++t)
    pool.emplace_back([&, t] {
      try {
        fn(n * t / threads, n * (t + 1) / threads);
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
  for_row_blocks(n, [&](Index begin, Index end) {
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
// number of threads that invert them.
Matrix Flow::sample(Index n, Rng& rng, const Matrix& context) const {
  return sample_and_log_prob(n, rng, context, /*with_log_prob=*/false).value;
}

Transformed Flow::sample_and_log_prob(Index n, Rng& rng, const Matrix& context) const {
  return sample_and_log_prob(n, rng, context, /*with_log_prob=*/true);
}

Transformed Flow::sample_and_log_prob(Index n, Rng& rng, const Matrix& context,
                                      bool with_log_prob) const {
  // One context row is shared by every sample.
  Matrix rows = context;
  if (context_dim() > 0 && context.shape(0) == 1 && n != 1) {
    rows.resize({n, context.shape(1)});
    for (Index i = 0; i < n; ++i)
      std::copy(context.begin(), context.end(), rows.data() + i * context.shape(1));
  }
  const Matrix encoded = encode_context(rows, n);
  Matrix z = base_->sample(n, encoded, rng);
  Transformed out{Matrix({n, dim()}), xt::zeros<Real>({with_log_prob ? n : 0})};
  for_row_blocks(n, [&](Index begin, Index end) {
    const Matrix c = row_block(encoded, n, begin, end);
    const Matrix block = row_block(z, n, begin, end);
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
Real Flow::nll_gradient(const Matrix& batch, const Matrix& context) {
  if (batch.shape(1) != dim())
    throw DataError(fmt::format("the model has {} dimensions but the batch has {} columns", dim(),
                                batch.shape(1)));
  const Index n = batch.shape(0);
  check_context(context, n);
  static const Matrix kNone;
  const Matrix& encoded = context_ ? context_->encode_train(context) : kNone;
  chain_->forward_train(batch, encoded, z_, logdet_);
  log_prob_ = base_->log_prob(z_, encoded);
  Real sum = 0;
  for (Index i = 0; i < n; ++i) sum += log_prob_(i) + logdet_(i);

  const Real weight = -1.0 / static_cast<Real>(n);
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
  return -sum / static_cast<Real>(n);
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
