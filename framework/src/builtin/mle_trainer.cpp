#include "mle_trainer.hpp"

#include <fmt/format.h>

#include "flows/error.hpp"

namespace flows {

TrainReport MleTrainer::train(Flow& flow, const DataSplits& data, Rng& rng,
                              const TrainerCallbacks& callbacks) {
  for (const auto& bijector : flow.chain())
    if (!bijector->trains_by_likelihood())
      throw ConfigError(
          fmt::format("trainer mle cannot fit {}: it has no likelihood gradient; use "
                      "trainer: {{type: {}}}",
                      bijector->name(), bijector->trainer()));
  TrainingObjective objective;
  objective.loss_and_gradient = [&flow](const Matrix& batch, const Matrix& context) {
    return flow.nll_gradient(batch, context);
  };
  objective.validation_loss = [&flow, &data] { return flow.mean_nll(data.val, data.val_context); };
  TrainReport report =
      run_training_loop(options_, *optimizer_, flow.parameters(), data.train, data.train_context,
                        objective, data.val.shape(0) > 0, rng, callbacks, steps_done_);
  steps_done_ = report.steps;
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
