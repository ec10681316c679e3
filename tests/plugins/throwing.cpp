// A plugin whose factory throws a plain std::exception.
#include <stdexcept>

#include <flows/plugin.hpp>

namespace {

void register_throwing(flows::Registry& registry) {
  registry.add<flows::Optimizer>(
      "always_throws",
      [](flows::ConfigNode&, const flows::BuildContext&) -> std::unique_ptr<flows::Optimizer> {
        throw std::runtime_error("out of coffee");
      });
}

}  // namespace

FLOWS_PLUGIN(register_throwing)
