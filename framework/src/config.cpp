#include "flows/config.hpp"

#include <algorithm>
#include <fstream>
#include <set>
#include <sstream>

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

namespace flows {

struct ConfigNode::Impl {
  YAML::Node node;
  std::string origin;           // file path, or a description of the text's source
  std::string path;             // dotted key path from the root
  std::set<std::string> known;  // keys some reader asked for
};

namespace {

std::string join_path(const std::string& path, const std::string& key) {
  return path.empty() ? key : path + "." + key;
}

std::string location(const std::string& origin, const YAML::Mark& mark) {
  if (mark.line < 0) return origin;
  return fmt::format("{}:{}:{}", origin, mark.line + 1, mark.column + 1);
}

const char* type_name(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Map:
      return "a mapping";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Null:
      return "empty";
    case YAML::NodeType::Scalar:
      return "a scalar";
    default:
      return "undefined";
  }
}

}  // namespace

ConfigNode::ConfigNode(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
ConfigNode::~ConfigNode() = default;
ConfigNode::ConfigNode(const ConfigNode&) = default;
ConfigNode& ConfigNode::operator=(const ConfigNode&) = default;
ConfigNode::ConfigNode(ConfigNode&&) noexcept = default;
ConfigNode& ConfigNode::operator=(ConfigNode&&) noexcept = default;

ConfigNode ConfigNode::parse(const std::string& text, const std::string& origin) {
  auto impl = std::make_shared<Impl>();
  impl->origin = origin;
  try {
    impl->node = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    throw ConfigError(fmt::format("{}: malformed YAML: {}", location(origin, e.mark), e.msg));
  }
  if (!impl->node.IsDefined() || impl->node.IsNull()) impl->node = YAML::Node(YAML::NodeType::Map);
  return ConfigNode(std::move(impl));
}

ConfigNode ConfigNode::load_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ConfigError(fmt::format("{}: cannot open the pipeline file", path));
  std::stringstream text;
  text << in.rdbuf();
  return parse(text.str(), path);
}

ConfigNode ConfigNode::empty(const std::string& origin, const std::string& path) {
  auto impl = std::make_shared<Impl>();
  impl->origin = origin;
  impl->path = path;
  impl->node = YAML::Node(YAML::NodeType::Map);
  return ConfigNode(std::move(impl));
}

const std::string& ConfigNode::path() const {
  return impl_->path;
}
const std::string& ConfigNode::origin() const {
  return impl_->origin;
}

std::string ConfigNode::where(const std::string& key) const {
  const YAML::Node& n = impl_->node;
  if (!key.empty() && n.IsMap()) {
    for (auto it = n.begin(); it != n.end(); ++it)
      if (it->first.Scalar() == key) return location(impl_->origin, it->first.Mark());
  }
  return location(impl_->origin, n.Mark());
}

bool ConfigNode::is_map() const {
  return impl_->node.IsMap();
}
bool ConfigNode::is_sequence() const {
  return impl_->node.IsSequence();
}
bool ConfigNode::is_null() const {
  return impl_->node.IsNull();
}

bool ConfigNode::has(const std::string& key) const {
  const YAML::Node& n = impl_->node;
  return n.IsMap() && n[key].IsDefined();
}

std::vector<std::string> ConfigNode::keys() const {
  std::vector<std::string> out;
  const YAML::Node& n = impl_->node;
  if (n.IsMap())
    for (auto it = n.begin(); it != n.end(); ++it) out.push_back(it->first.Scalar());
  return out;
}

ConfigError ConfigNode::error(const std::string& key, const std::string& message) const {
  std::string p = key.empty() ? impl_->path : join_path(impl_->path, key);
  if (p.empty()) return ConfigError(fmt::format("{}: {}", where(key), message));
  return ConfigError(fmt::format("{}: {}: {}", where(key), p, message));
}

void ConfigNode::expect(bool ok, const std::string& key, const std::string& message) const {
  if (!ok) throw error(key, message);
}

void ConfigNode::expect_one_of(const std::string& key, const std::string& value,
                               const std::vector<std::string>& choices) const {
  if (std::find(choices.begin(), choices.end(), value) != choices.end()) return;
  std::string list;
  for (const auto& c : choices) list += (list.empty() ? "" : ", ") + c;
  std::string hint = closest_match(value, choices);
  throw error(key, fmt::format("'{}' is not one of: {}{}", value, list,
                               hint.empty() ? "" : fmt::format(" (did you mean '{}'?)", hint)));
}

namespace {

// The scalar under key, or an undefined node; records the key as known.
YAML::Node lookup(const YAML::Node& n, const std::string& key, std::set<std::string>& known) {
  known.insert(key);
  if (!n.IsMap()) return YAML::Node(YAML::NodeType::Undefined);
  return n[key];
}

template <class T>
bool decode_scalar(const YAML::Node& v, T& out) {
  if (!v.IsScalar()) return false;
  return YAML::convert<T>::decode(v, out);
}

}  // namespace

