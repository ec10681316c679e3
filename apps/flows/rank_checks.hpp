#pragma once
#include "run_session.hpp"

namespace flows::app {

// Before any work on an MPI job of several ranks:
// - the ranks must agree on the pipeline (its YAML with the overrides), the
//   flows version and the training data, else a ConfigError on every rank
//   names each difference;
// - a model whose bijectors need the whole batch in training (batch_norm) is
//   refused: each rank would normalize its own share;
// - without FLOWS_NUM_THREADS or a `threads:` key, each rank gets its share
//   of the node's cores, so that ranks × threads never oversubscribe them.
void prepare_ranks(RunSession& session);

}  // namespace flows::app
