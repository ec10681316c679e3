// The compiled part of the Python package `flows` (flows/_flows.*.so): the
// SDK's models, training and checkpoints bound with pybind11. flows/__init__.py
// turns dict sections into YAML text and gives fit() and run() their keyword
// signatures; everything that checks, trains, scores or samples is SDK code,
// the same that `flows run`, `sample`, `log-prob` and `info` call.
//
// Arrays come in as anything numpy.asarray takes (float64 or float32, C or
// Fortran order, strided views, objects with __array__ such as pandas frames)
// and are converted once, straight into the SDK's row-major matrices. Results
// are float64 NumPy arrays that own the SDK's buffer (no copy). Training,
// scoring and sampling run with the GIL released.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <memory>
#include <optional>
#include <random>
#include <utility>

#include <fmt/format.h>

#include "flows/bounds.hpp"
#include "flows/checkpoint.hpp"
#include "flows/data/columns.hpp"
#include "flows/data/dequantize.hpp"
#include "flows/error.hpp"
#include "flows/plugin_loader.hpp"
#include "flows/session.hpp"
#include "flows/streams.hpp"
#include "flows/version.hpp"
#include "pipeline.hpp"  // the runner's run_pipeline (apps/flows), for flows.run

namespace py = pybind11;
namespace fs = std::filesystem;
using flows::Index;
using flows::Matrix;
using flows::Real;
using flows::Vector;

