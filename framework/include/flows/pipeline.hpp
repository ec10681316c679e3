#pragma once
#include <memory>
#include <string>
#include <vector>

#include "flows/bounds.hpp"
#include "flows/config.hpp"
#include "flows/data/dequantize.hpp"
#include "flows/export.hpp"
#include "flows/flow.hpp"
#include "flows/registry.hpp"
#include "flows/standardize.hpp"

namespace flows {

// The stages a pipeline may list, run in the order given.
FLOWS_API const std::vector<std::string>& pipeline_stages();

// A pipeline's own keys; each section (data, model, trainer) is checked by
// the component it builds.
struct PipelineOptions {
  std::string name = "flows";        // shown in logs and metrics.json
  Index seed = 0;                    // every random draw of the run derives from it
  std::string output;                // output folder (default runs/<name>)
  std::vector<std::string> plugins;  // extra plugin files or folders, relative to the YAML file
  std::vector<std::string> stages = {"train", "evaluate", "sample", "save", "report"};
  Index sample_count = 10000;     // sample.n: rows the sample stage writes
  bool quantize_samples = false;  // sample.quantize: floor() of the dequantized columns
  Index quality_rows = 2000;      // evaluate.quality_rows: rows per side for MMD and sliced W1
  Index projections = 128;        // evaluate.projections: directions of the sliced W1
  std::string resume_from;        // trainer.resume_from: checkpoint to continue (resolved path)
  Index log_every = 0;            // progress.log_every: steps between log lines (0: a tenth)
  bool standardize = true;        // model.standardize: standardize with the training split
  Index threads = 0;              // threads: (0 when absent: every core; see threads.hpp)
};

// A flow built from a `model:` section, and its data standardization (null
// when model.standardize is false), which is the first bijector of the chain.
// A conditional model's context encoder is flow->context_encoder().
// With model.bounds, `bounds` maps the box to R^d; the chain is then
// [bounds, standardization, bijectors...] (see prepend_data_layers).
struct Model {
  std::shared_ptr<Flow> flow;
  std::shared_ptr<Standardize> standardize;
  std::shared_ptr<Bounds> bounds;  // null without model.bounds
};

// Puts the data layers at the front of model.flow's chain: the
// standardization (when model.standardize is set), then the bounds in front
// of it (when model.bounds is set), so that the standardization sees the
// unbounded values. Call once, after build_model and after setting
// model.standardize.
FLOWS_API void prepend_data_layers(Model& model);

// What a model is built for: the x columns and the context columns.
struct ModelInputs {
  Index dim = 0;  // x columns
  // Names of the raw context columns (empty: an unconditional model); only
  // their number shapes the model, the names go into messages.
  std::vector<std::string> context_columns;
  // Names of the x columns (may be empty); model.bounds names columns by them.
  std::vector<std::string> columns;
};

// The optional `model.context_embedding` section: an MLP e = MLP(c) shared by
// every conditional layer (after the context standardization).
struct FLOWS_API ContextEmbeddingOptions {
  std::vector<Index> hidden;  // hidden widths (default: none, one dense layer)
  Index features = 16;        // width of e (>= 1) when the section is present
  std::string activation = "relu";

