#include "flows/doctor.hpp"

#include <algorithm>
#include <cmath>
#include <exception>
#include <limits>

#include <fmt/format.h>
#include <xtensor-blas/xlinalg.hpp>

#include "flows/chain.hpp"
#include "flows/config.hpp"
#include "flows/error.hpp"

namespace flows {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

// A bijector of the chain that is not itself a Chain, and its label.
struct Leaf {
  std::string label;
  const Bijector* layer;
};

void collect_leaves(const std::vector<std::shared_ptr<Bijector>>& layers, const std::string& prefix,
                    std::vector<Leaf>& out) {
  for (Index k = 0; k < layers.size(); ++k) {
    const std::string label = prefix.empty() ? std::to_string(k) : prefix + "." + std::to_string(k);
    if (const auto* chain = dynamic_cast<const Chain*>(layers[k].get()))
      collect_leaves(chain->layers(), label, out);
    else
      out.push_back({label, layers[k].get()});
  }
}

std::vector<Leaf> leaves_of(const Flow& flow) {
  std::vector<Leaf> out;
  collect_leaves(flow.chain(), "", out);
  return out;
}

// Rows `rows` of m (m may be an empty context: returned as it is).
Matrix take_rows(const Matrix& m, const std::vector<Index>& rows) {
  if (m.size() == 0) return m;
  Matrix out = xt::empty<Real>({rows.size(), m.shape(1)});
  for (Index i = 0; i < rows.size(); ++i)
    std::copy_n(m.data() + rows[i] * m.shape(1), m.shape(1), out.data() + i * m.shape(1));
  return out;
}

// At most `count` row indices of n, evenly spaced (deterministic).
std::vector<Index> spaced_rows(Index n, Index count) {
  std::vector<Index> rows;
  const Index m = std::min(n, count);
  for (Index i = 0; i < m; ++i) rows.push_back(i * n / m);
  return rows;
}

bool row_finite(const Matrix& m, Index r) {
  const Real* p = m.data() + r * m.shape(1);
  return std::all_of(p, p + m.shape(1), [](Real v) { return std::isfinite(v); });
}

// max over rows and columns of |got − want| / max(1, |want|); infinite when
// a value is non-finite where `want` is finite. Counts such rows in *bad.
double relative_error(const Matrix& got, const Matrix& want, Index* bad = nullptr) {
  double worst = 0;
  Index bad_rows = 0;
  const Index n = want.shape(0), d = want.shape(1);
  for (Index r = 0; r < n; ++r) {
    bool bad_row = false;
    for (Index j = 0; j < d; ++j) {
      const Real w = want(r, j), g = got(r, j);
      if (!std::isfinite(w)) continue;
      if (!std::isfinite(g)) {
        bad_row = true;
        continue;
      }
      worst = std::max(worst, std::abs(g - w) / std::max(1.0, std::abs(w)));
    }
    bad_rows += bad_row;
  }
  if (bad) *bad = bad_rows;
  return bad_rows > 0 ? kInf : worst;
}

Finding judged(std::string check, double value, double threshold, std::string advice) {
  // NaN fails: a check that cannot be computed is not a pass.
  const bool ok = value <= threshold;
  return Finding{std::move(check), value, threshold, ok, ok ? std::string() : std::move(advice)};
}

std::string rows_note(Index bad, Index n) {
  return bad == 0 ? std::string() : fmt::format(" ({} of {} rows give non-finite values)", bad, n);
}

// max over the first m rows of x of |logdet − log|det J_fd||, J_fd by
// central differences at step h_j = 1e-5 · max(1, |x_j|) (float64).
double fd_logdet_error(const Bijector& b, const Matrix& x, const Matrix& context, Index m) {
  const Index d = x.shape(1);
  m = std::min(m, x.shape(0));
  Matrix probe = xt::empty<Real>({2 * d * m, d});
  Matrix probe_context;
  if (context.size() > 0) probe_context = xt::empty<Real>({2 * d * m, context.shape(1)});
  std::vector<Real> steps(m * d);
  for (Index r = 0; r < m; ++r)
    for (Index j = 0; j < d; ++j) {
      const Real h = 1e-5 * std::max(1.0, std::abs(x(r, j)));
      steps[r * d + j] = h;
      for (Index s = 0; s < 2; ++s) {
        const Index row = (r * d + j) * 2 + s;
        for (Index i = 0; i < d; ++i) probe(row, i) = x(r, i);
        probe(row, j) += s == 0 ? h : -h;
        if (context.size() > 0)
          for (Index c = 0; c < context.shape(1); ++c) probe_context(row, c) = context(r, c);
      }
    }
  const Matrix head = xt::view(x, xt::range(0, m), xt::all());
  Matrix head_context;
  if (context.size() > 0) head_context = xt::view(context, xt::range(0, m), xt::all());
  const Vector analytic = b.forward(head, head_context).logdet;
  const Matrix out = b.forward(probe, probe_context).value;
  double worst = 0;
  for (Index r = 0; r < m; ++r) {
    xt::xtensor<double, 2> jacobian = xt::empty<double>({d, d});
    for (Index j = 0; j < d; ++j) {
      const Index plus = (r * d + j) * 2, minus = plus + 1;
      for (Index i = 0; i < d; ++i)
        jacobian(i, j) = (out(plus, i) - out(minus, i)) / (2 * steps[r * d + j]);
    }
    const auto [sign, log_abs] = xt::linalg::slogdet(jacobian);
    const double err = sign == 0 ? kInf : std::abs(analytic(r) - log_abs);
    if (!std::isfinite(err)) return kInf;
    worst = std::max(worst, err);
  }
  return worst;
}

// Rows of x (and context) whose values are all finite.
void keep_finite(Matrix& x, Matrix& context) {
  std::vector<Index> rows;
  for (Index r = 0; r < x.shape(0); ++r)
    if (row_finite(x, r)) rows.push_back(r);
  if (rows.size() == x.shape(0)) return;
  x = take_rows(x, rows);
  context = take_rows(context, rows);
}

// Rows i mod m.shape(0), i < n.
Matrix cycled(const Matrix& m, Index n) {
  std::vector<Index> rows(n);
  for (Index i = 0; i < n; ++i) rows[i] = i % m.shape(0);
  return take_rows(m, rows);
}

}  // namespace

