#include "flows/session.hpp"

#include <cmath>
#include <filesystem>

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include "flows/auto_tail_bound.hpp"
#include "flows/checkpoint.hpp"
#include "flows/data/columns.hpp"
#include "flows/data/dequantize.hpp"
#include "flows/error.hpp"
#include "flows/plugin_loader.hpp"
#include "flows/streams.hpp"

namespace flows {

namespace fs = std::filesystem;

void require_finite(const Matrix& m, const std::string& what) {
  const Real* data = m.data();
  for (std::size_t i = 0; i < m.size(); ++i)
    if (!std::isfinite(data[i])) {
      const Index cols = m.shape(1);
      throw DataError(fmt::format("{}: row {}, column {} is {} (rows and columns count from 0)",
                                  what, i / cols, i % cols, data[i]));
    }
}

namespace {

// The splits must fit together: the same x columns, one context row per data
// row with one column per named context column, and finite values.
void check_data(const DataSplits& d, const std::string& origin) {
  if (d.train.shape(0) == 0 || d.train.shape(1) == 0)
    throw DataError(fmt::format("{}: the training data is empty ([{} x {}])", origin,
                                d.train.shape(0), d.train.shape(1)));
  const Index dim = d.train.shape(1);
  if (!d.columns.empty() && d.columns.size() != dim)
    throw DataError(fmt::format("{}: {} column names ({}) for {} x columns", origin,
                                d.columns.size(), join_column_names(d.columns), dim));
  if (d.val.size() != 0 && d.val.shape(1) != dim)
    throw DataError(fmt::format("{}: the validation data has {} columns, the training data {}",
                                origin, d.val.shape(1), dim));
  const Index k = d.context_dim();
  const std::pair<const char*, std::pair<const Matrix*, const Matrix*>> splits[] = {
      {"training", {&d.train, &d.train_context}}, {"validation", {&d.val, &d.val_context}}};
  for (const auto& [name, pair] : splits) {
    const Matrix& x = *pair.first;
    const Matrix& c = *pair.second;
    if (k == 0 && c.size() != 0)
      throw DataError(
          fmt::format("{}: a {} context is given but no context columns are named", origin, name));
    if (k > 0 && x.shape(0) > 0 && (c.shape(0) != x.shape(0) || c.shape(1) != k))
      throw DataError(fmt::format(
          "{}: the {} data has {} rows, so its context must be [{} x {}] ({}); it is [{} x {}]",
          origin, name, x.shape(0), x.shape(0), k, join_column_names(d.context_columns), c.shape(0),
          c.shape(1)));
    require_finite(x, fmt::format("{}: the {} data", origin, name));
    if (k > 0) require_finite(c, fmt::format("{}: the {} context", origin, name));
  }
}

// A section's text as a mapping, so that malformed YAML is reported against
// the text the caller wrote.
std::string section_text(const std::string& text, const std::string& origin,
                         const std::string& section) {
  if (text.find_first_not_of(" \t\r\n") == std::string::npos) return "{}";
  ConfigNode node = ConfigNode::parse(text, origin);
  if (!node.is_map())
    throw ConfigError(fmt::format("{}: {}: expected a mapping of keys", origin, section));
  return text;
}

}  // namespace

Pipeline make_in_memory_pipeline(InMemoryPipeline spec) {
  const std::string& origin = spec.origin;
  check_data(spec.data, origin);
  YAML::Emitter header;
  header << YAML::BeginMap << YAML::Key << "name" << YAML::Value << spec.name << YAML::Key << "seed"
         << YAML::Value << spec.seed << YAML::EndMap;
  ConfigNode root = ConfigNode::parse(header.c_str(), origin);
  // set() keeps the marks of the section's own text, so a message's
  // line:column points into the text the caller gave for that section.
  root.set("model", section_text(spec.model_yaml, origin, "model"));
  root.set("trainer", section_text(spec.trainer_yaml, origin, "trainer"));
  root.set("data", section_text(spec.data_yaml, origin, "data"));

  Pipeline p{origin, root, ConfigNode::empty(origin, "model"), {}, {}, {}, {}, {}, {}};
  p.options.name = spec.name;
  p.options.seed = spec.seed;
  p.options.stages = {"train", "save"};
  p.root.mark_read("name");
  p.root.mark_read("seed");

  p.registry = make_registry(spec.plugin_paths);
  Registry& registry = *p.registry;

  // From here on the steps of Pipeline::load after its data set is loaded.
  const Index seed = spec.seed;
  ConfigNode data_node = p.root.child("data");
  const DequantizeOptions dequantize = DequantizeOptions::from(data_node);
  data_node.finish();  // nothing else: the rows come from the caller
  p.model_node = p.root.child("model");
  p.model_node.read("standardize", p.options.standardize);
  ConfigNode trainer_node = p.root.child("trainer", true);
  if (!trainer_node.has("type")) trainer_node.set("type", "mle");
  trainer_node.read("resume_from", p.options.resume_from);
  if (!p.options.resume_from.empty()) {
    p.options.resume_from = fs::absolute(p.options.resume_from).lexically_normal().string();
    if (!fs::is_regular_file(p.options.resume_from))
      throw trainer_node.error("resume_from",
                               fmt::format("'{}' is not a file", p.options.resume_from));
  }
  p.data = std::move(spec.data);
  const Index dim = p.data.train.shape(1);
  p.dequantize = dequantize.resolve(dim, p.data.columns);
  ModelInputs inputs;
  inputs.dim = dim;
  inputs.context_columns = p.data.context_columns;
  inputs.columns = p.data.columns;
  resolve_auto_tail_bounds(p);  // tail_bound: auto, as Pipeline::load does
  name_default_precision(p.model_node);
  p.model = build_model(p.model_node, registry, inputs, seed);
  p.model_node.finish();
  check_trainer_fits(trainer_node, *p.model.flow);
  // Integer values in the dequantized columns, the bounds check, the
  // standardization and the context standardization, as for a data set.
  fit_data_layers(p, origin + ": data");
  p.trainer = registry.make<Trainer>(
      trainer_node, BuildContext{dim, p.data.context_dim(),
                                 component_seed(seed, ComponentSeed::trainer), &registry});
  p.root.finish();
  if (!p.options.resume_from.empty()) resume_from_checkpoint(p, trainer_node);
  return p;
}

}  // namespace flows
