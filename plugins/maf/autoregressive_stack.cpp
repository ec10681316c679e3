#include "autoregressive_stack.hpp"

#include <cmath>
#include <utility>

#include <flows/nn/made_masks.hpp>
#include <flows/rng.hpp>

#include <flows/checks.hpp>
#include "batch_norm.hpp"
#include "masked_affine.hpp"

namespace flows::maf {

AutoregressiveStack::AutoregressiveStack(std::vector<std::unique_ptr<Bijector>> layers,
                                         std::string name)
    : layers_(std::move(layers)), name_(std::move(name)) {
  if (layers_.empty()) throw ConfigError(name_ + ": needs at least one layer");
  for (Index k = 0; k < layers_.size(); ++k)
    for (Parameter* p : layers_[k]->parameters()) {
      p->name = std::to_string(k) + "." + p->name;
      parameters_.push_back(p);
    }
}

Transformed AutoregressiveStack::forward(const Matrix& x, const Matrix& context) const {
  require_columns(x, dim(), name_.c_str(), "input");
  Transformed out = layers_.front()->forward(x, context);
  for (Index k = 1; k < layers_.size(); ++k) {
    Transformed t = layers_[k]->forward(out.value, context);
    out.value = std::move(t.value);
    out.logdet += t.logdet;
  }
  return out;
}

Transformed AutoregressiveStack::inverse(const Matrix& z, const Matrix& context) const {
  require_columns(z, dim(), name_.c_str(), "latent input");
  Transformed out = layers_.back()->inverse(z, context);
  for (Index k = layers_.size() - 1; k-- > 0;) {
    Transformed t = layers_[k]->inverse(out.value, context);
    out.value = std::move(t.value);
    out.logdet += t.logdet;
  }
  return out;
}

void AutoregressiveStack::forward_train(const Matrix& x, const Matrix& context, Matrix& z,
                                        Vector& logdet) {
  require_columns(x, dim(), name_.c_str(), "input");
  recorded_ = false;
  const Index count = layers_.size();
  const Index n = x.shape(0);
  outputs_.resize(count - 1);
  logdets_.resize(count);
  const Matrix* in = &x;
  for (Index k = 0; k < count; ++k) {
    Matrix& out = k + 1 == count ? z : outputs_[k];
    layers_[k]->forward_train(*in, context, out, logdets_[k]);
    in = &out;
  }
  ensure(logdet, n);
  std::copy(logdets_[0].begin(), logdets_[0].end(), logdet.begin());
  for (Index k = 1; k < count; ++k)
    for (Index i = 0; i < n; ++i) logdet(i) += logdets_[k](i);
  recorded_rows_ = n;
  recorded_ = true;
}

// Every layer's logdet enters the total with weight 1, so each gets the same
// dL/dlogdet; dL/dz flows back through the layers in reverse.
void AutoregressiveStack::backward(const Matrix& grad_z, const Vector& grad_logdet,
                                   Matrix& grad_x) {
  require_backward_shapes(grad_z, grad_logdet, recorded_rows_, dim(), recorded_, name_.c_str());
  const Index count = layers_.size();
  const Matrix* upstream = &grad_z;
  for (Index k = count; k-- > 0;) {
    Matrix& out = k == 0 ? grad_x : (upstream == &grad_a_ ? grad_b_ : grad_a_);
    layers_[k]->backward(*upstream, grad_logdet, out);
    upstream = &out;
  }
}

AutoregressiveOptions AutoregressiveOptions::from(ConfigNode& node) {
  AutoregressiveOptions o;
  node.read("layers", o.layers);
  nn::MadeOptions::read(node, o.made);
  node.read("order", o.order);
  node.read("permute", o.permute);
  node.read("batch_norm", o.batch_norm);
  node.read("batch_norm_momentum", o.batch_norm_momentum);
  node.read("batch_norm_epsilon", o.batch_norm_epsilon);
  node.read("log_scale_bound", o.log_scale_bound);
  node.read("identity_init", o.identity_init);
  Index seed = 0;
  node.read("seed", seed);  // read even when absent, so that "did you mean" knows the key
  if (node.has("seed")) o.seed = seed;
  node.expect(o.layers >= 1, "layers", "must be at least 1");
  node.expect_one_of("order", o.order, nn::order_names());
  node.expect_one_of("permute", o.permute, {"reverse", "random", "none"});
  node.expect(o.batch_norm_momentum > 0 && o.batch_norm_momentum <= 1, "batch_norm_momentum",
              "must be in (0, 1]");
  node.expect(o.batch_norm_epsilon > 0 && std::isfinite(o.batch_norm_epsilon), "batch_norm_epsilon",
              "must be > 0");
  node.expect(o.log_scale_bound > 0 && std::isfinite(o.log_scale_bound), "log_scale_bound",
              "must be > 0");
  node.finish();
  return o;
}

namespace {

std::unique_ptr<Bijector> make_stack(ConfigNode& node, const BuildContext& context, bool inverted) {
  const char* name = inverted ? "iaf" : "maf";
  AutoregressiveOptions options = AutoregressiveOptions::from(node);
  if (context.dim == 0) throw node.error("", "needs a data dimension of at least 1");
  const Index dim = context.dim;
  options.made.zero_output = options.identity_init;
  const Rng root(options.seed ? static_cast<std::uint64_t>(*options.seed) : context.seed);
  Rng order_rng = root.derive(1);
  Rng init_rng = root.derive(2);

  std::vector<std::unique_ptr<Bijector>> layers;
  std::vector<Index> order = nn::make_order(options.order, dim, order_rng);
  for (Index k = 0; k < options.layers; ++k) {
    if (k > 0) {
      if (options.permute == "reverse") {
        // Position p becomes D − 1 − p: the last input comes first.
        for (Index& p : order) p = dim - 1 - p;
      } else if (options.permute == "random") {
        order = nn::random_order(dim, order_rng);
      }
      if (options.batch_norm)
        layers.push_back(std::make_unique<BatchNorm>(dim, options.batch_norm_momentum,
                                                     options.batch_norm_epsilon));
    }
    layers.push_back(std::make_unique<MaskedAffine>(order, options.made, options.log_scale_bound,
                                                    inverted, init_rng));
  }
  return std::make_unique<AutoregressiveStack>(std::move(layers), name);
}

}  // namespace

std::unique_ptr<Bijector> make_maf(ConfigNode& node, const BuildContext& context) {
  return make_stack(node, context, false);
}

std::unique_ptr<Bijector> make_iaf(ConfigNode& node, const BuildContext& context) {
  return make_stack(node, context, true);
}

void AutoregressiveStack::visit_state(StateVisitor& visitor) {
  // Each layer visits its own state (batch norm checks its variances); the
  // names already carry the layer's position.
  for (std::size_t k = 0; k < layers_.size(); ++k) {
    layers_[k]->visit_state(visitor);
    if (const auto* layer = dynamic_cast<const MaskedAffine*>(layers_[k].get()))
      visitor.structure(std::to_string(k) + ".order", index_row(layer->made().order()));
  }
}

}  // namespace flows::maf
