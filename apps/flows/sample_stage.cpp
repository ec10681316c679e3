// The sample stage (samples.csv) and the save stage (model.flows).
#include <iostream>

#include <fmt/format.h>

#include "flows/checkpoint.hpp"
#include "flows/data/csv.hpp"
#include "flows/streams.hpp"
#include "rows.hpp"
#include "stages.hpp"

namespace flows::app {

// On every rank: each inverts its share of the rows, rank 0 writes them all.
void sample_stage(RunSession& s) {
  const PipelineOptions& options = s.options();
  const DataSplits& data = s.data();
  Rng rng = run_stream(options.seed, RunStream::samples);
  const std::string path = s.out + "/samples.csv";
  if (s.conditional()) {
    // One sample per held-out context row (cycled), written next to it.
    const HeldOut reference = held_out(data);
    const Matrix context = cycled_rows(*reference.context, options.sample_count);
    s.samples = s.pipeline.sample(options.sample_count, rng, context, s.run.ranks.get());
    if (!s.writes_outputs()) return;
    std::vector<std::string> header = data.columns;
    header.insert(header.end(), data.context_columns.begin(), data.context_columns.end());
    write_csv(path, side_by_side(s.samples, context),
              data.columns.empty() ? std::vector<std::string>{} : header);
    std::cerr << fmt::format("wrote {} samples at the {} rows' contexts to {}\n",
                             options.sample_count, reference.split, path);
  } else {
    s.samples = s.pipeline.sample(options.sample_count, rng, {}, s.run.ranks.get());
    if (!s.writes_outputs()) return;
    write_csv(path, s.samples, data.columns);
    std::cerr << fmt::format("wrote {} samples to {}\n", options.sample_count, path);
  }
}

void save_stage(RunSession& s) {
  write_checkpoint(s.out + "/model.flows", make_checkpoint(s.pipeline));
  std::cerr << fmt::format("saved {}/model.flows\n", s.out);
}

}  // namespace flows::app
