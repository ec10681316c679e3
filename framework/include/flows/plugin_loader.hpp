#pragma once
#include <memory>
#include <string>
#include <vector>

#include "flows/export.hpp"
#include "flows/registry.hpp"

namespace flows {

// The folders searched for plugins, in order: the shipped plugins beside the
// SDK library (the build's plugin folder in a build tree, <libdir>/flows/plugins
// when installed), then each entry of $FLOWS_PLUGIN_PATH (':'-separated). The
// runner appends the pipeline's `plugins:` entries.
FLOWS_API std::vector<std::string> default_plugin_search_path();

struct LoadedPlugin {
  std::string file;
  int abi_version = 0;
};

// Loads one plugin file into `registry`. Raises PluginError naming the file
// when it cannot be opened, lacks the flows entry points, or was built against
// another SDK ABI version (both versions named).
FLOWS_API LoadedPlugin load_plugin(const std::string& file, Registry& registry);

// Loads every plugin file (flows_plugin_*.so) in each folder of `search_path`
// (files are loaded directly); a plugin file name seen earlier on the path is
// skipped, so the build's plugins shadow installed ones. A plugin that fails to
// load is skipped and recorded in registry.failures(); the rest still load.
FLOWS_API std::vector<LoadedPlugin> load_plugins(const std::vector<std::string>& search_path,
                                                 Registry& registry);

// The registry every entry point starts from: the built-in components, then
// the plugins on the default search path, then those on `extra_paths` (files
// or folders). Plugins that fail to load are in registry->failures().
FLOWS_API std::shared_ptr<Registry> make_registry(const std::vector<std::string>& extra_paths = {});

}  // namespace flows
