#include "flows/pipeline.hpp"

#include <algorithm>
#include <filesystem>

#include <fmt/format.h>

#include "flows/auto_tail_bound.hpp"
#include "flows/checkpoint.hpp"
#include "flows/data/columns.hpp"
#include "flows/plugin_loader.hpp"
#include "flows/resources.hpp"
#include "flows/threads.hpp"

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
  const bool threads_given = root.has("threads");
  root.read("threads", o.threads);
  root.expect(!threads_given || o.threads >= 1, "threads",
              "must be >= 1 (leave it out to use every core)");
  if (o.output.empty()) o.output = "runs/" + o.name;
  for (const std::string& stage : o.stages) root.expect_one_of("stages", stage, pipeline_stages());
  ConfigNode sample = root.child("sample", true);
  sample.read("n", o.sample_count);
  sample.read("quantize", o.quantize_samples);
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

// A data set's splits must agree with its context columns (a plugin's data
// set may get this wrong): each split's context has one row per data row and
// one column per context column, or is empty for unconditional data.
void check_splits(const DataSplits& data, const std::string& where) {
  const Index k = data.context_dim();
  const std::pair<const char*, std::pair<const Matrix*, const Matrix*>> splits[] = {
      {"train", {&data.train, &data.train_context}},
      {"val", {&data.val, &data.val_context}},
      {"test", {&data.test, &data.test_context}}};
  for (const auto& [name, pair] : splits) {
    const Matrix& x = *pair.first;
    const Matrix& c = *pair.second;
    const bool ok = k == 0 ? c.size() == 0 : c.shape(0) == x.shape(0) && c.shape(1) == k;
    if (!ok)
      throw DataError(fmt::format(
          "{}: the {} split has a context of [{} x {}] for {} rows and {} context column{}{}",
          where, name, c.shape(0), c.shape(1), x.shape(0), k, k == 1 ? "" : "s",
          k == 0 ? "" : " (" + join_column_names(data.context_columns) + ")"));
  }
}

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

// Refuses a model, before it is built, whose networks (from their hidden
// widths) would not fit in training, and then, built, one whose parameters
// would not; and sample.n and evaluate.quality_rows when those stages run.
class MemoryChecks {
 public:
  MemoryChecks(const Pipeline& p, const ConfigNode& trainer_node)
      : networks_(network_sizes(p.model_node)) {
    Index batch = 256;  // TrainingOptions' default
    try {               // read from a copy, leaving the trainer to check the key
      ConfigNode::parse(trainer_node.dump(), trainer_node.origin()).read("batch_size", batch);
    } catch (const ConfigError&) {
    }
    batch_ =
        std::min<double>(static_cast<double>(batch), static_cast<double>(p.data.train.shape(0)));
    threads_ = static_cast<double>(thread_count());
  }

  void before_building(const Pipeline& p) const {
    if (networks_.networks == 0) return;
    const std::string more = networks_.networks > 1
                                 ? fmt::format(" (and {} more networks)", networks_.networks - 1)
                                 : "";
    check_memory(model_memory(networks_.parameters, networks_.activations, batch_, threads_,
                              networks_.largest + more),
                 p.model_node.where());
  }

  void after_building(Pipeline& p) const {
    double parameters = 0;
    for (const Parameter* parameter : p.model.flow->parameters())
      parameters += static_cast<double>(parameter->size());
    check_memory(model_memory(parameters, networks_.activations, batch_, threads_,
                              fmt::format("the model's {:.0f} parameters", parameters)),
                 p.model_node.where());
    const auto listed = [&](const char* stage) {
      return std::find(p.options.stages.begin(), p.options.stages.end(), stage) !=
             p.options.stages.end();
    };
    const double cols = static_cast<double>(p.data.train.shape(1) + p.data.context_dim());
    if (listed("sample"))
      check_memory(sample_memory(static_cast<double>(p.options.sample_count), cols,
                                 fmt::format("sample.n = {}", p.options.sample_count)),
                   p.root.child("sample", true).where("n"));
    if (listed("evaluate"))
      check_memory(sample_memory(static_cast<double>(p.options.quality_rows), cols,
                                 fmt::format("evaluate.quality_rows = {}", p.options.quality_rows)),
                   p.root.child("evaluate", true).where("quality_rows"));
  }

