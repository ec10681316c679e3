#pragma once
// Small SVG plotting primitives for the HTML report: one pair of axes with
// "nice" ticks, on which line series, scatter points, histograms and a heat
// map are drawn. Styled after matplotlib's defaults (tab10 colours, a boxed
// frame, viridis). Every number written into the SVG is finite: non-finite
// inputs are skipped, never printed.
#include <cstddef>
#include <string>
#include <vector>

namespace flows::app {

// A closed interval of data values.
struct Interval {
  double lo = 0;
  double hi = 1;
};

// matplotlib's tab10 colours used by the report.
inline constexpr const char* kBlue = "#1f77b4";
inline constexpr const char* kOrange = "#ff7f0e";
inline constexpr const char* kGreen = "#2ca02c";

// Escapes & < > " ' for HTML and SVG text and attribute values.
std::string escape_xml(const std::string& text);

// A pixel coordinate with at most one decimal ("12.3", "-4", never "nan").
std::string format_coord(double value);

// A tick label: as many decimals as the tick spacing `step` needs.
std::string format_tick(double value, double step);

// The range of the finite values, widened by `margin` times its width on each
// side. A degenerate range (one value, all equal) is widened around the value;
// no finite value gives [0, 1].
Interval padded_range(const std::vector<double>& values, double margin);

// The tick spacing of a "nice" axis (1, 2 or 5 times a power of ten) giving
// about `target` ticks over [lo, hi]: Heckbert, "Nice numbers for graph
// labels", Graphics Gems (1990).
double nice_step(double lo, double hi, int target);

// The multiples of nice_step(lo, hi, target) inside [lo, hi].
std::vector<double> nice_ticks(double lo, double hi, int target);

// Widens `range` outwards to the nearest nice ticks.
Interval nice_range(Interval range, int target);

// matplotlib's viridis colour map at t in [0, 1], as "#rrggbb".
std::string viridis(double t);

// The size and labels of one plot.
struct PlotOptions {
  int width = 360;   // whole SVG, pixels
  int height = 340;  // whole SVG, pixels
  std::string title;
  std::string x_label;
  std::string y_label;
  Interval x;                 // data range along x
  Interval y;                 // data range along y
  bool grid = true;           // light grid lines at the ticks
  bool legend = true;         // a legend box when series have labels
  bool legend_above = false;  // the legend in one row above the plot, in place of a title
  int colorbar_width = 0;     // extra space on the right for colorbar()
};

// One plot: a frame with ticks, labels and a legend, and the series drawn
// into it, in data units. svg() gives the finished <svg> element.
class SvgPlot {
 public:
  explicit SvgPlot(PlotOptions options);

  // A polyline through the finite points (x[i], y[i]); non-finite points are
  // skipped and their neighbours joined. Markers are drawn when there are few
  // points, so a single point stays visible.
  void line(const std::vector<double>& x, const std::vector<double>& y, const std::string& color,
            const std::string& label, bool dashed = false);

  // Dots at the points inside the plot's range, at most `max_points` of them
  // (an evenly spaced subset). Returns how many finite points fell outside.
  std::size_t scatter(const std::vector<double>& x, const std::vector<double>& y,
                      const std::string& color, const std::string& label, double opacity = 0.5,
                      std::size_t max_points = 2000);

  // Bars of `heights` between consecutive `edges` (edges.size() ==
  // heights.size() + 1), as a step outline filled with `fill_opacity` (0:
  // outline only).
  void histogram(const std::vector<double>& edges, const std::vector<double>& heights,
                 const std::string& color, const std::string& label, double fill_opacity = 0.3);

  // A heat map of `values` (ny rows of nx cells, row-major, row 0 at the
  // bottom) covering the plot's x and y range, coloured by viridis over
  // `range`. Non-finite cells stay blank.
  void heatmap(const std::vector<double>& values, std::size_t nx, std::size_t ny, Interval range);

  // A vertical colour scale for heatmap() in the space reserved by
  // PlotOptions::colorbar_width.
  void colorbar(Interval range, const std::string& label);

  // Small text in the plot's lower left corner (e.g. "12 points outside").
  void note(const std::string& text);

  std::string svg() const;

  // Data to pixel coordinates inside the plot area.
  double px(double x) const;
  double py(double y) const;

 private:
  struct LegendEntry {
    std::string label;
    std::string color;
    char kind;    // 'l' line, 'p' point, 'b' bar
    bool dashed;  // lines
    double fill;  // bars: fill opacity
  };
  // Where something was drawn (plot-area pixels), so the legend can go to
  // the emptiest corner. A filled mark also covers everything below it.
  struct Mark {
    double u, v;
    bool filled;
  };
  std::string grid() const;   // drawn under the series
  std::string frame() const;  // drawn over them: ticks, box, labels
  std::string legend_box() const;
  std::string legend_row(double font, double sample) const;
  static std::string legend_sample(const LegendEntry& e, double sx, double cy, double sample);

  PlotOptions options_;
  double left_, right_, top_, bottom_;  // plot area, pixels
  std::string body_;                    // series, in a nested <svg> that clips them
  std::string overlay_;                 // drawn over the frame (colour bar)
  std::vector<LegendEntry> legend_;
  std::vector<Mark> marks_;
  std::string note_;
};

}  // namespace flows::app
