// The `flow_matching` plugin: a continuous-time flow trained by conditional
// flow matching, and the ODE solvers it integrates with.
#include <flows/plugin.hpp>

#include "cfm_trainer.hpp"
#include "dopri5_solver.hpp"
#include "fixed_step_solver.hpp"
#include "flow_matching_bijector.hpp"

namespace {

void register_flow_matching(flows::Registry& registry) {
  using namespace flows::flow_matching;
  registry.add<flows::Bijector>("flow_matching", &make_flow_matching);
  registry.add<flows::Trainer>("cfm", &make_cfm_trainer);
  registry.add<flows::OdeSolver>("euler", &make_euler);
  registry.add<flows::OdeSolver>("midpoint", &make_midpoint);
  registry.add<flows::OdeSolver>("rk4", &make_rk4);
  registry.add<flows::OdeSolver>("dopri5", &make_dopri5);
}

}  // namespace

FLOWS_PLUGIN(register_flow_matching)
