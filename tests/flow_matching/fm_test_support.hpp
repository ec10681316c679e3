#pragma once
// Shared by the flow_matching tests: a registry with the plugin loaded, and
// components built from YAML text.
#include <memory>
#include <string>

#include <flows/config.hpp>
#include <flows/dataset.hpp>
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

// context_dim: the context columns the component reads (0: unconditional).
template <class T>
std::shared_ptr<T> make(const std::string& yaml, flows::Index dim = 2, std::uint64_t seed = 0,
                        flows::Index context_dim = 0) {
  flows::ConfigNode node = flows::ConfigNode::parse(yaml, "test");
  return registry().make<T>(node, flows::BuildContext{dim, context_dim, seed, &registry()});
}

// Unconditional splits (no test rows), or conditional ones with context rows.
inline flows::DataSplits splits(const flows::Matrix& train, const flows::Matrix& val,
                                const flows::Matrix& train_context = {},
                                const flows::Matrix& val_context = {}) {
  flows::DataSplits s;
  s.train = train;
  s.val = val;
  s.train_context = train_context;
  s.val_context = val_context;
  for (flows::Index j = 0; j < train_context.shape(1); ++j)
    s.context_columns.push_back("c" + std::to_string(j));
  return s;
}

}  // namespace fm_test
