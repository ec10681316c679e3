#include "mle_trainer.hpp"

namespace flows {

TrainReport MleTrainer::train(Flow& flow, const Matrix& train, const Matrix& val, Rng& rng,
                              const TrainerCallbacks& callbacks) {
  TrainingObjective objective;
  objective.loss_and_gradient = [&flow](const Matrix& batch) { return flow.nll_gradient(batch); };
  objective.validation_loss = [&flow, &val] { return flow.mean_nll(val); };
  TrainReport report = run_training_loop(options_, *optimizer_, flow.parameters(), train, objective,
                                         val.shape(0) > 0, rng, callbacks, steps_done_);
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