namespace {

// A checkpoint that cannot be read or written (flows.CheckpointError); the
// SDK reports those faults as DataError or IoError naming the file.
struct CheckpointFailure : flows::Error {
  using flows::Error::Error;
};

// ---------------------------------------------------------------- arrays in

// x is one of the numeric NumPy kinds this module converts without loss of
// meaning: real floats up to 64 bits, integers and booleans.
py::array as_numeric_array(py::handle obj, const std::string& what) {
  if (obj.is_none()) throw flows::DataError(what + ": expected an array, got None");
  py::array a = py::module_::import("numpy").attr("asarray")(obj);
  const char kind = a.dtype().kind();
  const auto itemsize = a.dtype().itemsize();
  if (kind == 'c')
    throw flows::DataError(fmt::format(
        "{}: complex values ({}); flows models real data (pass x.real if that is meant)", what,
        std::string(py::str(a.dtype()))));
  if (kind == 'f' && itemsize > 8)
    throw flows::DataError(fmt::format(
        "{}: {} has more precision than float64, which flows computes in; convert it with "
        "x.astype(numpy.float64)",
        what, std::string(py::str(a.dtype()))));
  if (kind != 'f' && kind != 'i' && kind != 'u' && kind != 'b')
    throw flows::DataError(
        fmt::format("{}: dtype {} is not numeric", what, std::string(py::str(a.dtype()))));
  return a;
}

template <class T>
void copy_strided(const py::array& a, Index rows, Index cols, Matrix& out) {
  // Strides are in bytes and may be negative (x[::-1]); a 1-D array is one column.
  const char* base = static_cast<const char*>(a.data());
  const py::ssize_t row_stride = a.strides(0);
  const py::ssize_t col_stride = a.ndim() == 2 ? a.strides(1) : 0;
  Real* dst = out.data();
  for (Index i = 0; i < rows; ++i) {
    const char* row = base + static_cast<py::ssize_t>(i) * row_stride;
    for (Index j = 0; j < cols; ++j)
      dst[i * cols + j] = static_cast<Real>(
          *reinterpret_cast<const T*>(row + static_cast<py::ssize_t>(j) * col_stride));
  }
}

// Rows of data as a Matrix: a 2-D array (rows, columns), or a 1-D array as
// one column when `one_d_is_column` (a 1-D model, or the data of fit()).
// `expected_cols` (0: any) is checked with a message naming the model's
// columns. Non-finite values are a DataError naming row and column.
Matrix to_matrix(py::handle obj, const std::string& what, Index expected_cols, bool one_d_is_column,
                 const std::string& expected = "") {
  py::array a = as_numeric_array(obj, what);
  Index rows = 0, cols = 0;
  if (a.ndim() == 2) {
    rows = static_cast<Index>(a.shape(0));
    cols = static_cast<Index>(a.shape(1));
  } else if (a.ndim() == 1 && one_d_is_column) {
    rows = static_cast<Index>(a.shape(0));
    cols = 1;
  } else if (a.ndim() == 1) {
    throw flows::DataError(
        fmt::format("{}: a 1-D array of {} values; {}, so give a 2-D array (rows, columns), e.g. "
                    "x.reshape(1, -1) for one row",
                    what, a.shape(0), expected));
  } else {
    throw flows::DataError(
        fmt::format("{}: a {}-D array; expected a 2-D array (rows, columns)", what, a.ndim()));
  }
  if (expected_cols > 0 && cols != expected_cols)
    throw flows::DataError(
        fmt::format("{}: {} column{}, but {}", what, cols, cols == 1 ? "" : "s", expected));
  Matrix out = xt::empty<Real>({rows, cols});
  if (rows * cols > 0) {
    if (a.dtype().is(py::dtype::of<double>())) {
      copy_strided<double>(a, rows, cols, out);
    } else if (a.dtype().is(py::dtype::of<float>())) {
      copy_strided<float>(a, rows, cols, out);
    } else {
      // Integers, booleans, float16: NumPy converts them, then one copy.
      py::array_t<double> converted = a.attr("astype")("float64");
      copy_strided<double>(converted, rows, cols, out);
    }
  }
  flows::require_finite(out, what);
  return out;
}

// ---------------------------------------------------------------- arrays out

// The result owns the SDK's buffer: a capsule deletes it with the array.
template <class Tensor>
py::array_t<double> to_numpy(Tensor&& t) {
  auto* owned = new std::decay_t<Tensor>(std::move(t));
  py::capsule owner(owned, [](void* p) { delete static_cast<std::decay_t<Tensor>*>(p); });
  std::vector<py::ssize_t> shape, strides;
  for (std::size_t k = 0; k < owned->dimension(); ++k) shape.push_back(owned->shape(k));
  py::ssize_t stride = sizeof(double);
  strides.resize(shape.size());
  for (std::size_t k = shape.size(); k-- > 0;) {
    strides[k] = stride;
    stride *= shape[k];
  }
  return py::array_t<double>(shape, strides, owned->data(), owner);
}

// ---------------------------------------------------------------- the model

std::string plural(Index n, const std::string& word) {
  return fmt::format("{} {}{}", n, word, n == 1 ? "" : "s");
}

// A trained model: what load_model gives, or what fit() trained, with the
// checkpoint that save() writes (the state does not change after training).
struct PyModel {
  std::shared_ptr<flows::Registry> registry;  // keeps the plugins' code loaded
  flows::Model model;
  flows::Checkpoint checkpoint;
  std::optional<flows::TrainReport> report;  // fit() only
  std::string source;                        // the file it was loaded from ("" after fit)

  const flows::CheckpointInfo& info() const { return checkpoint.info; }
  Index dim() const { return info().dim; }
  Index context_dim() const { return info().context_dim(); }

  // "the model 'm' reads 2 x columns (a, b) and 1 context column (c)", as the CLI says it.
  std::string reads() const {
    const auto& i = info();
    std::string out = fmt::format("the model '{}' reads {}", i.name, plural(i.dim, "x column"));
    if (!i.columns.empty()) out += " (" + flows::join_column_names(i.columns) + ")";
    if (i.context_dim() == 0) return out + " and no context (it is unconditional)";
    return out + fmt::format(" and {} ({})", plural(i.context_dim(), "context column"),
                             flows::join_column_names(i.context_columns));
  }

  Matrix x_rows(py::handle x) const { return to_matrix(x, "x", dim(), dim() == 1, reads()); }

