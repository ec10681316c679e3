#pragma once
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "flows/doctor.hpp"
#include "flows/flow.hpp"
#include "flows/rng.hpp"
#include "flows/tensor.hpp"
#include "flows/trainer.hpp"  // CurvePoint

namespace flows::app {

// Everything report.html shows about one run.
struct ReportInputs {
  std::string title;              // pipeline name
  std::string loss_name = "nll";  // what the curve's losses measure (nll, or cfm's regression loss)
  std::vector<CurvePoint> curve;  // training/validation curve; empty when nothing was trained
  std::vector<std::string>
      columns;     // column names of the data (may be empty: x0, x1, ... are used)
  Matrix data;     // held-out data rows, data units (the caller subsamples to a few thousand)
  Matrix samples;  // model samples, same columns
  std::function<Vector(const Matrix&)> log_prob;  // model log-density in data units; may be empty
  std::vector<std::pair<std::string, std::string>> metrics;  // (label, formatted value), in order
  std::string pipeline_yaml;                                 // the YAML the model was trained with

  // A conditional model p(x | c); all empty for an unconditional one. The
  // samples above are then drawn at the held-out rows' contexts, and log_prob
  // is left empty (the model has no density of x alone).
  std::vector<std::string> context_columns;  // names of the context columns
  Matrix context;  // the context of each row of `data`, raw units (same rows)
  // log p(x | c) of every row of x at one context row (1 x context columns).
  std::function<Vector(const Matrix& x, const Matrix& context_row)> log_prob_given;
  // n samples at one context row.
  std::function<Matrix(Index n, const Matrix& context_row, Rng& rng)> sample_given;
  Index seed = 0;  // the report's own draws (samples at the three contexts) use Rng(seed)

  // The `flows doctor` table of the model (flows/doctor.hpp); absent: no
  // section. doctor_error: why it could not be computed (shown instead).
  std::optional<DoctorReport> doctor;
  std::string doctor_error;
};

// Sets the model's functions of `inputs` from `flow`: log_prob for an
// unconditional flow; log_prob_given and sample_given for a conditional one.
void set_model_functions(ReportInputs& inputs, std::shared_ptr<const Flow> flow);

// One self-contained HTML page (inline CSS and SVG; no scripts, no external
// files): the metrics table, the training curve, the data against the model
// (2-D: scatter plots and the learned density as a heat map; 1-D: histograms
// and the density curve; more dimensions: marginal histograms and pairwise
// scatter plots), the doctor's table and the pipeline's YAML. For a conditional model with 2-D x
// it also shows, at three context values (the 10%, 50% and 90% quantiles of
// the first context column over `context`, the other columns at their
// medians), the held-out rows with the nearest contexts, samples drawn at that
// context and the density p(x | c) as a heat map. All text is HTML-escaped. A
// model function that throws or returns the wrong size leaves a note instead
// of its plot.
std::string render_report(const ReportInputs& inputs);

// One of the context values a conditional model's report draws at.
struct ContextValue {
  Matrix row;         // 1 x context columns
  std::string label;  // "c1 = 0.12 (10% quantile); c2 = 3 (its median)"
};

// The report's three context values for the held-out context rows `context`
// (n x names.size(), n >= 1): the 10%, 50% and 90% quantiles of the first
// column, the other columns at their medians (NaN where a column has no
// finite value; none when there is no column).
std::vector<ContextValue> report_context_values(const Matrix& context,
                                                const std::vector<std::string>& names);

// The `count` rows of `data` whose rows of `context` are nearest `row`
// (Euclidean distance, each context column divided by its standard deviation
// over `context`), nearest first.
Matrix nearest_context_rows(const Matrix& data, const Matrix& context, const Matrix& row,
                            std::size_t count);

}  // namespace flows::app
