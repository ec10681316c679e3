// The HTML report renderer (apps/flows/report.cpp) and its SVG plots.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <regex>
#include <stdexcept>
#include <string>
#include <vector>

#include "flows/bijector.hpp"
#include "flows/context_encoder.hpp"
#include "flows/data/toys.hpp"
#include "flows/flow.hpp"
#include "flows/normal.hpp"
#include "flows/rng.hpp"
#include "report.hpp"
#include "svg_plot.hpp"

namespace {

using flows::CurvePoint;
using flows::Index;
using flows::Matrix;
using flows::Real;
using flows::Vector;
using flows::app::render_report;
using flows::app::ReportInputs;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

std::size_t count(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (auto pos = text.find(what); pos != std::string::npos; pos = text.find(what, pos + 1)) ++n;
  return n;
}

bool contains(const std::string& text, const std::string& what) {
  return text.find(what) != std::string::npos;
}

// A log-density: an equal mixture of two isotropic Gaussians (std 0.4) at
// (0, 0) and (1, 0.5) in the first two columns, standard normal in the others.
Vector mixture_log_prob(const Matrix& x) {
  Vector out = xt::empty<Real>({x.shape(0)});
  const double s2 = 0.16;
  for (Index i = 0; i < x.shape(0); ++i) {
    const double a = x(i, 0) * x(i, 0) + (x.shape(1) > 1 ? x(i, 1) * x(i, 1) : 0);
    const double b =
        (x(i, 0) - 1) * (x(i, 0) - 1) + (x.shape(1) > 1 ? (x(i, 1) - 0.5) * (x(i, 1) - 0.5) : 0);
    const double k = x.shape(1) > 1 ? 2 : 1;
    double lp = std::log(0.5 * (std::exp(-a / (2 * s2)) + std::exp(-b / (2 * s2)))) -
                k / 2 * std::log(2 * M_PI * s2);
    for (Index j = 2; j < x.shape(1); ++j)
      lp += -0.5 * x(i, j) * x(i, j) - 0.5 * std::log(2 * M_PI);
    out(i) = lp;
  }
  return out;
}

std::vector<CurvePoint> decaying_curve(Index rows, Index val_every) {
  std::vector<CurvePoint> curve;
  for (Index r = 1; r <= rows; ++r) {
    CurvePoint p;
    p.step = r * 50;
    p.train_loss = 0.4 + 2.0 * std::exp(-static_cast<double>(r) / 8.0);
    p.val_loss = r % val_every == 0 ? p.train_loss + 0.05 : kNaN;
    p.lr = 1e-3;
    p.seconds = 0.1 * static_cast<double>(r);
    curve.push_back(p);
  }
  return curve;
}

ReportInputs two_d_inputs() {
  flows::Rng rng(3);
  ReportInputs in;
  in.title = "moons";
  in.curve = decaying_curve(40, 4);
  in.columns = {"x", "y"};
  in.data = flows::make_toy("moons", 1000, 0.05, rng);
  in.samples = flows::make_toy("moons", 1000, 0.1, rng);
  in.log_prob = mixture_log_prob;
  in.metrics = {{"test nll", "0.412"}, {"MMD", "0.0031"}};
  in.pipeline_yaml = "name: \"a<b\" & c\nflow: [maf]\n";
  return in;
}

// Every tag opens and closes in order (HTML void elements and "/>" excepted).
// The renderer escapes all text, so '<' and '>' only delimit tags.
std::string check_tags(const std::string& html) {
  std::vector<std::string> stack;
  std::size_t pos = 0;
  while ((pos = html.find('<', pos)) != std::string::npos) {
    const std::size_t end = html.find('>', pos);
    if (end == std::string::npos) return "unterminated tag at " + std::to_string(pos);
    const std::string tag = html.substr(pos + 1, end - pos - 1);
    pos = end + 1;
    if (tag.empty()) return "empty tag";
    if (tag[0] == '!') continue;
    if (tag[0] == '/') {
      const std::string name = tag.substr(1);
      if (stack.empty() || stack.back() != name)
        return "</" + name + "> closes <" + (stack.empty() ? "" : stack.back()) + ">";
      stack.pop_back();
      continue;
    }
    if (tag.back() == '/') continue;
    const std::string name = tag.substr(0, tag.find_first_of(" \n\t"));
    if (name == "meta" || name == "br" || name == "hr" || name == "img" || name == "link") continue;
    stack.push_back(name);
  }
  if (!stack.empty()) return "<" + stack.back() + "> never closed";
  return "";
}

// Numeric SVG attributes hold only finite numbers (no "nan", "inf"). Scanned
// by hand: std::regex recurses once per character and overflows the stack on
// the heat map's long path data.
std::string check_numbers(const std::string& html) {
  static const char* const names[] = {"x",
                                      "y",
                                      "x1",
                                      "x2",
                                      "y1",
                                      "y2",
                                      "cx",
                                      "cy",
                                      "r",
                                      "width",
                                      "height",
                                      "d",
                                      "viewBox",
                                      "transform",
                                      "stroke-width",
                                      "fill-opacity",
                                      "stroke-opacity",
                                      "font-size"};
  for (const char* name : names) {
    const std::string key = std::string(" ") + name + "=\"";
    for (std::size_t at = html.find(key); at != std::string::npos; at = html.find(key, at + 1)) {
      const std::size_t begin = at + key.size();
      const std::size_t end = html.find('"', begin);
      if (end == std::string::npos) return std::string(name) + ": unterminated value";
      const std::string value = html.substr(begin, end - begin);
      std::string lower = value;
      std::transform(lower.begin(), lower.end(), lower.begin(), ::tolower);
      if (contains(lower, "nan") || contains(lower, "inf") ||
          value.find_first_not_of("0123456789 .,%()-MLHVZhvzrotate") != std::string::npos)
        return std::string(name) + "=\"" + value.substr(0, 80) + "\"";
    }
  }
  return "";
}

void expect_well_formed(const std::string& html) {
  EXPECT_EQ(check_tags(html), "");
  EXPECT_EQ(check_numbers(html), "");
  EXPECT_EQ(count(html, "<svg"), count(html, "</svg>"));
  EXPECT_TRUE(html.rfind("<!DOCTYPE html>", 0) == 0);
  EXPECT_FALSE(contains(html, "<script"));
  EXPECT_FALSE(contains(html, "http://") && !contains(html, "http://www.w3.org/2000/svg"));
}

TEST(Report, TwoDimensionalHasCurveScattersHeatmapMetricsAndYaml) {
  ReportInputs in = two_d_inputs();
  std::size_t calls = 0, grid_rows = 0;
  in.log_prob = [&](const Matrix& x) {
    ++calls;
    grid_rows = x.shape(0);
    return mixture_log_prob(x);
  };
  const std::string html = render_report(in);
  expect_well_formed(html);
  EXPECT_TRUE(contains(html, ">Loss</text>"));
  EXPECT_TRUE(contains(html, ">training</text>"));
  EXPECT_TRUE(contains(html, ">validation</text>"));
  EXPECT_TRUE(contains(html, "Held-out data (1000)"));
  EXPECT_TRUE(contains(html, "Model samples (1000)"));
  EXPECT_TRUE(contains(html, "Learned density"));
  EXPECT_EQ(calls, 1u);  // one call on the whole grid
  EXPECT_EQ(grid_rows, 80u * 80u);
  // The heat map: many viridis colour levels, and a colour bar labelled "density".
  EXPECT_GT(count(html, "<path fill=\"#"), 20u);
  EXPECT_TRUE(contains(html, ">density</text>"));
  // Both scatter plots: one dot per point (all 1000 moons points are inside the data's range).
  EXPECT_GE(count(html, "h0\"/>"), 1900u);
  // Axis labels are the column names.
  EXPECT_TRUE(contains(html, ">x</text>"));
  EXPECT_TRUE(contains(html, ">y</text>"));
  EXPECT_TRUE(contains(html, "<td>test nll</td><td class=\"value\">0.412</td>"));
  EXPECT_TRUE(contains(html, "<td>MMD</td>"));
  EXPECT_TRUE(contains(html, "<pre>name: &quot;a&lt;b&quot; &amp; c\nflow: [maf]\n</pre>"));
  EXPECT_LT(html.size(), 400000u);
}

TEST(Report, FiveDimensionalHasMarginalsAndPairsButNoHeatmap) {
  flows::Rng rng(5);
  ReportInputs in;
  in.title = "gauss5";
  in.curve = decaying_curve(10, 1);
  in.data = rng.normal(800, 5);
  in.samples = rng.normal(800, 5) * 1.2;
  std::size_t calls = 0;
  in.log_prob = [&](const Matrix& x) {
    ++calls;
    return mixture_log_prob(x);
  };
  const std::string html = render_report(in);
  expect_well_formed(html);
  EXPECT_FALSE(contains(html, "Learned density"));
  EXPECT_EQ(calls, 0u);
  EXPECT_FALSE(contains(html, "crispEdges"));  // no heat map, no colour bar
  // One histogram pair per dimension, with default column names on the axes.
  EXPECT_TRUE(contains(html, "Marginal histograms"));
  for (const char* name : {">x0</text>", ">x1</text>", ">x2</text>", ">x3</text>", ">x4</text>"})
    EXPECT_TRUE(contains(html, name)) << name;
  EXPECT_EQ(count(html, ">data</text>"), 5u + 3u);           // 5 legends + 3 pair titles
  EXPECT_EQ(count(html, ">samples</text>"), 5u + 3u);        // 5 legends + 3 pair titles
  EXPECT_EQ(count(html, "stroke-linejoin=\"miter\""), 10u);  // histograms: data and samples
  EXPECT_TRUE(contains(html, "Pairwise scatter plots"));
  EXPECT_EQ(count(html, "<figure>"), 1u + 5u + 6u);  // curve, marginals, 3 pairs x (data, samples)
  EXPECT_FALSE(contains(html, "Showing the first"));
}

TEST(Report, ManyDimensionsShowAtMostEightMarginalsWithANote) {
  flows::Rng rng(6);
  ReportInputs in;
  in.data = rng.normal(200, 11);
  in.samples = rng.normal(200, 11);
  const std::string html = render_report(in);
  expect_well_formed(html);
  EXPECT_TRUE(contains(html, "Showing the first 8 of 11 dimensions."));
  EXPECT_EQ(count(html, "stroke-linejoin=\"miter\""), 16u);
  EXPECT_TRUE(contains(html, ">x7</text>"));
  EXPECT_FALSE(contains(html, ">x8</text>"));
}

TEST(Report, OneDimensionalHasHistogramsAndDensityCurve) {
  flows::Rng rng(7);
  ReportInputs in;
  in.columns = {"value"};
  in.data = rng.normal(500, 1);
  in.samples = rng.normal(500, 1);
  in.log_prob = mixture_log_prob;
  const std::string html = render_report(in);
  expect_well_formed(html);
  EXPECT_TRUE(contains(html, ">model density</text>"));
  EXPECT_TRUE(contains(html, ">value</text>"));
  EXPECT_EQ(count(html, "stroke-linejoin=\"miter\""), 2u);
}

TEST(Report, NaNValidationLossesAndEmptyCurveDoNotBreakIt) {
  ReportInputs in = two_d_inputs();
  for (auto& p : in.curve) p.val_loss = kNaN;
  std::string html = render_report(in);
  expect_well_formed(html);
  EXPECT_TRUE(contains(html, ">training</text>"));
  EXPECT_FALSE(contains(html, ">validation</text>"));
  EXPECT_TRUE(contains(html, "no validation loss"));

  in.curve.clear();
  html = render_report(in);
  expect_well_formed(html);
  EXPECT_TRUE(contains(html, "nothing was trained"));
  EXPECT_FALSE(contains(html, ">Loss</text>"));

  // A single point, negative losses, a NaN training loss: still drawn, with markers.
  in.curve = decaying_curve(1, 1);
  in.curve[0].train_loss = -3.5;
  in.curve[0].val_loss = -3.4;
  in.curve.push_back(in.curve[0]);
  in.curve.back().step = 100;
  in.curve.back().train_loss = kNaN;
  in.curve.back().val_loss = kInf;
  html = render_report(in);
  expect_well_formed(html);
  EXPECT_TRUE(contains(html, ">Loss</text>"));
  EXPECT_GE(count(html, "<circle cx="), 2u);  // the single train and val points
  EXPECT_TRUE(contains(html, "\u22123.5"));   // a tick at -3.5, typographic minus
}

TEST(Report, EscapesAllText) {
  ReportInputs in = two_d_inputs();
  const std::string evil = "<b>&\"'</b>";
  in.title = evil;
  in.loss_name = evil;
  in.columns = {evil, evil};
  in.metrics = {{evil, evil}};
  in.pipeline_yaml = evil;
  const std::string html = render_report(in);
  expect_well_formed(html);
  EXPECT_FALSE(contains(html, "<b>"));
  EXPECT_FALSE(contains(html, "&\""));
  EXPECT_GE(count(html, "&lt;b&gt;&amp;&quot;&#39;&lt;/b&gt;"), 8u);
}

TEST(Report, NonFiniteDataAndDensityLeaveBlanksNotNaNs) {
  ReportInputs in = two_d_inputs();
  in.data(0, 0) = kNaN;
  in.data(1, 1) = kInf;
  in.samples(0, 0) = 1e12;  // far outside: counted, not drawn
  in.samples(1, 1) = -kInf;
  in.log_prob = [](const Matrix& x) {
    Vector lp = mixture_log_prob(x);
    for (Index i = 0; i < lp.size(); i += 3) lp(i) = i % 2 ? -kInf : kNaN;
    return lp;
  };
  const std::string html = render_report(in);
  expect_well_formed(html);
  EXPECT_TRUE(contains(html, "Learned density"));
  EXPECT_TRUE(contains(html, "outside the plotted range"));  // at least the sample at 1e12
}

TEST(Report, AFailingDensityBecomesANote) {
  ReportInputs in = two_d_inputs();
  in.log_prob = [](const Matrix&) -> Vector { throw std::runtime_error("boom <x>"); };
  std::string html = render_report(in);
  expect_well_formed(html);
  EXPECT_TRUE(contains(html, "the density could not be evaluated: boom &lt;x&gt;"));
  EXPECT_FALSE(contains(html, "Learned density"));

  in.log_prob = [](const Matrix&) { return Vector(xt::zeros<Real>({std::size_t{3}})); };
  html = render_report(in);
  expect_well_formed(html);
  EXPECT_TRUE(contains(html, "log_prob gave 3 values for 6400 points"));
}

TEST(Report, EmptyInputsGiveAValidPage) {
  const std::string html = render_report(ReportInputs{});
  expect_well_formed(html);
  EXPECT_TRUE(contains(html, "No data or samples to plot."));
  EXPECT_TRUE(contains(html, "No metrics."));
}

TEST(Report, MismatchedSampleColumnsAreLeftOut) {
  ReportInputs in = two_d_inputs();
  flows::Rng rng(1);
  in.samples = rng.normal(10, 3);
  const std::string html = render_report(in);
  expect_well_formed(html);
  EXPECT_TRUE(contains(html, "The samples have 3 columns but the data has 2"));
}

TEST(SvgPlot, NiceTicksAreRoundNumbersInsideTheRange) {
  auto expect_ticks = [](double lo, double hi, std::vector<double> want) {
    const auto got = flows::app::nice_ticks(lo, hi, 5);
    ASSERT_EQ(got.size(), want.size()) << lo << " " << hi;
    for (std::size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-12);
  };
  expect_ticks(0, 1, {0, 0.2, 0.4, 0.6, 0.8, 1});
  expect_ticks(-3.7, 12.2, {0, 5, 10});
  expect_ticks(-0.013, 0.021, {-0.01, -0.005, 0, 0.005, 0.01, 0.015, 0.02});
  expect_ticks(1200, 5600, {2000, 3000, 4000, 5000});
  EXPECT_TRUE(flows::app::nice_ticks(1, 1, 5).empty());
  EXPECT_TRUE(flows::app::nice_ticks(kNaN, 1, 5).empty());
}

// The checker the tests above rely on finds what it looks for.
TEST(Report, TheNumberCheckerCatchesNonFiniteAndStrayText) {
  EXPECT_EQ(check_numbers(R"(<svg width="10" height="4"><path d="M0 1.5h2v3z"/></svg>)"), "");
  EXPECT_NE(check_numbers(R"(<rect x="nan" y="1"/>)"), "");
  EXPECT_NE(check_numbers(R"(<rect x="1" width="-inf"/>)"), "");
  EXPECT_NE(check_numbers(R"(<path d="M0 1e+308"/>)"), "");
}

TEST(SvgPlot, FormatsCoordinatesWithOneDecimal) {
  using flows::app::format_coord;
  EXPECT_EQ(format_coord(12.34), "12.3");
  EXPECT_EQ(format_coord(-0.04), "0");
  EXPECT_EQ(format_coord(3.0), "3");
  EXPECT_EQ(format_coord(kNaN), "0");
  EXPECT_EQ(format_coord(kInf), "0");
  EXPECT_EQ(format_coord(-1e9), "-1000000");
  EXPECT_EQ(flows::app::format_tick(0.30000000000000004, 0.1), "0.3");
  EXPECT_EQ(flows::app::format_tick(-2, 1), "\u22122");
  EXPECT_EQ(flows::app::format_tick(1500, 500), "1500");
}

// ---------------------------------------------------------------------------
// Conditional models: x | c ~ N((c1, -c1), 0.3² I), c2 does nothing.

constexpr double kCondStd = 0.3;

Vector conditional_log_prob(const Matrix& x, const Matrix& context_row) {
  Vector out = xt::empty<Real>({x.shape(0)});
  const double c = context_row(0, 0);
  for (Index i = 0; i < x.shape(0); ++i) {
    const double a = (x(i, 0) - c) / kCondStd, b = (x(i, 1) + c) / kCondStd;
    out(i) = -0.5 * (a * a + b * b) - std::log(2 * M_PI * kCondStd * kCondStd);
  }
  return out;
}

Matrix conditional_sample(Index n, const Matrix& context_row, flows::Rng& rng) {
  Matrix x = rng.normal(n, 2) * kCondStd;
  for (Index i = 0; i < n; ++i) {
    x(i, 0) += context_row(0, 0);
    x(i, 1) -= context_row(0, 0);
  }
  return x;
}

// 1001 held-out rows: c1 = 0, 0.001, ..., 1 (in a shuffled order), c2 =
// 5 + c1; x drawn from the model at each row's context.
ReportInputs conditional_inputs() {
  ReportInputs in;
  in.title = "conditional";
  in.columns = {"x1", "x2"};
  in.context_columns = {"c1", "c2"};
  const Index n = 1001;
  in.context = xt::empty<Real>({n, Index{2}});
  for (Index i = 0; i < n; ++i) {
    in.context(i, 0) = static_cast<double>((i * 337) % n) / 1000.0;
    in.context(i, 1) = 5 + in.context(i, 0);
  }
  flows::Rng rng(11);
  in.data = xt::empty<Real>({n, Index{2}});
  for (Index i = 0; i < n; ++i) {
    const Matrix row = xt::view(in.context, xt::range(i, i + 1), xt::all());
    xt::row(in.data, i) = xt::row(conditional_sample(1, row, rng), 0);
  }
  in.samples = in.data + 0.01;
  in.log_prob_given = conditional_log_prob;
  in.sample_given = conditional_sample;
  return in;
}

TEST(ReportContext, ValuesAreTheQuantilesOfTheFirstColumnAndTheOthersMedians) {
  const ReportInputs in = conditional_inputs();
  const auto values = flows::app::report_context_values(in.context, in.context_columns);
  ASSERT_EQ(values.size(), 3u);
  // Order statistics 100, 500 and 900 of the sorted 0, 0.001, ..., 1.
  const double want[3] = {0.1, 0.5, 0.9};
  for (int k = 0; k < 3; ++k) {
    ASSERT_EQ(values[k].row.shape(0), 1u);
    ASSERT_EQ(values[k].row.shape(1), 2u);
    EXPECT_NEAR(values[k].row(0, 0), want[k], 1e-12) << k;
    EXPECT_NEAR(values[k].row(0, 1), 5.5, 1e-12) << k;
  }
  EXPECT_EQ(values[0].label, "c1 = 0.1 (10% quantile); c2 = 5.5 (its median)");
  EXPECT_EQ(values[1].label, "c1 = 0.5 (median); c2 = 5.5 (its median)");
  EXPECT_EQ(values[2].label, "c1 = 0.9 (90% quantile); c2 = 5.5 (its median)");
  // Between order statistics: linear interpolation (definition 7 of Hyndman & Fan).
  const Matrix four = {{0}, {1}, {2}, {10}};
  const Matrix negative = -four;
  EXPECT_EQ(flows::app::report_context_values(negative, {"c"})[0].label,
            "c = \u22127.6 (10% quantile)");
  EXPECT_NEAR(flows::app::report_context_values(four, {"c"})[0].row(0, 0), 0.3, 1e-12);
  EXPECT_NEAR(flows::app::report_context_values(four, {"c"})[1].row(0, 0), 1.5, 1e-12);
  EXPECT_NEAR(flows::app::report_context_values(four, {"c"})[2].row(0, 0), 7.6, 1e-12);

  // One column: no others in the label; six: three named, the rest counted.
  Matrix one = xt::view(in.context, xt::all(), xt::range(0, 1));
  EXPECT_EQ(flows::app::report_context_values(one, {"c"})[0].label, "c = 0.1 (10% quantile)");
  Matrix six = xt::zeros<Real>({Index{4}, Index{6}});
  for (Index i = 0; i < 4; ++i) six(i, 0) = static_cast<double>(i);
  EXPECT_EQ(flows::app::report_context_values(six, {"a", "b", "c", "d", "e", "f"})[2].label,
            "a = 2.7 (90% quantile); b = 0, c = 0, d = 0 and 2 more (their medians)");
  EXPECT_TRUE(flows::app::report_context_values(xt::empty<Real>({Index{3}, Index{0}}), {}).empty());
  // A NaN is skipped; a column of NaNs gives NaN.
  Matrix with_nan = xt::view(six, xt::all(), xt::range(0, 2));
  with_nan(0, 0) = kNaN;
  for (Index i = 0; i < 4; ++i) with_nan(i, 1) = kNaN;
  const auto v = flows::app::report_context_values(with_nan, {"a", "b"});
  EXPECT_DOUBLE_EQ(v[1].row(0, 0), 2.0);  // the median of 1, 2, 3
  EXPECT_TRUE(std::isnan(v[1].row(0, 1)));
}

TEST(ReportContext, NearestRowsAreTheClosestInStandardDeviations) {
  // c2's units are 1000 times c1's: by raw distance to (0, 100) the order
  // would be rows 0, 1, 4, 5; in standard deviations (0.476 and 449) it is
  // 0 (0.05), 5 (1.28), 4 (1.90), 2 (4.02), 1 (4.46), 3 (8.43).
  const Matrix context = {{0, 0}, {1, 0}, {0, 1000}, {1, 1000}, {0.5, 500}, {0.1, 600}};
  Matrix data = xt::zeros<Real>({Index{6}, Index{2}});
  for (Index i = 0; i < 6; ++i) data(i, 0) = static_cast<double>(i);
  const Matrix row = {{0, 100}};
  const Matrix near = flows::app::nearest_context_rows(data, context, row, 4);
  ASSERT_EQ(near.shape(0), 4u);
  ASSERT_EQ(near.shape(1), 2u);
  const double want[4] = {0, 5, 4, 2};
  for (Index r = 0; r < 4; ++r) EXPECT_EQ(near(r, 0), want[r]) << r;
  EXPECT_EQ(flows::app::nearest_context_rows(data, context, row, 100).shape(0), 6u);
}

TEST(Report, ConditionalTwoDimensionalDrawsAtThreeContexts) {
  ReportInputs in = conditional_inputs();
  in.seed = 4;
  std::vector<Matrix> sampled_at, density_at;
  std::vector<Index> grid_rows;
  in.sample_given = [&](Index n, const Matrix& c, flows::Rng& rng) {
    sampled_at.push_back(c);
    return conditional_sample(n, c, rng);
  };
  in.log_prob_given = [&](const Matrix& x, const Matrix& c) {
    density_at.push_back(c);
    grid_rows.push_back(x.shape(0));
    return conditional_log_prob(x, c);
  };
  const std::string html = render_report(in);
  expect_well_formed(html);
  EXPECT_TRUE(contains(html, "2 dimensions \u00b7 2 context columns \u00b7 1001 held-out rows"));
  EXPECT_TRUE(contains(html, "<h2>At three context values</h2>"));
  EXPECT_TRUE(contains(html, "At c1 = 0.1 (10% quantile); c2 = 5.5 (its median)</h3>"));
  EXPECT_TRUE(contains(html, "At c1 = 0.5 (median); c2 = 5.5 (its median)</h3>"));
  EXPECT_TRUE(contains(html, "At c1 = 0.9 (90% quantile); c2 = 5.5 (its median)</h3>"));
  EXPECT_EQ(count(html, ">Held-out, 100 nearest</text>"), 3u);
  EXPECT_EQ(count(html, ">Samples at c (1000)</text>"), 3u);
  EXPECT_EQ(count(html, ">Density p(x | c)</text>"), 3u);
  EXPECT_EQ(count(html, ">density</text>"), 3u);  // a colour bar each, no unconditional one
  EXPECT_FALSE(contains(html, "Learned density"));
  EXPECT_TRUE(contains(html, "drawn at the held-out rows\u2019 contexts"));
  // Each function once per context value, at that value, on the whole grid.
  ASSERT_EQ(sampled_at.size(), 3u);
  ASSERT_EQ(density_at.size(), 3u);
  const double want[3] = {0.1, 0.5, 0.9};
  for (int k = 0; k < 3; ++k) {
    EXPECT_NEAR(sampled_at[k](0, 0), want[k], 1e-12);
    EXPECT_NEAR(density_at[k](0, 0), want[k], 1e-12);
    EXPECT_NEAR(density_at[k](0, 1), 5.5, 1e-12);
    EXPECT_EQ(grid_rows[k], 80u * 80u);
  }
  // The same seed draws the same page; another seed other samples.
  in.sample_given = conditional_sample;
  in.log_prob_given = conditional_log_prob;
  const std::string again = render_report(in);
  EXPECT_EQ(render_report(in), again);
  in.seed = 5;
  EXPECT_NE(render_report(in), again);
}

TEST(Report, ConditionalModelFunctionsThatFailBecomeNotes) {
  ReportInputs in = conditional_inputs();
  in.sample_given = [](Index, const Matrix&, flows::Rng&) -> Matrix {
    throw std::runtime_error("no <samples>");
  };
  in.log_prob_given = [](const Matrix&, const Matrix&) {
    return Vector(xt::zeros<Real>({std::size_t{2}}));
  };
  std::string html = render_report(in);
  expect_well_formed(html);
  EXPECT_EQ(count(html, "the samples could not be drawn: no &lt;samples&gt;"), 3u);
  EXPECT_EQ(count(html, "log_prob gave 2 values for 6400 points"), 3u);
  EXPECT_EQ(count(html, ">Held-out, 100 nearest</text>"), 3u);  // the data is still shown

  in.sample_given = [](Index n, const Matrix&, flows::Rng& rng) { return rng.normal(n, 3); };
  html = render_report(in);
  EXPECT_EQ(count(html, "sampling gave [1000 x 3] for 1000 samples of 2 columns"), 3u);
}

TEST(Report, ConditionalWithoutUsableContextSaysWhy) {
  ReportInputs in = conditional_inputs();
  in.context = xt::empty<Real>({std::size_t{0}, std::size_t{2}});
  std::string html = render_report(in);
  expect_well_formed(html);
  EXPECT_TRUE(contains(html, "No held-out context rows with the 2 context columns (c1, c2)"));
  EXPECT_FALSE(contains(html, "Density p(x | c)"));

  // Context rows that do not match the data rows: the values are still drawn at, without data.
  in = conditional_inputs();
  in.context = xt::view(in.context, xt::range(0, 500), xt::all());
  html = render_report(in);
  expect_well_formed(html);
  EXPECT_TRUE(contains(html, "The context has 500 rows but the data 1001"));
  EXPECT_EQ(count(html, ">Samples at c (1000)</text>"), 3u);
  EXPECT_FALSE(contains(html, "nearest</text>"));

  // x of another dimension: a note, no plots at context values.
  flows::Rng rng(2);
  in = conditional_inputs();
  in.data = rng.normal(1001, 3);
  in.samples = rng.normal(1001, 3);
  html = render_report(in);
  expect_well_formed(html);
  EXPECT_TRUE(contains(html, "drawn for 2-D x only; this model has 3 dimensions."));
  EXPECT_FALSE(contains(html, "Samples at c"));
}

TEST(Report, UnconditionalReportHasNoContextSection) {
  const std::string html = render_report(two_d_inputs());
  EXPECT_FALSE(contains(html, "context"));
  EXPECT_FALSE(contains(html, "At three context values"));
}

// A conditional bijector for the tests: z = x − c (every column shifted by
// the one context column), log|det| = 0.
class ShiftByContext : public flows::Bijector {
 public:
  explicit ShiftByContext(Index dim) : Bijector("shift_by_context", dim, 1) {}
  flows::ParameterList parameters() override { return {}; }