bool DoctorReport::ok() const {
  return failures() == 0;
}

Index DoctorReport::failures() const {
  return static_cast<Index>(
      std::count_if(rows.begin(), rows.end(), [](const DoctorRow& r) { return !r.finding.ok; }));
}

DoctorReport run_doctor(Flow& flow, const Matrix& x_given, const Matrix& context_given,
                        const DoctorOptions& options, Flow* exact) {
  if (!exact) exact = &flow;
  const std::vector<Leaf> leaves = leaves_of(flow), exact_leaves = leaves_of(*exact);
  if (leaves.size() != exact_leaves.size())
    throw Error("run_doctor: the float64 copy has another chain than the model");
  const bool conditional = flow.context_dim() > 0;
  const bool have_data = x_given.shape(0) > 0;
  if (conditional && !have_data)
    throw DataError(
        "the model is conditional, p(x | c): the doctor needs data rows with their context "
        "(flows doctor MODEL --data FILE)");
  if (have_data && x_given.shape(1) != flow.dim())
    throw DataError(fmt::format("the model has {} dimensions but the data has {} columns",
                                flow.dim(), x_given.shape(1)));
  flow.check_context(context_given, x_given.shape(0));
  const std::vector<Index> picked = spaced_rows(x_given.shape(0), options.rows);
  Matrix x = take_rows(x_given, picked);
  const Matrix raw_context = take_rows(context_given, picked);

  const Index n_leaves = leaves.size();
  std::vector<std::vector<Finding>> findings(n_leaves);

  // From the latent side: z ~ base, back through the inverses.
  Rng rng(options.seed);
  Matrix sample_context;
  if (conditional)
    sample_context = flow.encode_context(cycled(raw_context, options.samples), options.samples);
  Matrix z = flow.base().sample(options.samples, sample_context, rng);
  std::vector<Finding> sample_findings(n_leaves);
  for (Index k = n_leaves; k-- > 0;) {
    const Bijector& b = *leaves[k].layer;
    const double round_trip_tolerance = dynamic_cast<const NumericallySolved*>(&b)
                                            ? options.solve_round_trip_tolerance
                                            : options.round_trip_tolerance;
    try {
      const Matrix back_x = b.inverse(z, sample_context).value;
      Index bad = 0;
      const double err = relative_error(b.forward(back_x, sample_context).value, z, &bad);
      sample_findings[k] = judged("round trip on samples", err, round_trip_tolerance,
                                  "forward(inverse(z)) differs from z: the inverse is inaccurate" +
                                      rows_note(bad, z.shape(0)));
      z = back_x;
      keep_finite(z, sample_context);
    } catch (const std::exception& e) {
      sample_findings[k] = Finding{"round trip on samples", kNaN, round_trip_tolerance, false,
                                   std::string("raised: ") + e.what()};
      z = Matrix();
      break;
    }
  }
  const Index samples_through = z.shape(0);
  if (!have_data) x = z;  // the samples, in data units, stand in for data rows

  // From the data side: each layer on the rows the layers before it give.
  Matrix context = conditional ? flow.encode_context(raw_context, raw_context.shape(0)) : Matrix();
  for (Index k = 0; k < n_leaves && x.shape(0) > 0; ++k) {
    const Bijector& b = *leaves[k].layer;
    std::vector<Finding>& out = findings[k];
    const bool solved = dynamic_cast<const NumericallySolved*>(&b) != nullptr;
    const double round_trip_tolerance =
        solved ? options.solve_round_trip_tolerance : options.round_trip_tolerance;
    const double logdet_tolerance =
        solved ? options.solve_logdet_tolerance : options.logdet_tolerance;
    try {
      const Transformed f = b.forward(x, context);
      const Transformed back = b.inverse(f.value, context);
      Index bad = 0;
      const double err = relative_error(back.value, x, &bad);
      const std::string solve_note =
          solved ? " (an ODE solve: tighten its solver's rtol and atol, or use more steps)" : "";
      out.push_back(
          judged("round trip on data", err, round_trip_tolerance,
                 "inverse(forward(x)) differs from x" + rows_note(bad, x.shape(0)) + solve_note));
      // log|det ∂f⁻¹/∂z| at z = f(x) must be −log|det ∂f/∂x|.
      if (std::all_of(back.logdet.begin(), back.logdet.end(),
                      [](Real v) { return std::isnan(v); })) {
        out.push_back(Finding{"inverse log-det = -forward", kNaN, kNaN, true,
                              "the inverse computes no log-det (sampling only)"});
      } else {
        double worst = 0;
        for (Index r = 0; r < x.shape(0); ++r) {
          if (!std::isfinite(f.logdet(r))) continue;
          const double e =
              std::abs(f.logdet(r) + back.logdet(r)) / std::max(1.0, std::abs(f.logdet(r)));
          worst = std::isfinite(e) ? std::max(worst, e) : kInf;
        }
        out.push_back(judged("inverse log-det = -forward", worst,
                             solved ? options.solve_logdet_tolerance : options.round_trip_tolerance,
                             "the inverse's log|det| is not minus the forward's" + solve_note));
      }
      const double fd = fd_logdet_error(*exact_leaves[k].layer, x, context, options.fd_rows);
      out.push_back(judged(
          "log-det vs finite differences", fd, logdet_tolerance,
          "log|det J| differs from the finite-difference Jacobian's: the log-determinant (or "
          "the map) is wrong" +
              solve_note));
      if (const auto* d = dynamic_cast<const Diagnosable*>(&b))
        for (Finding& extra : d->diagnose(x, context)) out.push_back(std::move(extra));
      x = f.value;
      keep_finite(x, context);
    } catch (const std::exception& e) {
      out.push_back(Finding{"forward and inverse on data", kNaN, kNaN, false,
                            std::string("raised: ") + e.what()});
      break;
    }
  }

  DoctorReport report;
  report.source =
      have_data
          ? fmt::format("{} data rows, {} samples", picked.size(), options.samples)
          : fmt::format("{} samples (no data given: they stand in for data rows)", samples_through);
  report.source +=
      fmt::format(", log-det checked on {} rows",
                  std::min(options.fd_rows, picked.empty() ? samples_through : picked.size()));
  for (Index k = 0; k < n_leaves; ++k) {
    const std::string& type = leaves[k].layer->name();
    if (!findings[k].empty()) report.rows.push_back({leaves[k].label, type, findings[k][0]});
    if (!sample_findings[k].check.empty())
      report.rows.push_back({leaves[k].label, type, sample_findings[k]});
    for (Index i = 1; i < findings[k].size(); ++i)
      report.rows.push_back({leaves[k].label, type, findings[k][i]});
    const char* missing = findings[k].empty() && sample_findings[k].check.empty() ? "checks"
                          : findings[k].empty()                                   ? "checks on data"
                          : sample_findings[k].check.empty() ? "round trip on samples"
                                                             : nullptr;
    if (missing)
      report.rows.push_back(
          {leaves[k].label, type,
           Finding{std::string(missing) + " not reached", kNaN, kNaN, false,
                   "a layer before it (on this side of the chain) failed or left no finite rows"}});
  }
  return report;
}

