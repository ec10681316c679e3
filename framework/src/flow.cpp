#include "flows/flow.hpp"

#include <algorithm>
#include <cstdlib>
#include <exception>
#include <thread>

#include <fmt/format.h>

#include "flows/error.hpp"

namespace flows {

Flow::Flow(std::shared_ptr<BaseDistribution> base, std::vector<std::shared_ptr<Bijector>> chain)
    : base_(std::move(base)), chain_(std::move(chain)) {
  if (!base_) throw Error("Flow: no base distribution");
  for (std::size_t k = 0; k < chain_.size(); ++k)
    if (chain_[k]->dim() != base_->dim())
      throw Error(fmt::format("Flow: bijector {} has dimension {}, the base distribution {}", k,
                              chain_[k]->dim(), base_->dim()));
}

void Flow::prepend(std::shared_ptr<Bijector> bijector) {
  if (bijector->dim() != dim())
    throw Error(fmt::format("Flow: prepended bijector has dimension {}, the flow {}",
                            bijector->dim(), dim()));
  chain_.insert(chain_.begin(), std::move(bijector));
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

Vector Flow::log_prob(const Matrix& x, const Matrix& context) const {
  if (x.shape(1) != dim())
    throw DataError(
        fmt::format("the model has {} dimensions but the data has {} columns", dim(), x.shape(1)));
  const Index n = x.shape(0);
  Vector total = xt::empty<Real>({n});
  for_row_blocks(n, [&](Index begin, Index end) {
    Vector part = log_prob_rows(row_block(x, n, begin, end), row_block(context, n, begin, end));
    std::copy(part.begin(), part.end(), total.begin() + static_cast<std::ptrdiff_t>(begin));
  });
  return total;
}

Vector Flow::log_prob_rows(const Matrix& x, const Matrix& context) const {
  Vector total = xt::zeros<Real>({x.shape(0)});
  Matrix current = x;
  for (const auto& bijector : chain_) {
    Transformed t = bijector->forward(current, context);
    total += t.logdet;
    current = std::move(t.value);
  }
  total += base_->log_prob(current, context);
  return total;
}

Real Flow::mean_nll(const Matrix& x, Index batch) const {
  const Index n = x.shape(0);
  if (n == 0) throw DataError("mean_nll: no rows");
  Real sum = 0;
  for (Index start = 0; start < n; start += batch) {
    const Index stop = std::min(n, start + batch);
    Matrix rows = xt::view(x, xt::range(start, stop), xt::all());
    Vector lp = log_prob(rows);
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
  Matrix z = base_->sample(n, context, rng);
  Transformed out{Matrix({n, dim()}), xt::zeros<Real>({with_log_prob ? n : 0})};
  for_row_blocks(n, [&](Index begin, Index end) {
    const Matrix c = row_block(context, n, begin, end);
    Matrix current = row_block(z, n, begin, end);
    Vector lp;
    if (with_log_prob) lp = base_->log_prob(current, c);
    for (auto it = chain_.rbegin(); it != chain_.rend(); ++it) {
      Transformed t = (*it)->inverse(current, c);
      if (with_log_prob) lp -= t.logdet;
      current = std::move(t.value);
    }
    std::copy(current.begin(), current.end(),
              out.value.begin() + static_cast<std::ptrdiff_t>(begin * dim()));
    if (with_log_prob)
      std::copy(lp.begin(), lp.end(), out.logdet.begin() + static_cast<std::ptrdiff_t>(begin));
  });
  return out;
}

// L = -(1/n) Σ_i [log p_z(z_i) + Σ_k logdet_k,i]; every logdet and the base
// log-density get the same weight -1/n per row.
Real Flow::nll_gradient(const Matrix& batch, const Matrix& context) {
  if (batch.shape(1) != dim())
    throw DataError(fmt::format("the model has {} dimensions but the batch has {} columns", dim(),
                                batch.shape(1)));
  const Index n = batch.shape(0);
  const std::size_t k_count = chain_.size();
  activations_.resize(k_count);
  logdets_.resize(k_count);
  const Matrix* input = &batch;
  for (std::size_t k = 0; k < k_count; ++k) {
    chain_[k]->forward_train(*input, context, activations_[k], logdets_[k]);
    input = &activations_[k];
  }
  log_prob_ = base_->log_prob(*input, context);
  Real sum = 0;
  for (Real v : log_prob_) sum += v;
  for (const Vector& ld : logdets_)
    for (Real v : ld) sum += v;

  const Real weight = -1.0 / static_cast<Real>(n);
  grad_logdet_.resize({n});
  std::fill(grad_logdet_.begin(), grad_logdet_.end(), weight);
  base_->log_prob_backward(*input, context, grad_logdet_, grad_a_);
  for (std::size_t k = k_count; k-- > 0;) {
    chain_[k]->backward(grad_a_, grad_logdet_, grad_b_);
    std::swap(grad_a_, grad_b_);
  }
  return -sum / static_cast<Real>(n);
}

ParameterList Flow::parameters() {
  ParameterList params = base_->parameters();
  for (auto& bijector : chain_) append(params, bijector->parameters());
  return params;
}

void Flow::visit_state(StateVisitor& visitor) {
  ScopedStateVisitor base(visitor, "base/");
  base_->visit_state(base);
  for (std::size_t k = 0; k < chain_.size(); ++k) {
    ScopedStateVisitor scoped(visitor, "bijector" + std::to_string(k) + "/");
    chain_[k]->visit_state(scoped);
  }
}

}  // namespace flows
