#include "flows/plugin_loader.hpp"

#include <dlfcn.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>
#include <vector>

#include <fmt/format.h>

#include <boost/dll/shared_library.hpp>

#include "flows/plugin.hpp"

namespace flows {

namespace fs = std::filesystem;

namespace {

// The folder of this SDK library, wherever it was installed or built.
fs::path sdk_library_dir() {
  Dl_info info{};
  if (dladdr(reinterpret_cast<void*>(&default_plugin_search_path), &info) == 0 || !info.dli_fname)
    return {};
  return fs::weakly_canonical(fs::path(info.dli_fname)).parent_path();
}

}  // namespace

std::vector<std::string> default_plugin_search_path() {
  // The shipped plugins sit beside the library that loads them: the build's
  // plugin folder for a build tree, <libdir>/flows/plugins for an install.
  std::vector<std::string> path;
  const fs::path sdk_dir = sdk_library_dir();
  std::error_code ec;
  if (!sdk_dir.empty() && fs::equivalent(sdk_dir, FLOWS_BUILD_SDK_DIR, ec))
    path.push_back(FLOWS_BUILD_PLUGIN_DIR);
  else if (!sdk_dir.empty())
    path.push_back((sdk_dir / "flows" / "plugins").string());
  if (const char* env = std::getenv("FLOWS_PLUGIN_PATH")) {
    std::string entries = env;
    std::size_t start = 0;
    while (start <= entries.size()) {
      std::size_t end = entries.find(':', start);
      if (end == std::string::npos) end = entries.size();
      if (end > start) path.push_back(entries.substr(start, end - start));
      start = end + 1;
    }
  }
  return path;
}

namespace {

// Plugins stay loaded until the process ends. An exception that a plugin's
// code throws refers to destructors and type information inside the plugin,
// and it may still be in flight after the registry and every object made from
// the plugin are gone (a pipeline destroyed while the error unwinds).
// One entry per library (dlopen hands a loaded file the same handle again), so
// a process that loads pipelines over and over does not grow.
void keep_loaded_until_exit(std::shared_ptr<boost::dll::shared_library> library) {
  static std::mutex mutex;
  static auto* kept =
      new std::map<void*, std::shared_ptr<boost::dll::shared_library>>();  // never freed
  std::lock_guard<std::mutex> lock(mutex);
  kept->try_emplace(library->native(), std::move(library));
}

}  // namespace

LoadedPlugin load_plugin(const std::string& path, Registry& registry) {
  // The absolute path names the plugin everywhere (origins, checkpoints), so a
  // saved model finds its plugin from any working folder.
  std::error_code ec;
  const fs::path absolute = fs::absolute(path, ec);
  const std::string file = ec ? path : absolute.lexically_normal().string();
  if (!fs::exists(file)) throw PluginError(fmt::format("plugin {}: no such file", file));
  // The dynamic loader says why a file does not load ("file too short",
  // "invalid ELF header", a missing dependency); Boost.DLL's exception wraps
  // that text and appends an unrelated errno message. Opened here first, the
  // library stays open while Boost.DLL opens it again (the same handle, so it
  // is initialised once), and Boost.DLL's reference is what remains.
  void* opened = ::dlopen(file.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!opened) {
    const char* reason = ::dlerror();
    std::string text = reason ? reason : "unknown reason";
    if (text.rfind(file + ": ", 0) == 0) text.erase(0, file.size() + 2);
    throw PluginError(
        fmt::format("plugin {}: cannot be loaded as a shared library: {}", file, text));
  }
  auto library = std::make_shared<boost::dll::shared_library>();
  try {
    library->load(file, boost::dll::load_mode::rtld_local | boost::dll::load_mode::rtld_now);
  } catch (const std::exception& e) {
    ::dlclose(opened);
    throw PluginError(fmt::format("plugin {}: cannot be loaded: {}", file, e.what()));
  }
  ::dlclose(opened);
  for (const char* symbol : {"flows_plugin_abi_version", "flows_plugin_register"})
    if (!library->has(symbol))
      throw PluginError(fmt::format(
          "plugin {}: not a flows plugin (no symbol '{}'; use FLOWS_PLUGIN)", file, symbol));
  const int abi = library->get<int()>("flows_plugin_abi_version")();
  if (abi != FLOWS_SDK_ABI_VERSION)
    throw PluginError(fmt::format(
        "plugin {}: built against flows SDK ABI version {}, but this flows has ABI version {}; "
        "rebuild the plugin against this SDK",
        file, abi, FLOWS_SDK_ABI_VERSION));
  auto& register_plugin = library->get<void(Registry&)>("flows_plugin_register");
  keep_loaded_until_exit(library);
  registry.begin_plugin(file, library);
  try {
    register_plugin(registry);
  } catch (const std::exception& e) {
    registry.abandon_plugin();
    const std::string what = e.what();
    // Errors the registry raised already name the file.
    if (what.find(file) != std::string::npos) throw PluginError(what);
    throw PluginError(fmt::format("plugin {}: registration failed: {}", file, what));
  }
  registry.end_plugin();
  return {file, abi};
}

std::vector<LoadedPlugin> load_plugins(const std::vector<std::string>& search_path,
                                       Registry& registry) {
  std::vector<LoadedPlugin> loaded;
  std::set<std::string> seen_names;
  auto load_once = [&](const fs::path& file) {
    if (!seen_names.insert(file.filename().string()).second) return;
    try {
      loaded.push_back(load_plugin(file.string(), registry));
    } catch (const PluginError& e) {
      // One broken plugin must not take the others down: it is recorded, and
      // an unknown-name error later says why its names are missing.
      registry.note_failure(file.string(), e.what());
    }
  };
  for (const std::string& entry : search_path) {
    std::error_code ec;
    if (fs::is_directory(entry, ec)) {
      std::vector<fs::path> files;
      for (const auto& item : fs::directory_iterator(entry, ec)) {
        const std::string name = item.path().filename().string();
        if (name.rfind("flows_plugin_", 0) == 0 && item.path().extension() == ".so")
          files.push_back(item.path());
      }
      std::sort(files.begin(), files.end());  // a stable load order
      for (const auto& f : files) load_once(f);
    } else if (fs::is_regular_file(entry, ec)) {
      load_once(entry);
    }
  }
  return loaded;
}

std::shared_ptr<Registry> make_registry(const std::vector<std::string>& extra_paths) {
  auto registry = std::make_shared<Registry>();
  register_builtins(*registry);
  std::vector<std::string> search = default_plugin_search_path();
  search.insert(search.end(), extra_paths.begin(), extra_paths.end());
  load_plugins(search, *registry);
  return registry;
}

}  // namespace flows
