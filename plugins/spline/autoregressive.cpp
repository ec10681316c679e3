#include "autoregressive.hpp"

#include "coupling.hpp"

#include <algorithm>
#include <numeric>
#include <string>

#include <flows/error.hpp>
#include <flows/nn/made_masks.hpp>
#include <flows/rng.hpp>

namespace flows::spline {

NsfAutoregressive::NsfAutoregressive(Index dim, const NsfAutoregressiveOptions& options,
                                     std::uint64_t seed)
    : dim_(dim), spline_(options.spline), all_cols_(dim) {
  if (dim == 0) throw ConfigError("nsf_autoregressive: needs a data dimension of at least 1");
  std::iota(all_cols_.begin(), all_cols_.end(), Index(0));
  const Rng root(seed);
  const Index P = spline_.params_per_dim();
  nn::MadeOptions made = options.made;
  made.out_multiplier = P;
  made.zero_output = false;
  layers_.resize(options.layers);
  for (Index l = 0; l < options.layers; ++l) {
    Rng rng = root.derive(l);
    const std::vector<Index> order = l % 2 == 0 ? nn::natural_order(dim) : nn::reversed_order(dim);
    layers_[l].made = std::make_unique<nn::Made>(order, made, rng);
    nn::Made& net = *layers_[l].made;
    if (options.identity_init) {
      net.output_weight().value.fill(0);
      for (Index c = 0; c < P * dim; ++c)
        net.output_bias().value(0, c) = spline_.identity_value(c / dim);
    }
    const ParameterList list = net.parameters();
    for (Parameter* p : list) p->name = "made" + std::to_string(l) + "." + p->name;
    append(params_, list);
  }
}

void NsfAutoregressive::check_columns(const Matrix& m, const char* what) const {
  if (m.shape(1) != dim_)
    throw DataError(std::string("nsf_autoregressive: ") + what + " has " +
                    std::to_string(m.shape(1)) + " columns but the bijector's dimension is " +
                    std::to_string(dim_));
}

// Inference runs in blocks of rows (see for_each_block).
Transformed NsfAutoregressive::forward(const Matrix& x, const Matrix&) const {
  check_columns(x, "input");
  Transformed out{x, xt::zeros<Real>({x.shape(0)})};
  const ColumnSet all{all_cols_.data(), dim_, dim_, 0};
  Matrix theta;  // buffers shared by the blocks
  nn::Made::Workspace workspace;
  for_each_block(out, [&](Matrix& h, Vector& logdet) {
    for (const Layer& layer : layers_) {
      layer.made->infer(h, theta, workspace);
      spline_.forward(h, h, logdet, all, theta, nullptr);
    }
  });
  return out;
}

// Each layer: D passes (the first on one row); pass t fixes the dimension at position t of the
// order, whose parameters depend only on dimensions already fixed.
Transformed NsfAutoregressive::inverse(const Matrix& z, const Matrix&) const {
  check_columns(z, "latent input");
  Transformed out{z, xt::zeros<Real>({z.shape(0)})};
  if (z.shape(0) == 0) return out;
  Matrix x, theta, first, row;  // buffers shared by the blocks
  nn::Made::Workspace workspace;
  for_each_block(out, [&](Matrix& h, Vector& logdet) {
    for (auto it = layers_.rbegin(); it != layers_.rend(); ++it) {
      const std::vector<Index>& order = it->made->order();
      x = h;
      for (Index t = 0; t < dim_; ++t) {
        const Index i = static_cast<Index>(std::find(order.begin(), order.end(), t) -
                                           order.begin());  // order[i] == t
        if (t == 0) {
          // The first dimension's parameters depend on no input: one row of
          // the MADE gives them for every row (a pass saved of D).
          first = xt::view(x, xt::range(0, 1), xt::all());
          it->made->infer(first, row, workspace);
          theta.resize({x.shape(0), row.shape(1)});
          for (Index r = 0; r < x.shape(0); ++r)
            std::copy(row.data(), row.data() + row.shape(1), theta.data() + r * row.shape(1));
        } else {
          it->made->infer(x, theta, workspace);
        }
        const ColumnSet one{&all_cols_[i], 1, dim_, i};
        spline_.inverse(h, x, logdet, one, theta);
      }
      h = x;
    }
  });
  return out;
}

void NsfAutoregressive::forward_train(const Matrix& x, const Matrix&, Matrix& z, Vector& logdet) {
  check_columns(x, "input");
  const Index rows = x.shape(0);
  if (z.shape() != x.shape()) z.resize(x.shape());
  xt::noalias(z) = x;
  if (logdet.size() != rows) logdet.resize({rows});
  logdet.fill(0);
  recorded_ = false;
  const ColumnSet all{all_cols_.data(), dim_, dim_, 0};
  for (Layer& layer : layers_) {
    layer.made->forward(z, layer.theta);
    layer.cache.resize(rows * dim_ * spline_.cache_size());
    spline_.forward(z, z, logdet, all, layer.theta, layer.cache.data());
  }
  recorded_rows_ = rows;
  recorded_ = true;
}

// Per layer from the last: the spline gives dL/dx along its own path and
// dL/dθ; the MADE adds dL/dθ · ∂θ/∂x.
void NsfAutoregressive::backward(const Matrix& grad_z, const Vector& grad_logdet, Matrix& grad_x) {
  if (!recorded_) throw Error("nsf_autoregressive: backward called before forward_train");
  if (grad_z.shape(0) != recorded_rows_ || grad_z.shape(1) != dim_ ||
      grad_logdet.size() != recorded_rows_)
    throw Error("nsf_autoregressive: backward's gradients do not match the last forward_train");
  if (grad_x.shape() != grad_z.shape()) grad_x.resize(grad_z.shape());
  xt::noalias(grad_x) = grad_z;
  const ColumnSet all{all_cols_.data(), dim_, dim_, 0};
  for (auto it = layers_.rbegin(); it != layers_.rend(); ++it) {
    Layer& layer = *it;
    if (layer.grad_theta.shape() != layer.theta.shape())
      layer.grad_theta.resize(layer.theta.shape());
    spline_.backward(layer.cache.data(), grad_x, grad_logdet, all, grad_x, layer.grad_theta);
    layer.made->backward(layer.grad_theta, layer.grad_made);
    grad_x += layer.grad_made;
  }
}

std::unique_ptr<Bijector> make_nsf_autoregressive(ConfigNode& node, const BuildContext& context) {
  const NsfAutoregressiveOptions options = NsfAutoregressiveOptions::from(node);
  if (context.dim == 0) throw node.error("", "needs a data dimension of at least 1");
  return std::make_unique<NsfAutoregressive>(context.dim, options, context.seed);
}

void NsfAutoregressive::visit_state(StateVisitor& visitor) {
  visit_parameters(params_, visitor);
  for (std::size_t l = 0; l < layers_.size(); ++l)
    visitor.structure("layer" + std::to_string(l) + ".order", index_row(layers_[l].made->order()));
}

}  // namespace flows::spline
