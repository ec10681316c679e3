// The `maf` plugin: masked autoregressive flows (maf, iaf) and batch_norm.
#include <flows/plugin.hpp>

#include "autoregressive_stack.hpp"
#include "batch_norm.hpp"

namespace {

void register_maf(flows::Registry& registry) {
  registry.add<flows::Bijector>("maf", &flows::maf::make_maf);
  registry.add<flows::Bijector>("iaf", &flows::maf::make_iaf);
  registry.add<flows::Bijector>("batch_norm", &flows::maf::make_batch_norm);
}

}  // namespace

FLOWS_PLUGIN(register_maf)
