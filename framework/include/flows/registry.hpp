#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "flows/bijector.hpp"
#include "flows/config.hpp"
#include "flows/dataset.hpp"
#include "flows/distribution.hpp"
#include "flows/export.hpp"
#include "flows/ode_solver.hpp"
#include "flows/optimizer.hpp"
#include "flows/precision.hpp"
#include "flows/trainer.hpp"
#include "flows/transformer.hpp"

namespace flows {

enum class Kind { bijector, distribution, trainer, optimizer, ode_solver, dataset, transformer };
FLOWS_API const char* kind_name(Kind kind);
FLOWS_API const std::vector<Kind>& all_kinds();

class Registry;

// What a factory may need besides its own options.
struct BuildContext {
  Index dim = 0;                 // dimension of the data the component acts on
  Index context_dim = 0;         // context columns it may read (0: unconditional model)
  std::uint64_t seed = 0;        // for random initialisation
  Registry* registry = nullptr;  // to build nested components by name
  // What networks compute in (model.precision; parameters stay float64). A
  // component built by hand computes in float64 unless asked otherwise.
  Precision precision = Precision::float64;
};

template <class T>
using Factory = std::function<std::unique_ptr<T>(ConfigNode& options, const BuildContext& context)>;

template <class T>
struct KindOf;
template <>
struct KindOf<Bijector> {
  static constexpr Kind value = Kind::bijector;
};
template <>
struct KindOf<BaseDistribution> {
  static constexpr Kind value = Kind::distribution;
};
template <>
struct KindOf<Trainer> {
  static constexpr Kind value = Kind::trainer;
};
template <>
struct KindOf<Optimizer> {
  static constexpr Kind value = Kind::optimizer;
};
template <>
struct KindOf<OdeSolver> {
  static constexpr Kind value = Kind::ode_solver;
};
template <>
struct KindOf<Dataset> {
  static constexpr Kind value = Kind::dataset;
};
template <>
struct KindOf<Transformer> {
  static constexpr Kind value = Kind::transformer;
};

// (kind, name) -> factory. Objects made from a plugin's factory hold a
// reference to the plugin's library, so its code outlives them.
class FLOWS_API Registry {
 public:
  struct Listing {
    Kind kind;
    std::string name;
    std::string origin;  // "built-in" or the plugin file
  };

  // Registers `name`. A name already registered for the kind is a PluginError
  // naming both origins.
  template <class T>
  void add(const std::string& name, Factory<T> factory) {
    add_erased(KindOf<T>::value, name, std::make_shared<Factory<T>>(std::move(factory)));
  }

  // Builds the component named by options' `type` key; the rest of `options`
  // goes to the factory, which must consume every key. An unknown name is a
  // ConfigError listing the names available and the closest one.
  template <class T>
  std::shared_ptr<T> make(ConfigNode& options, const BuildContext& context) const {
    const Entry& entry = find(KindOf<T>::value, options);
    check_dimension(KindOf<T>::value, options, context);
    auto& factory = *static_cast<const Factory<T>*>(entry.factory.get());
    std::unique_ptr<T> object;
    try {
      object = factory(options, context);
    } catch (const Error&) {
      throw;
    } catch (const std::exception& e) {
      throw factory_failure(KindOf<T>::value, options, entry, e.what());
    }
    if (!object)
      throw factory_failure(KindOf<T>::value, options, entry, "the factory returned nothing");
    std::shared_ptr<void> keep = entry.library;
    return std::shared_ptr<T>(object.release(), [keep](T* p) { delete p; });
  }

  bool contains(Kind kind, const std::string& name) const;
  std::vector<std::string> names(Kind kind) const;
  std::vector<Listing> listing() const;

  // Used by the plugin loader: entries added between begin_plugin and
  // end_plugin carry `origin` and keep `library` alive; they are kept only if
  // the whole registration succeeds (end_plugin), and dropped by
  // abandon_plugin, so a plugin that fails halfway leaves nothing behind.
  void begin_plugin(const std::string& origin, std::shared_ptr<void> library);
  void end_plugin();
  void abandon_plugin();

  // Plugins that could not be loaded; unknown-name errors mention them.
  struct Failure {
    std::string file;
    std::string message;
  };
  void note_failure(const std::string& file, const std::string& message);
  const std::vector<Failure>& failures() const { return failures_; }

 private:
  struct Entry {
    std::shared_ptr<void> library;  // declared first: destroyed after the factory
    std::shared_ptr<const void> factory;
    std::string origin;
  };
  void add_erased(Kind kind, const std::string& name, std::shared_ptr<const void> factory);
  const Entry& find(Kind kind, ConfigNode& options) const;
  // Bijectors and distributions need a data dimension of at least 1.
  static void check_dimension(Kind kind, ConfigNode& options, const BuildContext& context);
  PluginError factory_failure(Kind kind, ConfigNode& options, const Entry& entry,
                              const std::string& what) const;

  std::map<Kind, std::map<std::string, Entry>> entries_;
  std::map<Kind, std::map<std::string, Entry>> pending_;  // of the plugin being registered
  bool registering_plugin_ = false;
  std::vector<Failure> failures_;
  std::string current_origin_ = "built-in";
  std::shared_ptr<void> current_library_;
};

// Registers the SDK's own components: standard_normal, diagonal_normal, mle,
// adam, sgd, and the datasets.
FLOWS_API void register_builtins(Registry& registry);

}  // namespace flows
