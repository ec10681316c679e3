#include "flows/coupling.hpp"

#include <algorithm>
#include <numeric>

#include <fmt/format.h>

#include "flows/autoregressive.hpp"
#include "flows/chain.hpp"
#include "flows/checks.hpp"
#include "flows/error.hpp"
#include "flows/streams.hpp"

namespace flows {

namespace {

// Inference buffers, one set per thread (see autoregressive.cpp).
struct InferenceScratch {
  nn::MLP::Workspace mlp;
  Matrix input, theta;
};

InferenceScratch& scratch() {
  static thread_local InferenceScratch buffers;
  return buffers;
}

}  // namespace

CouplingLayer::CouplingLayer(std::string name, Index dim, std::vector<Index> conditioning,
                             std::vector<Index> transformed, Index context_dim,
                             const std::vector<Index>& hidden, nn::Activation activation,
                             std::shared_ptr<const Transformer> transformer, bool identity_init,
                             Rng& rng, Precision precision)
    : Bijector(std::move(name), dim, context_dim),
      cond_(std::move(conditioning)),
      trans_(std::move(transformed)),
      transformer_(std::move(transformer)) {
  if (trans_.empty())
    throw ConfigError(this->name() + ": a coupling layer must transform a column");
  const Index in = cond_.size() + context_dim;
  const Index out = transformer_->params_per_dim() * trans_.size();
  constant_ = Parameter("constant", xt::zeros<Real>({Index(1), out}));
  if (in > 0) net_ = std::make_unique<nn::MLP>(in, hidden, out, activation, rng, precision);
  if (identity_init) {
    Matrix& bias = net_ ? net_->bias(net_->num_layers() - 1).value : constant_.value;
    if (net_) net_->weight(net_->num_layers() - 1).value.fill(0);
    for (Index c = 0; c < out; ++c) bias(0, c) = transformer_->identity_value(c / trans_.size());
  }
}

ParameterList CouplingLayer::parameters() {
  if (net_) return net_->parameters();
  return {&constant_};
}

ColumnSet CouplingLayer::column_set() const {
  return ColumnSet{trans_.data(), trans_.size(), trans_.size(), 0};
}

void CouplingLayer::gather(const Matrix& x, const Matrix& context, Matrix& out) const {
  const Index rows = x.shape(0), d = x.shape(1), k = cond_.size(), c = context_dim();
  ensure(out, rows, k + c);
  for (Index r = 0; r < rows; ++r) {
    Real* row = out.data() + r * (k + c);
    for (Index j = 0; j < k; ++j) row[j] = x.data()[r * d + cond_[j]];
    for (Index j = 0; j < c; ++j) row[k + j] = context.data()[r * c + j];
  }
}

void CouplingLayer::parameters_of(const Matrix& input, Matrix& theta) const {
  if (net_) return net_->infer(input, theta, scratch().mlp);
  const Index rows = input.shape(0), out = constant_.value.shape(1);
  ensure(theta, rows, out);
  for (Index r = 0; r < rows; ++r)
    std::copy(constant_.value.begin(), constant_.value.end(), theta.data() + r * out);
}

Transformed CouplingLayer::forward_impl(const Matrix& x, const Matrix& context) const {
  Transformed out{x, xt::zeros<Real>({x.shape(0)})};
  InferenceScratch& s = scratch();
  gather(x, context, s.input);
  parameters_of(s.input, s.theta);
  transformer_->forward(x, out.value, out.logdet, column_set(), s.theta, nullptr);
  return out;
}

Transformed CouplingLayer::inverse_impl(const Matrix& z, const Matrix& context) const {
  Transformed out{z, xt::zeros<Real>({z.shape(0)})};
  InferenceScratch& s = scratch();
  gather(z, context, s.input);
  parameters_of(s.input, s.theta);
  transformer_->inverse(z, out.value, out.logdet, column_set(), s.theta);
  return out;
}

std::vector<Finding> CouplingLayer::diagnose(const Matrix& x, const Matrix&) const {
  const auto* bounded = dynamic_cast<const BoundedTransformer*>(transformer_.get());
  if (!bounded) return {};
  return tail_findings(x, trans_, bounded->tail_bound());
}

void CouplingLayer::forward_train_impl(const Matrix& x, const Matrix& context, Matrix& z,
                                       Vector& logdet) {
  const Index rows = x.shape(0);
  gather(x, context, input_);
  if (net_)
    net_->forward(input_, theta_);
  else
    parameters_of(input_, theta_);
  ensure(z, rows, dim());
  std::copy(x.begin(), x.end(), z.begin());
  ensure(logdet, rows);
  logdet.fill(0);
  cache_.resize(rows * trans_.size() * transformer_->cache_size());
  transformer_->forward(x, z, logdet, column_set(), theta_, cache_.data());
}

// The transformer maps dL/dz_B to dL/dx_B and dL/dθ; the network maps dL/dθ
// to dL/dx_A, added to the pass-through dL/dz_A, and to dL/dc.
void CouplingLayer::backward_impl(const Matrix& grad_z, const Vector& grad_logdet, Matrix& grad_x,
                                  Matrix* grad_context) {
  const Index rows = grad_z.shape(0), d = dim();
  ensure(grad_x, rows, d);
  std::copy(grad_z.begin(), grad_z.end(), grad_x.begin());
  ensure(grad_theta_, rows, theta_.shape(1));
  transformer_->backward(cache_.data(), grad_x, grad_logdet, column_set(), grad_x, grad_theta_);
  if (!net_) {
    for (Index r = 0; r < rows; ++r)
      for (Index c = 0; c < grad_theta_.shape(1); ++c) constant_.grad(0, c) += grad_theta_(r, c);
    return;
  }
  net_->backward(grad_theta_, grad_input_);
  const Index k = cond_.size(), c = context_dim(), width = k + c;
  for (Index r = 0; r < rows; ++r) {
    const Real* g = grad_input_.data() + r * width;
    for (Index j = 0; j < k; ++j) grad_x.data()[r * d + cond_[j]] += g[j];
    if (grad_context)
      for (Index j = 0; j < c; ++j) (*grad_context)(r, j) += g[k + j];
  }
}

void CouplingLayer::visit_state(StateVisitor& visitor) {
  visit_parameters(parameters(), visitor);
  visitor.structure("conditioning", index_row(cond_));
  visitor.structure("transformed", index_row(trans_));
}

CouplingOptions CouplingOptions::read(ConfigNode& node) {
  CouplingOptions o;
  node.read("layers", o.layers);
  node.read("hidden", o.hidden);
  node.read("activation", o.activation);
  node.read("identity_init", o.identity_init);
  if (node.has_list("mask")) {
    node.read("mask", o.explicit_mask);
    o.mask.clear();
    bool binary = !o.explicit_mask.empty(), some = false, all = true;
    for (Index m : o.explicit_mask) {
      binary = binary && m <= 1;
      some = some || m == 1;
      all = all && m == 1;
    }
    node.expect(binary && some && !all, "mask",
                "an explicit mask lists 0 or 1 per column, with at least one of each");
  } else {
    node.read("mask", o.mask);
    node.expect_one_of("mask", o.mask, {"halves", "alternate", "random"});
  }
  node.expect(o.layers >= 1 && o.layers <= 1000, "layers", "must be in [1, 1000]");
  bool positive = true;
  for (Index h : o.hidden) positive = positive && h > 0;
  node.expect(positive, "hidden", "every width must be positive");
  node.expect_one_of("activation", o.activation, nn::Activation::names());
  return o;
}

namespace {

// The transformed columns of layer pair p's first layer (the second swaps).
std::vector<bool> first_mask(const CouplingOptions& options, Index dim, Index pair,
                             const Rng& root) {
  std::vector<bool> transformed(dim, false);
  if (!options.explicit_mask.empty()) {
    for (Index j = 0; j < dim; ++j) transformed[j] = options.explicit_mask[j] == 1;
    return transformed;
  }
  if (options.mask == "alternate") {
    for (Index j = 0; j < dim; ++j) transformed[j] = j % 2 == 1;
    return transformed;
  }
  std::vector<Index> order(dim);
  std::iota(order.begin(), order.end(), Index(0));
  const bool shuffle = options.mask == "random" ? true : (pair >= 1 && dim >= 3);
  if (shuffle) {  // Fisher–Yates from the pair's stream
    Rng rng = root.derive(stream_tags::coupling_mask + pair);
    for (Index i = dim - 1; i > 0; --i) std::swap(order[i], order[rng.index(i + 1)]);
  }
  for (Index j = dim / 2; j < dim; ++j) transformed[order[j]] = true;
  return transformed;
}

}  // namespace

std::unique_ptr<Bijector> make_coupling_stack(const std::string& name,
                                              const CouplingOptions& options,
                                              std::shared_ptr<const Transformer> transformer,
                                              const BuildContext& context) {
  const Index dim = context.dim;
  if (!options.explicit_mask.empty() && options.explicit_mask.size() != dim)
    throw ConfigError(fmt::format("{}: the mask lists {} columns but the data has {}", name,
                                  options.explicit_mask.size(), dim));
  const Rng root(context.seed);
  const nn::Activation activation = nn::Activation::from_name(options.activation);
  std::vector<std::shared_ptr<Bijector>> layers;
  for (Index l = 0; l < options.layers; ++l) {
    std::vector<Index> cond, trans;
    if (dim == 1) {
      trans = {0};
    } else {
      const std::vector<bool> mask = first_mask(options, dim, l / 2, root);
      for (Index j = 0; j < dim; ++j) ((mask[j] != (l % 2 == 1)) ? trans : cond).push_back(j);
    }
    Rng rng = root.derive(stream_tags::coupling_layer + l);
    layers.push_back(std::make_shared<CouplingLayer>(
        name, dim, std::move(cond), std::move(trans), context.context_dim, options.hidden,
        activation, transformer, options.identity_init, rng, context.precision));
  }
  return std::make_unique<Chain>(name, dim, std::move(layers));
}

std::unique_ptr<Bijector> make_coupling(ConfigNode& node, const BuildContext& context) {
  const CouplingOptions options = CouplingOptions::read(node);
  std::shared_ptr<Transformer> transformer = make_transformer(node, context);
  node.finish();
  return make_coupling_stack("coupling", options, std::move(transformer), context);
}

}  // namespace flows
