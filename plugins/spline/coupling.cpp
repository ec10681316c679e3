#include "coupling.hpp"

#include <algorithm>
#include <numeric>

#include <flows/error.hpp>
#include <flows/rng.hpp>

#include "affine_transform.hpp"
#include "rational_quadratic_spline.hpp"

namespace flows::spline {

namespace {

// Copies the columns `cols` of x into out (rows x cols.size()).
void gather(const Matrix& x, const std::vector<Index>& cols, Matrix& out) {
  const Index rows = x.shape(0), d = x.shape(1), k = cols.size();
  if (out.shape(0) != rows || out.shape(1) != k) out.resize({rows, k});
  for (Index r = 0; r < rows; ++r)
    for (Index j = 0; j < k; ++j) out.data()[r * k + j] = x.data()[r * d + cols[j]];
}

}  // namespace

void for_each_block(Transformed& t, const std::function<void(Matrix&, Vector&)>& f) {
  const Index rows = t.value.shape(0), cols = t.value.shape(1);
  if (rows <= kInferenceBlock) return f(t.value, t.logdet);
  Matrix block;
  Vector logdet;
  for (Index r0 = 0; r0 < rows; r0 += kInferenceBlock) {
    const Index m = std::min(kInferenceBlock, rows - r0);
    block.resize({m, cols});
    logdet.resize({m});
    std::copy(t.value.data() + r0 * cols, t.value.data() + (r0 + m) * cols, block.data());
    std::copy(t.logdet.data() + r0, t.logdet.data() + r0 + m, logdet.data());
    f(block, logdet);
    std::copy(block.data(), block.data() + m * cols, t.value.data() + r0 * cols);
    std::copy(logdet.data(), logdet.data() + m, t.logdet.data() + r0);
  }
}

Coupling::Coupling(Index dim, const CouplingNetworkOptions& options,
                   std::shared_ptr<const ElementwiseTransform> transform, std::uint64_t seed,
                   std::string name)
    : dim_(dim), transform_(std::move(transform)), name_(std::move(name)) {
  if (dim == 0) throw ConfigError(name_ + ": needs a data dimension of at least 1");
  const Rng root(seed);
  const nn::Activation activation = nn::Activation::from_name(options.activation);
  const Index P = transform_->params_per_dim();
  std::vector<Index> order(dim);
  layers_.resize(options.layers);
  for (Index l = 0; l < options.layers; ++l) {
    Layer& layer = layers_[l];
    if (dim == 1) {
      layer.trans = {0};
    } else {
      std::iota(order.begin(), order.end(), Index(0));
      if (l >= 2 && dim >= 3) {  // Fisher–Yates from the layer pair's stream
        Rng shuffle = root.derive(1000 + l / 2);
        for (Index i = dim - 1; i > 0; --i) std::swap(order[i], order[shuffle.index(i + 1)]);
      }
      std::vector<Index> first(order.begin(), order.begin() + dim / 2);
      std::vector<Index> second(order.begin() + dim / 2, order.end());
      std::sort(first.begin(), first.end());
      std::sort(second.begin(), second.end());
      layer.cond = l % 2 == 0 ? first : second;
      layer.trans = l % 2 == 0 ? second : first;
    }
    Rng rng = root.derive(l);
    const Index out = P * layer.trans.size();
    layer.net = std::make_unique<Conditioner>(layer.cond.size(), options.hidden, out, activation,
                                              rng, "coupling" + std::to_string(l) + ".");
    if (options.identity_init) {
      std::vector<Real> values(out);
      for (Index c = 0; c < out; ++c)
        values[c] = transform_->identity_value(c / layer.trans.size());
      layer.net->set_constant_output(values);
    }
    append(params_, layer.net->parameters());
  }
}

ColumnSet Coupling::column_set(const Layer& layer) const {
  return ColumnSet{layer.trans.data(), layer.trans.size(), layer.trans.size(), 0};
}

void Coupling::check_columns(const Matrix& m, const char* what) const {
  if (m.shape(1) != dim_)
    throw DataError(name_ + ": " + what + " has " + std::to_string(m.shape(1)) +
                    " columns but the bijector's dimension is " + std::to_string(dim_));
}

// Inference runs in blocks of rows so that the networks' intermediates stay
// in cache (for 100,000 rows a hidden layer alone would be 51 MB).
Transformed Coupling::forward(const Matrix& x, const Matrix&) const {
  check_columns(x, "input");
  Transformed out{x, xt::zeros<Real>({x.shape(0)})};
  Matrix cond, theta;  // buffers shared by the blocks
  for_each_block(out, [&](Matrix& h, Vector& logdet) {
    for (const Layer& layer : layers_) {
      gather(h, layer.cond, cond);
      layer.net->infer(cond, theta);
      transform_->forward(h, h, logdet, column_set(layer), theta, nullptr);
    }
  });
  return out;
}

Transformed Coupling::inverse(const Matrix& z, const Matrix&) const {
  check_columns(z, "latent input");
  Transformed out{z, xt::zeros<Real>({z.shape(0)})};
  Matrix cond, theta;  // buffers shared by the blocks
  for_each_block(out, [&](Matrix& h, Vector& logdet) {
    for (auto it = layers_.rbegin(); it != layers_.rend(); ++it) {
      gather(h, it->cond, cond);
      it->net->infer(cond, theta);
      transform_->inverse(h, h, logdet, column_set(*it), theta);
    }
  });
  return out;
}

void Coupling::forward_train(const Matrix& x, const Matrix&, Matrix& z, Vector& logdet) {
  check_columns(x, "input");
  const Index rows = x.shape(0);
  if (z.shape() != x.shape()) z.resize(x.shape());
  xt::noalias(z) = x;
  if (logdet.size() != rows) logdet.resize({rows});
  logdet.fill(0);
  recorded_ = false;
  for (Layer& layer : layers_) {
    gather(z, layer.cond, layer.cond_in);
    layer.net->forward(layer.cond_in, layer.theta);
    layer.cache.resize(rows * layer.trans.size() * transform_->cache_size());
    transform_->forward(z, z, logdet, column_set(layer), layer.theta, layer.cache.data());
  }
  recorded_rows_ = rows;
  recorded_ = true;
}

// Layer by layer from the last: the transformer maps dL/dz_B to dL/dx_B and
// dL/dθ; the MLP maps dL/dθ to dL/dx_A, added to the pass-through dL/dz_A.
void Coupling::backward(const Matrix& grad_z, const Vector& grad_logdet, Matrix& grad_x) {
  if (!recorded_) throw Error(name_ + ": backward called before forward_train");
  if (grad_z.shape(0) != recorded_rows_ || grad_z.shape(1) != dim_ ||
      grad_logdet.size() != recorded_rows_)
    throw Error(name_ + ": backward's gradients do not match the last forward_train");
  if (grad_x.shape() != grad_z.shape()) grad_x.resize(grad_z.shape());
  xt::noalias(grad_x) = grad_z;
  const Index rows = grad_z.shape(0);
  for (auto it = layers_.rbegin(); it != layers_.rend(); ++it) {
    Layer& layer = *it;
    if (layer.grad_theta.shape() != layer.theta.shape())
      layer.grad_theta.resize(layer.theta.shape());
    transform_->backward(layer.cache.data(), grad_x, grad_logdet, column_set(layer), grad_x,
                         layer.grad_theta);
    layer.net->backward(layer.grad_theta, layer.grad_cond);
    const Index k = layer.cond.size();
    for (Index r = 0; r < rows; ++r)
      for (Index j = 0; j < k; ++j)
        grad_x.data()[r * dim_ + layer.cond[j]] += layer.grad_cond.data()[r * k + j];
  }
}

std::unique_ptr<Bijector> make_nsf_coupling(ConfigNode& node, const BuildContext& context) {
  const NsfCouplingOptions options = NsfCouplingOptions::from(node);
  if (context.dim == 0) throw node.error("", "needs a data dimension of at least 1");
  return std::make_unique<Coupling>(context.dim, options.network,
                                    std::make_shared<RationalQuadraticSpline>(options.spline),
                                    context.seed, "nsf_coupling");
}

std::unique_ptr<Bijector> make_affine_coupling(ConfigNode& node, const BuildContext& context) {
  const AffineCouplingOptions options = AffineCouplingOptions::from(node);
  if (context.dim == 0) throw node.error("", "needs a data dimension of at least 1");
  return std::make_unique<Coupling>(context.dim, options.network,
                                    std::make_shared<AffineTransform>(options.log_scale_bound),
                                    context.seed, "affine_coupling");
}

void Coupling::visit_state(StateVisitor& visitor) {
  visit_parameters(params_, visitor);
  for (std::size_t l = 0; l < layers_.size(); ++l) {
    visitor.structure("layer" + std::to_string(l) + ".conditioning", index_row(layers_[l].cond));
    visitor.structure("layer" + std::to_string(l) + ".transformed", index_row(layers_[l].trans));
  }
}

}  // namespace flows::spline
