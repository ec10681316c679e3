// The evaluate stage: the NLL and bits per dimension of every split, the
// samples' share inside the bounds, and MMD and sliced W1 against the
// held-out rows.
#include <iostream>

#include <fmt/format.h>

#include "flows/data/columns.hpp"
#include "flows/metrics.hpp"
#include "flows/streams.hpp"
#include "rows.hpp"
#include "stages.hpp"

namespace flows::app {

namespace {

void score_splits(RunSession& s) {
  const DataSplits& data = s.data();
  const Dequantizer& dequantize = s.pipeline.dequantize;
  const char* nll_label = dequantize.enabled() ? "NLL bound (nats)" : "NLL (nats)";
  nlohmann::ordered_json nll = nlohmann::ordered_json::object();
  nlohmann::ordered_json bits = nlohmann::ordered_json::object();
  BitsPerDim last_bits;
  const std::pair<const char*, const Matrix*> splits[] = {
      {"train", &data.train}, {"val", &data.val}, {"test", &data.test}};
  for (int index = 0; index < 3; ++index) {
    const auto [split, rows] = splits[index];
    if ((index == 0 ? data.train_rows() : rows->shape(0)) == 0) continue;
    // With data.dequantize, the dequantized bound -log P(x) of the integer rows.
    const Real value = s.pipeline.split_nll(index, s.run.ranks.get());
    if (!s.writes_outputs()) continue;
    nll[split] = value;
    last_bits = bits_per_dim(value, dequantize, s.dim());
    bits[split] = last_bits.value;
    s.shown.emplace_back(fmt::format("{} {}", split, nll_label), fmt::format("{:.4f}", value));
    std::cerr << fmt::format("{} NLL{}: {:.4f} nats (data units), {:.4f} bits/dim ({})\n", split,
                             dequantize.enabled() ? " (dequantized bound)" : "", value,
                             last_bits.value, last_bits.kind);
  }
  if (!s.writes_outputs()) return;
  s.metrics["nll"] = nll;
  bits["kind"] = last_bits.kind;
  bits["meaning"] = last_bits.meaning;
  if (dequantize.enabled()) {
    s.metrics["dequantized_columns"] = join_column_names(dequantize.column_names());
    bits["dequantize_samples"] = dequantize.samples();
  }
  s.metrics["bits_per_dim"] = bits;
  if (data.test.shape(0) > 0 || data.val.shape(0) > 0)
    s.shown.emplace_back(fmt::format("{} bits/dim ({})", held_out(data).split, last_bits.kind),
                         fmt::format("{:.4f}", last_bits.value));
}

// The model's own samples (before any quantization) against the box.
void count_inside_bounds(RunSession& s, const Matrix& drawn) {
  const Bounds& bounds = *s.model().bounds;
  const Matrix x_drawn = xt::view(drawn, xt::all(), xt::range(0, s.dim()));
  Index inside = 0;
  for (Index i = 0; i < x_drawn.shape(0); ++i)
    if (bounds.contains(xt::view(x_drawn, xt::range(i, i + 1), xt::all()))) ++inside;
  const Index rows = x_drawn.shape(0);
  s.metrics["bounds"] = {{"bounds", bounds.describe()}, {"samples", rows}, {"inside", inside}};
  s.shown.emplace_back(fmt::format("samples inside the bounds ({})", bounds.describe()),
                       fmt::format("{} of {}", inside, rows));
  std::cerr << fmt::format("samples inside the bounds: {} of {}\n", inside, rows);
}

}  // namespace

// On every rank: each scores and samples its share of the rows, and rank 0
// has the sums and samples of one process.
void evaluate_stage(RunSession& s) {
  score_splits(s);
  const PipelineOptions& options = s.options();
  const DataSplits& data = s.data();
  const Model& model = s.model();
  const Index dim = s.dim();
  const HeldOut reference = held_out(data);
  const char* split = reference.split;
  Rng quality_rng = run_stream(options.seed, RunStream::quality_samples);
  // A conditional model is judged on the joint rows (x, c): one sample per
  // held-out context, so that a model ignoring c does not match.
  Matrix compared = *reference.x;
  Matrix drawn;
  if (s.conditional()) {
    compared = first_rows(side_by_side(*reference.x, *reference.context), options.quality_rows);
    const Matrix context = xt::view(compared, xt::all(), xt::range(dim, dim + data.context_dim()));
    drawn = s.model_samples(context.shape(0), quality_rng, context);
    if (s.writes_outputs()) drawn = side_by_side(drawn, context);
  } else {
    drawn = s.model_samples(options.quality_rows, quality_rng);
  }
  // Rank 0 has every sample and computes the rest.
  if (!s.writes_outputs()) return;
  if (model.bounds) count_inside_bounds(s, drawn);
  // Integer data are compared with integer samples.
  if (s.pipeline.dequantize.enabled()) drawn = s.pipeline.quantized(drawn);
  SampleQuality q;
  try {
    Rng metric_rng = run_stream(options.seed, RunStream::quality_metric);
    q = sample_quality(compared, drawn, metric_rng, options.quality_rows, options.projections);
  } catch (const DataError& e) {
    // A diverged model's non-finite samples: the NLL above already tells.
    std::cerr << fmt::format("warning: no MMD or sliced W1: {}\n", e.what());
    return;
  }
  nlohmann::ordered_json quality;
  quality["split"] = split;
  quality["rows"] = q.rows;
  if (s.conditional()) quality["compared"] = "joint rows (x, c): one sample per held-out context";
  quality["mmd2"] = q.mmd.mmd2;
  quality["mmd_bandwidth"] = q.mmd.bandwidth;
  quality["mmd_kernel"] = "gaussian exp(-|a-b|^2/(2h^2)), h = median pairwise distance";
  quality["sliced_w1"] = q.sliced_w1;
  quality["projections"] = q.projections;
  s.metrics["quality"] = quality;
  s.shown.emplace_back(fmt::format("MMD² vs {} (h = {:.3g})", split, q.mmd.bandwidth),
                       fmt::format("{:.5f}", q.mmd.mmd2));
  s.shown.emplace_back(fmt::format("sliced W1 vs {} ({} directions)", split, q.projections),
                       fmt::format("{:.4f}", q.sliced_w1));
  std::cerr << fmt::format("{} rows vs samples: MMD² {:.5f}, sliced W1 {:.4f}\n", split, q.mmd.mmd2,
                           q.sliced_w1);
}

}  // namespace flows::app
