#include "flows/model.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "flows/context_encoder.hpp"
#include "flows/data/columns.hpp"
#include "flows/nn/activation.hpp"
#include "flows/precision.hpp"
#include "flows/streams.hpp"

namespace flows {

namespace {

// Adds the networks of the mapping `node` (at `path`) and of every mapping
// below it to `sizes`. Reads a copy of the model section, so that nothing is
// marked read; a value of the wrong type is left to its component to name.
void add_networks(ConfigNode node, const std::string& path, NetworkSizes& sizes) {
  std::vector<Index> hidden;
  Index layers = 1;
  try {
    if (node.has_list("hidden")) node.read("hidden", hidden);
    node.read("layers", layers);
  } catch (const ConfigError&) {
  }
  if (!hidden.empty()) {
    const double copies = std::clamp<double>(static_cast<double>(layers), 1, 1000);
    double parameters = 0, units = 0, below = 1;  // from one input
    std::string widths;
    for (Index h : hidden) {
      const double width = static_cast<double>(h);
      parameters += below * width + width;
      units += width;
      below = width;
      widths += fmt::format("{}{}", widths.empty() ? "" : ", ", h);
    }
    parameters = copies * (parameters + below + 1);  // to one output
    ++sizes.networks;
    if (parameters > sizes.largest_parameters || sizes.largest.empty()) {
      sizes.largest = fmt::format("{}.hidden = [{}]", path, widths);
      sizes.largest_parameters = parameters;
    }
    sizes.parameters += parameters;
    sizes.activations += copies * units;
  }
  for (const std::string& key : node.keys()) {
    if (key == "hidden") continue;
    try {
      if (node.has_list(key)) {
        const std::vector<ConfigNode> items = node.children(key);
        for (std::size_t k = 0; k < items.size(); ++k)
          if (items[k].is_map())
            add_networks(items[k], fmt::format("{}.{}[{}]", path, key, k), sizes);
      } else {
        ConfigNode child = node.child(key);
        if (child.is_map()) add_networks(child, path + "." + key, sizes);
      }
    } catch (const ConfigError&) {  // a scalar, or a list of scalars
    }
  }
}

}  // namespace

NetworkSizes network_sizes(const ConfigNode& model_node) {
  NetworkSizes sizes;
  try {  // a section whose dump does not parse again is left to its components
    ConfigNode copy = ConfigNode::parse(model_node.dump(), model_node.origin());
    if (copy.is_map())
      add_networks(copy, model_node.path().empty() ? "model" : model_node.path(), sizes);
  } catch (const ConfigError&) {
    return NetworkSizes{};
  }
  return sizes;
}

ContextEmbeddingOptions ContextEmbeddingOptions::from(ConfigNode& node) {
  ContextEmbeddingOptions o;
  node.read("hidden", o.hidden);
  node.read("features", o.features);
  node.read("activation", o.activation);
  node.expect(o.features >= 1, "features", "must be >= 1");
  for (Index width : o.hidden) node.expect(width >= 1, "hidden", "every width must be >= 1");
  node.expect_one_of("activation", o.activation, nn::Activation::names());
  node.finish();
  return o;
}

void name_default_precision(ConfigNode& model_node) {
  if (!model_node.has("precision")) model_node.set("precision", "float32");
}

Model build_model(ConfigNode& model_node, Registry& registry, const ModelInputs& inputs,
                  Index seed) {
  const Index dim = inputs.dim;
  // Absent, float64: what every model saved before the key existed computed in.
  std::string precision_key = "float64";
  model_node.read("precision", precision_key);
  model_node.expect_one_of("precision", precision_key, precision_names());
  const Precision precision = precision_from_name(precision_key);
  const Index context_columns = inputs.context_columns.size();
  std::shared_ptr<ContextEncoder> encoder;
  model_node.mark_read("context_embedding");  // a known key of the section, used or not
  if (model_node.has("context_embedding") && context_columns == 0)
    throw model_node.error("context_embedding",
                           "the data has no context columns to embed (give data.context_columns, "
                           "or a data set with a context)");
  if (context_columns > 0) {
    ContextEncoder::EmbeddingOptions embedding;  // none: standardization only
    if (model_node.has("context_embedding")) {
      ConfigNode node = model_node.child("context_embedding");
      const ContextEmbeddingOptions o = ContextEmbeddingOptions::from(node);
      embedding.hidden = o.hidden;
      embedding.features = o.features;
      embedding.activation = nn::Activation::from_name(o.activation);
      embedding.precision = precision;
    }
    // A stream of its own, so the other components' initialisation is as
    // for an unconditional model.
    Rng rng(component_seed(seed, ComponentSeed::context_encoder));
    encoder = std::make_shared<ContextEncoder>(context_columns, embedding, rng);
  }
  const Index width = encoder ? encoder->output_dim() : 0;

  // Defaults are written into the section, so that a checkpoint's copy names them.
  if (!model_node.has("base")) model_node.set("base", "{type: standard_normal}");
  ConfigNode base_node = model_node.child("base");
  if (!base_node.has("type")) base_node.set("type", "standard_normal");
  auto base = registry.make<BaseDistribution>(
      base_node, BuildContext{dim, width, component_seed(seed, ComponentSeed::base_distribution),
                              &registry, precision});
  std::vector<std::shared_ptr<Bijector>> chain;
  std::vector<ConfigNode> items = model_node.children("bijectors");
  if (model_node.has("bijectors") && items.empty())
    throw model_node.error("bijectors",
                           "an empty list: give at least one bijector (or leave bijectors out "
                           "for a model that is the base distribution alone)");
  for (std::size_t k = 0; k < items.size(); ++k)
    chain.push_back(registry.make<Bijector>(
        items[k], BuildContext{dim, width, bijector_seed(seed, k), &registry, precision}));

  std::vector<std::string> readers;  // components that read the context
  if (base->context_dim() > 0) readers.push_back("base " + base_node.require_string("type"));
  for (std::size_t k = 0; k < chain.size(); ++k)
    if (chain[k]->context_dim() > 0)
      readers.push_back(fmt::format("bijectors[{}] {}", k, chain[k]->name()));
  if (context_columns > 0 && readers.empty())
    throw model_node.error(
        "",
        fmt::format("the data has context column{} {}, but no component of the model reads a "
                    "context: use a conditional bijector (maf, nsf_autoregressive, "
                    "nsf_coupling, affine_coupling, flow_matching, ...) or base "
                    "(conditional_diagonal_normal), "
                    "or give the data no context_columns",
                    context_columns == 1 ? "" : "s", join_column_names(inputs.context_columns)));
  if (context_columns == 0 && !readers.empty())
    throw model_node.error(
        "", fmt::format("{} reads a context, but the data has no context columns (give "
                        "data.context_columns, or a data set with a context)",
                        join_column_names(readers)));
  Model model;
  model.flow = std::make_shared<Flow>(base, chain, encoder);
  std::vector<ColumnBounds> bounds = read_bounds(model_node, "bounds", dim, inputs.columns);
  if (std::any_of(bounds.begin(), bounds.end(), [](const ColumnBounds& b) { return b.bounded(); }))
    model.bounds = std::make_shared<Bounds>(std::move(bounds), inputs.columns);
  return model;
}

void prepend_data_layers(Model& model) {
  if (model.standardize) model.flow->prepend(model.standardize);
  if (model.bounds) model.flow->prepend(model.bounds);
}

}  // namespace flows
