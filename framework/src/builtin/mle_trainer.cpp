#include "mle_trainer.hpp"

#include <fmt/format.h>

#include "flows/data_parallel.hpp"
#include "flows/error.hpp"
#include "flows/ranks.hpp"

namespace flows {

TrainReport MleTrainer::train(Flow& flow, const DataSplits& data, Rng& rng,
                              const TrainerCallbacks& callbacks) {
  for (const auto& bijector : flow.chain())
    if (!bijector->trains_by_likelihood())
      throw ConfigError(
          fmt::format("trainer mle cannot fit {}: it has no likelihood gradient; use "
                      "trainer: {{type: {}}}",
                      bijector->name(), bijector->trainer()));
  // Row blocks on several threads need replicas of the flow, built by the
  // pipeline's factory at the first step whose chain allows it (batch_norm
  // never does; actnorm after its first batch); until then, and without a
  // factory, one thread.
  const Index threads =
      callbacks.make_replica
          ? training_threads(std::min<Index>(options_.batch_size, data.train_rows()))
          : 1;
  std::vector<std::shared_ptr<Flow>> replicas;
  std::unique_ptr<DataParallel> parallel;
  std::unique_ptr<ThreadsLent> lent;  // the optimizer updates on parallel's threads too
  std::vector<Matrix> block_rows(threads), block_context(threads);
  Index threads_used = 1;

  const ParameterList params = flow.parameters();
  TrainingObjective objective;
  objective.sets_gradient = true;
  objective.loss_and_gradient = [&](const Matrix& batch, const Matrix& context) -> Real {
    if (threads <= 1 || !flow.rows_independent_in_training()) {
      zero_grad(params);
      return flow.nll_gradient(batch, context);
    }
    if (!parallel) {
      std::vector<ParameterList> lists;
      for (Index t = 1; t < threads; ++t) {
        replicas.push_back(callbacks.make_replica());
        lists.push_back(replicas.back()->parameters());
      }
      parallel = std::make_unique<DataParallel>(params, std::move(lists));
      lent = std::make_unique<ThreadsLent>(*optimizer_, &parallel->pool());
    }
    const Index n = batch.shape(0);
    threads_used = std::max(threads_used, parallel->blocks(n));
    return parallel->run(n, [&](Index b, Index begin, Index end) {
      Flow& model = b == 0 ? flow : *replicas[b - 1];
      return model.nll_gradient(copy_rows(batch, begin, end, block_rows[b]),
                                copy_rows(context, begin, end, block_context[b]), n);
    });
  };
  // On several ranks each scores its share of the validation rows.
  objective.validation_loss = [&flow, &data, &callbacks] {
    auto nll_sum = [&](Index begin, Index end) {
      const Matrix rows = xt::view(data.val, xt::range(begin, end), xt::all());
      const Matrix context =
          data.val_context.size() == 0
              ? Matrix()
              : Matrix(xt::view(data.val_context, xt::range(begin, end), xt::all()));
      return flow.mean_nll(rows, context) * static_cast<Real>(end - begin);
    };
    return mean_over_ranks(callbacks.ranks, data.val.shape(0), nll_sum, flow.row_granule());
  };
  objective.locate_nonfinite = [&flow](const Matrix& batch, const Matrix& context) {
    const Flow::NonFinite found = flow.find_nonfinite(batch, context);
    if (found.what.empty()) return std::string();
    return found.rows > 0
               ? fmt::format("{}, in {} of {} rows", found.what, found.rows, batch.shape(0))
               : fmt::format("{} (its parameter gradients)", found.what);
  };
  // Batch statistics (batch_norm, actnorm's initialisation) over every
  // rank's share of the batch while training, and the layers' own after.
  struct ShareBatchStatistics {
    Flow& flow;
    ~ShareBatchStatistics() { flow.share_batch_statistics(nullptr); }
  } sharing{flow};
  if (callbacks.ranks && callbacks.ranks->size() > 1) flow.share_batch_statistics(callbacks.ranks);
  TrainReport report;
  try {
    report = run_training_loop(options_, *optimizer_, params, data.train, data.train_context,
                               objective, data.val.shape(0) > 0, rng, callbacks, steps_done_,
                               HeldRows{data.train_begin, data.train_total});
  } catch (const NonFiniteTrainingError& e) {
    steps_done_ = e.steps_done();  // a checkpoint of the kept parameters resumes from here
    throw;
  }
  steps_done_ = report.steps;
  report.threads = threads_used;
  return report;
}

void MleTrainer::visit_state(Flow& flow, StateVisitor& visitor) {
  visit_training_state(steps_done_, *optimizer_, flow.parameters(), visitor);
}

std::unique_ptr<Trainer> make_mle_trainer(ConfigNode& node, const BuildContext& context) {
  TrainingOptions options;
  options.read_from(node);
  auto optimizer = make_optimizer(node, context);
  node.finish();
  return std::make_unique<MleTrainer>(options, std::move(optimizer));
}

}  // namespace flows