 private:
  NetworkSizes networks_;
  double batch_ = 0;
  double threads_ = 1;  // a training replica each
};

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
    Rng rng(mix_seed(seed, 200));
    encoder = std::make_shared<ContextEncoder>(context_columns, embedding, rng);
  }
  const Index width = encoder ? encoder->output_dim() : 0;

  // Defaults are written into the section, so that a checkpoint's copy names them.
  if (!model_node.has("base")) model_node.set("base", "{type: standard_normal}");
  ConfigNode base_node = model_node.child("base");
  if (!base_node.has("type")) base_node.set("type", "standard_normal");
  auto base = registry.make<BaseDistribution>(
      base_node, BuildContext{dim, width, mix_seed(seed, 100), &registry, precision});
  std::vector<std::shared_ptr<Bijector>> chain;
  std::vector<ConfigNode> items = model_node.children("bijectors");
  if (model_node.has("bijectors") && items.empty())
    throw model_node.error("bijectors",
                           "an empty list: give at least one bijector (or leave bijectors out "
                           "for a model that is the base distribution alone)");
  for (std::size_t k = 0; k < items.size(); ++k)
    chain.push_back(registry.make<Bijector>(
        items[k], BuildContext{dim, width, mix_seed(seed, 1000 + k), &registry, precision}));

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

void fit_data_layers(Pipeline& p, const std::string& data_where) {
  const DataSplits& data = p.data;
  const std::pair<const char*, const Matrix*> splits[] = {
      {"train", &data.train}, {"val", &data.val}, {"test", &data.test}};
  for (const auto& [name, x] : splits) {
    const std::string what = fmt::format("{}: the {} split", data_where, name);
    p.dequantize.check_integer(*x, what);
    if (p.model.bounds) p.model.bounds->check(*x, what, p.dequantize.bin_widths());
  }
  if (p.options.standardize) {
    // Fitted on what the standardization sees: the dequantized training rows
    // (one draw) after the bounds' map.
    Matrix fitted = data.train;
    if (p.dequantize.enabled()) {
      Rng rng = p.eval_rng(0);
      p.dequantize.add_noise(fitted, rng);
    }
    if (p.model.bounds) fitted = p.model.bounds->forward(fitted).value;
    p.model.standardize = std::make_shared<Standardize>(Standardize::fit(fitted));
    if (ContextEncoder* encoder = p.model.flow->context_encoder())
      encoder->fit_standardization(data.train_context);
  }
  prepend_data_layers(p.model);
}

Rng Pipeline::eval_rng(int split) const {
  return Rng(options.seed).derive(9).derive(static_cast<std::uint64_t>(split));
}

std::shared_ptr<Flow> Pipeline::replicate_flow() const {
  ConfigNode node = ConfigNode::parse(model_node.dump(), file + " (model section)");
  node.mark_read("standardize");
  Model copy = build_model(node, *registry,
                           ModelInputs{data.train.shape(1), data.context_columns, data.columns},
                           options.seed);
  node.finish();
  const Index dim = data.train.shape(1);
  if (model.standardize)  // fitted values come with the state below
    copy.standardize = std::make_shared<Standardize>(xt::zeros<Real>({Index{1}, dim}),
                                                     xt::ones<Real>({Index{1}, dim}));
  prepend_data_layers(copy);
  // Everything else (parameters, running averages, the context
  // standardization, a checkpoint's permutations) as a checkpoint copies it.
  TensorStore state;
  StateSaver saver(state);
  model.flow->visit_state(saver);
  StateLoader loader(state, "the model being trained");
  copy.flow->visit_state(loader);
  return copy.flow;
}

TrainReport Pipeline::train(const TrainerCallbacks& given) {
  if (given.prepare_batch)
    throw Error("Pipeline::train sets TrainerCallbacks::prepare_batch itself; leave it empty");
  TrainerCallbacks callbacks = given;
  if (!callbacks.make_replica) callbacks.make_replica = [this] { return replicate_flow(); };
  Rng train_rng = Rng(options.seed).derive(3);
  if (!dequantize.enabled()) return trainer->train(*model.flow, data, train_rng, callbacks);
  // Validation (early stopping, the best step) on one fixed draw per row.
  DataSplits noisy = data;
  Rng val_rng = eval_rng(1);
  dequantize.add_noise(noisy.val, val_rng);
  TrainerCallbacks with_noise = callbacks;
  auto noise_rng = std::make_shared<Rng>(Rng(options.seed).derive(8));
  const Dequantizer dequantizer = dequantize;
  with_noise.prepare_batch = [dequantizer, noise_rng](Matrix& batch) {
    dequantizer.add_noise(batch, *noise_rng);
  };
  return trainer->train(*model.flow, noisy, train_rng, with_noise);
}

Real Pipeline::split_nll(int split) const {
  const Matrix* x[] = {&data.train, &data.val, &data.test};
  const Matrix* c[] = {&data.train_context, &data.val_context, &data.test_context};
  Rng rng = eval_rng(split);
  return dequantize.mean_nll(*model.flow, *x[split], *c[split], rng);
}

