#include "svg_plot.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <utility>

#include <fmt/format.h>

namespace flows::app {

namespace {

constexpr double kTickLength = 4;
constexpr int kMarkerLimit = 25;  // a line with at most this many points gets markers
constexpr std::size_t kHeatLevels = 64;

bool finite(double v) {
  return std::isfinite(v);
}

// The fonts of matplotlib first, then common fallbacks.
constexpr const char* kFonts = "DejaVu Sans, Helvetica, Arial, sans-serif";

// Rough width of a text in pixels (no font metrics here): for sizing legends.
double text_width(const std::string& text, double font_size) {
  std::size_t chars = 0;
  for (unsigned char c : text) chars += (c & 0xC0) != 0x80;  // count UTF-8 code points
  return 0.6 * font_size * static_cast<double>(chars);
}

}  // namespace

std::string escape_xml(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string format_coord(double value) {
  if (!finite(value)) return "0";
  value = std::clamp(value, -1e6, 1e6);
  double rounded = std::round(value * 10) / 10 + 0.0;  // + 0.0 turns -0 into 0
  if (rounded == 0) rounded = 0;
  std::string s = fmt::format("{:.1f}", rounded);
  if (s.size() > 2 && s.compare(s.size() - 2, 2, ".0") == 0) s.resize(s.size() - 2);
  return s;
}

std::string format_tick(double value, double step) {
  if (!finite(value)) return "";
  if (finite(step) && step > 0 && std::fabs(value) < step * 1e-9) value = 0;
  std::string s;
  const double a = std::fabs(value);
  if (!finite(step) || step <= 0 || a >= 1e6 || (a > 0 && a < 1e-4) || step < 1e-6) {
    s = fmt::format("{:.3g}", value);
  } else {
    const int decimals = std::max(0, static_cast<int>(std::ceil(-std::log10(step) - 1e-9)));
    s = fmt::format("{:.{}f}", value, decimals);
  }
  // A typographic minus, as matplotlib draws it.
  if (!s.empty() && s[0] == '-') s = "\u2212" + s.substr(1);
  return s;
}

Interval padded_range(const std::vector<double>& values, double margin) {
  double lo = std::numeric_limits<double>::infinity();
  double hi = -lo;
  for (double v : values) {
    if (!finite(v)) continue;
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  if (!(lo <= hi)) return {0, 1};
  const double width = hi - lo;
  if (width <= 1e-12 * std::max(std::fabs(lo), std::fabs(hi)) || width == 0) {
    const double half = lo == 0 ? 0.5 : 0.1 * std::fabs(lo);
    return {lo - half, hi + half};
  }
  return {lo - margin * width, hi + margin * width};
}

double nice_step(double lo, double hi, int target) {
  const double raw = (hi - lo) / std::max(1, target);
  if (!finite(raw) || raw <= 0) return 1;
  const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  const double fraction = raw / magnitude;
  const double nice = fraction < 1.5 ? 1 : fraction < 3 ? 2 : fraction < 7 ? 5 : 10;
  return nice * magnitude;
}

std::vector<double> nice_ticks(double lo, double hi, int target) {
  std::vector<double> ticks;
  if (!finite(lo) || !finite(hi) || hi <= lo) return ticks;
  const double step = nice_step(lo, hi, target);
  const double first = std::ceil(lo / step - 1e-9);
  const double last = std::floor(hi / step + 1e-9);
  if (last - first > 1000) return ticks;  // cannot happen with a sane step; stay safe
  for (double k = first; k <= last; ++k) ticks.push_back(k * step);
  return ticks;
}

Interval nice_range(Interval range, int target) {
  if (!finite(range.lo) || !finite(range.hi) || range.hi <= range.lo) return range;
  const double step = nice_step(range.lo, range.hi, target);
  return {std::floor(range.lo / step + 1e-9) * step, std::ceil(range.hi / step - 1e-9) * step};
}

std::string viridis(double t) {
  // matplotlib's viridis sampled at 11 evenly spaced points, interpolated linearly.
  static constexpr std::array<std::array<int, 3>, 11> kStops = {{{68, 1, 84},
                                                                 {72, 36, 117},
                                                                 {65, 68, 135},
                                                                 {53, 95, 141},
                                                                 {42, 120, 142},
                                                                 {33, 145, 140},
                                                                 {34, 168, 132},
                                                                 {68, 191, 112},
                                                                 {122, 209, 81},
                                                                 {189, 223, 38},
                                                                 {253, 231, 37}}};
  if (!finite(t)) t = 0;
  t = std::clamp(t, 0.0, 1.0) * (kStops.size() - 1);
  const std::size_t i = std::min(static_cast<std::size_t>(t), kStops.size() - 2);
  const double f = t - static_cast<double>(i);
  int rgb[3];
  for (int c = 0; c < 3; ++c)
    rgb[c] = static_cast<int>(std::lround((1 - f) * kStops[i][c] + f * kStops[i + 1][c]));
  return fmt::format("#{:02x}{:02x}{:02x}", rgb[0], rgb[1], rgb[2]);
}

SvgPlot::SvgPlot(PlotOptions options) : options_(std::move(options)) {
  if (!(options_.x.hi > options_.x.lo)) options_.x = padded_range({options_.x.lo}, 0);
  if (!(options_.y.hi > options_.y.lo)) options_.y = padded_range({options_.y.lo}, 0);
  left_ = options_.y_label.empty() ? 44 : 60;
  right_ = options_.width - 12.0 - options_.colorbar_width;
  top_ = options_.title.empty() && !options_.legend_above ? 10 : 28;
  bottom_ = options_.height - (options_.x_label.empty() ? 26.0 : 42.0);
}

double SvgPlot::px(double x) const {
  return (x - options_.x.lo) / (options_.x.hi - options_.x.lo) * (right_ - left_);
}

double SvgPlot::py(double y) const {
  return (options_.y.hi - y) / (options_.y.hi - options_.y.lo) * (bottom_ - top_);
}

void SvgPlot::line(const std::vector<double>& x, const std::vector<double>& y,
                   const std::string& color, const std::string& label, bool dashed) {
  std::string d;
  std::vector<std::pair<double, double>> points;
  for (std::size_t i = 0; i < std::min(x.size(), y.size()); ++i) {
    if (!finite(x[i]) || !finite(y[i])) continue;
    const double u = px(x[i]), v = py(y[i]);
    d += fmt::format("{}{} {}", d.empty() ? "M" : "L", format_coord(u), format_coord(v));
    points.emplace_back(u, v);
  }
  if (points.empty()) return;
  if (points.size() > 1)
    body_ += fmt::format(
        "<path d=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"1.5\" "
        "stroke-linejoin=\"round\"{}/>\n",
        d, color, dashed ? " stroke-dasharray=\"5 3\"" : "");
  if (points.size() <= static_cast<std::size_t>(kMarkerLimit)) {
    body_ += fmt::format("<g fill=\"{}\">", color);
    for (const auto& [u, v] : points)
      body_ +=
          fmt::format("<circle cx=\"{}\" cy=\"{}\" r=\"2.5\"/>", format_coord(u), format_coord(v));
    body_ += "</g>\n";
  }
  for (std::size_t k = 0; k < points.size(); ++k) {
    marks_.push_back({points[k].first, points[k].second, false});
    if (k + 1 == points.size()) break;
    // Points along the segment, every few pixels.
    const double du = points[k + 1].first - points[k].first;
    const double dv = points[k + 1].second - points[k].second;
    const int steps = static_cast<int>(std::min(200.0, std::hypot(du, dv) / 4));
    for (int s = 1; s < steps; ++s)
      marks_.push_back(
          {points[k].first + du * s / steps, points[k].second + dv * s / steps, false});
  }
  if (!label.empty()) legend_.push_back({label, color, 'l', dashed, 0});
}

std::size_t SvgPlot::scatter(const std::vector<double>& x, const std::vector<double>& y,
                             const std::string& color, const std::string& label, double opacity,
                             std::size_t max_points) {
  const std::size_t n = std::min(x.size(), y.size());
  std::vector<std::size_t> inside;
  std::size_t outside = 0;
  for (std::size_t i = 0; i < n; ++i) {
    if (!finite(x[i]) || !finite(y[i])) continue;
    if (x[i] < options_.x.lo || x[i] > options_.x.hi || y[i] < options_.y.lo ||
        y[i] > options_.y.hi) {
      ++outside;
      continue;
    }
    inside.push_back(i);
  }
  const std::size_t shown = std::min(inside.size(), max_points);
  // Zero-length segments with round caps draw dots; one element per dot so
  // that overlapping dots build up opacity like matplotlib's scatter.
  body_ += fmt::format(
      "<g stroke=\"{}\" stroke-opacity=\"{}\" stroke-width=\"3.2\" stroke-linecap=\"round\">",
      color, fmt::format("{:.2f}", finite(opacity) ? std::clamp(opacity, 0.05, 1.0) : 0.5));
  for (std::size_t k = 0; k < shown; ++k) {
    const std::size_t i = inside[k * inside.size() / shown];
    body_ += fmt::format("<path d=\"M{} {}h0\"/>", format_coord(px(x[i])), format_coord(py(y[i])));
    marks_.push_back({px(x[i]), py(y[i]), false});
  }
  body_ += "</g>\n";
  if (!label.empty()) legend_.push_back({label, color, 'p', false, 0});
  return outside;
}

void SvgPlot::histogram(const std::vector<double>& edges, const std::vector<double>& heights,
                        const std::string& color, const std::string& label, double fill_opacity) {
  if (edges.size() != heights.size() + 1 || heights.empty()) return;
  const std::string base = format_coord(py(std::max(options_.y.lo, 0.0)));
  std::string d = fmt::format("M{} {}", format_coord(px(edges[0])), base);
  for (std::size_t i = 0; i < heights.size(); ++i) {
    const double h = finite(heights[i]) ? heights[i] : 0;
    const std::string v = format_coord(py(std::max(h, options_.y.lo)));
    d += fmt::format("V{}H{}", v, format_coord(px(edges[i + 1])));
    const double u0 = px(edges[i]), u1 = px(edges[i + 1]);
    for (double u = u0; u <= u1; u += std::max(1.0, (u1 - u0) / 4))
      marks_.push_back({u, py(h), h > 0});
  }
  d += fmt::format("V{}Z", base);
  const std::string fill =
      fill_opacity > 0 ? fmt::format("{}\" fill-opacity=\"{:.2f}", color, fill_opacity) : "none";
  body_ += fmt::format(
      "<path d=\"{}\" fill=\"{}\" stroke=\"{}\" stroke-width=\"1.4\" "
      "stroke-linejoin=\"miter\"/>\n",
      d, fill, color);
  if (!label.empty()) legend_.push_back({label, color, 'b', false, fill_opacity});
}

void SvgPlot::heatmap(const std::vector<double>& values, std::size_t nx, std::size_t ny,
                      Interval range) {
  if (nx == 0 || ny == 0 || values.size() != nx * ny) return;
  const bool flat = !(range.hi > range.lo);
  // Integer cell edges so that neighbouring cells meet without seams.
  std::vector<long> ex(nx + 1), ey(ny + 1);
  for (std::size_t i = 0; i <= nx; ++i)
    ex[i] = std::lround(static_cast<double>(i) / static_cast<double>(nx) * (right_ - left_));
  for (std::size_t j = 0; j <= ny; ++j)
    ey[j] = std::lround((1 - static_cast<double>(j) / static_cast<double>(ny)) * (bottom_ - top_));
  // One path per colour level; runs of equal level along a row become one rectangle.
  std::vector<std::string> paths(kHeatLevels);
  auto level_of = [&](double v) -> long {
    if (!finite(v)) return -1;
    const double t = flat ? 1.0 : (v - range.lo) / (range.hi - range.lo);
    const double clamped = std::clamp(t, 0.0, 1.0);
    return std::min(static_cast<long>(kHeatLevels) - 1,
                    static_cast<long>(clamped * static_cast<double>(kHeatLevels)));
  };
  for (std::size_t j = 0; j < ny; ++j) {
    std::size_t i = 0;
    while (i < nx) {
      const long level = level_of(values[j * nx + i]);
      std::size_t end = i + 1;
      while (end < nx && level_of(values[j * nx + end]) == level) ++end;
      if (level >= 0)
        paths[static_cast<std::size_t>(level)] +=
            fmt::format("M{} {}h{}v{}h{}z", ex[i], ey[j + 1], ex[end] - ex[i], ey[j] - ey[j + 1],
                        ex[i] - ex[end]);
      i = end;
    }
  }
  body_ += "<g shape-rendering=\"crispEdges\">";
  for (std::size_t level = 0; level < kHeatLevels; ++level) {
    if (paths[level].empty()) continue;
    body_ +=
        fmt::format("<path fill=\"{}\" d=\"{}\"/>",
                    viridis((static_cast<double>(level) + 0.5) / static_cast<double>(kHeatLevels)),
                    paths[level]);
  }
  body_ += "</g>\n";
}

void SvgPlot::colorbar(Interval range, const std::string& label) {
  if (options_.colorbar_width <= 0) return;
  const double x0 = right_ + 14, w = 14;
  const double h = bottom_ - top_;
  overlay_ += "<g shape-rendering=\"crispEdges\">";
  for (std::size_t k = 0; k < kHeatLevels; ++k) {
    const double y1 = top_ + h * (1 - static_cast<double>(k + 1) / kHeatLevels);
    const double y0 = top_ + h * (1 - static_cast<double>(k) / kHeatLevels);
    overlay_ += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{}\"/>",
                            format_coord(x0), format_coord(std::floor(y1)), format_coord(w),
                            format_coord(std::ceil(y0) - std::floor(y1)),
                            viridis((static_cast<double>(k) + 0.5) / kHeatLevels));
  }
  overlay_ += "</g>\n";
  overlay_ += fmt::format(
      "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#000\" "
      "stroke-width=\"0.8\"/>\n",
      format_coord(x0), format_coord(top_), format_coord(w), format_coord(h));
  if (range.hi > range.lo) {
    const double step = nice_step(range.lo, range.hi, 5);
    for (double t : nice_ticks(range.lo, range.hi, 5)) {
      const double y = top_ + (range.hi - t) / (range.hi - range.lo) * h;
      overlay_ += fmt::format(
          "<line x1=\"{0}\" x2=\"{1}\" y1=\"{2}\" y2=\"{2}\" stroke=\"#000\" stroke-width=\"0.8\"/>"
          "<text x=\"{3}\" y=\"{4}\" font-size=\"10\">{5}</text>\n",
          format_coord(x0 + w), format_coord(x0 + w + kTickLength), format_coord(y),
          format_coord(x0 + w + kTickLength + 2), format_coord(y + 3.5),
          escape_xml(format_tick(t, step)));
    }
  }
  if (!label.empty()) {
    const double xl = options_.width - 6.0, yl = top_ + h / 2;
    overlay_ += fmt::format(
        "<text x=\"{0}\" y=\"{1}\" font-size=\"11\" text-anchor=\"middle\" "
        "transform=\"rotate(-90 {0} {1})\">{2}</text>\n",
        format_coord(xl), format_coord(yl), escape_xml(label));
  }
}

void SvgPlot::note(const std::string& text) {
  if (!note_.empty()) note_ += "; ";
  note_ += text;
}

std::string SvgPlot::grid() const {
  if (!options_.grid) return "";
  std::string d;
  for (double t : nice_ticks(options_.x.lo, options_.x.hi, 5))
    d += fmt::format("M{} {}V{}", format_coord(left_ + px(t)), format_coord(top_),
                     format_coord(bottom_));
  for (double t : nice_ticks(options_.y.lo, options_.y.hi, 5))
    d += fmt::format("M{} {}H{}", format_coord(left_), format_coord(top_ + py(t)),
                     format_coord(right_));
  if (d.empty()) return "";
  return fmt::format("<path d=\"{}\" stroke=\"#e5e5e5\" stroke-width=\"0.8\"/>\n", d);
}

std::string SvgPlot::frame() const {
  std::string out, ticks, labels;
  const double xstep = nice_step(options_.x.lo, options_.x.hi, 5);
  const double ystep = nice_step(options_.y.lo, options_.y.hi, 5);
  for (double t : nice_ticks(options_.x.lo, options_.x.hi, 5)) {
    const std::string x = format_coord(left_ + px(t));
    ticks += fmt::format("M{} {}v{}", x, format_coord(bottom_), format_coord(kTickLength));
    labels +=
        fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>", x,
                    format_coord(bottom_ + kTickLength + 11), escape_xml(format_tick(t, xstep)));
  }
  for (double t : nice_ticks(options_.y.lo, options_.y.hi, 5)) {
    ticks += fmt::format("M{} {}h{}", format_coord(left_), format_coord(top_ + py(t)),
                         format_coord(-kTickLength));
    labels += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>",
                          format_coord(left_ - kTickLength - 2), format_coord(top_ + py(t) + 3.5),
                          escape_xml(format_tick(t, ystep)));
  }
  if (!ticks.empty())
    out += fmt::format("<path d=\"{}\" stroke=\"#000\" stroke-width=\"0.8\"/>\n", ticks);
  out += fmt::format(
      "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#000\" "
      "stroke-width=\"0.8\"/>\n",
      format_coord(left_), format_coord(top_), format_coord(right_ - left_),
      format_coord(bottom_ - top_));
  out += fmt::format("<g font-size=\"10\" fill=\"#000\">{}</g>\n", labels);
  if (!options_.x_label.empty())
    out +=
        fmt::format("<text x=\"{}\" y=\"{}\" font-size=\"12\" text-anchor=\"middle\">{}</text>\n",
                    format_coord((left_ + right_) / 2), format_coord(options_.height - 8.0),
                    escape_xml(options_.x_label));
  if (!options_.y_label.empty()) {
    const double xl = 14, yl = (top_ + bottom_) / 2;
    out += fmt::format(
        "<text x=\"{0}\" y=\"{1}\" font-size=\"12\" text-anchor=\"middle\" "
        "transform=\"rotate(-90 {0} {1})\">{2}</text>\n",
        format_coord(xl), format_coord(yl), escape_xml(options_.y_label));
  }
  if (!options_.title.empty())
    out +=
        fmt::format("<text x=\"{}\" y=\"18\" font-size=\"13\" text-anchor=\"middle\">{}</text>\n",
                    format_coord((left_ + right_) / 2), escape_xml(options_.title));
  return out;
}

