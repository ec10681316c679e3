// Default state visits of the SDK's interfaces (see flows/state.hpp).
#include "flows/bijector.hpp"
#include "flows/distribution.hpp"
#include "flows/optimizer.hpp"
#include "flows/trainer.hpp"

namespace flows {

void Bijector::visit_state(StateVisitor& visitor) {
  visit_parameters(parameters(), visitor);
}

void BaseDistribution::visit_state(StateVisitor& visitor) {
  visit_parameters(parameters(), visitor);
}

void Optimizer::visit_state(const ParameterList&, StateVisitor&) {}

void Trainer::visit_state(Flow&, StateVisitor&) {}

}  // namespace flows
