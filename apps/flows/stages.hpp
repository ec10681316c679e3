#pragma once
// The stages a pipeline lists (`stages:`), as a table: each is a small
// function of the run's session, and the names a pipeline may use are the
// table's.
#include <string>
#include <vector>

#include "run_session.hpp"

namespace flows::app {

struct Stage {
  const char* name;
  void (*run)(RunSession& session);
  // Whether every rank of an MPI job runs it (train, evaluate, sample: each
  // computes its share, and rank 0 writes); the others run on rank 0 alone.
  bool every_rank = false;
};

// Every stage, in the order they run by default.
const std::vector<Stage>& stage_table();
// Their names, for checking a pipeline's `stages:`.
std::vector<std::string> stage_names();
// The stage named `name` (a name from stage_names()).
const Stage& find_stage(const std::string& name);

void train_stage(RunSession& session);     // train_stage.cpp
void evaluate_stage(RunSession& session);  // evaluate_stage.cpp
void sample_stage(RunSession& session);    // sample_stage.cpp
void save_stage(RunSession& session);      // sample_stage.cpp
void report_stage(RunSession& session);    // report_stage.cpp

}  // namespace flows::app
