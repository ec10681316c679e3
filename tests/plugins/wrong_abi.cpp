// A plugin that claims another SDK ABI version: the loader must refuse it.
#include <flows/plugin.hpp>

extern "C" BOOST_SYMBOL_EXPORT int flows_plugin_abi_version() {
  return FLOWS_SDK_ABI_VERSION + 41;
}
extern "C" BOOST_SYMBOL_EXPORT void flows_plugin_register(flows::Registry&) {}