  // The context for `rows` rows of x: n rows (or one row for sampling, or a
  // 1-D array of the context columns meaning one row).
  Matrix context_rows(py::handle context) const {
    if (context.is_none()) return {};
    if (context_dim() == 0)
      throw flows::DataError(fmt::format("context: {}; leave context out", reads()));
    py::array a = as_numeric_array(context, "context");
    if (a.ndim() == 1 && context_dim() > 1 && static_cast<Index>(a.shape(0)) == context_dim())
      a = a.attr("reshape")(1, -1);
    return to_matrix(a, "context", context_dim(), context_dim() == 1, reads());
  }

  py::array_t<double> log_prob(py::handle x, py::handle context) const {
    const Matrix rows = x_rows(x);
    const Matrix c = context_rows(context);
    Vector out;
    {
      py::gil_scoped_release release;
      if (rows.shape(0) == 0) {
        model.flow->check_context(c, 0);
        out = Vector::from_shape({Index{0}});
      } else {
        out = model.flow->log_prob(rows, c);
      }
    }
    return to_numpy(std::move(out));
  }

  static Index seed_of(py::handle seed) {
    if (seed.is_none()) return std::random_device{}() | (Index(std::random_device{}()) << 32);
    const long long s = seed.cast<long long>();
    if (s < 0) throw flows::ConfigError(fmt::format("seed: must be >= 0, got {}", s));
    return static_cast<Index>(s);
  }

  static Index count_of(long long n) {
    if (n < 0) throw flows::ConfigError(fmt::format("n: must be >= 0, got {}", n));
    return static_cast<Index>(n);
  }

  flows::Transformed draw(long long n_in, py::handle context, py::handle seed,
                          bool with_log_prob) const {
    const Index n = count_of(n_in);
    const Matrix c = context_rows(context);
    flows::Rng rng(seed_of(seed));
    py::gil_scoped_release release;
    if (n == 0) {
      model.flow->check_context(c, c.size() ? c.shape(0) : 0);
      return {xt::empty<Real>({Index{0}, dim()}), Vector::from_shape({Index{0}})};
    }
    if (!with_log_prob) return {model.flow->sample(n, rng, c), Vector{}};
    return model.flow->sample_and_log_prob(n, rng, c);
  }

  py::array_t<double> sample(long long n, py::handle context, py::handle seed) const {
    return to_numpy(draw(n, context, seed, false).value);
  }

  py::tuple sample_and_log_prob(long long n, py::handle context, py::handle seed) const {
    flows::Transformed t = draw(n, context, seed, true);
    return py::make_tuple(to_numpy(std::move(t.value)), to_numpy(std::move(t.logdet)));
  }

  // As `flows evaluate --bits-per-dim`: the mean NLL (the dequantized bound,
  // with the same fixed draws, for a model trained on dequantized integer
  // data) in bits per dimension.
  double bits_per_dim(py::handle x, py::handle context) const {
    const Matrix rows = x_rows(x);
    if (rows.shape(0) == 0) throw flows::DataError("x: no rows to score");
    const Matrix c = context_rows(context);
    py::gil_scoped_release release;
    const auto& i = info();
    const flows::Dequantizer dequantizer(i.dim, i.dequantized, i.dequantize_samples, i.columns);
    dequantizer.check_integer(rows, "x");
    if (model.bounds) model.bounds->check(rows, "x", dequantizer.bin_widths());
    flows::Rng rng = flows::run_stream(i.seed, flows::RunStream::evaluation).derive(2);
    const Vector nll = dequantizer.nll(*model.flow, rows, c, rng);
    Real mean = 0;
    for (Real v : nll) mean += v;
    mean /= static_cast<Real>(nll.size());
    return flows::bits_per_dim(mean, dequantizer, i.dim).value;
  }

