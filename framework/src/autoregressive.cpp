#include "flows/autoregressive.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

#include <fmt/format.h>

#include "flows/affine_transformer.hpp"
#include "flows/batch_norm.hpp"
#include "flows/chain.hpp"
#include "flows/checks.hpp"
#include "flows/error.hpp"
#include "flows/nn/made_masks.hpp"
#include "flows/streams.hpp"

namespace flows {

namespace {

// Inference buffers, one set per thread: a chain calls every layer once per
// block of rows, and buffers allocated per call (a hidden layer of a block is
// 0.5 MB, above malloc's mmap threshold) would be mapped and faulted in anew
// every time. Flow runs blocks on several threads, hence thread_local.
struct InferenceScratch {
  nn::Made::Workspace made;
  nn::Made::Workspace one_row;  // kept apart: a 1-row pass would resize `made`
  Matrix theta, row;
};

InferenceScratch& scratch() {
  static thread_local InferenceScratch buffers;
  return buffers;
}

nn::MadeOptions with_outputs(nn::MadeOptions options, Index params_per_dim) {
  options.out_multiplier = params_per_dim;
  options.zero_output = false;
  return options;
}

}  // namespace

AutoregressiveLayer::AutoregressiveLayer(std::string name, const std::vector<Index>& order,
                                         const nn::MadeOptions& made,
                                         std::shared_ptr<const Transformer> transformer,
                                         bool inverted, bool identity_init, Rng& rng)
    : Bijector(std::move(name), order.size(), made.context_features),
      made_(order, with_outputs(made, transformer->params_per_dim()), rng),
      transformer_(std::move(transformer)),
      inverted_(inverted),
      columns_(order.size()),
      by_order_(order.size()) {
  std::iota(columns_.begin(), columns_.end(), Index(0));
  for (Index i = 0; i < order.size(); ++i) by_order_[order[i]] = i;
  if (identity_init) {
    const Index d = dim();
    made_.output_weight().value.fill(0);
    // Output c is parameter c / d of its dimension, in the saved order.
    Parameter& bias = made_.output_bias();
    Matrix values = in_saved_order(bias, bias.value);
    for (Index c = 0; c < made_.out_features(); ++c)
      values(0, c) = transformer_->identity_value(c / d);
    from_saved_order(bias, values, bias.value);
  }
}

Transformed AutoregressiveLayer::evaluate(const Matrix& u, const Matrix& context) const {
  const Index n = u.shape(0), d = dim();
  Transformed out{u, xt::zeros<Real>({n})};
  InferenceScratch& s = scratch();
  made_.infer(u, context, s.theta, s.made);
  transformer_->forward(u, out.value, out.logdet, ColumnSet{columns_.data(), d, d, 0}, s.theta,
                        nullptr);
  return out;
}

// Pass t makes the input at position t of the ordering exact: its parameters
// depend only on positions < t, fixed by earlier passes. Without a context the
// parameters of position 0 depend on nothing, so pass 0 is one MADE row.
Transformed AutoregressiveLayer::solve(const Matrix& v, const Matrix& context) const {
  const Index n = v.shape(0), d = dim();
  Transformed out{v, xt::zeros<Real>({n})};
  if (n == 0) return out;
  InferenceScratch& s = scratch();
  nn::Made::Workspace& workspace = s.made;
  Matrix& theta = s.theta;
  Matrix& row = s.row;
  for (Index t = 0; t < d; ++t) {
    const Index i = by_order_[t];
    if (t == 0 && made_.context_features() == 0) {
      made_.infer(xt::zeros<Real>({Index(1), d}), context, row, s.one_row);
      ensure(theta, n, row.shape(1));
      for (Index r = 0; r < n; ++r)
        std::copy(row.begin(), row.end(), theta.data() + r * row.shape(1));
    } else {
      made_.infer(out.value, context, theta, workspace);
    }
    transformer_->inverse(v, out.value, out.logdet, ColumnSet{&columns_[i], 1, d, i}, theta);
  }
  return out;
}

Transformed AutoregressiveLayer::forward_impl(const Matrix& x, const Matrix& context) const {
  return inverted_ ? solve(x, context) : evaluate(x, context);
}

Transformed AutoregressiveLayer::inverse_impl(const Matrix& z, const Matrix& context) const {
  return inverted_ ? evaluate(z, context) : solve(z, context);
}

std::vector<Finding> AutoregressiveLayer::diagnose(const Matrix& x, const Matrix& context) const {
  const auto* bounded = dynamic_cast<const BoundedTransformer*>(transformer_.get());
  if (!bounded) return {};
  // τ acts on u: u = x for f (MAF), u = f⁻¹(x) = forward(x) when inverted.
  const Matrix u = inverted_ ? forward(x, context).value : x;
  return tail_findings(u, columns_, bounded->tail_bound());
}

void AutoregressiveLayer::forward_train_impl(const Matrix& x, const Matrix& context, Matrix& z,
                                             Vector& logdet) {
  const Index n = x.shape(0), d = dim();
  const ColumnSet all{columns_.data(), d, d, 0};
  cache_.resize(n * d * transformer_->cache_size());
  if (!inverted_) {
    made_.forward(x, context, theta_);
    ensure(z, n, d);
    std::copy(x.begin(), x.end(), z.begin());
    ensure(logdet, n);
    logdet.fill(0);
    transformer_->forward(x, z, logdet, all, theta_, cache_.data());
    return;
  }
  // z = f⁻¹(x) by D passes, then one recorded pass of f at z for backward.
  Transformed solved = solve(x, context);
  z = std::move(solved.value);
  logdet = std::move(solved.logdet);
  made_.forward(z, context, theta_);
  ensure(f_, n, d);
  std::copy(z.begin(), z.end(), f_.begin());
  ensure(zero_logdet_, n);
  zero_logdet_.fill(0);
  transformer_->forward(z, f_, zero_logdet_, all, theta_, cache_.data());
  zero_logdet_.fill(0);
}

// Not inverted, z = f(x): the transformer gives dL/dx along its own path and
// dL/dθ; the MADE adds dL/dθ · ∂θ/∂x (and ∂θ/∂c).
//
// Inverted, z = f⁻¹(x) with logdet = −ℓ(z), ℓ = Σ log τ'. With g = dL/dz and
// s = dL/dlogdet, the total derivative of L at fixed x along z is
// G = g − s dℓ/dz, and by the implicit function theorem on f(z, c) = x, with
// J = ∂f/∂z = diag(τ') + N (N strictly triangular in the ordering):
//   dL/dx = v where Jᵀ v = G,
//   dL/d(θ, c) = −vᵀ ∂f/∂(θ, c) − s ∂ℓ/∂(θ, c)   (at fixed z).
// Nᵀ v is the MADE's input gradient for dL/dθ = v ∂τ/∂θ, so back-substitution
// v ← (G − Nᵀ v) / τ' is exact after D sweeps (N is nilpotent).
void AutoregressiveLayer::backward_impl(const Matrix& grad_z, const Vector& grad_logdet,
                                        Matrix& grad_x, Matrix* grad_context) {
  const Index n = grad_z.shape(0), d = dim();
  const ColumnSet all{columns_.data(), d, d, 0};
  ensure(grad_theta_, n, theta_.shape(1));
  ensure(grad_x, n, d);
  if (!inverted_) {
    transformer_->backward(cache_.data(), grad_z, grad_logdet, all, grad_x, grad_theta_);
    made_.backward(grad_theta_, grad_made_, grad_context, true);
    xt::noalias(grad_x) += grad_made_;
    return;
  }
  ensure(minus_s_, n);
  for (Index i = 0; i < n; ++i) minus_s_(i) = -grad_logdet(i);
  ensure(zero_logdet_, n);
  zero_logdet_.fill(0);
  // G = g − s dℓ/dz: the transformer's own path, then through θ.
  ensure(scratch_, n, d);
  scratch_.fill(0);
  ensure(rhs_, n, d);
  transformer_->backward(cache_.data(), scratch_, minus_s_, all, rhs_, grad_theta_);
  made_.backward(grad_theta_, grad_made_, nullptr, false);
  xt::noalias(rhs_) += grad_z + grad_made_;
  // τ' per element: the transformer's dL/dx for dL/dy = 1.
  ensure(ones_, n, d);
  ones_.fill(1);
  ensure(slope_, n, d);
  transformer_->backward(cache_.data(), ones_, zero_logdet_, all, slope_, grad_theta_);
  ensure(v_, n, d);
  xt::noalias(v_) = rhs_ / slope_;
  for (Index sweep = 1; sweep < d; ++sweep) {
    transformer_->backward(cache_.data(), v_, zero_logdet_, all, scratch_, grad_theta_);
    made_.backward(grad_theta_, grad_made_, nullptr, false);
    xt::noalias(v_) = (rhs_ - grad_made_) / slope_;
  }
  xt::noalias(scratch_) = -v_;
  transformer_->backward(cache_.data(), scratch_, minus_s_, all, grad_made_, grad_theta_);
  made_.backward(grad_theta_, grad_made_, grad_context, true);
  std::copy(v_.begin(), v_.end(), grad_x.begin());
}

void AutoregressiveLayer::visit_state(StateVisitor& visitor) {
  visit_parameters(parameters(), visitor);
  visitor.structure("order", index_row(made_.order()));
}

AutoregressiveOptions AutoregressiveOptions::read(ConfigNode& node, bool identity_init_default) {
  AutoregressiveOptions o;
  o.identity_init = identity_init_default;
  node.read("layers", o.layers);
  nn::MadeOptions::read(node, o.made);
  if (node.has_list("order")) {
    node.read("order", o.explicit_order);
    o.order.clear();
    try {
      nn::check_order(o.explicit_order);
    } catch (const ConfigError& e) {
      throw node.error("order", e.what());
    }
  } else {
    node.read("order", o.order);
    node.expect_one_of("order", o.order, nn::order_names());
  }
  node.read("permute", o.permute);
  node.read("batch_norm", o.batch_norm);
  node.read("batch_norm_momentum", o.batch_norm_momentum);
  node.read("batch_norm_epsilon", o.batch_norm_epsilon);
  node.read("identity_init", o.identity_init);
  Index seed = 0;
  node.read("seed", seed);  // read even when absent, so that "did you mean" knows the key
  if (node.has("seed")) o.seed = seed;
  node.expect(o.layers >= 1 && o.layers <= 1000, "layers", "must be in [1, 1000]");
  node.expect_one_of("permute", o.permute, {"reverse", "random", "none"});
  node.expect(o.batch_norm_momentum > 0 && o.batch_norm_momentum <= 1, "batch_norm_momentum",
              "must be in (0, 1]");
  node.expect(o.batch_norm_epsilon > 0 && std::isfinite(o.batch_norm_epsilon), "batch_norm_epsilon",
              "must be > 0");
  return o;
}

std::unique_ptr<Bijector> make_autoregressive_stack(const std::string& name,
                                                    const AutoregressiveOptions& options,
                                                    std::shared_ptr<const Transformer> transformer,
                                                    bool inverted, const BuildContext& context) {
  const Index dim = context.dim;
  if (!options.explicit_order.empty() && options.explicit_order.size() != dim)
    throw ConfigError(fmt::format("{}: the order lists {} positions but the data has {} columns",
                                  name, options.explicit_order.size(), dim));
  const Rng root(options.seed ? static_cast<std::uint64_t>(*options.seed) : context.seed);
  Rng order_rng = root.derive(stream_tags::made_order);
  Rng init_rng = root.derive(stream_tags::made_weights);
  nn::MadeOptions made = options.made;
  made.context_features = context.context_dim;
  made.precision = context.precision;

  std::vector<std::shared_ptr<Bijector>> layers;
  std::vector<Index> order = options.explicit_order.empty()
                                 ? nn::make_order(options.order, dim, order_rng)
                                 : options.explicit_order;
  for (Index k = 0; k < options.layers; ++k) {
    if (k > 0) {
      if (options.permute == "reverse") {
        // Position p becomes D − 1 − p: the last input comes first.
        for (Index& p : order) p = dim - 1 - p;
      } else if (options.permute == "random") {
        order = nn::random_order(dim, order_rng);
      }
      if (options.batch_norm)
        layers.push_back(std::make_shared<BatchNorm>(dim, options.batch_norm_momentum,
                                                     options.batch_norm_epsilon));
    }
    layers.push_back(std::make_shared<AutoregressiveLayer>(name, order, made, transformer, inverted,
                                                           options.identity_init, init_rng));
  }
  return std::make_unique<Chain>(name, dim, std::move(layers));
}

std::shared_ptr<Transformer> make_transformer(ConfigNode& node, const BuildContext& context) {
  ConfigNode section = node.child("transformer", /*optional=*/true);
  if (!section.has("type")) section.set("type", "affine");
  return context.registry->make<Transformer>(section, context);
}

std::unique_ptr<Bijector> make_autoregressive(ConfigNode& node, const BuildContext& context) {
  const AutoregressiveOptions options = AutoregressiveOptions::read(node);
  bool inverted = false;
  node.read("inverted", inverted);
  std::shared_ptr<Transformer> transformer = make_transformer(node, context);
  node.finish();
  return make_autoregressive_stack("autoregressive", options, std::move(transformer), inverted,
                                   context);
}

}  // namespace flows
