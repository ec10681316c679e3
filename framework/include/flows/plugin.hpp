#pragma once
// What a plugin includes to register its components:
//
//   #include <flows/plugin.hpp>
//   void register_basic(flows::Registry& r) {
//     r.add<flows::Bijector>("reverse", &make_reverse);
//   }
//   FLOWS_PLUGIN(register_basic)
#include <boost/config.hpp>

#include "flows/registry.hpp"

// Bumped whenever an SDK interface or the layout of a type crossing the
// plugin boundary changes; a plugin built against another value is refused.
#define FLOWS_SDK_ABI_VERSION 10

// Exports the plugin's registration function and the ABI version it was
// compiled against.
#define FLOWS_PLUGIN(register_function)                                                  \
  extern "C" BOOST_SYMBOL_EXPORT int flows_plugin_abi_version() {                        \
    return FLOWS_SDK_ABI_VERSION;                                                        \
  }                                                                                      \
  extern "C" BOOST_SYMBOL_EXPORT void flows_plugin_register(flows::Registry& registry) { \
    register_function(registry);                                                         \
  }