std::string SvgPlot::legend_sample(const LegendEntry& e, double sx, double cy, double sample) {
  std::string out;
  if (e.kind == 'l')
    out += fmt::format("<path d=\"M{} {}h{}\" stroke=\"{}\" stroke-width=\"1.5\"{}/>",
                       format_coord(sx), format_coord(cy), format_coord(sample), e.color,
                       e.dashed ? " stroke-dasharray=\"5 3\"" : "");
  else if (e.kind == 'p')
    out += fmt::format("<circle cx=\"{}\" cy=\"{}\" r=\"3\" fill=\"{}\"/>",
                       format_coord(sx + sample / 2), format_coord(cy), e.color);
  else
    out += fmt::format(
        "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"8\" fill=\"{}\" stroke=\"{}\"/>",
        format_coord(sx), format_coord(cy - 4), format_coord(sample),
        e.fill > 0 ? fmt::format("{}\" fill-opacity=\"{:.2f}", e.color, e.fill) : "none", e.color);
  return out;
}

std::string SvgPlot::legend_box() const {
  if (!options_.legend || legend_.empty()) return "";
  const double font = 10.5, row = 15, pad = 6, sample = 20;
  if (options_.legend_above) return legend_row(font, sample);
  double width = 0;
  for (const auto& e : legend_) width = std::max(width, text_width(e.label, font));
  width += 2 * pad + sample + 6;
  const double height = 2 * pad + row * static_cast<double>(legend_.size()) - 3;
  // The corner whose box covers the fewest marks (ties: upper right, upper
  // left, lower right, lower left), like matplotlib's loc="best". The lower
  // left corner holds the note, if any.
  const double w = right_ - left_, h = bottom_ - top_, gap = 8;
  const std::pair<double, double> corners[] = {{w - width - gap, gap},
                                               {gap, gap},
                                               {w - width - gap, h - height - gap},
                                               {gap, h - height - gap}};
  double bu = corners[0].first, bv = corners[0].second;
  std::size_t best = std::numeric_limits<std::size_t>::max();
  for (std::size_t c = 0; c < (note_.empty() ? 4u : 3u); ++c) {
    const auto [u0, v0] = corners[c];
    std::size_t covered = 0;
    for (const Mark& m : marks_)
      covered += m.u >= u0 && m.u <= u0 + width &&
                 (m.filled ? m.v <= v0 + height : (m.v >= v0 && m.v <= v0 + height));
    if (covered < best) {
      best = covered;
      bu = u0;
      bv = v0;
    }
  }
  const double x0 = left_ + bu, y0 = top_ + bv;
  std::string out = fmt::format(
      "<g font-size=\"{}\"><rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" rx=\"3\" "
      "fill=\"#fff\" fill-opacity=\"0.85\" stroke=\"#ccc\" stroke-width=\"0.8\"/>",
      font, format_coord(x0), format_coord(y0), format_coord(width), format_coord(height));
  for (std::size_t k = 0; k < legend_.size(); ++k) {
    const auto& e = legend_[k];
    const double cy = y0 + pad + row * static_cast<double>(k) + 5;
    const double sx = x0 + pad;
    out += legend_sample(e, sx, cy, sample);
    out += fmt::format("<text x=\"{}\" y=\"{}\">{}</text>", format_coord(sx + sample + 6),
                       format_coord(cy + 3.5), escape_xml(e.label));
  }
  return out + "</g>\n";
}