std::shared_ptr<Flow> float64_model(const Checkpoint& checkpoint,
                                    std::shared_ptr<Registry> registry, const std::string& source) {
  Checkpoint copy = checkpoint;
  ConfigNode model = ConfigNode::parse(copy.info.model_yaml, source + " (model section)");
  model.set("precision", "float64");
  copy.info.model_yaml = model.dump();
  return rebuild_model(copy, std::move(registry), source + " (float64 copy)").model.flow;
}

DoctorReport diagnose_pipeline(Pipeline& pipeline, const DoctorOptions& options) {
  const DataSplits& data = pipeline.data;
  int split = 2;
  if (data.test.shape(0) == 0) split = data.val.shape(0) > 0 ? 1 : 0;
  const Matrix* xs[] = {&data.train, &data.val, &data.test};
  const Matrix* cs[] = {&data.train_context, &data.val_context, &data.test_context};
  const char* names[] = {"training", "validation", "test"};
  const std::vector<Index> picked = spaced_rows(xs[split]->shape(0), options.rows);
  Matrix x = take_rows(*xs[split], picked);
  const Matrix context = take_rows(*cs[split], picked);
  if (pipeline.dequantize.enabled()) {
    Rng rng = pipeline.eval_rng(split);
    pipeline.dequantize.add_noise(x, rng);
  }
  std::shared_ptr<Flow> exact =
      float64_model(make_checkpoint(pipeline), pipeline.registry, pipeline.file);
  DoctorReport report = run_doctor(*pipeline.model.flow, x, context, options, exact.get());
  report.source = std::string(names[split]) + " split: " + report.source;
  return report;
}