void ConfigNode::read(const std::string& key, Real& out) {
  YAML::Node v = lookup(impl_->node, key, impl_->known);
  if (!v.IsDefined()) return;
  Real value{};
  if (!decode_scalar(v, value))
    throw error(key, fmt::format("expected a number, got {}",
                                 v.IsScalar() ? "'" + v.Scalar() + "'" : type_name(v)));
  out = value;
}

void ConfigNode::read(const std::string& key, int& out) {
  YAML::Node v = lookup(impl_->node, key, impl_->known);
  if (!v.IsDefined()) return;
  long long value{};
  if (!decode_scalar(v, value) || value < INT32_MIN || value > INT32_MAX)
    throw error(key, fmt::format("expected an integer, got {}",
                                 v.IsScalar() ? "'" + v.Scalar() + "'" : type_name(v)));
  out = static_cast<int>(value);
}

void ConfigNode::read(const std::string& key, Index& out) {
  YAML::Node v = lookup(impl_->node, key, impl_->known);
  if (!v.IsDefined()) return;
  long long value{};
  if (!decode_scalar(v, value))
    throw error(key, fmt::format("expected a non-negative integer, got {}",
                                 v.IsScalar() ? "'" + v.Scalar() + "'" : type_name(v)));
  if (value < 0) throw error(key, fmt::format("must be >= 0, got {}", value));
  out = static_cast<Index>(value);
}

void ConfigNode::read(const std::string& key, bool& out) {
  YAML::Node v = lookup(impl_->node, key, impl_->known);
  if (!v.IsDefined()) return;
  bool value{};
  if (!decode_scalar(v, value))
    throw error(key, fmt::format("expected true or false, got {}",
                                 v.IsScalar() ? "'" + v.Scalar() + "'" : type_name(v)));
  out = value;
}

void ConfigNode::read(const std::string& key, std::string& out) {
  YAML::Node v = lookup(impl_->node, key, impl_->known);
  if (!v.IsDefined()) return;
  if (!v.IsScalar()) throw error(key, fmt::format("expected a string, got {}", type_name(v)));
  out = v.Scalar();
}

namespace {

template <class T, class Check>
std::vector<T> read_list(const ConfigNode& self, const YAML::Node& v, const std::string& key,
                         const char* what, Check check) {
  if (!v.IsSequence())
    throw self.error(key, fmt::format("expected a list of {}, got {}", what, type_name(v)));
  std::vector<T> values;
  for (std::size_t i = 0; i < v.size(); ++i) {
    T value{};
    if (!decode_scalar(v[i], value) || !check(value))
      throw self.error(key,
                       fmt::format("element {} must be {}, got {}", i, what,
                                   v[i].IsScalar() ? "'" + v[i].Scalar() + "'" : type_name(v[i])));
    values.push_back(value);
  }
  return values;
}

}  // namespace

void ConfigNode::read(const std::string& key, std::vector<Index>& out) {
  YAML::Node v = lookup(impl_->node, key, impl_->known);
  if (!v.IsDefined()) return;
  auto values = read_list<long long>(*this, v, key, "non-negative integers",
                                     [](long long x) { return x >= 0; });
  out.assign(values.begin(), values.end());
}

void ConfigNode::read(const std::string& key, std::vector<Real>& out) {
  YAML::Node v = lookup(impl_->node, key, impl_->known);
  if (!v.IsDefined()) return;
  out = read_list<Real>(*this, v, key, "numbers", [](Real) { return true; });
}

void ConfigNode::read(const std::string& key, std::vector<std::string>& out) {
  YAML::Node v = lookup(impl_->node, key, impl_->known);
  if (!v.IsDefined()) return;
  out = read_list<std::string>(*this, v, key, "strings", [](const std::string&) { return true; });
}

std::string ConfigNode::require_string(const std::string& key) {
  if (!impl_->node.IsMap()) throw error("", fmt::format("expected a mapping with key '{}'", key));
  if (!has(key)) {
    impl_->known.insert(key);
    throw error(key, "missing required key");
  }
  std::string value;
  read(key, value);
  return value;
}

ConfigNode ConfigNode::child(const std::string& key, bool optional) {
  impl_->known.insert(key);
  if (!impl_->node.IsMap())
    throw error("", fmt::format("expected a mapping, got {}", type_name(impl_->node)));
  YAML::Node v = static_cast<const YAML::Node&>(impl_->node)[key];
  auto impl = std::make_shared<Impl>();
  impl->origin = impl_->origin;
  impl->path = join_path(impl_->path, key);
  if (!v.IsDefined() || v.IsNull()) {
    if (!optional) throw error(key, "missing required section");
    impl->node = YAML::Node(YAML::NodeType::Map);
    impl->node.SetStyle(YAML::EmitterStyle::Flow);
  } else {
    if (!v.IsMap()) throw error(key, fmt::format("expected a mapping, got {}", type_name(v)));
    impl->node = v;
  }
  return ConfigNode(std::move(impl));
}

