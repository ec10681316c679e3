#include "flows/pipeline.hpp"

#include <algorithm>
#include <filesystem>

#include <fmt/format.h>

#include "flows/auto_tail_bound.hpp"
#include "flows/data/columns.hpp"
#include "flows/plugin_loader.hpp"
#include "flows/resources.hpp"
#include "flows/streams.hpp"
#include "flows/threads.hpp"

namespace flows {

namespace fs = std::filesystem;

namespace {

PipelineOptions read_options(ConfigNode& root, const std::vector<std::string>& stage_names) {
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
  if (!stage_names.empty())
    for (const std::string& stage : o.stages) root.expect_one_of("stages", stage, stage_names);
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
    batch_ = std::min<double>(static_cast<double>(batch), static_cast<double>(p.data.train_rows()));
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

void fit_data_layers(Pipeline& p, const std::string& data_where, Ranks* ranks) {
  const DataSplits& data = p.data;
  const std::pair<const char*, const Matrix*> splits[] = {
      {"train", &data.train}, {"val", &data.val}, {"test", &data.test}};
  for (const auto& [name, x] : splits) {
    const std::string what = fmt::format("{}: the {} split", data_where, name);
    const Index first_row = x == &data.train ? data.train_begin : 0;
    p.dequantize.check_integer(*x, what, first_row);
    if (p.model.bounds) p.model.bounds->check(*x, what, p.dequantize.bin_widths(), first_row);
  }
  if (p.options.standardize) {
    // Fitted on what the standardization sees: the dequantized training rows
    // (one draw) after the bounds' map.
    Matrix fitted = data.train;
    if (p.dequantize.enabled()) {
      Rng rng = p.eval_rng(0);
      p.dequantize.skip_noise(data.train_begin, rng);  // the draws of the rows before this share
      p.dequantize.add_noise(fitted, rng);
    }
    if (p.model.bounds) fitted = p.model.bounds->forward(fitted).value;
    p.model.standardize = std::make_shared<Standardize>(Standardize::fit(fitted, ranks));
    if (ContextEncoder* encoder = p.model.flow->context_encoder())
      encoder->fit_standardization(data.train_context, ranks);
  }
  prepend_data_layers(p.model);
}

Rng Pipeline::eval_rng(int split) const {
  return run_stream(options.seed, RunStream::evaluation).derive(static_cast<std::uint64_t>(split));
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
  Rng train_rng = run_stream(options.seed, RunStream::minibatches);
  if (!dequantize.enabled()) return trainer->train(*model.flow, data, train_rng, callbacks);
  // Validation (early stopping, the best step) on one fixed draw per row.
  DataSplits noisy = data;
  Rng val_rng = eval_rng(1);
  dequantize.add_noise(noisy.val, val_rng);
  TrainerCallbacks with_noise = callbacks;
  auto noise_rng = std::make_shared<Rng>(run_stream(options.seed, RunStream::dequantize_noise));
  const Dequantizer dequantizer = dequantize;
  with_noise.prepare_batch = [dequantizer, noise_rng](Matrix& batch) {
    dequantizer.add_noise(batch, *noise_rng);
  };
  return trainer->train(*model.flow, noisy, train_rng, with_noise);
}

Real Pipeline::split_nll(int split, Ranks* ranks) const {
  const Matrix* x[] = {&data.train, &data.val, &data.test};
  const Matrix* c[] = {&data.train_context, &data.val_context, &data.test_context};
  Rng rng = eval_rng(split);
  if (split == 0 && data.train_is_shared()) {
    // Each rank holds its share of the training rows: the one it scores.
    const Index rows = data.train_rows(), held = data.train.shape(0);
    const auto [begin, end] = share_of(rows, ranks, kInferenceRowGroup);
    if (begin != data.train_begin || end != begin + held)
      throw Error(
          fmt::format("split_nll: this rank holds training rows [{}, {}) but its share is [{}, {})",
                      data.train_begin, data.train_begin + held, begin, end));
    return mean_over_ranks(
        ranks, rows,
        [&](Index, Index) {
          return dequantize.nll_sum_of_held(*model.flow, data.train, data.train_context, rng,
                                            data.train_begin, rows);
        },
        kInferenceRowGroup);
  }
  return mean_over_ranks(
      ranks, x[split]->shape(0),
      [&](Index begin, Index end) {
        return dequantize.nll_sum(*model.flow, *x[split], *c[split], rng, begin, end);
      },
      model.flow->row_granule());
}

Matrix Pipeline::sample(Index n, Rng& rng, const Matrix& context, Ranks* ranks) const {
  const auto [begin, end] = share_of(n, ranks, model.flow->row_granule());
  Matrix s = model.flow->sample_rows(n, rng, context, begin, end);
  if (options.quantize_samples && dequantize.enabled()) s = quantized(s);
  return gather_rows(ranks, s, data.train.shape(1));
}

Matrix Pipeline::quantized(const Matrix& samples) const {
  std::vector<Real> upper;  // the upper ends of the bounds, one per column
  if (model.bounds)
    for (const ColumnBounds& b : model.bounds->bounds()) upper.push_back(b.high);
  return dequantize.quantize(samples, upper);
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
                       const std::vector<std::string>& overrides,
                       const std::vector<std::string>& stage_names, Ranks* ranks) {
  Pipeline p{file, std::move(root_node), ConfigNode::empty(file, "model"), {}, {}, {}, {}, {}, {}};
  ConfigNode& root = p.root;
  if (!root.is_map()) throw root.error("", "a pipeline must be a mapping of keys");
  apply_overrides(root, overrides);
  p.options = read_options(root, stage_names);
  set_thread_count(p.options.threads);

  std::vector<std::string> named_plugins;
  for (const std::string& entry : p.options.plugins) {
    const std::string path = resolve_relative(file, entry);
    if (!fs::exists(path)) throw root.error("plugins", fmt::format("'{}' does not exist", path));
    named_plugins.push_back(path);
  }
  p.registry = make_registry(named_plugins);
  Registry& registry = *p.registry;
  // A plugin the pipeline names (itself, or in a folder it names) must load;
  // those found in the default folders only warn when they do not.
  for (const Registry::Failure& failure : registry.failures())
    for (const std::string& path : named_plugins) {
      std::error_code ec;
      const fs::path named = path, failed = failure.file;
      if (fs::equivalent(failed, named, ec) || fs::equivalent(failed.parent_path(), named, ec))
        throw root.error("plugins", failure.message);
    }

  const Index seed = p.options.seed;
  ConfigNode data_node = root.child("data");
  const DequantizeOptions dequantize = DequantizeOptions::from(data_node);
  auto dataset = registry.make<Dataset>(
      data_node, BuildContext{0, 0, component_seed(seed, ComponentSeed::dataset), &registry});
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

  Rng data_rng = run_stream(seed, RunStream::data_rows);
  p.data = dataset->load_share(data_rng, ranks);
  check_same_data_on_every_rank(p.data, ranks);  // before the fits below sum across the ranks
  check_splits(p.data, data_node.where() + ": data");
  const Index dim = p.data.train.shape(1);
  p.dequantize = dequantize.resolve(dim, p.data.columns);
  resolve_auto_tail_bounds(p, ranks);  // tail_bound: auto, from the training rows
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
  fit_data_layers(p, data_node.where() + ": data", ranks);
  p.trainer = registry.make<Trainer>(
      trainer_node, BuildContext{dim, p.data.context_dim(),
                                 component_seed(seed, ComponentSeed::trainer), &registry});
  root.finish();
  if (!p.options.resume_from.empty()) resume_from_checkpoint(p, trainer_node);
  return p;
}

}  // namespace

Pipeline Pipeline::load(const std::string& file, const std::vector<std::string>& overrides,
                        const std::vector<std::string>& stage_names, Ranks* ranks) {
  return load_pipeline(ConfigNode::load_file(file), file, overrides, stage_names, ranks);
}

Pipeline Pipeline::parse(const std::string& text, const std::string& origin,
                         const std::vector<std::string>& overrides,
                         const std::vector<std::string>& stage_names, Ranks* ranks) {
  return load_pipeline(ConfigNode::parse(text, origin), origin, overrides, stage_names, ranks);
}

Checkpoint make_checkpoint(Pipeline& pipeline) {
  CheckpointParts parts;
  parts.name = pipeline.options.name;
  parts.seed = pipeline.options.seed;
  parts.model = &pipeline.model;
  parts.trainer = pipeline.trainer.get();
  parts.registry = pipeline.registry.get();
  parts.columns = pipeline.data.columns;
  parts.context_columns = pipeline.data.context_columns;
  parts.dequantize = pipeline.dequantize;
  parts.model_yaml = pipeline.model_node.dump();
  parts.pipeline_yaml = pipeline.root.dump();
  return make_checkpoint(parts);
}

namespace {

void restore_from_checkpoint(Pipeline& pipeline, const std::string& path) {
  const Checkpoint checkpoint = read_checkpoint(path);
  // Random structure (orderings, splits) comes from the seed.
  if (checkpoint.info.seed != pipeline.options.seed)
    throw DataError(fmt::format(
        "{}: the checkpoint's model was built with seed {}, this pipeline has seed {}; resuming "
        "needs the same seed",
        path, checkpoint.info.seed, pipeline.options.seed));
  if (checkpoint.info.context_columns != pipeline.data.context_columns &&
      checkpoint.info.context_dim() == pipeline.data.context_dim())
    throw DataError(fmt::format(
        "{}: the checkpoint's model reads the context columns ({}), this pipeline's data has ({})",
        path, join_column_names(checkpoint.info.context_columns),
        join_column_names(pipeline.data.context_columns)));
  if (checkpoint.info.dequantized != pipeline.dequantize.columns())
    throw DataError(fmt::format(
        "{}: the checkpoint's model was trained with {} dequantized column(s), this pipeline "
        "dequantizes {} (data.dequantize must match to resume)",
        path, checkpoint.info.dequantized.size(), pipeline.dequantize.columns().size()));
  restore_model(checkpoint, pipeline.model, path);
  restore_trainer(checkpoint, *pipeline.trainer, *pipeline.model.flow, path);
}

}  // namespace

void resume_from_checkpoint(Pipeline& pipeline, const ConfigNode& trainer_node) {
  // The checkpoint's own message names the file; this names the pipeline's
  // key too, keeping the kind of error.
  auto at_key = [&](const Error& e) {
    return std::string(trainer_node.error("resume_from", e.what()).what());
  };
  try {
    restore_from_checkpoint(pipeline, pipeline.options.resume_from);
  } catch (const DataError& e) {
    throw DataError(at_key(e));
  } catch (const IoError& e) {
    throw IoError(at_key(e));
  } catch (const ConfigError& e) {
    throw ConfigError(at_key(e));
  } catch (const Error& e) {
    throw Error(at_key(e));
  }
}

}  // namespace flows
