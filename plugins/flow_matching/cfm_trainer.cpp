#include "cfm_trainer.hpp"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include <flows/checks.hpp>
#include <flows/context_encoder.hpp>
#include <flows/data_parallel.hpp>
#include <flows/error.hpp>
#include <flows/ranks.hpp>
#include <flows/streams.hpp>

#include "cfm_objective.hpp"
#include "flow_matching_bijector.hpp"

namespace flows::flow_matching {

namespace {

// The data as the flow-matching bijector sees it: pushed through the
// bijectors before it (unconditional ones; see locate).
Matrix push_forward(const Flow& flow, Index position, const Matrix& data) {
  Matrix current = data;
  for (Index k = 0; k < position; ++k) current = flow.chain()[k]->forward(current, Matrix()).value;
  return current;
}

}  // namespace

CfmOptions CfmOptions::from(ConfigNode& node) {
  CfmOptions o;
  o.training.read_from(node);
  node.read("path", o.path);
  node.read("sigma_min", o.sigma_min);
  node.read("coupling", o.coupling);
  node.read("ot_solver", o.ot_solver);
  node.read("sinkhorn_reg", o.sinkhorn_reg);
  node.read("sinkhorn_iterations", o.sinkhorn_iterations);
  node.read("context_dropout", o.context_dropout);
  node.expect_one_of("path", o.path, {"straight", "vp"});
  node.expect(o.sigma_min >= 0 && o.sigma_min < 1, "sigma_min", "must be in [0, 1)");
  node.expect_one_of("coupling", o.coupling, {"independent", "ot"});
  node.expect_one_of("ot_solver", o.ot_solver, {"exact", "sinkhorn"});
  node.expect(o.sinkhorn_reg > 0 && std::isfinite(o.sinkhorn_reg), "sinkhorn_reg", "must be > 0");
  node.expect(o.sinkhorn_iterations > 0, "sinkhorn_iterations", "must be > 0");
  node.expect(o.context_dropout >= 0 && o.context_dropout < 1, "context_dropout",
              "must be a probability in [0, 1)");
  return o;
}

CfmTrainer::Located CfmTrainer::locate(Flow& flow) {
  const auto& chain = flow.chain();
  FlowMatchingBijector* bijector = nullptr;
  Index position = 0;
  for (Index k = 0; k < chain.size(); ++k) {
    if (auto* fm = dynamic_cast<FlowMatchingBijector*>(chain[k].get())) {
      if (bijector)
        throw ConfigError("trainer cfm: the model has more than one flow_matching bijector");
      bijector = fm;
      position = k;
    }
  }
  if (!bijector)
    throw ConfigError(
        "trainer cfm: the model has no flow_matching bijector (use trainer: {type: mle} for other "
        "flows)");
  for (Index k = 0; k < chain.size(); ++k) {
    if (k == position) continue;
    if (!chain[k]->parameters().empty())
      throw ConfigError(fmt::format(
          "trainer cfm: bijector {} of the chain ({}) has trainable parameters, but cfm trains "
          "only the velocity field of the flow_matching bijector",
          k, chain[k]->name()));
    if (chain[k]->context_dim() > 0)
      throw ConfigError(fmt::format(
          "trainer cfm: bijector {} of the chain ({}) reads the context; beside flow_matching, "
          "cfm supports only unconditional bijectors without parameters",
          k, chain[k]->name()));
  }
  if (flow.base().context_dim() > 0 || !flow.base().parameters().empty())
    throw ConfigError(
        "trainer cfm: the base distribution reads the context or has parameters; cfm draws its "
        "noise from a fixed base (use base: {type: standard_normal})");
  return {bijector, position};
}

ParameterList CfmTrainer::trained_parameters(Flow& flow, FlowMatchingBijector& bijector) {
  ParameterList params;
  if (ContextEncoder* encoder = flow.context_encoder()) params = encoder->parameters();
  for (Parameter* p : bijector.parameters()) params.push_back(p);
  return params;
}

void CfmTrainer::visit_state(Flow& flow, StateVisitor& visitor) {
  visit_training_state(steps_done_, *optimizer_, trained_parameters(flow, *locate(flow).bijector),
                       visitor);
}

TrainReport CfmTrainer::train(Flow& flow, const DataSplits& data, Rng& rng,
                              const TrainerCallbacks& callbacks) {
  const Located located = locate(flow);
  FlowMatchingBijector* bijector = located.bijector;
  const Index position = located.position;
  if (data.train.shape(1) != flow.dim())
    throw DataError(fmt::format("the model has {} dimensions but the data has {} columns",
                                flow.dim(), data.train.shape(1)));
  flow.check_context(data.train_context, data.train.shape(0));
  if (data.val.shape(0) > 0) flow.check_context(data.val_context, data.val.shape(0));
  ContextEncoder* encoder = flow.context_encoder();
  if (options_.context_dropout > 0 && !encoder)
    throw ConfigError(
        "trainer cfm: context_dropout needs a conditional model (context columns in the data)");

  if (bijector->options().guidance != 0 && options_.context_dropout == 0)
    throw ConfigError(fmt::format(
        "trainer cfm: the flow_matching bijector samples with guidance: {}, which needs a field "
        "trained on the null context: set context_dropout > 0 (e.g. 0.1) in the trainer",
        bijector->options().guidance));

  const Matrix train_in = push_forward(flow, position, data.train);
  const Matrix val_in = data.val.shape(0) > 0 ? push_forward(flow, position, data.val) : Matrix();
  // x0 ~ base pushed through the inverses of any bijectors after the flow
  // matching one, so it lives where the field's t = 0 end does.
  CfmObjective objective(options_, bijector->field(),
                         [&flow, position](Index n, Rng& draws, Matrix& x0) {
                           flow.base().sample_into(n, Matrix(), draws, x0);
                           const auto& chain = flow.chain();
                           for (Index k = chain.size(); k-- > position + 1;)
                             x0 = chain[k]->inverse(x0, Matrix()).value;
                         });
  // A resumed run continues with other draws than the first run's opening steps.
  Rng draw_rng = rng.derive(substream(seed_, Substream::cfm_draws));
  if (steps_done_ > 0) draw_rng = draw_rng.derive(steps_done_);
  // On several ranks each draws the noise and times of its own share of the
  // rows (one stream would give every share the same draws). Coupling and
  // minibatch OT then act within each rank's share, as torchcfm's act
  // within each device's.
  if (callbacks.ranks && callbacks.ranks->size() > 1)
    draw_rng =
        draw_rng.derive(stream_tags::rank + static_cast<std::uint64_t>(callbacks.ranks->rank()));
  // The field is fit to ∅ exactly when rows are dropped; guidance checks this.
  bijector->set_context_dropout(encoder ? options_.context_dropout : 0);

  // Row blocks on several threads: one flow replica per extra thread, whose
  // field computes its block (the context encoder runs on the whole batch
  // here, so only the field's parameters are reduced).
  const Index threads =
      callbacks.make_replica
          ? training_threads(std::min<Index>(options_.training.batch_size, data.train_rows()))
          : 1;
  std::vector<std::shared_ptr<Flow>> replicas;
  std::unique_ptr<DataParallel> parallel;
  std::unique_ptr<ThreadsLent> lent;  // the optimizer updates on parallel's threads too
  if (threads > 1) {
    std::vector<VelocityField*> fields;
    std::vector<ParameterList> lists;
    for (Index t = 1; t < threads; ++t) {
      replicas.push_back(callbacks.make_replica());
      FlowMatchingBijector* copy = locate(*replicas.back()).bijector;
      fields.push_back(&copy->field());
      lists.push_back(copy->parameters());
    }
    parallel = std::make_unique<DataParallel>(bijector->parameters(), std::move(lists));
    lent = std::make_unique<ThreadsLent>(*optimizer_, &parallel->pool());
    objective.set_parallel(parallel.get(), std::move(fields));
  }

  const bool embedded = encoder && encoder->has_embedding();
  Matrix grad_encoded;
  TrainingObjective loop;
  loop.loss_name = "cfm_mse";
  loop.loss_and_gradient = [&](const Matrix& batch, const Matrix& context) {
    if (!encoder) return objective.loss_and_gradient(batch, Matrix(), draw_rng, nullptr);
    const Matrix& encoded = encoder->encode_train(context);
    if (!embedded) return objective.loss_and_gradient(batch, encoded, draw_rng, nullptr);
    grad_encoded = xt::zeros<Real>({encoded.shape(0), encoded.shape(1)});
    const Real loss = objective.loss_and_gradient(batch, encoded, draw_rng, &grad_encoded);
    encoder->backward(grad_encoded);
    return loss;
  };
  loop.validation_loss = [&] {
    // The same draws at every evaluation, so losses compare across steps;
    // the context is encoded afresh, as the embedding trains. Batch k draws
    // from its own stream, so that the ranks of a job can share the batches
    // out (the coupling pairs rows within a batch) and keep these numbers.
    const Rng val_streams(substream(seed_, Substream::cfm_validation));
    const Matrix val_context = encoder ? encoder->encode(data.val_context) : Matrix();
    const Index batch = options_.training.batch_size;
    auto sum_of_batches = [&](Index begin, Index end) {
      Real sum = 0;
      for (Index start = begin; start < end; start += batch) {
        const Index stop = std::min(end, start + batch);
        Rng val_rng = val_streams.derive(static_cast<std::uint64_t>(start / batch));
        const Matrix rows = xt::view(val_in, xt::range(start, stop), xt::all());
        const Matrix context =
            encoder ? Matrix(xt::view(val_context, xt::range(start, stop), xt::all())) : Matrix();
        sum += objective.loss(rows, context, val_rng) * static_cast<Real>(stop - start);
      }
      return sum;
    };
    return mean_over_ranks(callbacks.ranks, val_in.shape(0), sum_of_batches, batch);
  };
  loop.locate_nonfinite = [&](const Matrix& batch, const Matrix&) {
    const CfmObjective::NonFiniteRows found = objective.nonfinite_rows();
    const std::string where =
        fmt::format("bijectors[{}] (flow_matching)", position - flow.data_layers());
    if (found.pass.empty()) return where + " (its parameter gradients)";
    return fmt::format("{}, {} of its velocity field, in {} of {} rows", where, found.pass,
                       found.rows, batch.shape(0));
  };
  TrainReport report;
  try {
    report =
        run_training_loop(options_.training, *optimizer_, trained_parameters(flow, *bijector),
                          train_in, data.train_context, loop, val_in.shape(0) > 0, rng, callbacks,
                          steps_done_, HeldRows{data.train_begin, data.train_total});
  } catch (const NonFiniteTrainingError& e) {
    steps_done_ = e.steps_done();  // a checkpoint of the kept parameters resumes from here
    throw;
  }
  steps_done_ = report.steps;
  report.threads =
      parallel ? parallel->blocks(std::min<Index>(options_.training.batch_size, data.train_rows()))
               : 1;
  return report;
}

std::unique_ptr<Trainer> make_cfm_trainer(ConfigNode& node, const BuildContext& context) {
  CfmOptions options = CfmOptions::from(node);
  auto optimizer = make_optimizer(node, context);
  node.finish();
  return std::make_unique<CfmTrainer>(std::move(options), std::move(optimizer), context.seed);
}

}  // namespace flows::flow_matching
