#include "cfm_trainer.hpp"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include <flows/error.hpp>

#include "flow_matching_bijector.hpp"
#include "optimal_transport.hpp"
#include "probability_path.hpp"

namespace flows::flow_matching {

namespace {

// One regression step's buffers and draws.
class CfmObjective {
 public:
  CfmObjective(const CfmOptions& options, Flow& flow, Index position,
               FlowMatchingBijector& bijector)
      : options_(options),
        flow_(flow),
        position_(position),
        field_(bijector.field()),
        path_(options.path == "vp" ? ProbabilityPath::Kind::vp : ProbabilityPath::Kind::straight,
              options.sigma_min) {}

  // x0 ~ base pushed through the inverses of any bijectors after the flow
  // matching one, so it lives where the field's t = 0 end does.
  void draw_noise(Index n, Rng& rng, Matrix& x0) const {
    x0 = flow_.base().sample(n, Matrix(), rng);
    const auto& chain = flow_.chain();
    for (Index k = chain.size(); k-- > position_ + 1;) x0 = chain[k]->inverse(x0, Matrix()).value;
  }

  // Pairs x0 with x1 (re-ordering x1's rows) and draws x_t, u_t at random t.
  void prepare(const Matrix& x1, Rng& rng) {
    const Index n = x1.shape(0);
    draw_noise(n, rng, x0_);
    const Matrix* target = &x1;
    if (options_.coupling == "ot") {
      const Matrix cost = squared_distances(x0_, x1);
      const std::vector<Index> partner =
          options_.ot_solver == "sinkhorn"
              ? sinkhorn_pairing(cost, options_.sinkhorn_reg, options_.sinkhorn_iterations, rng)
              : linear_assignment(cost);
      paired_.resize(x1.shape());
      const Index d = x1.shape(1);
      for (Index i = 0; i < n; ++i)
        std::copy_n(x1.data() + partner[i] * d, d, paired_.data() + i * d);
      target = &paired_;
    }
    t_.resize({n});
    for (Real& t : t_) t = rng.uniform();
    path_.sample(x0_, *target, t_, xt_, ut_);
  }

  // mean((v − u)²) over all entries; dL/dv = 2 (v − u) / (n d).
  Real loss_and_gradient(const Matrix& x1, Rng& rng) {
    prepare(x1, rng);
    field_.forward(xt_, t_, v_);
    const Real count = static_cast<Real>(v_.size());
    grad_v_.resize(v_.shape());
    Real loss = 0;
    for (Index k = 0; k < v_.size(); ++k) {
      const Real r = v_.flat(k) - ut_.flat(k);
      loss += r * r;
      grad_v_.flat(k) = 2 * r / count;
    }
    field_.backward(grad_v_, grad_x_, true);
    return loss / count;
  }

  Real loss(const Matrix& x1, Rng& rng) {
    prepare(x1, rng);
    field_.features(xt_, t_, features_);
    field_.mlp().infer(features_, v_);
    Real loss = 0;
    for (Index k = 0; k < v_.size(); ++k) {
      const Real r = v_.flat(k) - ut_.flat(k);
      loss += r * r;
    }
    return loss / static_cast<Real>(v_.size());
  }

 private:
  const CfmOptions& options_;
  Flow& flow_;
  Index position_;
  VelocityField& field_;
  ProbabilityPath path_;
  Matrix x0_, paired_, xt_, ut_, v_, grad_v_, grad_x_, features_;
  Vector t_;
};

// The data as the flow-matching bijector sees it: pushed through the
// bijectors before it.
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
  node.expect_one_of("path", o.path, {"straight", "vp"});
  node.expect(o.sigma_min >= 0 && o.sigma_min < 1, "sigma_min", "must be in [0, 1)");
  node.expect_one_of("coupling", o.coupling, {"independent", "ot"});
  node.expect_one_of("ot_solver", o.ot_solver, {"exact", "sinkhorn"});
  node.expect(o.sinkhorn_reg > 0 && std::isfinite(o.sinkhorn_reg), "sinkhorn_reg", "must be > 0");
  node.expect(o.sinkhorn_iterations > 0, "sinkhorn_iterations", "must be > 0");
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
  for (Index k = 0; k < chain.size(); ++k)
    if (k != position && !chain[k]->parameters().empty())
      throw ConfigError(fmt::format(
          "trainer cfm: bijector {} of the chain has trainable parameters, but cfm trains only the "
          "velocity field of the flow_matching bijector",
          k));
  return {bijector, position};
}

void CfmTrainer::visit_state(Flow& flow, StateVisitor& visitor) {
  visit_training_state(steps_done_, *optimizer_, locate(flow).bijector->parameters(), visitor);
}

TrainReport CfmTrainer::train(Flow& flow, const Matrix& train, const Matrix& val, Rng& rng,
                              const TrainerCallbacks& callbacks) {
  const auto [bijector, position] = locate(flow);
  if (train.shape(1) != flow.dim())
    throw DataError(fmt::format("the model has {} dimensions but the data has {} columns",
                                flow.dim(), train.shape(1)));

  const Matrix train_in = push_forward(flow, position, train);
  const Matrix val_in = val.shape(0) > 0 ? push_forward(flow, position, val) : Matrix();
  CfmObjective objective(options_, flow, position, *bijector);
  // A resumed run continues with other draws than the first run's opening steps.
  Rng draw_rng = rng.derive(mix_seed(seed_, 11));
  if (steps_done_ > 0) draw_rng = draw_rng.derive(steps_done_);

  TrainingObjective loop;
  loop.loss_name = "cfm_mse";
  loop.loss_and_gradient = [&](const Matrix& batch) {
    return objective.loss_and_gradient(batch, draw_rng);
  };
  loop.validation_loss = [&] {
    // The same draws at every evaluation, so losses compare across steps.
    Rng val_rng(mix_seed(seed_, 12));
    const Index n = val_in.shape(0), batch = options_.training.batch_size;
    Real sum = 0;
    for (Index start = 0; start < n; start += batch) {
      const Index stop = std::min(n, start + batch);
      const Matrix rows = xt::view(val_in, xt::range(start, stop), xt::all());
      sum += objective.loss(rows, val_rng) * static_cast<Real>(stop - start);
    }
    return sum / static_cast<Real>(n);
  };
  TrainReport report =
      run_training_loop(options_.training, *optimizer_, bijector->parameters(), train_in, loop,
                        val_in.shape(0) > 0, rng, callbacks, steps_done_);
  steps_done_ = report.steps;
  return report;
}

std::unique_ptr<Trainer> make_cfm_trainer(ConfigNode& node, const BuildContext& context) {
  CfmOptions options = CfmOptions::from(node);
  auto optimizer = make_optimizer(node, context);
  node.finish();
  return std::make_unique<CfmTrainer>(std::move(options), std::move(optimizer), context.seed);
}

}  // namespace flows::flow_matching
