#include "flows/registry.hpp"

#include <fmt/format.h>

namespace flows {

const char* kind_name(Kind kind) {
  switch (kind) {
    case Kind::bijector:
      return "bijector";
    case Kind::distribution:
      return "distribution";
    case Kind::trainer:
      return "trainer";
    case Kind::optimizer:
      return "optimizer";
    case Kind::ode_solver:
      return "ode_solver";
    case Kind::dataset:
      return "dataset";
    case Kind::transformer:
      return "transformer";
  }
  return "unknown";
}

const std::vector<Kind>& all_kinds() {
  static const std::vector<Kind> kinds = {Kind::bijector,   Kind::distribution, Kind::trainer,
                                          Kind::optimizer,  Kind::ode_solver,   Kind::dataset,
                                          Kind::transformer};
  return kinds;
}

void Registry::add_erased(Kind kind, const std::string& name, std::shared_ptr<const void> factory) {
  for (const auto* tables : {&entries_, &pending_}) {
    auto table = tables->find(kind);
    if (table == tables->end()) continue;
    auto found = table->second.find(name);
    if (found != table->second.end())
      throw PluginError(fmt::format("{} '{}' from {} is already registered by {}", kind_name(kind),
                                    name, current_origin_, found->second.origin));
  }
  Entry entry{current_library_, std::move(factory), current_origin_};
  (registering_plugin_ ? pending_ : entries_)[kind].emplace(name, std::move(entry));
}

PluginError Registry::factory_failure(Kind kind, ConfigNode& options, const Entry& entry,
                                      const std::string& what) const {
  std::string name;
  options.read("type", name);
  return PluginError(fmt::format("{}: {} '{}' (from {}) failed to build: {}", options.where("type"),
                                 kind_name(kind), name, entry.origin, what));
}

void Registry::check_dimension(Kind kind, ConfigNode& options, const BuildContext& context) {
  if ((kind == Kind::bijector || kind == Kind::distribution) && context.dim == 0)
    throw options.error("",
                        fmt::format("a {} needs a data dimension of at least 1", kind_name(kind)));
}

const Registry::Entry& Registry::find(Kind kind, ConfigNode& options) const {
  const std::string name = options.require_string("type");
  auto table = entries_.find(kind);
  if (table != entries_.end()) {
    auto found = table->second.find(name);
    if (found != table->second.end()) return found->second;
  }
  std::vector<std::string> available = names(kind);
  std::string list;
  for (const auto& n : available) list += (list.empty() ? "" : ", ") + n;
  std::string hint = closest_match(name, available);
  std::string failed;
  for (const Failure& f : failures_)
    failed += fmt::format("; plugin {} was not loaded: {}", f.file, f.message);
  throw options.error(
      "type",
      fmt::format("unknown {} '{}'{}; available: {}{}", kind_name(kind), name,
                  hint.empty() ? "" : fmt::format(" (did you mean '{}'?)", hint),
                  list.empty() ? "(none: is its plugin on the search path?)" : list, failed));
}

bool Registry::contains(Kind kind, const std::string& name) const {
  auto table = entries_.find(kind);
  return table != entries_.end() && table->second.count(name) > 0;
}

std::vector<std::string> Registry::names(Kind kind) const {
  std::vector<std::string> out;
  auto table = entries_.find(kind);
  if (table != entries_.end())
    for (const auto& [name, entry] : table->second) out.push_back(name);
  return out;
}

std::vector<Registry::Listing> Registry::listing() const {
  std::vector<Listing> out;
  for (Kind kind : all_kinds()) {
    auto table = entries_.find(kind);
    if (table == entries_.end()) continue;
    for (const auto& [name, entry] : table->second) out.push_back({kind, name, entry.origin});
  }
  return out;
}

void Registry::begin_plugin(const std::string& origin, std::shared_ptr<void> library) {
  current_origin_ = origin;
  current_library_ = std::move(library);
  registering_plugin_ = true;
  pending_.clear();
}

void Registry::end_plugin() {
  for (auto& [kind, table] : pending_)
    for (auto& [name, entry] : table) entries_[kind].emplace(name, std::move(entry));
  abandon_plugin();
}

void Registry::abandon_plugin() {
  pending_.clear();
  registering_plugin_ = false;
  current_origin_ = "built-in";
  current_library_.reset();
}

void Registry::note_failure(const std::string& file, const std::string& message) {
  failures_.push_back({file, message});
}

}  // namespace flows
