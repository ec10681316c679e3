#pragma once
#include <cstdio>
#include <fstream>
#include <string>

#include "flows/trainer.hpp"

namespace flows::app {

// Shows training progress: a live line on a terminal (refreshed at most ten
// times a second) and, on a terminal or not, a line every `log_every` steps
// (a tenth of the run when 0), on stderr and in the log file at `log_path`.
class ProgressReporter {
 public:
  ProgressReporter(Index log_every, bool quiet, const std::string& log_path);
  void operator()(const Progress& p);
  void finish();

 private:
  std::string describe(const Progress& p) const;
  Index log_every_;
  bool quiet_;
  bool live_;
  double last_draw_ = -1;
  std::ofstream log_;
};

}  // namespace flows::app
