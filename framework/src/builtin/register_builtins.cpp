#include "adam.hpp"
#include "flows/data/datasets.hpp"
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
  registry.add<Optimizer>("adam", [](ConfigNode& node, const BuildContext&) {
    return std::make_unique<Adam>(AdamOptions::from(node));
  });
  registry.add<Optimizer>("sgd", [](ConfigNode& node, const BuildContext&) {
    return std::make_unique<Sgd>(SgdOptions::from(node));
  });
  registry.add<Trainer>("mle", &make_mle_trainer);
  register_datasets(registry);
}

}  // namespace flows