namespace {

std::string number(double v) {
  if (std::isnan(v)) return "-";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  return fmt::format("{:.3g}", v);
}

}  // namespace

std::string doctor_table(const DoctorReport& report) {
  std::size_t layer_w = 5, type_w = 4, check_w = 5;
  for (const DoctorRow& r : report.rows) {
    layer_w = std::max(layer_w, r.layer.size());
    type_w = std::max(type_w, r.type.size());
    check_w = std::max(check_w, r.finding.check.size());
  }
  std::string out = "checked on " + report.source + "\n";
  out += fmt::format("{:<{}}  {:<{}}  {:<{}}  {:>9}  {:>9}  {}\n", "layer", layer_w, "type", type_w,
                     "check", check_w, "value", "threshold", "result");
  for (const DoctorRow& r : report.rows) {
    const Finding& f = r.finding;
    const char* result = !f.ok ? "FAIL" : std::isnan(f.threshold) ? "info" : "ok";
    out += fmt::format("{:<{}}  {:<{}}  {:<{}}  {:>9}  {:>9}  {}\n", r.layer, layer_w, r.type,
                       type_w, f.check, check_w, number(f.value), number(f.threshold), result);
  }
  for (const DoctorRow& r : report.rows) {
    const Finding& f = r.finding;
    if (!f.ok)
      out += fmt::format("FAIL  layer {} ({}), {}: {}\n", r.layer, r.type, f.check, f.advice);
    else if (!f.advice.empty())
      out += fmt::format("note  layer {} ({}), {}: {}\n", r.layer, r.type, f.check, f.advice);
  }
  return out;
}

}  // namespace flows