 private:
  flows::Transformed shift(const Matrix& x, const Matrix& context, double sign) const {
    flows::Transformed t{x, xt::zeros<Real>({x.shape(0)})};
    for (Index i = 0; i < x.shape(0); ++i)
      for (Index j = 0; j < x.shape(1); ++j) t.value(i, j) += sign * context(i, 0);
    return t;
  }
  flows::Transformed forward_impl(const Matrix& x, const Matrix& c) const override {
    return shift(x, c, -1);
  }
  flows::Transformed inverse_impl(const Matrix& z, const Matrix& c) const override {
    return shift(z, c, +1);
  }
  void forward_train_impl(const Matrix& x, const Matrix& c, Matrix& z, Vector& logdet) override {
    flows::Transformed t = shift(x, c, -1);
    z = t.value;
    logdet = t.logdet;
  }
  void backward_impl(const Matrix& grad_z, const Vector&, Matrix& grad_x,
                     Matrix* grad_context) override {
    grad_x = grad_z;
    if (grad_context)
      for (Index i = 0; i < grad_z.shape(0); ++i)
        for (Index j = 0; j < grad_z.shape(1); ++j) (*grad_context)(i, 0) -= grad_z(i, j);
  }
};

TEST(Report, ModelFunctionsComeFromTheFlow) {
  flows::Rng rng(1);
  auto encoder =
      std::make_shared<flows::ContextEncoder>(1, flows::ContextEncoder::EmbeddingOptions{}, rng);
  auto conditional = std::make_shared<flows::Flow>(
      std::make_shared<flows::StandardNormal>(2),
      std::vector<std::shared_ptr<flows::Bijector>>{std::make_shared<ShiftByContext>(2)}, encoder);
  ReportInputs in;
  flows::app::set_model_functions(in, conditional);
  EXPECT_FALSE(in.log_prob);
  ASSERT_TRUE(in.log_prob_given);
  ASSERT_TRUE(in.sample_given);
  // The one context row is used for every row of x: log N(x − c; 0, I).
  Matrix x = rng.normal(5, 2);
  Matrix c = xt::empty<Real>({Index{1}, Index{1}});
  c(0, 0) = 3;
  const Vector lp = in.log_prob_given(x, c);
  ASSERT_EQ(lp.size(), 5u);
  for (Index i = 0; i < 5; ++i) {
    const double a = x(i, 0) - 3, b = x(i, 1) - 3;
    EXPECT_NEAR(lp(i), -0.5 * (a * a + b * b) - std::log(2 * M_PI), 1e-12) << i;
  }
  flows::Rng draw(2);
  const Matrix s = in.sample_given(4000, c, draw);
  ASSERT_EQ(s.shape(0), 4000u);
  ASSERT_EQ(s.shape(1), 2u);
  for (Index j = 0; j < 2; ++j) {
    double mean = 0;
    for (Index i = 0; i < 4000; ++i) mean += s(i, j) / 4000;
    EXPECT_NEAR(mean, 3.0, 0.1) << j;  // about 6 standard errors
  }

  auto unconditional = std::make_shared<flows::Flow>(
      std::make_shared<flows::StandardNormal>(2), std::vector<std::shared_ptr<flows::Bijector>>{});
  flows::app::set_model_functions(in, unconditional);
  ASSERT_TRUE(in.log_prob);
  EXPECT_FALSE(in.log_prob_given);
  EXPECT_FALSE(in.sample_given);
  EXPECT_NEAR(in.log_prob(xt::zeros<Real>({Index{1}, Index{2}}))(0), -std::log(2 * M_PI), 1e-12);
}

}  // namespace

