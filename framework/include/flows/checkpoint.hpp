#pragma once
// Trained models as files. A checkpoint holds the model's YAML, every tensor
// of its state (parameters, batch-norm statistics, permutations, the data
// standardization, a conditional model's context standardization and
// embedding), the trainer's state for resuming, the x and context column
// names, the SDK and format versions, and a CRC-32 of all of it. Loading
// rebuilds the model from its YAML and seed through the registry, then
// restores each tensor by name, so a plugin's bijector saves and restores
// itself (Bijector::visit_state) without the SDK knowing its type.
//
// In C++, scoring and sampling a saved model takes a few lines:
//
//   flows::LoadedModel m = flows::load_model("runs/quickstart/model.flows");
//   flows::Vector log_p = m.model.flow->log_prob(x);  // x: n x m.info.dim, data units
//   flows::Rng rng(7);
//   flows::Matrix samples = m.model.flow->sample(1000, rng);
//
// A conditional model p(x | c) takes the context in data units, one row per
// row of x (m.context_columns() names its columns, in order); sample() takes
// n context rows or one row that all n samples share:
//
//   flows::Vector log_p = m.model.flow->log_prob(x, c);  // c: n x m.context_dim()
//   flows::Matrix given = m.model.flow->sample(1000, rng, one_row_of_c);
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "flows/data/dequantize.hpp"
#include "flows/export.hpp"
#include "flows/model.hpp"
#include "flows/state.hpp"
#include "flows/trainer.hpp"

namespace flows {

// The layout this build writes and reads (see checkpoint.cpp). Version 2
// (conditional flows, the rewritten bijectors) reads no version-1 file: it is
// refused with a message that names its version and asks for retraining.
inline constexpr std::uint32_t kCheckpointFormatVersion = 2;

// What a checkpoint says about itself (the YAML header of the file).
struct CheckpointInfo {
  std::uint32_t format_version = kCheckpointFormatVersion;
  std::string sdk_version;           // of the flows that wrote it
  std::string created;               // UTC, ISO 8601
  std::string name;                  // the pipeline's name
  Index seed = 0;                    // the model was built with this seed
  Index dim = 0;                     // data dimension (x columns)
  std::vector<std::string> columns;  // x column names (empty when the data named none)
  // Raw context columns of a conditional model p(x | c), in the order the
  // model reads them (empty: unconditional); always named.
  std::vector<std::string> context_columns;
  Index context_dim() const { return context_columns.size(); }
  bool standardize = false;  // the chain starts with the data standardization
  // data.dequantize: the 0-based x columns the model was trained on with
  // U(0, 1) noise (empty: continuous data), and dequantize_samples, the draws
  // per row of its evaluation. Optional in the header (absent: none, 1).
  std::vector<Index> dequantized;
  Index dequantize_samples = 1;
  Index trained_steps = 0;
  Index parameter_count = 0;  // trainable values
  // A component the model is built from, and where it came from.
  struct Component {
    std::string kind;    // "bijector", "distribution", ...
    std::string name;    // its registered name
    std::string origin;  // "built-in" or the plugin file it was loaded from
  };
  std::vector<Component> components;
  std::string model_yaml;     // the model section, as the model was built from it
  std::string pipeline_yaml;  // the whole pipeline, overrides applied
};

struct Checkpoint {
  CheckpointInfo info;
  TensorStore tensors;  // "model/..." (the flow) and "trainer/..." (for resuming)
};

// What a checkpoint is made of (a pipeline's make_checkpoint gathers it).
struct CheckpointParts {
  std::string name;  // the pipeline's
  Index seed = 0;    // the model was built with it
  Model* model = nullptr;
  Trainer* trainer = nullptr;          // null: no trainer state (the model alone)
  const Registry* registry = nullptr;  // names where each component came from
  std::vector<std::string> columns, context_columns;
  Dequantizer dequantize;
  std::string model_yaml;     // the model section the model was built from
  std::string pipeline_yaml;  // the whole pipeline
};

// The state of a model and its trainer, as a checkpoint.
FLOWS_API Checkpoint make_checkpoint(const CheckpointParts& parts);

// Writes to a temporary file in the same folder, flushes it to disk and
// renames it into place, so a failure leaves any previous file untouched.
// IoError names the path and the cause.
FLOWS_API void write_checkpoint(const std::string& path, const Checkpoint& checkpoint);

// Reads and verifies a checkpoint: its size, magic, format version, checksum,
// header and tensor table. A truncated, corrupted or foreign file is a
// DataError (IoError when it cannot be read) that names the path and fault.
FLOWS_API Checkpoint read_checkpoint(const std::string& path);
// The same for the bytes of a file; `origin` stands for the path in messages.
FLOWS_API Checkpoint parse_checkpoint(std::string_view bytes, const std::string& origin);

// Restores every "model/" tensor into `model`, which must have been built from
// the checkpoint's model YAML and seed (and its context width). A missing,
// extra, misshapen or non-finite tensor is a DataError naming `source` and
// the tensor; so is a model of another context width. Tensors are
// restored in place, so after an error the model is partly restored: discard it.
FLOWS_API void restore_model(const Checkpoint& checkpoint, Model& model, const std::string& source);

struct LoadedModel {
  std::shared_ptr<Registry> registry;  // the components it was built from
  Model model;                         // model.flow scores and samples in data units
  CheckpointInfo info;

  // The x columns (may be empty: unnamed) and the context columns (empty for
  // an unconditional model), as the model was trained on them.
  const std::vector<std::string>& columns() const { return info.columns; }
  const std::vector<std::string>& context_columns() const { return info.context_columns; }
  Index context_dim() const { return info.context_dim(); }
  bool conditional() const { return info.context_dim() > 0; }
  // The dequantization the model was trained with (disabled for continuous data).
  Dequantizer dequantizer() const {
    return Dequantizer(info.dim, info.dequantized, info.dequantize_samples, info.columns);
  }
};

// Reads `path`, loads the plugins the model needs (the default search path,
// `plugin_paths`, then the plugin files recorded in the checkpoint, when they
// are named flows_plugin_*), rebuilds
// the model and restores its state. A component that no plugin provides is a
// PluginError naming it and the plugin file it came from.
FLOWS_API LoadedModel load_model(const std::string& path,
                                 const std::vector<std::string>& plugin_paths = {});

// The second half of load_model: builds the model `checkpoint` describes with
// `registry`, which must already offer its components, and restores its state.
// Errors name `source`.
FLOWS_API LoadedModel rebuild_model(const Checkpoint& checkpoint,
                                    std::shared_ptr<Registry> registry, const std::string& source);

// Restores every "trainer/" tensor (steps done, optimizer moments) into
// `trainer`, which trains `flow`. Errors name `source`.
FLOWS_API void restore_trainer(const Checkpoint& checkpoint, Trainer& trainer, Flow& flow,
                               const std::string& source);

}  // namespace flows
