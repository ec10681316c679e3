// The `maf` plugin: masked autoregressive flows (Papamakarios, Pavlakou &
// Murray 2017) and inverse autoregressive flows (Kingma et al. 2016), which
// are the SDK's autoregressive stack with the affine transformer.
#include <flows/affine_transformer.hpp>
#include <flows/autoregressive.hpp>
#include <flows/plugin.hpp>

namespace {

// The keys of every autoregressive flow, plus log_scale_bound (5 by default:
// a MAF layer rescales by at most e^5). identity_init is false by default, as
// in the MAF paper: a zero MADE output layer trains slower here (see
// AutoregressiveOptions::identity_init).
std::unique_ptr<flows::Bijector> make_affine_stack(flows::ConfigNode& node,
                                                   const flows::BuildContext& context,
                                                   const char* name, bool inverted) {
  const flows::AutoregressiveOptions options =
      flows::AutoregressiveOptions::read(node, /*identity_init_default=*/false);
  flows::AffineTransformerOptions affine;
  affine.log_scale_bound = 5.0;
  node.read("log_scale_bound", affine.log_scale_bound);
  node.expect(affine.log_scale_bound > 0 && std::isfinite(affine.log_scale_bound),
              "log_scale_bound", "must be > 0");
  node.finish();
  return flows::make_autoregressive_stack(
      name, options, std::make_shared<flows::AffineTransformer>(affine.log_scale_bound), inverted,
      context);
}

void register_maf(flows::Registry& registry) {
  registry.add<flows::Bijector>("maf", [](flows::ConfigNode& node, const flows::BuildContext& c) {
    return make_affine_stack(node, c, "maf", false);
  });
  registry.add<flows::Bijector>("iaf", [](flows::ConfigNode& node, const flows::BuildContext& c) {
    return make_affine_stack(node, c, "iaf", true);
  });
}

}  // namespace

FLOWS_PLUGIN(register_maf)