  void save(const std::string& path) const {
    py::gil_scoped_release release;
    try {
      flows::write_checkpoint(path, checkpoint);
    } catch (const flows::IoError& e) {
      throw CheckpointFailure(e.what());
    }
  }

  py::dict info_dict() const {
    const auto& i = info();
    py::dict d;
    d["name"] = i.name;
    d["format_version"] = i.format_version;
    d["sdk_version"] = i.sdk_version;
    d["created"] = i.created;
    d["dim"] = i.dim;
    d["columns"] = i.columns;
    d["context_columns"] = i.context_columns;
    d["parameters"] = i.parameter_count;
    d["trained_steps"] = i.trained_steps;
    d["standardize"] = i.standardize;
    d["dequantized"] = i.dequantized;  // 0-based x columns trained with U(0, 1) noise
    d["dequantize_samples"] = i.dequantize_samples;
    d["bounds"] = model.bounds ? py::cast(model.bounds->describe()) : py::none();
    d["seed"] = i.seed;
    d["chain_length"] = model.flow->chain().size();
    const flows::ContextEncoder* encoder = model.flow->context_encoder();
    d["context_embedding"] =
        encoder && encoder->has_embedding() ? py::cast(encoder->output_dim()) : py::none();
    py::list components;
    for (const auto& c : i.components) {
      py::dict entry;
      entry["kind"] = c.kind;
      entry["name"] = c.name;
      entry["origin"] = c.origin;
      components.append(entry);
    }
    d["components"] = components;
    d["model_yaml"] = i.model_yaml;
    d["pipeline_yaml"] = i.pipeline_yaml;
    d["source"] = source.empty() ? py::none() : py::cast(source);
    d["training"] = training();
    return d;
  }

  py::object training() const {
    if (!report) return py::none();
    const flows::TrainReport& r = *report;
    py::dict d;
    d["steps"] = r.steps;
    d["best_step"] = r.best_step;
    d["best_val_loss"] = r.best_val_loss;
    d["stopped_early"] = r.stopped_early;
    d["interrupted"] = r.interrupted;
    d["seconds"] = r.seconds;
    d["loss_name"] = r.loss_name;
    py::list curve;
    for (const auto& p : r.curve) {
      py::dict row;
      row["step"] = p.step;
      row["train_loss"] = p.train_loss;
      row["val_loss"] = p.val_loss;
      row["lr"] = p.lr;
      row["seconds"] = p.seconds;
      curve.append(row);
    }
    d["curve"] = curve;
    return std::move(d);
  }

  std::string repr() const {
    const auto& i = info();
    std::string cond = i.context_dim() == 0
                           ? ""
                           : fmt::format(" given {}", plural(i.context_dim(), "context column"));
    return fmt::format("<flows.Model '{}': {}{}, {} parameters>", i.name, plural(i.dim, "x column"),
                       cond, i.parameter_count);
  }
};

std::shared_ptr<PyModel> load(const std::string& path, const std::vector<std::string>& plugins) {
  auto m = std::make_shared<PyModel>();
  std::vector<std::string> warnings;
  {
    py::gil_scoped_release release;
    try {
      m->checkpoint = flows::read_checkpoint(path);
      flows::LoadedModel loaded = flows::load_model(path, plugins);
      m->registry = loaded.registry;
      m->model = loaded.model;
    } catch (const flows::DataError& e) {
      throw CheckpointFailure(e.what());
    } catch (const flows::IoError& e) {
      throw CheckpointFailure(e.what());
    }
    for (const auto& f : m->registry->failures()) warnings.push_back(f.message);
  }
  m->source = path;
  for (const auto& w : warnings)
    PyErr_WarnEx(PyExc_RuntimeWarning, ("skipped a plugin: " + w).c_str(), 1);
  return m;
}

// ---------------------------------------------------------------- training

// The training pass's view of Python: progress lines on sys.stderr (a live
// line on a terminal, \r-refreshed in Jupyter, a line every tenth of the run
// otherwise, as the CLI), the user's step callback, and Ctrl-C. It runs on
// the training thread with the GIL released and takes the GIL only when it
// has something to do (a callback, a line, or a signal check every 0.1 s).
class FitMonitor {
 public:
  FitMonitor(bool progress, py::object callback)
      : progress_(progress), callback_(std::move(callback)) {
    py::object err = py::module_::import("sys").attr("stderr");
    const bool tty =
        !err.is_none() && py::hasattr(err, "isatty") && err.attr("isatty")().cast<bool>();
    const bool jupyter = py::module_::import("sys").attr("modules").contains("ipykernel");
    live_ = progress_ && (tty || jupyter);
    ansi_ = tty;
  }

