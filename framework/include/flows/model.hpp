#pragma once
// The model a `model:` section describes, built through the registry. One
// function builds it for every entry point: a pipeline file (Pipeline::load),
// a pipeline in memory (make_in_memory_pipeline), a replica for training on
// several threads, and a checkpoint (load_model).
#include <memory>
#include <string>
#include <vector>

#include "flows/bounds.hpp"
#include "flows/config.hpp"
#include "flows/export.hpp"
#include "flows/flow.hpp"
#include "flows/registry.hpp"
#include "flows/standardize.hpp"

namespace flows {

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

}  // namespace flows