Matrix Pipeline::sample(Index n, Rng& rng, const Matrix& context) const {
  Matrix s = model.flow->sample(n, rng, context);
  if (!options.quantize_samples || !dequantize.enabled()) return s;
  std::vector<Real> upper;
  if (model.bounds)
    for (const ColumnBounds& b : model.bounds->bounds()) upper.push_back(b.high);
  return dequantize.quantize(s, upper);
}

void check_trainer_fits(ConfigNode& trainer_node, const Flow& flow) {
  if (trainer_node.require_string("type") != "mle") return;
  const auto& chain = flow.chain();
  for (std::size_t k = 0; k < chain.size(); ++k)
    if (!chain[k]->trains_by_likelihood())
      throw trainer_node.error(
          "type", fmt::format("trainer 'mle' (maximum likelihood, the default) cannot fit "
                              "model.bijectors[{}] '{}', which has no likelihood gradient; use "
                              "trainer: {{type: {}}}",
                              k, chain[k]->name(), chain[k]->trainer()));
}

namespace {

// Pipeline::load and Pipeline::parse after parsing the YAML.
Pipeline load_pipeline(ConfigNode root_node, const std::string& file,
                       const std::vector<std::string>& overrides) {
  Pipeline p{file, std::move(root_node), ConfigNode::empty(file, "model"), {}, {}, {}, {}, {}, {}};
  ConfigNode& root = p.root;
  if (!root.is_map()) throw root.error("", "a pipeline must be a mapping of keys");
  for (const std::string& item : overrides) {
    const auto eq = item.find('=');
    if (eq == std::string::npos || eq == 0)
      throw ConfigError(fmt::format("override '{}': expected KEY=VALUE", item));
    root.set(item.substr(0, eq), item.substr(eq + 1));
  }
  p.options = read_options(root);
  set_thread_count(p.options.threads);

  p.registry = std::make_shared<Registry>();
  Registry& registry = *p.registry;
  register_builtins(registry);
  std::vector<std::string> search = default_plugin_search_path();
  const std::size_t defaults = search.size();
  for (const std::string& entry : p.options.plugins) {
    const std::string path = resolve_relative(file, entry);
    if (!fs::exists(path)) throw root.error("plugins", fmt::format("'{}' does not exist", path));
    search.push_back(path);
  }
  load_plugins(search, registry);
  // A plugin the pipeline names (itself, or in a folder it names) must load;
  // those found in the default folders only warn when they do not.
  for (const Registry::Failure& failure : registry.failures())
    for (std::size_t k = defaults; k < search.size(); ++k) {
      std::error_code ec;
      const fs::path named = search[k], failed = failure.file;
      if (fs::equivalent(failed, named, ec) || fs::equivalent(failed.parent_path(), named, ec))
        throw root.error("plugins", failure.message);
    }

  const Index seed = p.options.seed;
  ConfigNode data_node = root.child("data");
  const DequantizeOptions dequantize = DequantizeOptions::from(data_node);
  auto dataset =
      registry.make<Dataset>(data_node, BuildContext{0, 0, mix_seed(seed, 1), &registry});
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
  check_splits(p.data, data_node.where() + ": data");
  const Index dim = p.data.train.shape(1);
  p.dequantize = dequantize.resolve(dim, p.data.columns);
  resolve_auto_tail_bounds(p);  // tail_bound: auto, from the training rows
  name_default_precision(p.model_node);
  const MemoryChecks memory(p, trainer_node);
  memory.before_building(p);
  p.model = build_model(p.model_node, registry,
                        ModelInputs{dim, p.data.context_columns, p.data.columns}, seed);
  p.model_node.finish();
  memory.after_building(p);
  check_trainer_fits(trainer_node, *p.model.flow);
  if (p.options.quantize_samples && !p.dequantize.enabled())
    throw root.child("sample", true)
        .error("quantize",
               "needs dequantized data (data.dequantize): only the dequantized "
               "integer columns are quantized");
  fit_data_layers(p, data_node.where() + ": data");
  p.trainer = registry.make<Trainer>(
      trainer_node, BuildContext{dim, p.data.context_dim(), mix_seed(seed, 2), &registry});
  root.finish();
  if (!p.options.resume_from.empty()) resume_from_checkpoint(p, p.options.resume_from);
  return p;
}

}  // namespace

Pipeline Pipeline::load(const std::string& file, const std::vector<std::string>& overrides) {
  return load_pipeline(ConfigNode::load_file(file), file, overrides);
}

Pipeline Pipeline::parse(const std::string& text, const std::string& origin,
                         const std::vector<std::string>& overrides) {
  return load_pipeline(ConfigNode::parse(text, origin), origin, overrides);
}

}  // namespace flows