  void on_progress(const flows::Progress& p) {
    if (log_every_ == 0) log_every_ = std::max<Index>(1, p.total_steps / 10);
    const bool log_line = p.step % log_every_ == 0 || p.step == p.total_steps;
    const bool draw = progress_ && (log_line || (live_ && p.seconds - last_draw_ >= 0.1));
    const bool check = p.seconds - last_check_ >= 0.1;
    if (!draw && !check && callback_.is_none()) return;
    last_ = p;
    py::gil_scoped_acquire gil;
    try {
      step(p, log_line, draw, check);
    } catch (py::error_already_set& e) {  // the callback, or writing to sys.stderr
      e.restore();
      take_python_error();
    }
  }

  bool should_stop() const { return stop_; }

  // After training (GIL held): the line is cleared, a note says where an
  // interrupted run stopped, and a callback's exception is raised again.
  void finish(const flows::TrainReport& report) {
    if (drawn_live_) write(clear());
    if (interrupted_ && progress_)
      write(fmt::format("interrupted at step {} of {}; the model keeps {}\n", report.steps,
                        last_.total_steps,
                        report.best_step > 0
                            ? fmt::format("the parameters of step {} (best validation loss {:.4f})",
                                          report.best_step, report.best_val_loss)
                            : std::string("the parameters of the last step")));
    if (error_) {
      error_->restore();
      error_.reset();
      throw py::error_already_set();
    }
  }

 private:
  void step(const flows::Progress& p, bool log_line, bool draw, bool check) {
    if (check) {
      last_check_ = p.seconds;
      if (PyErr_CheckSignals() != 0) {
        take_python_error();
        return;
      }
    }
    if (draw) {
      last_draw_ = p.seconds;
      write(log_line ? clear() + describe(p) + "\n" : clear() + describe(p));
      drawn_live_ = !log_line;
    }
    if (!callback_.is_none() && !stop_) {
      py::dict d;
      d["step"] = p.step;
      d["total_steps"] = p.total_steps;
      d["loss"] = p.loss;
      d["val_loss"] = p.val_loss;
      d["lr"] = p.lr;
      d["seconds"] = p.seconds;
      py::object result = callback_(d);
      if (py::isinstance<py::bool_>(result) && !result.cast<bool>()) stop_ = true;
    }
  }

  // The Python error just raised (GIL held): KeyboardInterrupt stops training
  // and fit() returns the model; anything else stops it and is raised again.
  void take_python_error() {
    stop_ = true;
    if (PyErr_ExceptionMatches(PyExc_KeyboardInterrupt)) {
      PyErr_Clear();
      interrupted_ = true;
      return;
    }
    py::error_already_set e;  // fetches and clears the error
    error_ = std::make_shared<py::error_already_set>(std::move(e));
  }

  std::string clear() const {
    if (!live_) return "";
    return ansi_ ? "\r\033[K" : "\r" + std::string(width_, ' ') + "\r";
  }

