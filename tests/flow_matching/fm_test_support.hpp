#pragma once
// Shared by the flow_matching tests: a registry with the plugin loaded, and
// components built from YAML text.
#include <memory>
#include <string>

#include <flows/config.hpp>
#include <flows/plugin_loader.hpp>
#include <flows/registry.hpp>

namespace fm_test {

// One registry per test binary, with the built-ins and the plugin.
inline flows::Registry& registry() {
  static flows::Registry* r = [] {
    auto* reg = new flows::Registry;
    flows::register_builtins(*reg);
    flows::load_plugin(FLOWS_PLUGIN_FLOW_MATCHING, *reg);
    return reg;
  }();
  return *r;
}

template <class T>
std::shared_ptr<T> make(const std::string& yaml, flows::Index dim = 2, std::uint64_t seed = 0) {
  flows::ConfigNode node = flows::ConfigNode::parse(yaml, "test");
  return registry().make<T>(node, flows::BuildContext{dim, seed, &registry()});
}

}  // namespace fm_test
