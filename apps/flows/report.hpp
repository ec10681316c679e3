#pragma once
#include <functional>
#include <string>
#include <utility>
#include <vector>

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
};

// One self-contained HTML page (inline CSS and SVG; no scripts, no external
// files): the metrics table, the training curve, the data against the model
// (2-D: scatter plots and the learned density as a heat map; 1-D: histograms
// and the density curve; more dimensions: marginal histograms and pairwise
// scatter plots) and the pipeline's YAML. All text is HTML-escaped. A
// log_prob that throws or returns the wrong size leaves a note instead of the
// density plot.
std::string render_report(const ReportInputs& inputs);

}  // namespace flows::app