std::string SvgPlot::legend_row(double font, double sample) const {
  double total = 0;
  for (const auto& e : legend_) total += sample + 5 + text_width(e.label, font) + 14;
  double x = (left_ + right_ - total + 14) / 2;
  const double cy = 14;
  std::string out = fmt::format("<g font-size=\"{}\">", font);
  for (const auto& e : legend_) {
    out += legend_sample(e, x, cy, sample);
    out += fmt::format("<text x=\"{}\" y=\"{}\">{}</text>", format_coord(x + sample + 5),
                       format_coord(cy + 3.5), escape_xml(e.label));
    x += sample + 5 + text_width(e.label, font) + 14;
  }
  return out + "</g>\n";
}

std::string SvgPlot::svg() const {
  std::string out = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{1}\" "
      "viewBox=\"0 0 {0} {1}\" font-family=\"{2}\">\n",
      options_.width, options_.height, kFonts);
  out += "<rect width=\"100%\" height=\"100%\" fill=\"#fff\"/>\n";
  out += grid();
  // The series go in a nested <svg>, which clips them to the plot area.
  out += fmt::format(
      "<svg x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" overflow=\"hidden\">\n{}</svg>\n",
      format_coord(left_), format_coord(top_), format_coord(right_ - left_),
      format_coord(bottom_ - top_), body_);
  out += frame();
  out += overlay_;
  out += legend_box();
  // Notes sit in the plot's lower left corner, with a white halo over the data.
  if (!note_.empty())
    out += fmt::format(
        "<text x=\"{}\" y=\"{}\" font-size=\"10\" fill=\"#444\" stroke=\"#fff\" "
        "stroke-width=\"3\" paint-order=\"stroke\">{}</text>\n",
        format_coord(left_ + 5), format_coord(bottom_ - 6), escape_xml(note_));
  return out + "</svg>";
}

}  // namespace flows::app
