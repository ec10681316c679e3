#include "flows/chain.hpp"

#include <algorithm>
#include <set>

#include <fmt/format.h>

#include "flows/checks.hpp"
#include "flows/error.hpp"

namespace flows {

namespace {

// Inference runs the whole chain on blocks of this many rows, so that every
// layer's intermediates (a hidden layer of 64 units is 0.5 MB per block) stay
// in cache whatever the batch size.
constexpr Index kInferenceBlock = 1024;
static_assert(kInferenceBlock % kInferenceRowGroup == 0,
              "blocks must start on row groups (bijector.hpp)");

}  // namespace

Index shared_context_dim(const std::vector<std::shared_ptr<Bijector>>& layers,
                         const std::string& who) {
  Index width = 0;
  for (std::size_t k = 0; k < layers.size(); ++k) {
    const Index c = layers[k]->context_dim();
    if (c == 0) continue;
    if (width != 0 && c != width)
      throw ConfigError(
          fmt::format("{}: layer {} ({}) reads a context of {} columns, an earlier "
                      "layer {}",
                      who, k, layers[k]->name(), c, width));
    width = c;
  }
  return width;
}

Chain::Chain(std::string name, Index dim, std::vector<std::shared_ptr<Bijector>> layers,
             std::string state_prefix, bool rename_parameters)
    : Bijector(name, dim, shared_context_dim(layers, name)),
      layers_(std::move(layers)),
      state_prefix_(std::move(state_prefix)) {
  refresh();
  renamed_ = rename_parameters;
  if (rename_parameters)
    for (std::size_t k = 0; k < layers_.size(); ++k)
      for (Parameter* p : layers_[k]->parameters()) p->name = std::to_string(k) + "." + p->name;
}

void Chain::refresh() {
  parameters_.clear();
  for (std::size_t k = 0; k < layers_.size(); ++k) {
    if (!layers_[k]) throw Error(fmt::format("{}: layer {} is missing", name(), k));
    if (layers_[k]->dim() != dim())
      throw ConfigError(fmt::format("{}: layer {} ({}) has dimension {}, the chain {}", name(), k,
                                    layers_[k]->name(), layers_[k]->dim(), dim()));
    append(parameters_, layers_[k]->parameters());
  }
}

void Chain::prepend(std::shared_ptr<Bijector> layer) {
  if (layer->context_dim() != 0 && context_dim() != 0 && layer->context_dim() != context_dim())
    throw ConfigError(fmt::format("{}: a prepended {} reads {} context columns, the chain {}",
                                  name(), layer->name(), layer->context_dim(), context_dim()));
  if (layer->context_dim() != 0 && context_dim() == 0)
    throw ConfigError(fmt::format("{}: a prepended conditional {} in an unconditional chain",
                                  name(), layer->name()));
  layers_.insert(layers_.begin(), std::move(layer));
  refresh();
}

bool Chain::rows_independent_in_training() const {
  return std::all_of(layers_.begin(), layers_.end(),
                     [](const auto& layer) { return layer->rows_independent_in_training(); });
}

bool Chain::rows_independent_in_inference() const {
  return std::all_of(layers_.begin(), layers_.end(),
                     [](const auto& layer) { return layer->rows_independent_in_inference(); });
}

void Chain::share_batch_statistics(Ranks* ranks) {
  for (const auto& layer : layers_) layer->share_batch_statistics(ranks);
}

Transformed Chain::run(const Matrix& input, const Matrix& context, bool inverse) const {
  const Index n = input.shape(0), d = dim();
  auto through = [&](Matrix value, const Matrix& c) {
    const Index rows = value.shape(0);
    Transformed out{std::move(value), xt::zeros<Real>({rows})};
    const Index count = layers_.size();
    for (Index step = 0; step < count; ++step) {
      const Bijector& layer = *layers_[inverse ? count - 1 - step : step];
      Transformed t = inverse ? layer.inverse(out.value, c) : layer.forward(out.value, c);
      out.value = std::move(t.value);
      out.logdet += t.logdet;
    }
    return out;
  };
  if (n <= kInferenceBlock) return through(input, context);
  Transformed out{Matrix({n, d}), xt::empty<Real>({n})};
  const bool conditional = context_dim() > 0;
  for (Index begin = 0; begin < n; begin += kInferenceBlock) {
    const Index end = std::min(n, begin + kInferenceBlock);
    Matrix block = xt::view(input, xt::range(begin, end), xt::all());
    Matrix c;
    if (conditional) c = xt::view(context, xt::range(begin, end), xt::all());
    Transformed part = through(std::move(block), c);
    std::copy(part.value.begin(), part.value.end(), out.value.data() + begin * d);
    std::copy(part.logdet.begin(), part.logdet.end(), out.logdet.data() + begin);
  }
  return out;
}

Transformed Chain::forward_impl(const Matrix& x, const Matrix& context) const {
  return run(x, context, false);
}

Transformed Chain::inverse_impl(const Matrix& z, const Matrix& context) const {
  return run(z, context, true);
}

void Chain::forward_train_impl(const Matrix& x, const Matrix& context, Matrix& z, Vector& logdet) {
  const Index count = layers_.size(), n = x.shape(0);
  ensure(logdet, n);
  logdet.fill(0);
  if (count == 0) {
    ensure(z, n, dim());
    std::copy(x.begin(), x.end(), z.begin());
    return;
  }
  outputs_.resize(count - 1);
  logdets_.resize(count);
  const Matrix* in = &x;
  for (Index k = 0; k < count; ++k) {
    Matrix& out = k + 1 == count ? z : outputs_[k];
    layers_[k]->forward_train(*in, context, out, logdets_[k]);
    in = &out;
    for (Index i = 0; i < n; ++i) logdet(i) += logdets_[k](i);
  }
}

// Every layer's logdet enters the total with weight 1, so each gets the same
// dL/dlogdet; dL/dz flows back through the layers in reverse, and each
// conditional layer adds its dL/dc.
void Chain::backward_impl(const Matrix& grad_z, const Vector& grad_logdet, Matrix& grad_x,
                          Matrix* grad_context) {
  const Index count = layers_.size();
  if (count == 0) {
    ensure(grad_x, grad_z.shape(0), dim());
    std::copy(grad_z.begin(), grad_z.end(), grad_x.begin());
    return;
  }
  const Matrix* upstream = &grad_z;
  for (Index k = count; k-- > 0;) {
    Matrix& out = k == 0 ? grad_x : (upstream == &grad_a_ ? grad_b_ : grad_a_);
    layers_[k]->backward(*upstream, grad_logdet, out, grad_context);
    upstream = &out;
  }
}

namespace {

// Layer k's state under "<prefix>": its parameters already carry their
// layer's prefix (renamed by the chain), so their names pass through and stay
// equal to Parameter::name; other tensors and structure get the prefix.
class LayerStateVisitor final : public StateVisitor {
 public:
  LayerStateVisitor(StateVisitor& inner, std::string prefix, const ParameterList& params)
      : inner_(inner), prefix_(std::move(prefix)) {
    for (const Parameter* p : params) renamed_.insert(p->name);
  }
  void tensor(const std::string& name, Matrix& value) override {
    inner_.tensor(renamed_.count(name) ? name : prefix_ + name, value);
  }
  void structure(const std::string& name, const Matrix& value) override {
    inner_.structure(prefix_ + name, value);
  }

 private:
  StateVisitor& inner_;
  std::string prefix_;
  std::set<std::string> renamed_;
};

}  // namespace

void Chain::visit_state(StateVisitor& visitor) {
  for (std::size_t k = 0; k < layers_.size(); ++k) {
    if (renamed_) {
      LayerStateVisitor layer(visitor, std::to_string(k) + ".", layers_[k]->parameters());
      layers_[k]->visit_state(layer);
    } else {
      ScopedStateVisitor scoped(visitor, state_prefix_ + std::to_string(k) + "/");
      layers_[k]->visit_state(scoped);
    }
  }
}

}  // namespace flows
