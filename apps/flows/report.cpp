#include "report.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <exception>
#include <limits>

#include <fmt/format.h>

#include "svg_plot.hpp"

namespace flows::app {

namespace {

constexpr std::size_t kGrid = 80;         // heat map cells per side
constexpr std::size_t kBins = 40;         // histogram bins
constexpr std::size_t kMaxMarginals = 8;  // marginal histograms shown for d > 2
constexpr std::size_t kScatterPoints = 2000;
constexpr std::size_t kPairPoints = 1200;    // smaller pairwise plots, fewer dots
constexpr std::size_t kDensityPoints = 200;  // density curve for d == 1
constexpr double kMargin = 0.08;             // range margin around the data

constexpr const char* kStyle = R"(
body { font-family: "DejaVu Sans", Helvetica, Arial, sans-serif; color: #222; background: #fff;
       max-width: 1180px; margin: 24px auto; padding: 0 16px; line-height: 1.4; }
h1 { font-size: 22px; font-weight: 600; margin: 0 0 4px 0; }
h2 { font-size: 16px; font-weight: 600; margin: 28px 0 10px 0; padding-bottom: 4px;
     border-bottom: 1px solid #ddd; }
.summary { color: #555; font-size: 13px; margin: 0 0 8px 0; }
.note { color: #666; font-size: 13px; margin: 6px 0; }
.row { display: flex; flex-wrap: wrap; gap: 10px 14px; align-items: flex-start; }
.grid3 { display: grid; grid-template-columns: repeat(3, max-content); gap: 10px 14px; }
figure { margin: 0; }
figcaption { font-size: 12px; color: #555; text-align: center; margin-top: 2px; }
svg { display: block; }
table.metrics { border-collapse: collapse; font-size: 13px; }
table.metrics th, table.metrics td { padding: 4px 14px 4px 0; border-bottom: 1px solid #eee;
                                     text-align: left; }
table.metrics th { font-weight: 600; border-bottom: 1px solid #bbb; }
table.metrics td.value { font-family: "DejaVu Sans Mono", Menlo, Consolas, monospace;
                         text-align: right; }
table.metrics tr.fail td { color: #b00020; font-weight: 600; }
pre { background: #f7f7f7; border: 1px solid #e3e3e3; border-radius: 3px; padding: 10px 12px;
      font-size: 12px; overflow-x: auto; }
)";

using Column = std::vector<double>;

Column column(const Matrix& m, std::size_t j) {
  Column out(m.shape(0));
  for (std::size_t i = 0; i < out.size(); ++i) out[i] = m(i, j);
  return out;
}

std::string column_name(const ReportInputs& in, std::size_t j) {
  if (j < in.columns.size() && !in.columns[j].empty()) return in.columns[j];
  return fmt::format("x{}", j);
}

std::string plural(std::size_t n, const char* word) {
  return fmt::format("{} {}{}", n, word, n == 1 ? "" : "s");
}

// The plotted range of one dimension: the held-out data's (the samples' when
// there is no data) with a margin. Samples far outside are counted, not shown.
Interval axis_range(const Matrix& data, const Matrix& samples, std::size_t j) {
  const Matrix& source = data.shape(0) > 0 ? data : samples;
  return padded_range(column(source, j), kMargin);
}

std::string figure(const std::string& svg, const std::string& caption = "") {
  std::string out = "<figure>" + svg;
  if (!caption.empty()) out += "<figcaption>" + escape_xml(caption) + "</figcaption>";
  return out + "</figure>\n";
}

std::string note(const std::string& text) {
  return "<p class=\"note\">" + escape_xml(text) + "</p>\n";
}

// Histogram heights normalised to a density over all n values (values outside
// the bins count in n, so the bars integrate to the fraction inside).
struct Histogram {
  std::vector<double> heights;
  std::size_t outside = 0;
};

Histogram histogram(const Column& values, const std::vector<double>& edges) {
  Histogram h;
  const std::size_t bins = edges.size() - 1;
  h.heights.assign(bins, 0.0);
  const double lo = edges.front(), hi = edges.back(), width = (hi - lo) / static_cast<double>(bins);
  std::size_t n = 0;
  for (double v : values) {
    if (!std::isfinite(v)) continue;
    ++n;
    if (v < lo || v > hi) {
      ++h.outside;
      continue;
    }
    const auto b = std::min(bins - 1, static_cast<std::size_t>((v - lo) / width));
    h.heights[b] += 1;
  }
  if (n > 0)
    for (double& height : h.heights) height /= static_cast<double>(n) * width;
  return h;
}

std::vector<double> bin_edges(Interval range) {
  std::vector<double> edges(kBins + 1);
  for (std::size_t b = 0; b <= kBins; ++b)
    edges[b] = range.lo + (range.hi - range.lo) * static_cast<double>(b) / kBins;
  return edges;
}

double max_finite(const std::vector<double>& values) {
  double m = 0;
  for (double v : values)
    if (std::isfinite(v)) m = std::max(m, v);
  return m;
}

using LogProb = std::function<Vector(const Matrix&)>;

// Calls log_prob; an exception or a wrong size becomes `error`.
bool evaluate_log_prob(const LogProb& log_prob, const Matrix& points, Vector& out,
                       std::string& error) {
  try {
    out = log_prob(points);
  } catch (const std::exception& e) {
    error = std::string("the density could not be evaluated: ") + e.what();
    return false;
  }
  if (out.size() != points.shape(0)) {
    error = fmt::format("the density could not be evaluated: log_prob gave {} values for {} points",
                        out.size(), points.shape(0));
    return false;
  }
  return true;
}

std::string curve_section(const ReportInputs& in) {
  std::string out = "<h2>Training</h2>\n";
  if (in.curve.empty()) return out + note("No training curve: nothing was trained in this run.");
  Column steps, train, val, lr;
  for (const CurvePoint& p : in.curve) {
    steps.push_back(static_cast<double>(p.step));
    train.push_back(p.train_loss);
    val.push_back(p.val_loss);
    lr.push_back(p.lr);
  }
  Column losses = train;
  losses.insert(losses.end(), val.begin(), val.end());
  const bool has_val =
      std::any_of(val.begin(), val.end(), [](double v) { return std::isfinite(v); });
  const bool has_train =
      std::any_of(train.begin(), train.end(), [](double v) { return std::isfinite(v); });
  PlotOptions o;
  o.width = 720;
  o.height = 320;
  o.title = "Loss";
  o.x_label = "step";
  o.y_label = in.loss_name;
  o.x = padded_range(steps, 0.02);
  o.y = padded_range(losses, 0.05);
  SvgPlot plot(o);
  plot.line(steps, train, kBlue, "training");
  if (has_val) plot.line(steps, val, kOrange, "validation");
  if (!has_train && !has_val) plot.note("no finite loss values");
  std::string row = figure(plot.svg());

  // The learning rate, when it changes during the run.
  const auto [lr_min, lr_max] = std::minmax_element(lr.begin(), lr.end());
  if (std::isfinite(*lr_min) && std::isfinite(*lr_max) && *lr_max > *lr_min) {
    PlotOptions l;
    l.width = 380;
    l.height = 320;
    l.title = "Learning rate";
    l.x_label = "step";
    l.x = o.x;
    l.y = padded_range(lr, 0.05);
    l.legend = false;
    SvgPlot lr_plot(l);
    lr_plot.line(steps, lr, kGreen, "learning rate");
    row += figure(lr_plot.svg());
  }
  out += "<div class=\"row\">\n" + row + "</div>\n";
  const CurvePoint& last = in.curve.back();
  std::string summary =
      fmt::format("{} of the curve up to step {}", plural(in.curve.size(), "row"), last.step);
  if (std::isfinite(last.lr) && !(*lr_max > *lr_min))
    summary += fmt::format("; learning rate {:g}", last.lr);
  if (std::isfinite(last.seconds) && last.seconds > 0)
    summary += fmt::format("; {:.1f} s", last.seconds);
  if (!has_val) summary += "; no validation loss";
  return out + note(summary + ".");
}

// The plot of one 2-D panel: same size and axes everywhere.
PlotOptions panel_options(const ReportInputs& in, Interval xr, Interval yr,
                          const std::string& title) {
  PlotOptions o;
  o.width = 360;
  o.height = 350;
  o.title = title;
  o.x_label = column_name(in, 0);
  o.y_label = column_name(in, 1);
  o.x = xr;
  o.y = yr;
  o.legend = false;
  return o;
}

// exp(log_prob) on a kGrid x kGrid grid over the panel's range as a heat map;
// empty, with `error` set, when log_prob fails.
std::string density_figure(PlotOptions o, const LogProb& log_prob, std::string& error) {
  Matrix grid = xt::empty<Real>({kGrid * kGrid, std::size_t{2}});
  for (std::size_t j = 0; j < kGrid; ++j)
    for (std::size_t i = 0; i < kGrid; ++i) {
      grid(j * kGrid + i, 0) = o.x.lo + (o.x.hi - o.x.lo) * (static_cast<double>(i) + 0.5) / kGrid;
      grid(j * kGrid + i, 1) = o.y.lo + (o.y.hi - o.y.lo) * (static_cast<double>(j) + 0.5) / kGrid;
    }
  Vector lp;
  if (!evaluate_log_prob(log_prob, grid, lp, error)) return "";
  std::vector<double> density(lp.size());
  for (std::size_t k = 0; k < lp.size(); ++k)
    density[k] = std::isfinite(lp(k)) ? std::exp(lp(k)) : std::numeric_limits<double>::quiet_NaN();
  const double top = max_finite(density);
  o.width = 410;
  o.colorbar_width = 64;  // room for tick labels such as "0.25" and the label
  SvgPlot density_plot(o);
  if (top > 0) {
    density_plot.heatmap(density, kGrid, kGrid, {0, top});
    density_plot.colorbar({0, top}, "density");
  } else {
    density_plot.note("no positive finite density on the grid");
  }
  return figure(density_plot.svg());
}

// A scatter panel; points outside the range are counted in a note.
std::string scatter_figure(const PlotOptions& o, const Matrix& m, const char* color,
                           const std::string& caption = "") {
  SvgPlot plot(o);
  const std::size_t outside =
      plot.scatter(column(m, 0), column(m, 1), color, "", 0.45, kScatterPoints);
  if (outside > 0) plot.note(fmt::format("{} outside the plotted range", outside));
  return figure(plot.svg(), caption);
}

bool conditional(const ReportInputs& in) {
  return !in.context_columns.empty();
}

// 2-D: data and samples side by side with the same axes, and the density.
std::string two_d_section(const ReportInputs& in, const Matrix& samples) {
  const Interval xr = axis_range(in.data, samples, 0);
  const Interval yr = axis_range(in.data, samples, 1);
  std::string row;
  row +=
      scatter_figure(panel_options(in, xr, yr, fmt::format("Held-out data ({})", in.data.shape(0))),
                     in.data, kBlue);
  row += scatter_figure(
      panel_options(in, xr, yr, fmt::format("Model samples ({})", samples.shape(0))), samples,
      kOrange, conditional(in) ? "drawn at the held-out rows\u2019 contexts" : "");
  std::string notes;
  if (in.log_prob) {
    std::string error;
    const std::string density =
        density_figure(panel_options(in, xr, yr, "Learned density"), in.log_prob, error);
    if (density.empty())
      notes += note(error);
    else
      row += density;
  }
  return "<div class=\"row\">\n" + row + "</div>\n" + notes;
}

// Overlaid histograms of data and samples along dimension j (and the
// density curve for d == 1).
std::string marginal_plot(const ReportInputs& in, const Matrix& samples, std::size_t j, int width,
                          int height, std::string* error) {
  const Interval range = axis_range(in.data, samples, j);
  const auto edges = bin_edges(range);
  const Histogram hd = histogram(column(in.data, j), edges);
  const Histogram hs = histogram(column(samples, j), edges);
  Column grid, density;
  if (in.data.shape(1) == 1 && in.log_prob) {
    Matrix points = xt::empty<Real>({kDensityPoints, std::size_t{1}});
    for (std::size_t k = 0; k < kDensityPoints; ++k)
      points(k, 0) =
          range.lo + (range.hi - range.lo) * static_cast<double>(k) / (kDensityPoints - 1);
    Vector lp;
    if (evaluate_log_prob(in.log_prob, points, lp, *error)) {
      for (std::size_t k = 0; k < kDensityPoints; ++k) {
        grid.push_back(points(k, 0));
        density.push_back(std::exp(lp(k)));
      }
    }
  }
  const double top =
      std::max({max_finite(hd.heights), max_finite(hs.heights), max_finite(density)});
  PlotOptions o;
  o.width = width;
  o.height = height;
  o.x_label = column_name(in, j);
  o.y_label = "density";
  o.x = range;
  o.y = {0, top > 0 ? top * 1.08 : 1};
  o.legend_above = true;
  SvgPlot plot(o);
  if (in.data.shape(0) > 0) plot.histogram(edges, hd.heights, kBlue, "data", 0.3);
  if (samples.shape(0) > 0) plot.histogram(edges, hs.heights, kOrange, "samples", 0);
  if (!density.empty()) plot.line(grid, density, kGreen, "model density");
  if (hs.outside > 0) plot.note(plural(hs.outside, "sample") + " outside");
  return plot.svg();
}

std::string one_d_section(const ReportInputs& in, const Matrix& samples) {
  std::string error;
  std::string out = "<div class=\"row\">\n" +
                    figure(marginal_plot(in, samples, 0, 720, 340, &error)) + "</div>\n";
  if (!error.empty()) out += note(error);
  return out;
}

std::string many_d_section(const ReportInputs& in, const Matrix& samples) {
  const std::size_t d = in.data.shape(1);
  std::string out = "<h3 class=\"note\">Marginal histograms (both normalised to densities)</h3>\n";
  out += "<div class=\"row\">\n";
  std::string unused;
  for (std::size_t j = 0; j < std::min(d, kMaxMarginals); ++j)
    out += figure(marginal_plot(in, samples, j, 280, 230, &unused));
  out += "</div>\n";
  if (d > kMaxMarginals)
    out += note(fmt::format("Showing the first {} of {} dimensions.", kMaxMarginals, d));

  // Pairs among the first three dimensions: data above, samples below, so
  // each column compares one pair on the same axes.
  const std::vector<std::pair<std::size_t, std::size_t>> pairs = {{0, 1}, {0, 2}, {1, 2}};
  out +=
      "<h3 class=\"note\">Pairwise scatter plots: held-out data (top) and model samples "
      "(bottom)</h3>\n";
  out += "<div class=\"grid3\">\n";
  for (int which = 0; which < 2; ++which) {
    const Matrix& m = which == 0 ? in.data : samples;
    for (const auto& [a, b] : pairs) {
      PlotOptions o;
      o.width = 370;
      o.height = 340;
      o.title = which == 0 ? "data" : "samples";
      o.x_label = column_name(in, a);
      o.y_label = column_name(in, b);
      o.x = axis_range(in.data, samples, a);
      o.y = axis_range(in.data, samples, b);
      o.legend = false;
      SvgPlot plot(o);
      const std::size_t outside = plot.scatter(column(m, a), column(m, b),
                                               which == 0 ? kBlue : kOrange, "", 0.4, kPairPoints);
      if (outside > 0) plot.note(fmt::format("{} outside the plotted range", outside));
      out += figure(plot.svg());
    }
  }
  return out + "</div>\n";
}

std::string data_section(const ReportInputs& in) {
  std::string out = "<h2>Data and model</h2>\n";
  const std::size_t d = in.data.shape(1) > 0 ? in.data.shape(1) : in.samples.shape(1);
  if (d == 0 || (in.data.shape(0) == 0 && in.samples.shape(0) == 0))
    return out + note("No data or samples to plot.");
  Matrix samples = in.samples;
  if (samples.shape(0) > 0 && samples.shape(1) != d) {
    out += note(fmt::format("The samples have {} columns but the data has {}; they are not shown.",
                            samples.shape(1), d));
    samples = xt::empty<Real>({std::size_t{0}, d});
  }
  if (samples.shape(0) == 0) samples = xt::empty<Real>({std::size_t{0}, d});
  ReportInputs view_inputs;  // the data with d columns even when it is empty
  const ReportInputs* source = &in;
  if (in.data.shape(1) != d) {
    view_inputs = in;
    view_inputs.data = xt::empty<Real>({std::size_t{0}, d});
    source = &view_inputs;
  }
  if (d == 1) return out + one_d_section(*source, samples);
  if (d == 2) return out + two_d_section(*source, samples);
  return out + many_d_section(*source, samples);
}

// The sample quantile of the finite values at probability q: linear
// interpolation between order statistics, x_(⌊h⌋) + (h − ⌊h⌋)(x_(⌊h⌋+1) − x_(⌊h⌋))
// with h = (n − 1) q (0-based), definition 7 of Hyndman & Fan, "Sample
// quantiles in statistical packages", The American Statistician 50 (1996).
// NaN when there is no finite value.
double quantile(Column values, double q) {
  values.erase(
      std::remove_if(values.begin(), values.end(), [](double v) { return !std::isfinite(v); }),
      values.end());
  if (values.empty()) return std::numeric_limits<double>::quiet_NaN();
  std::sort(values.begin(), values.end());
  const double h = static_cast<double>(values.size() - 1) * q;
  const auto lo = static_cast<std::size_t>(std::floor(h));
  const std::size_t hi = std::min(lo + 1, values.size() - 1);
  return values[lo] + (h - static_cast<double>(lo)) * (values[hi] - values[lo]);
}

// A context value for a label: three significant digits, a typographic minus.
std::string context_number(double v) {
  std::string s = fmt::format("{:.3g}", v);
  if (!s.empty() && s[0] == '-') s = "\u2212" + s.substr(1);
  return s;
}

std::string context_name(const std::vector<std::string>& names, std::size_t j) {
  return j >= names.size() || names[j].empty() ? fmt::format("c{}", j) : names[j];
}

constexpr double kContextQuantiles[] = {0.1, 0.5, 0.9};
constexpr std::size_t kContextSamples = 1000;  // samples drawn at each context value
constexpr std::size_t kNamedMedians = 3;       // other columns named in a label

}  // namespace

std::vector<ContextValue> report_context_values(const Matrix& context,
                                                const std::vector<std::string>& names) {
  const std::size_t k = context.shape(1);
  if (k == 0) return {};
  std::vector<double> medians(k);
  for (std::size_t j = 0; j < k; ++j) medians[j] = quantile(column(context, j), 0.5);
  std::string others;
  for (std::size_t j = 1; j < std::min(k, kNamedMedians + 1); ++j)
    others += fmt::format("{}{} = {}", others.empty() ? "" : ", ", context_name(names, j),
                          context_number(medians[j]));
  if (k > kNamedMedians + 1) others += fmt::format(" and {} more", k - 1 - kNamedMedians);
  if (k > 1) others = "; " + others + (k == 2 ? " (its median)" : " (their medians)");
  std::vector<ContextValue> out;
  for (double q : kContextQuantiles) {
    ContextValue v;
    v.row = xt::empty<Real>({std::size_t{1}, k});
    for (std::size_t j = 0; j < k; ++j) v.row(0, j) = medians[j];
    v.row(0, 0) = quantile(column(context, 0), q);
    v.label = fmt::format(
        "{} = {} ({}){}", context_name(names, 0), context_number(v.row(0, 0)),
        q == 0.5 ? std::string("median") : fmt::format("{:.0f}% quantile", q * 100), others);
    out.push_back(std::move(v));
  }
  return out;
}

// Each context column is divided by its standard deviation (1 when that is
// zero) so that no column dominates by its units.
Matrix nearest_context_rows(const Matrix& data, const Matrix& context, const Matrix& row,
                            std::size_t count) {
  const std::size_t n = context.shape(0), k = context.shape(1);
  std::vector<double> scale(k, 1.0);
  for (std::size_t j = 0; j < k; ++j) {
    double mean = 0, squares = 0;
    std::size_t m = 0;
    for (std::size_t i = 0; i < n; ++i)
      if (std::isfinite(context(i, j))) mean += context(i, j), ++m;
    if (m < 2) continue;
    mean /= static_cast<double>(m);
    for (std::size_t i = 0; i < n; ++i)
      if (std::isfinite(context(i, j))) squares += (context(i, j) - mean) * (context(i, j) - mean);
    const double sd = std::sqrt(squares / static_cast<double>(m - 1));
    if (sd > 0 && std::isfinite(sd)) scale[j] = sd;
  }
  std::vector<std::pair<double, std::size_t>> distance(n);
  for (std::size_t i = 0; i < n; ++i) {
    double d2 = 0;
    for (std::size_t j = 0; j < k; ++j) {
      const double t = (context(i, j) - row(0, j)) / scale[j];
      d2 += t * t;
    }
    distance[i] = {std::isfinite(d2) ? d2 : std::numeric_limits<double>::infinity(), i};
  }
  count = std::min(count, n);
  std::partial_sort(distance.begin(), distance.begin() + static_cast<std::ptrdiff_t>(count),
                    distance.end());
  Matrix out = xt::empty<Real>({count, data.shape(1)});
  for (std::size_t r = 0; r < count; ++r)
    for (std::size_t j = 0; j < data.shape(1); ++j) out(r, j) = data(distance[r].second, j);
  return out;
}

namespace {

// A conditional model: at three context values, the held-out rows with the
// nearest contexts, samples at the value and the density p(x | c) (2-D x).
std::string context_section(const ReportInputs& in) {
  std::string out = "<h2>At three context values</h2>\n";
  const std::size_t d = in.data.shape(1) > 0 ? in.data.shape(1) : in.samples.shape(1);
  const std::size_t k = in.context_columns.size();
  std::string columns;
  for (std::size_t j = 0; j < k; ++j)
    columns += (j ? ", " : "") + context_name(in.context_columns, j);
  if (d != 2)
    return out + note(fmt::format("The model is p(x | c) with context columns {}. Samples and "
                                  "densities at chosen contexts are drawn for 2-D x only; this "
                                  "model has {}.",
                                  columns, plural(d, "dimension")));
  if (in.context.shape(0) == 0 || in.context.shape(1) != k)
    return out + note(fmt::format("No held-out context rows with the {} context columns ({}): "
                                  "the context values cannot be chosen.",
                                  k, columns));
  const std::vector<ContextValue> values = report_context_values(in.context, in.context_columns);
  for (const ContextValue& v : values)
    for (double c : v.row)
      if (!std::isfinite(c))
        return out + note("The held-out context has no finite values to choose from.");

  const bool with_data = in.data.shape(0) == in.context.shape(0) && in.data.shape(1) == 2;
  const std::size_t n = in.context.shape(0);
  const std::size_t nearest = std::max(std::min(n, std::size_t{50}), n / 10);
  out += note(fmt::format(
      "The model is p(x | c) with context columns {}. At the 10%, 50% and 90% quantiles of {} "
      "over the {} held-out rows{}: {}samples drawn at that context and the density p(x | c).",
      columns, context_name(in.context_columns, 0), n,
      k > 1 ? ", the other columns at their medians" : "",
      with_data ? fmt::format("the {} held-out rows whose contexts are nearest (distance in "
                              "standard deviations of each context column), ",
                              nearest)
                : ""));
  if (!with_data && in.data.shape(0) > 0)
    out += note(fmt::format("The context has {} rows but the data {}: held-out rows are not shown.",
                            n, in.data.shape(0)));

  // Samples first, so that the axes can cover them when there is no data.
  Rng rng(static_cast<std::uint64_t>(in.seed));
  std::vector<Matrix> drawn(values.size());
  std::vector<std::string> errors(values.size());
  for (std::size_t i = 0; i < values.size() && in.sample_given; ++i) {
    Rng stream = rng.derive(i);
    try {
      drawn[i] = in.sample_given(kContextSamples, values[i].row, stream);
      if (drawn[i].shape(0) != kContextSamples || drawn[i].shape(1) != 2)
        errors[i] = fmt::format("sampling gave [{} x {}] for {} samples of 2 columns",
                                drawn[i].shape(0), drawn[i].shape(1), kContextSamples);
    } catch (const std::exception& e) {
      errors[i] = std::string("the samples could not be drawn: ") + e.what();
    }
    if (!errors[i].empty()) drawn[i] = xt::empty<Real>({std::size_t{0}, std::size_t{2}});
  }
  std::size_t total = 0;
  for (const Matrix& m : drawn) total += m.shape(0);
  Matrix all = xt::empty<Real>({total, std::size_t{2}});
  total = 0;
  for (const Matrix& m : drawn)
    if (m.shape(0) > 0) {
      std::copy(m.begin(), m.end(), all.data() + total * 2);
      total += m.shape(0);
    }
  const Matrix& data = with_data ? in.data : all;
  const Interval xr = axis_range(data, all, 0), yr = axis_range(data, all, 1);

  for (std::size_t i = 0; i < values.size(); ++i) {
    const ContextValue& v = values[i];
    std::string row, notes;
    if (with_data) {
      const Matrix near = nearest_context_rows(in.data, in.context, v.row, nearest);
      row += scatter_figure(
          panel_options(in, xr, yr, fmt::format("Held-out, {} nearest", near.shape(0))), near,
          kBlue);
    }
    if (in.sample_given) {
      if (errors[i].empty())
        row += scatter_figure(
            panel_options(in, xr, yr, fmt::format("Samples at c ({})", drawn[i].shape(0))),
            drawn[i], kOrange);
      else
        notes += note(errors[i]);
    }
    if (in.log_prob_given) {
      std::string error;
      const LogProb at_c = [&](const Matrix& x) { return in.log_prob_given(x, v.row); };
      const std::string density =
          density_figure(panel_options(in, xr, yr, "Density p(x | c)"), at_c, error);
      if (density.empty())
        notes += note(error);
      else
        row += density;
    }
    out += "<h3 class=\"note\">" + escape_xml("At " + v.label) + "</h3>\n";
    if (!row.empty()) out += "<div class=\"row\">\n" + row + "</div>\n";
    out += notes;
  }
  return out;
}

std::string metrics_section(const ReportInputs& in) {
  std::string out = "<h2>Metrics</h2>\n";
  if (in.metrics.empty()) return out + note("No metrics.");
  out += "<table class=\"metrics\">\n<tr><th>metric</th><th>value</th></tr>\n";
  for (const auto& [label, value] : in.metrics)
    out += "<tr><td>" + escape_xml(label) + "</td><td class=\"value\">" + escape_xml(value) +
           "</td></tr>\n";
  return out + "</table>\n";
}

// The doctor's table (the same rows as `flows doctor` prints).
std::string doctor_section(const ReportInputs& in) {
  std::string out = "<h2>Doctor</h2>\n";
  if (!in.doctor) return out + note("The checks could not run: " + in.doctor_error);
  const DoctorReport& report = *in.doctor;
  const Index failed = report.failures();
  out += note(fmt::format(
      "Checked on {}. {}", report.source,
      failed == 0 ? std::string("Every check passed.")
                  : fmt::format("{} of {} checks failed.", failed, report.rows.size())));
  auto number = [](double v) {
    if (std::isnan(v)) return std::string("-");
    if (std::isinf(v)) return std::string(v > 0 ? "inf" : "-inf");
    return fmt::format("{:.3g}", v);
  };
  out +=
      "<table class=\"metrics doctor\">\n<tr><th>layer</th><th>type</th><th>check</th>"
      "<th>value</th><th>threshold</th><th>result</th><th>advice</th></tr>\n";
  for (const DoctorRow& r : report.rows) {
    const Finding& f = r.finding;
    const char* result = !f.ok ? "FAIL" : std::isnan(f.threshold) ? "info" : "ok";
    out += std::string(f.ok ? "<tr>" : "<tr class=\"fail\">") + "<td>" + escape_xml(r.layer) +
           "</td><td>" + escape_xml(r.type) + "</td><td>" + escape_xml(f.check) +
           "</td><td class=\"value\">" + escape_xml(number(f.value)) + "</td><td class=\"value\">" +
           escape_xml(number(f.threshold)) + "</td><td>" + result + "</td><td>" +
           escape_xml(f.advice) + "</td></tr>\n";
  }
  return out + "</table>\n";
}

}  // namespace

void set_model_functions(ReportInputs& inputs, std::shared_ptr<const Flow> flow) {
  inputs.log_prob = nullptr;
  inputs.log_prob_given = nullptr;
  inputs.sample_given = nullptr;
  if (flow->context_dim() == 0) {
    inputs.log_prob = [flow](const Matrix& x) { return flow->log_prob(x); };
    return;
  }
  inputs.log_prob_given = [flow](const Matrix& x, const Matrix& context_row) {
    // One context row for every row of x.
    Matrix context = xt::empty<Real>({x.shape(0), context_row.shape(1)});
    for (Index i = 0; i < x.shape(0); ++i)
      std::copy(context_row.begin(), context_row.end(), context.data() + i * context_row.shape(1));
    return flow->log_prob(x, context);
  };
  inputs.sample_given = [flow](Index n, const Matrix& context_row, Rng& rng) {
    return flow->sample(n, rng, context_row);
  };
}

std::string render_report(const ReportInputs& inputs) {
  const std::string title = inputs.title.empty() ? "flows run" : inputs.title;
  const std::size_t d = inputs.data.shape(1) > 0 ? inputs.data.shape(1) : inputs.samples.shape(1);
  std::string out = "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n";
  out += "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n";
  out += "<title>" + escape_xml(title) + " \u2014 flows report</title>\n";
  out += std::string("<style>") + kStyle + "</style>\n</head>\n<body>\n";
  out += "<h1>" + escape_xml(title) + "</h1>\n";
  out +=
      "<p class=\"summary\">" +
      escape_xml(fmt::format(
          "{}{} \u00b7 {} held-out rows shown \u00b7 {} samples shown", plural(d, "dimension"),
          conditional(inputs) ? " \u00b7 " + plural(inputs.context_columns.size(), "context column")
                              : "",
          inputs.data.shape(0), inputs.samples.shape(0))) +
      "</p>\n";
  out += metrics_section(inputs);
  out += curve_section(inputs);
  out += data_section(inputs);
  if (conditional(inputs)) out += context_section(inputs);
  if (inputs.doctor || !inputs.doctor_error.empty()) out += doctor_section(inputs);
  out += "<h2>Pipeline</h2>\n";
  if (inputs.pipeline_yaml.empty())
    out += note("No pipeline YAML.");
  else
    out += "<pre>" + escape_xml(inputs.pipeline_yaml) + "</pre>\n";
  out += "<p class=\"summary\">Written by flows.</p>\n</body>\n</html>\n";
  return out;
}

}  // namespace flows::app
