#include "flows/data_parallel.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "flows/checks.hpp"
#include "flows/error.hpp"

namespace flows {

Index training_threads(Index batch_rows) {
  return std::max<Index>(1, std::min(thread_count(), batch_rows / kMinRowsPerTrainingBlock));
}

DataParallel::DataParallel(ParameterList master, std::vector<ParameterList> replicas)
    : master_(std::move(master)), replicas_(std::move(replicas)), pool_(replicas_.size() + 1) {
  for (std::size_t r = 0; r < replicas_.size(); ++r) {
    const ParameterList& list = replicas_[r];
    bool same = list.size() == master_.size();
    for (std::size_t k = 0; same && k < list.size(); ++k)
      same =
          list[k]->name == master_[k]->name && list[k]->value.shape() == master_[k]->value.shape();
    if (!same)
      throw Error(fmt::format(
          "training on several threads: replica {} does not have the model's parameters (built "
          "from another model?)",
          r + 1));
  }
}

Index DataParallel::blocks(Index rows) const {
  return std::max<Index>(1, std::min(threads(), rows / kMinRowsPerTrainingBlock));
}

Real DataParallel::run(Index rows,
                       FunctionRef<Real(Index block, Index begin, Index end)> gradient) {
  const Index blocks = this->blocks(rows);
  if (blocks == 1) {
    zero_grad(master_);
    return gradient(0, 0, rows);
  }
  Index values = 0;
  for (const Parameter* p : master_) values += p->size();

  losses_.assign(blocks, 0);
  const bool zero = !replica_grads_zero_;
  replica_grads_zero_ = false;
  pool_.run(blocks, [&](Index b) {
    if (b == 0) zero_grad(master_);
    if (b > 0) {
      // Every value, not only the trained ones: a memcpy per step, and
      // non-trainable state (running averages) can never go stale.
      const ParameterList& replica = replicas_[b - 1];
      for (std::size_t k = 0; k < master_.size(); ++k) {
        std::copy(master_[k]->value.begin(), master_[k]->value.end(), replica[k]->value.begin());
        if (zero) replica[k]->zero_grad();
      }
    }
    losses_[b] = gradient(b, rows * b / blocks, rows * (b + 1) / blocks);
  });
  // Each thread reduces a share of the values; every value gets its blocks
  // in the order 1, 2, …, whichever thread adds them. Each replica value is
  // zeroed as it is read: one pass over the replicas less per step.
  pool_.run(blocks, [&](Index t) {
    for_value_range(master_, values * t / blocks, values * (t + 1) / blocks,
                    [&](std::size_t k, Index first, Index last) {
                      Real* __restrict into = master_[k]->grad.data();
                      for (Index b = 1; b < blocks; ++b) {
                        Real* __restrict from = replicas_[b - 1][k]->grad.data();
                        for (Index i = first; i < last; ++i) {
                          into[i] += from[i];
                          from[i] = 0;
                        }
                      }
                    });
  });
  replica_grads_zero_ = true;
  Real loss = 0;
  for (Real share : losses_) loss += share;
  return loss;
}

const Matrix& copy_rows(const Matrix& m, Index begin, Index end, Matrix& out) {
  if (m.size() == 0) {
    if (out.size() != 0) out = Matrix();
    return out;
  }
  const Index cols = m.shape(1);
  ensure(out, end - begin, cols);
  std::copy(m.data() + begin * cols, m.data() + end * cols, out.data());
  return out;
}

}  // namespace flows
