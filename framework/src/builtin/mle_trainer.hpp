#pragma once
#include <memory>

#include "flows/registry.hpp"
#include "flows/training_loop.hpp"

namespace flows {

// Mini-batch maximum likelihood: minimizes the mean negative log-likelihood
// of the training data under the flow.
class MleTrainer : public Trainer {
 public:
  MleTrainer(TrainingOptions options, std::shared_ptr<Optimizer> optimizer)
      : options_(options), optimizer_(std::move(optimizer)) {}
  TrainReport train(Flow& flow, const DataSplits& data, Rng& rng,
                    const TrainerCallbacks& callbacks) override;
  void visit_state(Flow& flow, StateVisitor& visitor) override;

 private:
  TrainingOptions options_;
  std::shared_ptr<Optimizer> optimizer_;
  Index steps_done_ = 0;
};

std::unique_ptr<Trainer> make_mle_trainer(ConfigNode& node, const BuildContext& context);

}  // namespace flows
