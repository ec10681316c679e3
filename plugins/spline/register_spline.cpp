// The `spline` plugin: neural spline flows (coupling and autoregressive) and
// RealNVP's affine coupling.
#include <flows/plugin.hpp>

#include "autoregressive.hpp"
#include "coupling.hpp"

namespace {

void register_spline(flows::Registry& registry) {
  registry.add<flows::Bijector>("nsf_coupling", &flows::spline::make_nsf_coupling);
  registry.add<flows::Bijector>("nsf_autoregressive", &flows::spline::make_nsf_autoregressive);
  registry.add<flows::Bijector>("affine_coupling", &flows::spline::make_affine_coupling);
}

}  // namespace

FLOWS_PLUGIN(register_spline)
