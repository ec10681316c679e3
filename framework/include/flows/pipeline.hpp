#pragma once
#include <memory>
#include <string>
#include <vector>

#include "flows/bounds.hpp"
#include "flows/checkpoint.hpp"
#include "flows/config.hpp"
#include "flows/data/dequantize.hpp"
#include "flows/export.hpp"
#include "flows/flow.hpp"
#include "flows/model.hpp"
#include "flows/ranks.hpp"
#include "flows/registry.hpp"
#include "flows/standardize.hpp"

namespace flows {

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

struct Pipeline;
// After build_model, for a pipeline whose data, options and dequantize are
// set: checks every split (integer values in the dequantized columns, every
// value inside model.bounds: DataError naming `data_where`, split, row and
// column), fits the standardization (when options.standardize) on one
// dequantized draw of the training rows mapped through the bounds, fits the
// context standardization, and calls prepend_data_layers. With ranks, each
// rank holds a share of the training rows (DataSplits): it checks its own
// rows (named by their row of the split), and the fits are of all the rows.
FLOWS_API void fit_data_layers(Pipeline& pipeline, const std::string& data_where,
                               Ranks* ranks = nullptr);

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

  // Trains the model (the train stage): mini-batches from RunStream::minibatches (streams.hpp);
  // with dequantization, fresh noise on every mini-batch from
  // RunStream::dequantize_noise, and validation on one fixed draw per validation row
  // (eval_rng(1)). `callbacks.prepare_batch` must be empty (it is set here);
  // `callbacks.make_replica` is set to replicate_flow when empty.
  TrainReport train(const TrainerCallbacks& callbacks);
  // The mean NLL of a split (nats per row, data units): the dequantized bound
  // −log P̂(x) with data.dequantize (dequantize_samples draws per row from
  // eval_rng(split)), the continuous −log p(x) otherwise. split: 0 train,
  // 1 val, 2 test. With ranks, each process scores its share of the rows
  // (whole row groups, share_of; of the training rows, the share it holds)
  // and the sums are added across the ranks: every rank gets the NLL of one
  // process, up to summation order.
  Real split_nll(int split, Ranks* ranks = nullptr) const;
  // The fixed evaluation draws of a split: run_stream(seed, RunStream::evaluation).derive(split).
  Rng eval_rng(int split) const;
  // n samples (sample.quantize applied when set: integers again). With
  // ranks, each process inverts its share of the rows (whole row groups) of
  // the one draw, and rank 0 gets all n rows, those of one process; the
  // other ranks get an empty matrix.
  Matrix sample(Index n, Rng& rng, const Matrix& context = {}, Ranks* ranks = nullptr) const;
  // Samples with their dequantized columns floored (Dequantizer::quantize),
  // a bounded column's top end kept in its last bin.
  Matrix quantized(const Matrix& samples) const;

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
  // `stages` must name stages from `stage_names` when that is not empty (the
  // runner passes its table's names; the SDK runs no stage itself).
  // With the ranks of a job, each reads only its share of the training rows
  // (Dataset::load_share) and every fit on them is of all the ranks' rows.
  static Pipeline load(const std::string& file, const std::vector<std::string>& overrides = {},
                       const std::vector<std::string>& stage_names = {}, Ranks* ranks = nullptr);
  // The same for YAML text: `origin` names it in messages, and relative paths
  // (data files, plugins, resume_from) are resolved against its folder.
  static Pipeline parse(const std::string& text, const std::string& origin,
                        const std::vector<std::string>& overrides = {},
                        const std::vector<std::string>& stage_names = {}, Ranks* ranks = nullptr);
};

// The state of a pipeline's model and trainer, as a checkpoint.
FLOWS_API Checkpoint make_checkpoint(Pipeline& pipeline);

// Continues a pipeline from a checkpoint (trainer.resume_from): restores the
// model's state and the trainer's (steps done, optimizer moments). The seed
// must be the checkpoint's. After early stopping a checkpoint holds the best
// step's parameters with the last step's optimizer state and step count. A
// resumed run draws other mini-batches than an uninterrupted run would, so
// the two agree in distribution, not bit for bit. The checkpoint is
// pipeline.options.resume_from; an error names trainer_node's resume_from
// key (the pipeline's file and line) as well as the checkpoint.
FLOWS_API void resume_from_checkpoint(Pipeline& pipeline, const ConfigNode& trainer_node);

}  // namespace flows
