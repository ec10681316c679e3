#include "stages.hpp"

#include <algorithm>

#include "flows/error.hpp"

namespace flows::app {

const std::vector<Stage>& stage_table() {
  static const std::vector<Stage> table = {
      {"train", train_stage, true},   {"evaluate", evaluate_stage, true},
      {"sample", sample_stage, true}, {"save", save_stage},
      {"report", report_stage},
  };
  return table;
}

std::vector<std::string> stage_names() {
  std::vector<std::string> names;
  for (const Stage& stage : stage_table()) names.emplace_back(stage.name);
  return names;
}

const Stage& find_stage(const std::string& name) {
  const auto& table = stage_table();
  const auto it =
      std::find_if(table.begin(), table.end(), [&name](const Stage& s) { return name == s.name; });
  // Pipeline::load checked the names against stage_names().
  if (it == table.end()) throw Error("no stage named '" + name + "'");
  return *it;
}

bool RunSession::will_run(const std::string& stage) const {
  const auto& stages = pipeline.options.stages;
  return std::find(stages.begin(), stages.end(), stage) != stages.end();
}

Matrix RunSession::model_samples(Index n, Rng& rng, const Matrix& context) const {
  const auto [begin, end] = share_of(n, run.ranks.get(), model().flow->row_granule());
  return gather_rows(run.ranks.get(), model().flow->sample_rows(n, rng, context, begin, end),
                     dim());
}

HeldOut held_out(const DataSplits& data) {
  if (data.test.shape(0) > 0) return {&data.test, &data.test_context, "test"};
  if (data.val.shape(0) > 0) return {&data.val, &data.val_context, "val"};
  return {&data.train, &data.train_context, "train"};
}

}  // namespace flows::app