  std::string describe(const flows::Progress& p) {
    const double rate = p.seconds > 0 ? static_cast<double>(p.step) / p.seconds : 0.0;
    const double left = rate > 0 ? static_cast<double>(p.total_steps - p.step) / rate : 0.0;
    const std::string val = std::isnan(p.val_loss) ? "-" : fmt::format("{:.4f}", p.val_loss);
    std::string line = fmt::format(
        "step {:>{}}/{}  loss {:.4f}  val {}  lr {:.2e}  {:.0f} steps/s  {:.1f}s elapsed  "
        "{:.1f}s left",
        p.step, fmt::formatted_size("{}", p.total_steps), p.total_steps, p.loss, val, p.lr, rate,
        p.seconds, left);
    width_ = std::max(width_, line.size());
    return line;
  }

  static void write(const std::string& text) {
    py::object err = py::module_::import("sys").attr("stderr");
    if (err.is_none()) return;
    err.attr("write")(text);
    err.attr("flush")();
  }

  bool progress_;
  py::object callback_;
  bool live_ = false, ansi_ = false, drawn_live_ = false;
  Index log_every_ = 0;
  double last_draw_ = -1, last_check_ = 0;
  std::size_t width_ = 0;
  bool stop_ = false, interrupted_ = false;
  std::shared_ptr<py::error_already_set> error_;
  flows::Progress last_;
};

// Context columns are always named (the CLI finds them by name): c0, c1, ...
// unless given.
std::vector<std::string> context_names(const std::optional<std::vector<std::string>>& given,
                                       Index n) {
  if (given) return *given;
  std::vector<std::string> out;
  for (Index j = 0; j < n; ++j) out.push_back(fmt::format("c{}", j));
  return out;
}

std::shared_ptr<PyModel> fit(py::handle x, py::handle context, py::handle val,
                             py::handle val_context, const std::string& model_yaml,
                             const std::string& trainer_yaml, const std::string& data_yaml,
                             long long seed, bool progress, py::object callback,
                             std::optional<std::vector<std::string>> columns,
                             std::optional<std::vector<std::string>> context_columns,
                             const std::string& name, const std::vector<std::string>& plugins) {
  if (seed < 0) throw flows::ConfigError(fmt::format("seed: must be >= 0, got {}", seed));
  flows::InMemoryPipeline spec;
  spec.origin = "fit";
  spec.name = name;
  spec.seed = static_cast<Index>(seed);
  spec.model_yaml = model_yaml;
  spec.trainer_yaml = trainer_yaml;
  spec.data_yaml = data_yaml;
  spec.plugin_paths = plugins;
  flows::DataSplits& d = spec.data;
  d.train = to_matrix(x, "x", 0, true);
  const Index dim = d.train.shape(1);
  const std::string x_shape = fmt::format("x has {} column{}", dim, dim == 1 ? "" : "s");
  if (!val.is_none()) d.val = to_matrix(val, "val", dim, dim == 1, x_shape);
  if (!context.is_none()) {
    d.train_context = to_matrix(context, "context", 0, true);
    if (d.train_context.shape(0) != d.train.shape(0))
      throw flows::DataError(fmt::format("context: {} rows for the {} rows of x",
                                         d.train_context.shape(0), d.train.shape(0)));
    d.context_columns = context_names(context_columns, d.train_context.shape(1));
  } else if (context_columns && !context_columns->empty()) {
    throw flows::DataError("context_columns are named but no context is given");
  }
  const Index k = d.context_dim();
  if (!val_context.is_none()) {
    if (k == 0) throw flows::DataError("val_context: the training data has no context");
    if (val.is_none()) throw flows::DataError("val_context: given without val");
    d.val_context = to_matrix(val_context, "val_context", k, k == 1,
                              fmt::format("context has {} column{}", k, k == 1 ? "" : "s"));
  } else if (k > 0 && !val.is_none()) {
    throw flows::DataError(
        "val_context: a conditional model's validation rows need their "
        "context (val_context, one row per row of val)");
  }
  if (d.val.size() == 0) d.val = xt::empty<Real>({Index{0}, dim});
  d.test = xt::empty<Real>({Index{0}, dim});
  if (columns) d.columns = *columns;  // else unnamed, as a CSV without a header
  if (!d.columns.empty() && d.columns.size() != dim)
    throw flows::DataError(
        fmt::format("columns: {} names for the {} columns of x", d.columns.size(), dim));
  if (k > 0 && d.context_columns.size() != k)
    throw flows::DataError(fmt::format("context_columns: {} names for the {} columns of context",
                                       d.context_columns.size(), k));

  FitMonitor monitor(progress, std::move(callback));
  auto m = std::make_shared<PyModel>();
  std::vector<std::string> warnings;
  flows::TrainReport report;
  {
    py::gil_scoped_release release;
    flows::Pipeline p = flows::make_in_memory_pipeline(std::move(spec));
    for (const auto& f : p.registry->failures()) warnings.push_back(f.message);
    flows::TrainerCallbacks callbacks;
    callbacks.on_progress = [&monitor](const flows::Progress& pr) { monitor.on_progress(pr); };
    callbacks.should_stop = [&monitor] { return monitor.should_stop(); };
    report = p.train(callbacks);  // as the train stage of `flows run`
    m->registry = p.registry;
    m->model = p.model;
    m->checkpoint = flows::make_checkpoint(p);
  }
  monitor.finish(report);
  m->report = report;
  for (const auto& w : warnings)
    PyErr_WarnEx(PyExc_RuntimeWarning, ("skipped a plugin: " + w).c_str(), 1);
  return m;
}

// ---------------------------------------------------------------- pipelines

// The folder `flows run` writes into: the override, else the pipeline's
// `output`, else runs/<name> (as PipelineOptions reads them).
std::string pipeline_output(const std::string& file, const std::vector<std::string>& overrides) {
  flows::ConfigNode root = flows::ConfigNode::load_file(file);
  flows::apply_overrides(root, overrides);
  std::string name = "flows", output;
  root.read("name", name);
  root.read("output", output);
  return output.empty() ? "runs/" + name : output;
}

// Ctrl-C during flows.run: asked between training steps, it takes the GIL
// at most every 0.1 s to let Python see its signals.
class InterruptCheck {
 public:
  bool operator()() {
    const auto now = std::chrono::steady_clock::now();
    if (stopped_ || now - last_ < std::chrono::milliseconds(100)) return stopped_;
    last_ = now;
    py::gil_scoped_acquire gil;
    if (PyErr_CheckSignals() != 0) {
      PyErr_Clear();  // KeyboardInterrupt: stop training, run the later stages
      stopped_ = true;
    }
    return stopped_;
  }
  bool stopped() const { return stopped_; }

