#pragma once
// `flows doctor`: the checks of flows/doctor.hpp on a saved model or a
// pipeline's model, printed as one table.
#include <string>
#include <vector>

#include "flows/tensor.hpp"

namespace flows::app {

struct DoctorCommand {
  // A saved model (model.flows), or a pipeline YAML (.yaml, .yml): its data
  // are loaded and its model built; the checkpoint its save stage wrote is
  // used when there is one, else the model as built (untrained).
  std::string target;
  std::string data;                    // --data FILE: rows to check on (.csv or .npy)
  std::vector<std::string> plugins;    // extra plugin files or folders (a saved model)
  std::vector<std::string> overrides;  // --set KEY=VALUE (a pipeline)
  Index rows = 2000;                   // data rows and samples used
  Index seed = 0;                      // of the samples drawn from the base
};

// Prints what was checked and the table to stdout; returns the number of
// failed checks (the command exits with status 1 when it is not 0).
Index doctor_command(const DoctorCommand& command);

}  // namespace flows::app
