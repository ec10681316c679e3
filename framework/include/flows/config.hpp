#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>
#include "flows/export.hpp"

#include "flows/error.hpp"
#include "flows/tensor.hpp"

namespace flows {

// A checked view of one YAML mapping or value of a pipeline. Each component
// reads its options from a ConfigNode with read(); wrong types and failed
// checks raise ConfigError naming file, line, column and key path; finish()
// then rejects every key that nothing read.
//
//   struct AdamOptions {
//     Real lr = 1e-3;  // step size
//     static AdamOptions from(ConfigNode& node) {
//       AdamOptions o;
//       node.read("lr", o.lr);
//       node.expect(o.lr > 0, "lr", "must be > 0");
//       node.finish();
//       return o;
//     }
//   };
class FLOWS_API ConfigNode {
 public:
  // Parses a file; malformed YAML is a ConfigError with its line.
  static ConfigNode load_file(const std::string& path);
  // Parses text; `origin` names it in messages.
  static ConfigNode parse(const std::string& text, const std::string& origin);
  // An empty mapping (for components built with all defaults).
  static ConfigNode empty(const std::string& origin, const std::string& path);

  // Dotted key path of this node from the file's root ("" at the root).
  const std::string& path() const;
  const std::string& origin() const;
  // "file:line:column" of this node, or of its key `key` when given and present.
  std::string where(const std::string& key = "") const;

  bool is_map() const;
  bool is_sequence() const;
  bool is_null() const;
  bool has(const std::string& key) const;
  // Whether the value under `key` is a list (for keys that take a name or a list).
  bool has_list(const std::string& key) const;
  // Keys of a mapping, in file order.
  std::vector<std::string> keys() const;

  // Each read(key, out) leaves `out` unchanged when the key is absent, and
  // raises ConfigError when it is present with the wrong type.
  void read(const std::string& key, Real& out);
  void read(const std::string& key, int& out);
  // Index is std::size_t (also used for seeds); rejects negatives.
  void read(const std::string& key, Index& out);
  void read(const std::string& key, bool& out);
  void read(const std::string& key, std::string& out);
  void read(const std::string& key, std::vector<Index>& out);
  void read(const std::string& key, std::vector<Real>& out);
  void read(const std::string& key, std::vector<std::string>& out);

  // The string under `key`; absent is an error.
  std::string require_string(const std::string& key);
  // Raises "<where>: <path.key>: <message>" unless ok.
  void expect(bool ok, const std::string& key, const std::string& message) const;
  // Raises unless `out` is one of `choices`, listing them.
  void expect_one_of(const std::string& key, const std::string& value,
                     const std::vector<std::string>& choices) const;
  // A ConfigError for `key` (or this node when empty) with location and path.
  ConfigError error(const std::string& key, const std::string& message) const;

  // The mapping under `key`. Absent: an error, or an empty mapping when
  // `optional` (so defaults apply).
  ConfigNode child(const std::string& key, bool optional = false);
  // The elements of the sequence under `key` (each a ConfigNode); absent is
  // an empty list.
  std::vector<ConfigNode> children(const std::string& key);
  // The elements of this node when it is a sequence.
  std::vector<ConfigNode> elements() const;

  // Marks `key` read without reading it (keys consumed by someone else).
  void mark_read(const std::string& key);
  // Raises ConfigError for the first key nothing read, naming the closest known key.
  void finish() const;
  // The keys some reader asked for on this node so far (read, require_string,
  // child, children, mark_read), sorted: the options a component understands.
  // Keys of nested sections belong to the child nodes, not to this one.
  std::vector<std::string> known_keys() const;

  // The node as YAML text (what a checkpoint stores).
  std::string dump() const;
  // Sets the value at a dotted path below this node (command-line overrides);
  // `yaml_value` is parsed as YAML. Creates missing mappings.
  void set(const std::string& dotted_path, const std::string& yaml_value);

  ~ConfigNode();
  ConfigNode(const ConfigNode&);
  ConfigNode& operator=(const ConfigNode&);
  ConfigNode(ConfigNode&&) noexcept;
  ConfigNode& operator=(ConfigNode&&) noexcept;

 private:
  struct Impl;
  explicit ConfigNode(std::shared_ptr<Impl> impl);
  std::shared_ptr<Impl> impl_;
};

// Applies command-line overrides ("dotted.key=yaml value", as `flows run
// --set` takes them) to `root`, in order; ConfigError naming an override
// without a key and '='.
FLOWS_API void apply_overrides(ConfigNode& root, const std::vector<std::string>& overrides);

// Levenshtein distance, for "did you mean" suggestions.
std::size_t edit_distance(const std::string& a, const std::string& b);
// The candidate closest to `name`, or "" when none is reasonably close.
std::string closest_match(const std::string& name, const std::vector<std::string>& candidates);

}  // namespace flows