 private:
  std::chrono::steady_clock::time_point last_ = std::chrono::steady_clock::now();
  bool stopped_ = false;
};

// Returns the output folder and whether Ctrl-C stopped the training.
std::pair<std::string, bool> run(const std::string& file, const std::vector<std::string>& overrides,
                                 const std::string& output, bool progress) {
  flows::app::RunOptions options;
  options.file = file;
  options.overrides = overrides;
  options.output = output;
  options.quiet = !progress;
  auto interrupt = std::make_shared<InterruptCheck>();
  options.should_stop = [interrupt] { return (*interrupt)(); };
  const std::string folder = output.empty() ? pipeline_output(file, overrides) : output;
  {
    py::gil_scoped_release release;
    flows::app::run_pipeline(options);
  }
  return {folder, interrupt->stopped()};
}

py::list listing(const flows::Registry& registry) {
  py::list out;
  for (const auto& l : registry.listing()) {
    py::dict entry;
    entry["kind"] = flows::kind_name(l.kind);
    entry["name"] = l.name;
    entry["origin"] = l.origin;
    out.append(entry);
  }
  return out;
}

// What `flows plugins --path ...` lists, and the plugins that failed.
py::tuple plugins(const std::vector<std::string>& extra) {
  std::shared_ptr<flows::Registry> registry;
  {
    py::gil_scoped_release release;
    registry = flows::make_registry(extra);
  }
  py::list failures;
  for (const auto& f : registry->failures()) failures.append(f.message);
  return py::make_tuple(listing(*registry), failures);
}

// Loads the plugin file or folder `path` into a fresh registry: PluginError
// when a file given directly cannot be loaded, or when a folder holds no
// loadable plugin. Returns what it provides.
py::list check_plugins(const std::string& path) {
  flows::Registry registry;
  {
    py::gil_scoped_release release;
    std::error_code ec;
    if (!fs::exists(path, ec))
      throw flows::PluginError(fmt::format("load_plugins: '{}' does not exist", path));
    if (fs::is_regular_file(path, ec)) {
      flows::load_plugin(fs::absolute(path).string(), registry);
    } else {
      const auto loaded = flows::load_plugins({path}, registry);
      if (loaded.empty()) {
        std::string why;
        for (const auto& f : registry.failures()) why += "; " + f.message;
        throw flows::PluginError(fmt::format(
            "load_plugins: '{}' holds no loadable flows plugin (flows_plugin_*.so){}", path, why));
      }
    }
  }
  return listing(registry);
}

}  // namespace

