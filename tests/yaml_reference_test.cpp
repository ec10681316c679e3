// docs/yaml_reference.md checked against the code, so that the reference
// cannot drift: every registered component of every kind must have a section,
// and the option keys of each section must be exactly the keys its factory
// reads (ConfigNode::known_keys after building it from `type: name`). Keys
// a factory reads only when they are present are found by building once more
// with the documented key set: the build must not reject it as unknown. The
// pipeline's own sections are checked through Pipeline::load.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "flows/config.hpp"
#include "flows/error.hpp"
#include "flows/pipeline.hpp"
#include "flows/plugin_loader.hpp"
#include "flows/registry.hpp"
#include "runner_support.hpp"

namespace flows {
namespace {

namespace fs = std::filesystem;
using test_support::temp_dir;

const char* const kReference = FLOWS_SOURCE_DIR "/docs/yaml_reference.md";

// One documented key: its table row's type and default cells.
struct DocKey {
  std::string type;
  std::string default_value;
};

// One "### <kind> `<name>`" section of the reference.
struct Section {
  std::string kind;  // a Kind's name, or "pipeline"
  std::string name;
  int line = 0;
  std::map<std::string, DocKey> keys;
  // "Same options as <kind> `<name>`" / "All options of <kind> `<name>`, plus":
  // that section's keys are included too.
  std::vector<std::pair<std::string, std::string>> includes;
};

std::string trim(const std::string& s) {
  const auto begin = s.find_first_not_of(" \t");
  if (begin == std::string::npos) return "";
  const auto end = s.find_last_not_of(" \t");
  return s.substr(begin, end - begin + 1);
}

// The cells of a markdown table row ("| a | b |" -> {"a", "b"}); "\|" is not
// a separator.
std::vector<std::string> cells(const std::string& row) {
  std::vector<std::string> out;
  std::string cell;
  for (std::size_t i = 1; i < row.size(); ++i) {
    if (row[i] == '\\' && i + 1 < row.size() && row[i + 1] == '|') {
      cell += '|';
      ++i;
    } else if (row[i] == '|') {
      out.push_back(trim(cell));
      cell.clear();
    } else {
      cell += row[i];
    }
  }
  return out;
}

std::map<std::string, Section> parse_reference(const std::string& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << "cannot open " << path;
  const std::regex heading(R"(^###\s+([a-z_]+)\s+`([A-Za-z0-9_]+)`\s*$)");
  const std::regex include(R"((?:Same options as|All options of)\s+([a-z_]+)\s+`([A-Za-z0-9_]+)`)");
  const std::regex key_cell(R"(^`([A-Za-z0-9_]+)`$)");
  std::map<std::string, Section> sections;
  Section* current = nullptr;
  std::string line;
  int number = 0;
  while (std::getline(in, line)) {
    ++number;
    std::smatch m;
    if (std::regex_match(line, m, heading)) {
      const std::string id = m[1].str() + "/" + m[2].str();
      EXPECT_EQ(sections.count(id), 0u) << path << ":" << number << ": a second section for " << id;
      current = &sections[id];
      current->kind = m[1];
      current->name = m[2];
      current->line = number;
      continue;
    }
    if (line.rfind("## ", 0) == 0 || line.rfind("# ", 0) == 0 || line.rfind("#### ", 0) == 0) {
      current = nullptr;  // text outside any component's section
      continue;
    }
    if (!current) continue;
    if (std::regex_search(line, m, include)) current->includes.emplace_back(m[1], m[2]);
    if (line.rfind("|", 0) != 0) continue;
    const std::vector<std::string> row = cells(line);
    if (row.size() < 4 || !std::regex_match(row[0], m, key_cell)) continue;
    EXPECT_EQ(current->keys.count(m[1]), 0u)
        << path << ":" << number << ": key " << m[1] << " listed twice";
    current->keys[m[1]] = DocKey{row[1], row[2]};
  }
  return sections;
}

// The documented keys of a section with its includes resolved.
std::map<std::string, DocKey> documented_keys(const std::map<std::string, Section>& sections,
                                              const Section& section, int depth = 0) {
  std::map<std::string, DocKey> keys = section.keys;
  for (const auto& [kind, name] : section.includes) {
    auto found = sections.find(kind + "/" + name);
    if (found == sections.end() || depth > 4) {
      ADD_FAILURE() << kReference << ":" << section.line << ": " << section.kind << " `"
                    << section.name << "` refers to " << kind << " `" << name
                    << "`, which has no section";
      continue;
    }
    for (const auto& [key, doc] : documented_keys(sections, found->second, depth + 1))
      keys.emplace(key, doc);
  }
  keys.erase("type");  // every component's selector, documented once
  return keys;
}

// Extra YAML a component needs to build at all (required keys).
std::string required_yaml(const std::string& kind, const std::string& name,
                          const fs::path& data_file) {
  if (kind == "dataset" && (name == "csv" || name == "npy"))
    return "path: '" + data_file.string() + "'\n";
  if (kind == "bijector" && name == "bounds") return "bounds: [0, 1]\n";
  return "";
}

// A value for probing a documented key: the default when it is a plain
// literal (`...`), else one from the documented type.
std::string probe_value(const DocKey& doc) {
  const std::string& d = doc.default_value;
  if (d.size() >= 2 && d.front() == '`' && d.back() == '`' &&
      std::count(d.begin(), d.end(), '`') == 2)
    return d.substr(1, d.size() - 2);
  const std::string& t = doc.type;
  if (t.rfind("integer", 0) == 0) return "1";
  if (t.rfind("number", 0) == 0) return "0.5";
  if (t.rfind("bool", 0) == 0) return "true";
  if (t.rfind("list", 0) == 0) return "[1]";
  if (t.rfind("section", 0) == 0) return "{}";
  return "x";
}

// Built for 3-dimensional data with a 2-column context, so that conditional
// components (conditional_diagonal_normal) build too.
void build(Registry& registry, Kind kind, ConfigNode& node) {
  const BuildContext context{3, 2, 7, &registry};
  switch (kind) {
    case Kind::bijector:
      registry.make<Bijector>(node, context);
      break;
    case Kind::distribution:
      registry.make<BaseDistribution>(node, context);
      break;
    case Kind::trainer:
      registry.make<Trainer>(node, context);
      break;
    case Kind::optimizer:
      registry.make<Optimizer>(node, context);
      break;
    case Kind::ode_solver:
      registry.make<OdeSolver>(node, context);
      break;
    case Kind::dataset:
      registry.make<Dataset>(node, context);
      break;
    case Kind::transformer:
      registry.make<Transformer>(node, context);
      break;
  }
}

// The option keys a component reads when built from `type: name` (and its
// required keys), without `type`.
std::set<std::string> read_keys(Registry& registry, Kind kind, const std::string& yaml) {
  ConfigNode node = ConfigNode::parse(yaml, "yaml_reference_test");
  build(registry, kind, node);
  std::vector<std::string> keys = node.known_keys();
  std::set<std::string> out(keys.begin(), keys.end());
  out.erase("type");
  return out;
}

std::string join(const std::set<std::string>& keys) {
  std::string out;
  for (const auto& k : keys) out += (out.empty() ? "" : ", ") + k;
  return out.empty() ? "(none)" : out;
}

// The registry the runner sees: built-ins and the shipped plugins of this build.
std::shared_ptr<Registry> full_registry() {
  for (const char* file : {
#ifdef FLOWS_PLUGIN_BASIC
           FLOWS_PLUGIN_BASIC,
#endif
#ifdef FLOWS_PLUGIN_MAF
           FLOWS_PLUGIN_MAF,
#endif
#ifdef FLOWS_PLUGIN_SPLINE
           FLOWS_PLUGIN_SPLINE,
#endif
#ifdef FLOWS_PLUGIN_FLOW_MATCHING
           FLOWS_PLUGIN_FLOW_MATCHING,
#endif
           ""}) {
    if (*file) {
      EXPECT_TRUE(fs::exists(file))
          << "shipped plugin " << file << " is not built; build every plugin before this test";
    }
  }
  auto registry = std::make_shared<Registry>();
  register_builtins(*registry);
  load_plugins({FLOWS_PLUGIN_DIR}, *registry);
  for (const auto& failure : registry->failures())
    ADD_FAILURE() << "plugin " << failure.file << " failed to load: " << failure.message;
  return registry;
}

TEST(YamlReference, EveryRegisteredComponentHasASectionWithExactlyItsKeys) {
  const auto sections = parse_reference(kReference);
  ASSERT_FALSE(sections.empty()) << kReference << " has no '### <kind> `<name>`' sections";
  auto registry = full_registry();
  const fs::path dir = temp_dir("yaml_reference");
  const fs::path data_file = dir / "data.txt";
  std::ofstream(data_file) << "1,2,3\n";

  std::set<std::string> registered;
  for (const auto& entry : registry->listing()) {
    const std::string kind = kind_name(entry.kind);
    const std::string id = kind + "/" + entry.name;
    registered.insert(id);
    SCOPED_TRACE(id + " (from " + entry.origin + ")");
    auto found = sections.find(id);
    if (found == sections.end()) {
      ADD_FAILURE() << kind << " `" << entry.name << "` (from " << entry.origin
                    << ") is registered but has no section '### " << kind << " `" << entry.name
                    << "`' in " << kReference;
      continue;
    }
    const std::map<std::string, DocKey> documented = documented_keys(sections, found->second);
    const std::string base =
        "type: " + entry.name + "\n" + required_yaml(kind, entry.name, data_file);
    std::set<std::string> read;
    try {
      read = read_keys(*registry, entry.kind, base);
    } catch (const std::exception& e) {
      ADD_FAILURE() << "cannot build " << id << " from its minimal options: " << e.what();
      continue;
    }
    for (const std::string& key : read)
      if (!documented.count(key))
        ADD_FAILURE() << kind << " `" << entry.name << "` reads key `" << key << "`, which "
                      << kReference << ":" << found->second.line << " does not document";
    for (const auto& [key, doc] : documented) {
      if (read.count(key)) continue;
      // Read only when present? Build with it set: it must not be unknown.
      const std::string yaml = base + key + ": " + probe_value(doc) + "\n";
      try {
        read_keys(*registry, entry.kind, yaml);
      } catch (const ConfigError& e) {
        const std::string what = e.what();
        if (what.find(key + ": unknown key") != std::string::npos)
          ADD_FAILURE() << kReference << ":" << found->second.line << " documents key `" << key
                        << "` of " << kind << " `" << entry.name
                        << "`, which the code does not read (" << what << ")";
      } catch (const std::exception&) {
        // Rejected for another reason (its value): the key was read.
      }
    }
  }
  for (const auto& [id, section] : sections) {
    if (section.kind == "pipeline") continue;
    EXPECT_TRUE(registered.count(id))
        << kReference << ":" << section.line << ": section " << section.kind << " `" << section.name
        << "` names no registered component";
  }
}

// The keys listed by the error for an unknown key `probe` in `section` of a
// pipeline ("...: section.probe: unknown key...; valid keys here: a, b").
std::set<std::string> section_keys_from_error(const fs::path& file, const std::string& section,
                                              std::string& problem) {
  const std::string probe = "zz_reference_probe";
  try {
    Pipeline::load(file.string(), {section + "." + probe + "=1"});
    problem = "the pipeline accepted an unknown key in section `" + section + "`";
    return {};
  } catch (const ConfigError& e) {
    const std::string what = e.what();
    const std::string marker = "valid keys here: ";
    const auto at = what.find(marker);
    if (what.find(section + "." + probe + ": unknown key") == std::string::npos ||
        at == std::string::npos) {
      problem = "the pipeline does not read a section `" + section + "`: " + what;
      return {};
    }
    std::set<std::string> keys;
    std::stringstream list(what.substr(at + marker.size()));
    std::string key;
    while (std::getline(list, key, ',')) {
      key = trim(key);
      if (!key.empty() && key != "(none)") keys.insert(key);
    }
    keys.erase("type");
    return keys;
  }
}

TEST(YamlReference, PipelineKeysMatchTheCode) {
  const auto sections = parse_reference(kReference);
  auto registry = full_registry();
  const fs::path dir = temp_dir("yaml_reference_pipeline");
  const fs::path file = dir / "pipeline.yaml";
  std::ofstream(file) << "name: reference\n"
                         "output: "
                      << (dir / "out").string()
                      << "\n"
                         "data: {type: moons, n_train: 64, n_val: 16, n_test: 16}\n"
                         "model:\n"
                         "  bijectors:\n"
                         "    - {type: affine}\n"
                         "trainer: {type: mle, steps: 1}\n";
  Pipeline pipeline = Pipeline::load(file.string());

  auto check = [&](const std::string& section, std::set<std::string> read) {
    read.erase("type");
    auto found = sections.find("pipeline/" + section);
    if (found == sections.end()) {
      ADD_FAILURE() << kReference << " has no section '### pipeline `" << section << "`'";
      return;
    }
    std::set<std::string> documented;
    for (const auto& [key, doc] : documented_keys(sections, found->second)) documented.insert(key);
    for (const auto& key : read)
      if (!documented.count(key))
        ADD_FAILURE() << "the pipeline reads key `" << key << "` of section `" << section
                      << "`, which " << kReference << ":" << found->second.line
                      << " does not document";
    for (const auto& key : documented)
      if (!read.count(key))
        ADD_FAILURE() << kReference << ":" << found->second.line << " documents key `" << key
                      << "` of pipeline section `" << section
                      << "`, which the pipeline does not read (it reads: " << join(read) << ")";
  };

  const std::vector<std::string> root = pipeline.root.known_keys();
  check("root", std::set<std::string>(root.begin(), root.end()));
  const std::vector<std::string> model = pipeline.model_node.known_keys();
  check("model", std::set<std::string>(model.begin(), model.end()));

  // Sections read by the pipeline itself, found from the unknown-key error.
  for (const auto& [id, section] : sections) {
    if (section.kind != "pipeline" || section.name == "root" || section.name == "model") continue;
    std::string problem;
    std::set<std::string> read = section_keys_from_error(file, section.name, problem);
    if (!problem.empty()) {
      ADD_FAILURE() << kReference << ":" << section.line << ": " << problem;
      continue;
    }
    if (section.name == "trainer") {
      // The trainer section is shared: the pipeline's own keys are those the
      // trainer (mle here) does not read itself.
      for (const std::string& key : read_keys(*registry, Kind::trainer, "type: mle\n"))
        read.erase(key);
    }
    if (section.name == "data") {
      // The data section is shared too: the pipeline reads the dequantization
      // keys, the data set (moons here) the rest.
      for (const std::string& key : read_keys(*registry, Kind::dataset, "type: moons\n"))
        read.erase(key);
    }
    check(section.name, read);
  }

  // The default stage list is documented as it is in the code.
  auto root_section = sections.find("pipeline/root");
  ASSERT_NE(root_section, sections.end());
  auto stages = root_section->second.keys.find("stages");
  ASSERT_NE(stages, root_section->second.keys.end()) << "root key `stages` is not documented";
  std::string expected = "`[";
  const std::vector<std::string> defaults = PipelineOptions{}.stages;
  for (std::size_t k = 0; k < defaults.size(); ++k) expected += (k ? ", " : "") + defaults[k];
  expected += "]`";
  EXPECT_EQ(stages->second.default_value, expected)
      << "the documented default of `stages` differs from PipelineOptions";
}

}  // namespace
}  // namespace flows