std::vector<ConfigNode> ConfigNode::elements() const {
  std::vector<ConfigNode> out;
  const YAML::Node& n = impl_->node;
  if (!n.IsSequence()) return out;
  for (std::size_t i = 0; i < n.size(); ++i) {
    auto impl = std::make_shared<Impl>();
    impl->origin = impl_->origin;
    impl->path = fmt::format("{}[{}]", impl_->path, i);
    impl->node = n[i];
    out.push_back(ConfigNode(std::move(impl)));
  }
  return out;
}

bool ConfigNode::has_list(const std::string& key) const {
  if (!has(key)) return false;
  return static_cast<const YAML::Node&>(impl_->node)[key].IsSequence();
}

std::vector<ConfigNode> ConfigNode::children(const std::string& key) {
  impl_->known.insert(key);
  if (!has(key)) return {};
  YAML::Node v = static_cast<const YAML::Node&>(impl_->node)[key];
  if (!v.IsSequence()) throw error(key, fmt::format("expected a list, got {}", type_name(v)));
  auto impl = std::make_shared<Impl>();
  impl->origin = impl_->origin;
  impl->path = join_path(impl_->path, key);
  impl->node = v;
  std::vector<ConfigNode> out = ConfigNode(std::move(impl)).elements();
  for (const ConfigNode& e : out)
    if (!e.is_map())
      throw e.error("", fmt::format("expected a mapping, got {}", type_name(e.impl_->node)));
  return out;
}

void ConfigNode::mark_read(const std::string& key) {
  impl_->known.insert(key);
}

void ConfigNode::finish() const {
  const YAML::Node& n = impl_->node;
  if (!n.IsMap()) return;
  std::vector<std::string> known(impl_->known.begin(), impl_->known.end());
  for (auto it = n.begin(); it != n.end(); ++it) {
    const std::string key = it->first.Scalar();
    if (impl_->known.count(key)) continue;
    std::string hint = closest_match(key, known);
    std::string valid;
    for (const auto& k : known) valid += (valid.empty() ? "" : ", ") + k;
    throw error(key, fmt::format("unknown key{}; valid keys here: {}",
                                 hint.empty() ? "" : fmt::format(" (did you mean '{}'?)", hint),
                                 valid.empty() ? "(none)" : valid));
  }
}

std::vector<std::string> ConfigNode::known_keys() const {
  return std::vector<std::string>(impl_->known.begin(), impl_->known.end());
}

std::string ConfigNode::dump() const {
  YAML::Emitter out;
  out << impl_->node;
  return out.c_str();
}

void ConfigNode::set(const std::string& dotted_path, const std::string& yaml_value) {
  YAML::Node value;
  try {
    value = YAML::Load(yaml_value);
  } catch (const YAML::Exception& e) {
    throw ConfigError(
        fmt::format("override {}={}: malformed value: {}", dotted_path, yaml_value, e.msg));
  }
  YAML::Node cur = impl_->node;
  std::stringstream parts(dotted_path);
  std::string part, next;
  std::getline(parts, part, '.');
  // A numeric part indexes a list ("model.bijectors.0.layers").
  auto list_index = [&](const std::string& key) -> std::optional<std::size_t> {
    if (!cur.IsSequence() || key.empty() ||
        key.find_first_not_of("0123456789") != std::string::npos)
      return std::nullopt;
    const std::size_t i = std::stoul(key);
    if (i >= cur.size())
      throw ConfigError(fmt::format("override {}: index {} is past the end of a list of {}",
                                    dotted_path, i, cur.size()));
    return i;
  };
  while (std::getline(parts, next, '.')) {
    if (auto i = list_index(part)) {
      cur.reset(cur[*i]);
    } else {
      if (!cur.IsMap() && !cur.IsNull())
        throw ConfigError(fmt::format("override {}: '{}' is not a mapping", dotted_path, part));
      YAML::Node child = cur[part];
      if (!child.IsDefined() || child.IsNull()) cur[part] = YAML::Node(YAML::NodeType::Map);
      cur.reset(cur[part]);
    }
    part = next;
  }
  if (part.empty()) throw ConfigError(fmt::format("override '{}': empty key", dotted_path));
  if (auto i = list_index(part)) {
    cur[*i] = value;
  } else {
    cur[part] = value;
  }
}

std::size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<std::size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      std::size_t sub = prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, sub});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

std::string closest_match(const std::string& name, const std::vector<std::string>& candidates) {
  std::string best;
  std::size_t best_distance = std::string::npos;
  for (const auto& c : candidates) {
    std::size_t d = edit_distance(name, c);
    if (d < best_distance) best_distance = d, best = c;
  }
  // Close means at most a third of the longer name changed (at least 2 edits allowed).
  std::size_t limit = std::max<std::size_t>(2, std::max(name.size(), best.size()) / 3);
  return best_distance <= limit ? best : std::string();
}

void apply_overrides(ConfigNode& root, const std::vector<std::string>& overrides) {
  for (const std::string& item : overrides) {
    const auto eq = item.find('=');
    if (eq == std::string::npos || eq == 0)
      throw ConfigError(fmt::format("override '{}': expected KEY=VALUE", item));
    root.set(item.substr(0, eq), item.substr(eq + 1));
  }
}

}  // namespace flows