PYBIND11_MODULE(_flows, m) {
  m.doc() = "The compiled core of flows (see the flows package for the documented API).";

  // Exceptions: flows.Error and one subclass per SDK error kind. The message
  // is the SDK's, the text the command line prints after "error: ".
  static py::exception<flows::Error> error(m, "Error");
  static py::exception<flows::ConfigError> config_error(m, "ConfigError", error.ptr());
  static py::exception<flows::DataError> data_error(m, "DataError", error.ptr());
  static py::exception<flows::NumericalError> numerical_error(m, "NumericalError", error.ptr());
  static py::exception<flows::PluginError> plugin_error(m, "PluginError", error.ptr());
  static py::exception<flows::IoError> io_error(m, "IoError", error.ptr());
  static py::exception<CheckpointFailure> checkpoint_error(m, "CheckpointError", error.ptr());
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const CheckpointFailure& e) {
      checkpoint_error(e.what());
    } catch (const flows::ConfigError& e) {
      config_error(e.what());
    } catch (const flows::DataError& e) {
      data_error(e.what());
    } catch (const flows::NumericalError& e) {
      numerical_error(e.what());
    } catch (const flows::PluginError& e) {
      plugin_error(e.what());
    } catch (const flows::IoError& e) {
      io_error(e.what());
    } catch (const flows::Error& e) {
      error(e.what());
    }
  });

  py::class_<PyModel, std::shared_ptr<PyModel>>(m, "Model")
      .def_property_readonly("dim", &PyModel::dim)
      .def_property_readonly("columns", [](const PyModel& s) { return s.info().columns; })
      .def_property_readonly("context_columns",
                             [](const PyModel& s) { return s.info().context_columns; })
      .def_property_readonly("training", &PyModel::training)
      .def("log_prob", &PyModel::log_prob, py::arg("x"), py::arg("context") = py::none())
      .def("sample", &PyModel::sample, py::arg("n"), py::arg("context") = py::none(),
           py::arg("seed") = py::none())
      .def("sample_and_log_prob", &PyModel::sample_and_log_prob, py::arg("n"),
           py::arg("context") = py::none(), py::arg("seed") = py::none())
      .def("bits_per_dim", &PyModel::bits_per_dim, py::arg("x"), py::arg("context") = py::none())
      .def(
          "save",
          [](const PyModel& s, const py::object& path) {
            s.save(py::str(py::module_::import("os").attr("fspath")(path)));
          },
          py::arg("path"))
      .def("info", &PyModel::info_dict)
      .def("__repr__", &PyModel::repr);

  m.def("_fit", &fit);
  m.def("_load", &load);
  m.def("_run", &run);
  m.def("_plugins", &plugins);
  m.def("_check_plugins", &check_plugins);
  m.def("_sdk_version", [] { return flows::sdk_version(); });
}
