#include "flows/pipeline.hpp"

#include <filesystem>

#include <fmt/format.h>

#include "flows/checkpoint.hpp"
#include "flows/plugin_loader.hpp"

namespace flows {

namespace fs = std::filesystem;

const std::vector<std::string>& pipeline_stages() {
  static const std::vector<std::string> stages = {"train", "evaluate", "sample", "save", "report"};
  return stages;
}

namespace {

PipelineOptions read_options(ConfigNode& root) {
  PipelineOptions o;
  root.read("name", o.name);
  root.read("seed", o.seed);
  root.read("output", o.output);
  root.read("plugins", o.plugins);
  root.read("stages", o.stages);
  if (o.output.empty()) o.output = "runs/" + o.name;
  for (const std::string& stage : o.stages) root.expect_one_of("stages", stage, pipeline_stages());
  ConfigNode sample = root.child("sample", true);
  sample.read("n", o.sample_count);
  sample.expect(o.sample_count > 0, "n", "must be > 0");
  sample.finish();
  ConfigNode evaluate = root.child("evaluate", true);
  evaluate.read("quality_rows", o.quality_rows);
  evaluate.read("projections", o.projections);
  evaluate.expect(o.quality_rows >= 2, "quality_rows", "must be >= 2");
  evaluate.expect(o.projections > 0, "projections", "must be > 0");
  evaluate.finish();
  ConfigNode progress = root.child("progress", true);
  progress.read("log_every", o.log_every);
  progress.finish();
  return o;
}

std::string resolve_relative(const std::string& origin, const std::string& path) {
  fs::path p(path);
  if (p.is_absolute()) return path;
  return (fs::path(origin).parent_path() / p).lexically_normal().string();
}

}  // namespace

Model build_model(ConfigNode& model_node, Registry& registry, Index dim, Index seed) {
  // Defaults are written into the section, so that a checkpoint's copy names them.
  if (!model_node.has("base")) model_node.set("base", "{type: standard_normal}");
  ConfigNode base_node = model_node.child("base");
  if (!base_node.has("type")) base_node.set("type", "standard_normal");
  auto base =
      registry.make<BaseDistribution>(base_node, BuildContext{dim, mix_seed(seed, 100), &registry});
  std::vector<std::shared_ptr<Bijector>> chain;
  std::vector<ConfigNode> items = model_node.children("bijectors");
  for (std::size_t k = 0; k < items.size(); ++k)
    chain.push_back(
        registry.make<Bijector>(items[k], BuildContext{dim, mix_seed(seed, 1000 + k), &registry}));
  Model model;
  model.flow = std::make_shared<Flow>(base, chain);
  return model;
}

Pipeline Pipeline::load(const std::string& file, const std::vector<std::string>& overrides) {
  Pipeline p{file, ConfigNode::load_file(file), ConfigNode::empty(file, "model"), {}, {}, {}, {},
             {}};
  ConfigNode& root = p.root;
  if (!root.is_map()) throw root.error("", "a pipeline must be a mapping of keys");
  for (const std::string& item : overrides) {
    const auto eq = item.find('=');
    if (eq == std::string::npos || eq == 0)
      throw ConfigError(fmt::format("override '{}': expected KEY=VALUE", item));
    root.set(item.substr(0, eq), item.substr(eq + 1));
  }
  p.options = read_options(root);

  p.registry = std::make_shared<Registry>();
  Registry& registry = *p.registry;
  register_builtins(registry);
  std::vector<std::string> search = default_plugin_search_path();
  for (const std::string& entry : p.options.plugins) {
    const std::string path = resolve_relative(file, entry);
    if (!fs::exists(path)) throw root.error("plugins", fmt::format("'{}' does not exist", path));
    search.push_back(path);
  }
  load_plugins(search, registry);

  const Index seed = p.options.seed;
  ConfigNode data_node = root.child("data");
  auto dataset = registry.make<Dataset>(data_node, BuildContext{0, mix_seed(seed, 1), &registry});
  p.model_node = root.child("model");
  p.model_node.read("standardize", p.options.standardize);
  ConfigNode trainer_node = root.child("trainer", true);
  if (!trainer_node.has("type")) trainer_node.set("type", "mle");
  trainer_node.read("resume_from", p.options.resume_from);
  if (!p.options.resume_from.empty()) {
    p.options.resume_from = resolve_relative(file, p.options.resume_from);
    if (!fs::is_regular_file(p.options.resume_from))
      throw trainer_node.error("resume_from",
                               fmt::format("'{}' is not a file", p.options.resume_from));
  }

  Rng data_rng = Rng(seed).derive(1);
  p.data = dataset->load(data_rng);
  const Index dim = p.data.train.shape(1);
  p.model = build_model(p.model_node, registry, dim, seed);
  p.model_node.finish();
  if (p.options.standardize) {
    p.model.standardize = std::make_shared<Standardize>(Standardize::fit(p.data.train));
    p.model.flow->prepend(p.model.standardize);
  }
  p.trainer = registry.make<Trainer>(trainer_node, BuildContext{dim, mix_seed(seed, 2), &registry});
  root.finish();
  if (!p.options.resume_from.empty()) resume_from_checkpoint(p, p.options.resume_from);
  return p;
}

}  // namespace flows