namespace {

using flows::app::PlotOptions;
using flows::app::SvgPlot;

TEST(SvgPlot, LegendGoesToTheEmptiestCorner) {
  PlotOptions o;
  o.x = {0, 1};
  o.y = {0, 1};
  // A line through the upper right corner: the legend moves to the upper left.
  SvgPlot plot(o);
  plot.line({0.5, 1.0}, {1.0, 0.5}, "#000", "falling");
  plot.line({0.6, 0.9, 1.0}, {0.95, 0.95, 0.9}, "#111", "flat");
  const std::string svg = plot.svg();
  const auto rect = svg.find("rx=\"3\"");
  ASSERT_NE(rect, std::string::npos);
  const std::string before = svg.substr(0, rect);
  const auto x = before.rfind("<rect x=\"");
  ASSERT_NE(x, std::string::npos);
  const double legend_x = std::stod(before.substr(x + 9));
  EXPECT_LT(legend_x, plot.px(0.5));  // left half of the plot
}

TEST(SvgPlot, HeatmapLeavesNonFiniteCellsBlank) {
  PlotOptions o;
  o.x = {0, 1};
  o.y = {0, 1};
  SvgPlot blank(o);
  blank.heatmap(std::vector<double>(4, kNaN), 2, 2, {0, 1});
  EXPECT_FALSE(contains(blank.svg(), "<path fill=\"#"));

  // Row [0, 1, 1]: two rectangles (equal neighbours merge); row [-inf, 1,
  // NaN]: one. Three rectangles in two colours.
  SvgPlot some(o);
  some.heatmap({0.0, 1.0, 1.0, -kInf, 1.0, kNaN}, 3, 2, {0, 1});
  const std::string svg = some.svg();
  EXPECT_EQ(count(svg, "<path fill=\"#"), 2u);
  const std::regex cell(R"(M-?\d+ -?\d+h-?\d+v-?\d+h-?\d+z)");
  EXPECT_EQ(
      std::distance(std::sregex_iterator(svg.begin(), svg.end(), cell), std::sregex_iterator()), 3);
  EXPECT_TRUE(contains(svg, flows::app::viridis(0.5 / 64)));
  EXPECT_TRUE(contains(svg, flows::app::viridis(63.5 / 64)));
}

}  // namespace
