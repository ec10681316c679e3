// The `basic` plugin: simple bijectors without networks.
#include <flows/plugin.hpp>

#include "actnorm.hpp"
#include "affine.hpp"
#include "lu_linear.hpp"
#include "permutation.hpp"
#include "reverse.hpp"

namespace {

void register_basic(flows::Registry& registry) {
  registry.add<flows::Bijector>("reverse", &flows::basic::make_reverse);
  registry.add<flows::Bijector>("permutation", &flows::basic::make_permutation);
  registry.add<flows::Bijector>("affine", &flows::basic::make_affine);
  registry.add<flows::Bijector>("actnorm", &flows::basic::make_actnorm);
  registry.add<flows::Bijector>("lu_linear", &flows::basic::make_lu_linear);
}

}  // namespace

FLOWS_PLUGIN(register_basic)
