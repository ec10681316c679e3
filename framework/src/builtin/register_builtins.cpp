#include "adam.hpp"
#include "flows/affine_transformer.hpp"
#include "flows/autoregressive.hpp"
#include "flows/batch_norm.hpp"
#include "flows/bounds.hpp"
#include "flows/conditional_gaussian_mixture.hpp"
#include "flows/conditional_normal.hpp"
#include "flows/coupling.hpp"
#include "flows/data/correlated_gaussians.hpp"
#include "flows/data/datasets.hpp"
#include "flows/gaussian_mixture.hpp"
#include "flows/normal.hpp"
#include "flows/registry.hpp"
#include "mle_trainer.hpp"
#include "sgd.hpp"

namespace flows {

namespace {

struct DiagonalNormalOptions {
  Real mean = 0.0;       // initial mean of every dimension
  Real log_scale = 0.0;  // initial log standard deviation of every dimension
  static DiagonalNormalOptions from(ConfigNode& node) {
    DiagonalNormalOptions o;
    node.read("mean", o.mean);
    node.read("log_scale", o.log_scale);
    node.finish();
    return o;
  }
};

void check_dim(ConfigNode& node, const BuildContext& context) {
  node.expect(context.dim > 0, "", "the data dimension is not known when building this component");
}

}  // namespace

void register_builtins(Registry& registry) {
  registry.add<BaseDistribution>("standard_normal", [](ConfigNode& node, const BuildContext& ctx) {
    node.finish();
    check_dim(node, ctx);
    return std::make_unique<StandardNormal>(ctx.dim);
  });
  registry.add<BaseDistribution>("diagonal_normal", [](ConfigNode& node, const BuildContext& ctx) {
    auto o = DiagonalNormalOptions::from(node);
    check_dim(node, ctx);
    return std::make_unique<DiagonalNormal>(ctx.dim, o.mean, o.log_scale);
  });
  registry.add<BaseDistribution>("conditional_diagonal_normal", &make_conditional_diagonal_normal);
  registry.add<BaseDistribution>("gaussian_mixture", &make_gaussian_mixture);
  registry.add<BaseDistribution>("conditional_gaussian_mixture",
                                 &make_conditional_gaussian_mixture);
  registry.add<Optimizer>("adam", [](ConfigNode& node, const BuildContext&) {
    return std::make_unique<Adam>(AdamOptions::from(node));
  });
  registry.add<Optimizer>("sgd", [](ConfigNode& node, const BuildContext&) {
    return std::make_unique<Sgd>(SgdOptions::from(node));
  });
  registry.add<Trainer>("mle", &make_mle_trainer);
  // The generic flows of the SDK: a transformer by name under a conditioner.
  registry.add<Transformer>("affine", [](ConfigNode& node, const BuildContext&) {
    const AffineTransformerOptions options = AffineTransformerOptions::read(node);
    node.finish();
    return std::make_unique<AffineTransformer>(options.log_scale_bound);
  });
  registry.add<Bijector>("autoregressive", &make_autoregressive);
  registry.add<Bijector>("coupling", &make_coupling);
  registry.add<Bijector>("batch_norm", &make_batch_norm);
  registry.add<Bijector>("bounds", &make_bounds);
  registry.add<Bijector>("logit", &make_logit);
  register_datasets(registry);
  register_correlated_gaussians(registry);
}

}  // namespace flows
