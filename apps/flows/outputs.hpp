#pragma once
#include <string>

#include "flows/trainer.hpp"

namespace flows::app {

// Writes `text` to `path` through a temporary file and a rename, so a failed
// write never leaves a half-written file.
void write_file_atomically(const std::string& path, const std::string& text);

// The training curve as CSV: step, train_loss, val_loss, lr, seconds.
std::string curve_csv(const TrainReport& report);

}  // namespace flows::app