  static ContextEmbeddingOptions from(ConfigNode& node);
};

// Builds the model: base (standard_normal when absent) and the bijectors in
// order (data side first), each seeded from `seed`, so the same section and
// seed always build the same model. For a conditional model (context
// columns), first a ContextEncoder: the context standardization (identity
// until fitted or restored) and the embedding of `model.context_embedding`
// when given; every component is then built with BuildContext::context_dim =
// the encoder's output width. ConfigError when the data has context columns
// but no component reads a context (naming the columns), when a component
// reads a context but the data has none, and for a context_embedding without
// context columns. The data standardization is added by the caller (fitted,
// or restored), and so is the context standardization's fit. model.bounds
// ([lo, hi] for every column, a list of pairs, or {column: [lo, hi]}; an
// end may be null) builds model.bounds, which is not yet in the chain:
// prepend_data_layers puts it there.
// A pipeline's networks compute in float32 unless model.precision says
// otherwise: writes `precision: float32` into a section that names none (so
// the checkpoint records it). build_model itself reads an absent key as
// float64, the precision of models saved before the key existed.
FLOWS_API void name_default_precision(ConfigNode& model_node);

FLOWS_API Model build_model(ConfigNode& model_node, Registry& registry, const ModelInputs& inputs,
                            Index seed);

// The networks a model section describes, read from its `hidden` widths
// before anything is built (issue 15, resource limits): every mapping under
// the section with a list `hidden` is a network from one input through
// those widths to one output, `layers` times when the mapping has that key
// (1 when absent). The parameters are a lower bound (the real inputs and
// outputs are wider, and `layers` defaults to more); networks whose widths
// use other keys are counted only once built, by their parameters.
struct NetworkSizes {
  double parameters = 0;          // at least, every network together
  double activations = 0;         // hidden units per row, every network together
  std::string largest;            // "model.bijectors[0].hidden = [512, 512]": the most parameters
  double largest_parameters = 0;  // its parameters
  Index networks = 0;
};
FLOWS_API NetworkSizes network_sizes(const ConfigNode& model_node);

struct Pipeline;
// After build_model, for a pipeline whose data, options and dequantize are
// set: checks every split (integer values in the dequantized columns, every
// value inside model.bounds: DataError naming `data_where`, split, row and
// column), fits the standardization (when options.standardize) on one
// dequantized draw of the training rows mapped through the bounds, fits the
// context standardization, and calls prepend_data_layers.
FLOWS_API void fit_data_layers(Pipeline& pipeline, const std::string& data_where);

// Refuses, before any training, a trainer that cannot fit the model: `mle`
// with a bijector that has no likelihood gradient (flow_matching), naming the
// bijector and the trainer to use. ConfigError at the trainer's `type`.
FLOWS_API void check_trainer_fits(ConfigNode& trainer_node, const Flow& flow);

// Everything a pipeline file describes, checked and built, before any work.
struct FLOWS_API Pipeline {
  std::string file;
  ConfigNode root;
  ConfigNode model_node;  // the model section, as checkpoints store it
  PipelineOptions options;
  std::shared_ptr<Registry> registry;
  DataSplits data;
  Model model;
  std::shared_ptr<Trainer> trainer;
  // data.dequantize: the integer columns that get U(0, 1) noise (none for
  // continuous data); checked against the data when loaded.
  Dequantizer dequantize;

  // A new flow built as model.flow was (same model section, seed and data
  // layers) holding a copy of its whole current state: a replica for
  // training on several threads (TrainerCallbacks::make_replica).
  std::shared_ptr<Flow> replicate_flow() const;

  // Trains the model (the train stage): mini-batches from Rng(seed).derive(3);
  // with dequantization, fresh noise on every mini-batch from
  // Rng(seed).derive(8), and validation on one fixed draw per validation row
  // (eval_rng(1)). `callbacks.prepare_batch` must be empty (it is set here);
  // `callbacks.make_replica` is set to replicate_flow when empty.
  TrainReport train(const TrainerCallbacks& callbacks);
  // The mean NLL of a split (nats per row, data units): the dequantized bound
  // −log P̂(x) with data.dequantize (dequantize_samples draws per row from
  // eval_rng(split)), the continuous −log p(x) otherwise. split: 0 train,
  // 1 val, 2 test.
  Real split_nll(int split) const;
  // The fixed evaluation draws of a split: Rng(seed).derive(9).derive(split).
  Rng eval_rng(int split) const;
  // n samples (sample.quantize applied when set: integers again).
  Matrix sample(Index n, Rng& rng, const Matrix& context = {}) const;

  // Reads `file`, applies overrides ("dotted.key=yaml value") and checks every
  // key; loads plugins, the data, builds model and trainer (fitting the data
  // and context standardizations on the training split when
  // model.standardize). `trainer: mle` with a bijector that is not trained by
  // likelihood is refused, naming the bijector and its trainer. Work that
  // would need more memory than the machine has is refused before it starts
  // (ResourceError with the estimate, resources.hpp): the data set (by its
  // reader, before the rows are drawn or read), the model (from its hidden
  // widths before it is built, then from its parameters), and sample.n and
  // evaluate.quality_rows when those stages are listed. Raises
  // ConfigError (file:line:column: key path: what) and the errors of loading.
  static Pipeline load(const std::string& file, const std::vector<std::string>& overrides = {});
  // The same for YAML text: `origin` names it in messages, and relative paths
  // (data files, plugins, resume_from) are resolved against its folder.
  static Pipeline parse(const std::string& text, const std::string& origin,
                        const std::vector<std::string>& overrides = {});
};

}  // namespace flows
