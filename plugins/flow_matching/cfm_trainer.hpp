#pragma once
#include <memory>
#include <string>

#include <flows/config.hpp>
#include <flows/registry.hpp>
#include <flows/training_loop.hpp>

namespace flows::flow_matching {

class FlowMatchingBijector;

struct CfmOptions {
  TrainingOptions training;              // steps, batch_size, eval_every, patience, … (as mle)
  std::string path = "straight";         // straight | vp (see ProbabilityPath)
  Real sigma_min = 0.0;                  // σ_min of the straight path, in [0, 1)
  std::string coupling = "independent";  // independent | ot (minibatch optimal transport)
  std::string ot_solver = "exact";       // ot coupling: exact (assignment) | sinkhorn
  Real sinkhorn_reg = 0.05;              // entropic regularization, relative to the largest cost
  Index sinkhorn_iterations = 1000;      // at most this many Sinkhorn scalings (stops at 0.1%)
  Real context_dropout = 0.0;  // conditional models: probability, in [0, 1), that a training
                               // row gets the null context ∅ (classifier-free guidance needs > 0)

  static CfmOptions from(ConfigNode& node);
};

// Conditional flow matching (Lipman et al. 2023; Tong et al. 2024, "Improving
// and generalizing flow-based generative models with minibatch optimal
// transport"): per step, x0 from the flow's base distribution, x1 a batch of
// data, t ~ U(0, 1), optionally re-paired by minibatch optimal transport, and
// the loss mean((v(x_t, t, c) − u_t)²) over rows and dimensions (torchcfm's).
// Trains the velocity field of the chain's flow_matching bijector; bijectors
// before it (the data standardization) are applied to the data first, so the
// field sees what it sees at sampling time. Validation loss: the same
// regression loss on the validation data, with draws fixed across evaluations.
//
// Conditional flows p(x | c): each data row x1 keeps its own context row c
// (the OT pairing re-orders the noise against the data, and the context goes
// with the data). The field sees the context encoded by the flow's
// ContextEncoder; an embedding network in the encoder is trained with the
// field, dL/de going back through ContextEncoder::backward. With
// context_dropout p, each training row independently gets the null context ∅
// with probability p (Ho & Salimans 2022, "Classifier-Free Diffusion
// Guidance", alg. 1), which the flow_matching bijector's `guidance: w` needs.
class CfmTrainer : public Trainer {
 public:
  CfmTrainer(CfmOptions options, std::shared_ptr<Optimizer> optimizer, std::uint64_t seed)
      : options_(std::move(options)), optimizer_(std::move(optimizer)), seed_(seed) {}
  TrainReport train(Flow& flow, const DataSplits& data, Rng& rng,
                    const TrainerCallbacks& callbacks) override;
  void visit_state(Flow& flow, StateVisitor& visitor) override;

 private:
  // The chain's one flow_matching bijector and its position; ConfigError
  // when there is none, several, another bijector has parameters or reads the
  // context, or the base distribution reads the context or has parameters.
  struct Located {
    FlowMatchingBijector* bijector;
    Index position;
  };
  static Located locate(Flow& flow);
  // What the optimizer updates: the context embedding's parameters (if any),
  // then the velocity field's.
  static ParameterList trained_parameters(Flow& flow, FlowMatchingBijector& bijector);

  CfmOptions options_;
  std::shared_ptr<Optimizer> optimizer_;
  std::uint64_t seed_;
  Index steps_done_ = 0;
};

std::unique_ptr<Trainer> make_cfm_trainer(ConfigNode& node, const BuildContext& context);

}  // namespace flows::flow_matching
