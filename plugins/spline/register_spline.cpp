// The `spline` plugin: the rational-quadratic spline transformer (Durkan et
// al. 2019), and the neural spline flows built from it on the SDK's
// autoregressive and coupling layers, with RealNVP's affine coupling.
#include <cmath>

#include <flows/affine_transformer.hpp>
#include <flows/autoregressive.hpp>
#include <flows/coupling.hpp>
#include <flows/plugin.hpp>

#include "rational_quadratic_spline.hpp"

namespace {

using flows::BuildContext;
using flows::ConfigNode;

std::shared_ptr<flows::Transformer> read_spline(ConfigNode& node) {
  return std::make_shared<flows::spline::RationalQuadraticSpline>(
      flows::spline::SplineOptions::read(node));
}

void register_spline(flows::Registry& registry) {
  registry.add<flows::Transformer>("rational_quadratic", [](ConfigNode& node, const BuildContext&) {
    const flows::spline::SplineOptions options = flows::spline::SplineOptions::read(node);
    node.finish();
    return std::make_unique<flows::spline::RationalQuadraticSpline>(options);
  });
  registry.add<flows::Bijector>("nsf_autoregressive", [](ConfigNode& node,
                                                         const BuildContext& context) {
    const flows::AutoregressiveOptions options = flows::AutoregressiveOptions::read(node);
    auto spline = read_spline(node);
    node.finish();
    return flows::make_autoregressive_stack("nsf_autoregressive", options, spline, false, context);
  });
  registry.add<flows::Bijector>("nsf_coupling", [](ConfigNode& node, const BuildContext& context) {
    const flows::CouplingOptions options = flows::CouplingOptions::read(node);
    auto spline = read_spline(node);
    node.finish();
    return flows::make_coupling_stack("nsf_coupling", options, spline, context);
  });
  registry.add<flows::Bijector>(
      "affine_coupling", [](ConfigNode& node, const BuildContext& context) {
        const flows::CouplingOptions options = flows::CouplingOptions::read(node);
        const flows::AffineTransformerOptions affine = flows::AffineTransformerOptions::read(node);
        node.finish();
        return flows::make_coupling_stack(
            "affine_coupling", options,
            std::make_shared<flows::AffineTransformer>(affine.log_scale_bound), context);
      });
}

}  // namespace

FLOWS_PLUGIN(register_spline)
