#pragma once
#include <string>
#include <vector>

#include "run_session.hpp"

namespace flows::app {

// Before the pipeline is loaded on an MPI job of several ranks (loading
// already sums across them): the ranks must agree on the pipeline (its YAML
// with the overrides `overrides`) and the flows version, else a ConfigError
// on every rank names each difference. Pipeline::load then checks the data
// (check_same_data_on_every_rank).
void check_same_job(Ranks& ranks, const std::string& file,
                    const std::vector<std::string>& overrides);

// After loading, before any work:
// - a model with a layer that normalizes by its batch's statistics needs a
//   row of each batch on every rank;
// - without FLOWS_NUM_THREADS or a `threads:` key, each rank gets its share
//   of the node's cores, so that ranks × threads never oversubscribe them.
void prepare_ranks(RunSession& session);

}  // namespace flows::app
