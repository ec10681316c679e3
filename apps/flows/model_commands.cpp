#include "model_commands.hpp"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <optional>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "flows/checkpoint.hpp"
#include "flows/data/columns.hpp"
#include "flows/data/csv.hpp"
#include "flows/data/dequantize.hpp"
#include "flows/data/npy.hpp"
#include "flows/error.hpp"
#include "flows/gaussian_mixture.hpp"
#include "flows/resources.hpp"
#include "flows/streams.hpp"
#include "outputs.hpp"

namespace flows::app {

namespace {

namespace fs = std::filesystem;

// Most rows `flows sample` writes (all context rows together), as -n's limit.
constexpr Index kMaxSamples = 1000000000;

enum class TableFormat { csv, npy };

TableFormat format_of(const std::string& path, const char* role) {
  const std::string ext = fs::path(path).extension().string();
  if (ext == ".npy") return TableFormat::npy;
  if (ext == ".csv") return TableFormat::csv;
  throw ConfigError(fmt::format("{} '{}': the file name must end in .csv or .npy", role, path));
}

// " (a, b)", or nothing for unnamed columns.
std::string listed(const std::vector<std::string>& names) {
  return names.empty() ? "" : " (" + join_column_names(names) + ")";
}

// "'a'", "'a', 'b'".
std::string quoted(const std::vector<std::string>& names) {
  std::string out;
  for (const std::string& c : names) out += (out.empty() ? "'" : ", '") + c + "'";
  return out;
}

std::string plural(Index n, const std::string& word) {
  return fmt::format("{} {}{}", n, word, n == 1 ? "" : "s");
}

// What the model reads, for error messages: "the model 'm' reads 2 x columns
// (x1, x2) and 1 context column (c)".
std::string model_columns(const CheckpointInfo& info) {
  std::string out = fmt::format("the model '{}' reads {}{}", info.name,
                                plural(info.dim, "x column"), listed(info.columns));
  if (info.context_dim() == 0) return out + " and no context (it is unconditional)";
  return out + fmt::format(" and {}{}", plural(info.context_dim(), "context column"),
                           listed(info.context_columns));
}

// The model's x column names; x0, x1, ... for unnamed data.
std::vector<std::string> x_names(const CheckpointInfo& info) {
  return info.columns.empty() ? positional_column_names(info.dim) : info.columns;
}

std::optional<Index> find(const std::vector<std::string>& header, const std::string& name) {
  for (Index j = 0; j < header.size(); ++j)
    if (header[j] == name) return j;
  return std::nullopt;
}

std::vector<Index> range(Index begin, Index end) {
  std::vector<Index> out;
  for (Index j = begin; j < end; ++j) out.push_back(j);
  return out;
}

void require_unique(const std::string& path, const std::vector<std::string>& header) {
  for (Index j = 0; j < header.size(); ++j)
    for (Index k = j + 1; k < header.size(); ++k)
      if (header[j] == header[k])
        throw DataError(fmt::format("{}: the header names column '{}' twice (columns {} and {})",
                                    path, header[j], j + 1, k + 1));
}

// The rows of a data file, split into x and context (empty for an
// unconditional model) for the model.
struct Rows {
  Matrix x;
  Matrix context;
};

// An NPY file or a CSV without a header: x columns then context columns.
Rows split_by_position(const std::string& path, const Matrix& table, const CheckpointInfo& info) {
  if (table.shape(1) != info.dim + info.context_dim())
    throw DataError(fmt::format(
        "{}: {}, but {}{}", path, plural(table.shape(1), "column"), model_columns(info),
        info.context_dim() > 0 ? "; a file without a header holds the x columns, then the context "
                                 "columns, in that order"
                               : ""));
  Rows rows;
  rows.x = take_columns(table, range(0, info.dim));
  if (info.context_dim() > 0)
    rows.context = take_columns(table, range(info.dim, info.dim + info.context_dim()));
  return rows;
}

// A CSV with a header: context columns by name; x columns by name when the
// header has all of them, else the other columns in order.
Rows split_by_name(const std::string& path, const Matrix& table,
                   const std::vector<std::string>& header, const CheckpointInfo& info) {
  require_unique(path, header);
  std::vector<Index> context_at;
  std::vector<std::string> missing;
  for (const std::string& name : info.context_columns) {
    if (const auto j = find(header, name))
      context_at.push_back(*j);
    else
      missing.push_back(name);
  }
  if (!missing.empty())
    throw DataError(fmt::format("{}: no {} {}; {}; the file has {}", path,
                                missing.size() == 1 ? "context column" : "context columns",
                                quoted(missing), model_columns(info), join_column_names(header)));
  auto is_context = [&](Index j) {
    return std::find(context_at.begin(), context_at.end(), j) != context_at.end();
  };

  std::vector<Index> x_at;
  bool by_name = !info.columns.empty();
  for (const std::string& name : info.columns) {
    const auto j = find(header, name);
    if (!j) {
      by_name = false;
      break;
    }
    x_at.push_back(*j);
  }
  if (by_name) {
    std::vector<std::string> extra;
    for (Index j = 0; j < header.size(); ++j)
      if (!is_context(j) && std::find(x_at.begin(), x_at.end(), j) == x_at.end())
        extra.push_back(header[j]);
    if (!extra.empty())
      throw DataError(fmt::format("{}: {} {} not the model's; {}", path, quoted(extra),
                                  extra.size() == 1 ? "is" : "are", model_columns(info)));
  } else {
    // The header does not name the x columns: the non-context columns, in order.
    x_at.clear();
    std::vector<std::string> given;
    for (Index j = 0; j < header.size(); ++j)
      if (!is_context(j)) {
        x_at.push_back(j);
        given.push_back(header[j]);
      }
    if (x_at.size() != info.dim)
      throw DataError(fmt::format("{}: {}{}, but {}", path, plural(x_at.size(), "column"),
                                  info.context_dim() > 0 ? " besides the context columns" : "",
                                  model_columns(info)));
    if (!info.columns.empty())
      std::cerr << fmt::format(
          "warning: {}: columns ({}) are named differently from the model's x columns "
          "({}); they are used in the order given\n",
          path, join_column_names(given), join_column_names(info.columns));
  }
  Rows rows;
  rows.x = take_columns(table, x_at);
  if (info.context_dim() > 0) rows.context = take_columns(table, context_at);
  return rows;
}

// The rows of INPUT for log-prob, evaluate (and doctor --data).
Rows read_input(const std::string& path, const CheckpointInfo& info) {
  const TableFormat format = format_of(path, "input");
  std::vector<std::string> header;
  const Matrix table = format == TableFormat::npy ? read_npy(path) : read_csv(path, &header);
  if (header.empty()) return split_by_position(path, table, info);
  return split_by_name(path, table, header, info);
}
Rows read_input(const std::string& path, const LoadedModel& loaded) {
  return read_input(path, loaded.info);
}

std::string trim(const std::string& s) {
  const auto begin = s.find_first_not_of(" \t");
  if (begin == std::string::npos) return "";
  return s.substr(begin, s.find_last_not_of(" \t") - begin + 1);
}

// One context row from 'name=value,name=value': every context column exactly once.
Matrix inline_context(const std::string& spec, const CheckpointInfo& info) {
  Matrix row = xt::zeros<Real>({Index{1}, info.context_dim()});
  std::vector<bool> seen(info.context_dim(), false);
  const std::string expected = fmt::format("the model '{}' reads the context columns {}", info.name,
                                           join_column_names(info.context_columns));
  std::size_t start = 0;
  while (start <= spec.size()) {
    const std::size_t comma = std::min(spec.find(',', start), spec.size());
    const std::string entry = trim(spec.substr(start, comma - start));
    start = comma + 1;
    const std::size_t eq = entry.find('=');
    if (entry.empty() || eq == std::string::npos)
      throw ConfigError(
          fmt::format("--context '{}': '{}' is not name=value; {}", spec, entry, expected));
    const std::string name = trim(entry.substr(0, eq)), value = trim(entry.substr(eq + 1));
    const auto j = find(info.context_columns, name);
    if (!j)
      throw ConfigError(fmt::format("--context: '{}' is not a context column; {}", name, expected));
    if (seen[*j]) throw ConfigError(fmt::format("--context: '{}' is given twice", name));
    seen[*j] = true;
    errno = 0;
    char* end = nullptr;
    const double v = value.empty() ? NAN : std::strtod(value.c_str(), &end);
    if (value.empty() || end != value.c_str() + value.size() || errno == ERANGE ||
        !std::isfinite(v))
      throw ConfigError(fmt::format("--context: {}='{}' is not a finite number", name, value));
    row(0, *j) = v;
  }
  std::vector<std::string> missing;
  for (Index j = 0; j < info.context_dim(); ++j)
    if (!seen[j]) missing.push_back(info.context_columns[j]);
  if (!missing.empty())
    throw ConfigError(
        fmt::format("--context: no value for {}; {}, each once", quoted(missing), expected));
  return row;
}

// Context rows from a file: a CSV's context columns by name (the model's x
// columns may be there too and are not used), or every column of an NPY file
// or a CSV without a header, in the model's order.
Matrix context_file(const std::string& path, const CheckpointInfo& info) {
  const TableFormat format = format_of(path, "--context file");
  std::vector<std::string> header;
  const Matrix table = format == TableFormat::npy ? read_npy(path) : read_csv(path, &header);
  if (header.empty()) {
    if (table.shape(1) != info.context_dim())
      throw DataError(fmt::format("{}: {}, but the model '{}' reads {} ({}), in that order", path,
                                  plural(table.shape(1), "column"), info.name,
                                  plural(info.context_dim(), "context column"),
                                  join_column_names(info.context_columns)));
    return table;
  }
  require_unique(path, header);
  std::vector<Index> at;
  std::vector<std::string> missing;
  for (const std::string& name : info.context_columns) {
    if (const auto j = find(header, name))
      at.push_back(*j);
    else
      missing.push_back(name);
  }
  if (!missing.empty())
    throw DataError(fmt::format(
        "{}: no {} {}; the model '{}' reads the context columns {}; the "
        "file has {}",
        path, missing.size() == 1 ? "context column" : "context columns", quoted(missing),
        info.name, join_column_names(info.context_columns), join_column_names(header)));
  std::vector<std::string> extra;
  for (const std::string& name : header)
    if (!find(info.context_columns, name) && !find(info.columns, name)) extra.push_back(name);
  if (!extra.empty())
    throw DataError(
        fmt::format("{}: {} {} neither a context column ({}) nor an x column of the "
                    "model '{}'",
                    path, quoted(extra), extra.size() == 1 ? "is" : "are",
                    join_column_names(info.context_columns), info.name));
  return take_columns(table, at);
}

// The context rows `flows sample` draws at (empty for an unconditional model).
Matrix read_context(const std::string& spec, const CheckpointInfo& info) {
  if (info.context_dim() == 0) {
    if (!spec.empty())
      throw ConfigError(fmt::format("--context: {}; leave --context out", model_columns(info)));
    return {};
  }
  if (spec.empty()) {
    std::string example;
    for (const std::string& name : info.context_columns)
      example += (example.empty() ? "" : ",") + name + "=...";
    throw ConfigError(fmt::format(
        "the model '{}' is conditional, p(x | {}): give --context FILE (a .csv whose header names "
        "{}, or a .npy with those columns in that order) or --context '{}'",
        info.name, join_column_names(info.context_columns), join_column_names(info.context_columns),
        example));
  }
  std::error_code ec;
  if (fs::is_regular_file(spec, ec)) return context_file(spec, info);
  if (spec.find('=') != std::string::npos) return inline_context(spec, info);
  throw ConfigError(fmt::format(
      "--context '{}': no such file, and not name=value pairs; the model '{}' reads the context "
      "columns {}",
      spec, info.name, join_column_names(info.context_columns)));
}

// The model, with a warning for every plugin that could not be loaded.
LoadedModel load(const ModelCommand& command) {
  LoadedModel loaded = load_model(command.model, command.plugins);
  for (const auto& failure : loaded.registry->failures())
    std::cerr << "warning: skipped a plugin: " << failure.message << "\n";
  return loaded;
}

void write_table(const std::string& path, const Matrix& m,
                 const std::vector<std::string>& columns) {
  if (format_of(path, "output") == TableFormat::npy)
    write_npy(path, m);
  else
    write_csv(path, m, columns);
}

// log p(x) of each row; for a model trained on dequantized integer data,
// the dequantized bound log P̂(x) (the same fixed draws as evaluate). Rows
// outside model.bounds (or non-integers in dequantized columns) are a
// DataError naming the file, row and column.
Vector log_prob_of(const LoadedModel& loaded, const std::string& input) {
  const Rows rows = read_input(input, loaded);
  const Dequantizer dequantizer = loaded.dequantizer();
  dequantizer.check_integer(rows.x, input);
  if (loaded.model.bounds) loaded.model.bounds->check(rows.x, input, dequantizer.bin_widths());
  if (!dequantizer.enabled()) return loaded.model.flow->log_prob(rows.x, rows.context);
  Rng rng = run_stream(loaded.info.seed, RunStream::evaluation).derive(2);
  return -dequantizer.nll(*loaded.model.flow, rows.x, rows.context, rng);
}

}  // namespace

void read_model_rows(const std::string& path, const CheckpointInfo& info, Matrix& x,
                     Matrix& context) {
  Rows rows = read_input(path, info);
  x = std::move(rows.x);
  context = std::move(rows.context);
}

void sample_command(const SampleCommand& command) {
  format_of(command.output, "output");  // fail before the work
  if (command.n == 0) throw ConfigError("-n: must be > 0");
  LoadedModel loaded = load(command);
  const CheckpointInfo& info = loaded.info;
  const Matrix context = read_context(command.context, info);
  // Refused before any sample is drawn when they would not fit (issue 15).
  const Index per_row = info.context_dim() > 0 ? context.shape(0) : 1;
  if (per_row > kMaxSamples / command.n)
    throw ConfigError(fmt::format("-n {} for each of {} context rows is more than 10^9 samples",
                                  command.n, per_row));
  check_memory(sample_memory(double(command.n) * double(per_row),
                             double(info.dim + (info.context_dim() > 0 ? 1 : 0)),
                             info.context_dim() > 0 ? fmt::format("-n {} for each of {}", command.n,
                                                                  plural(per_row, "context row"))
                                                    : fmt::format("-n {}", command.n)),
               "");
  Rng rng(command.seed);
  if (info.context_dim() == 0) {
    const Matrix samples = loaded.model.flow->sample(command.n, rng);
    write_table(command.output, samples, info.columns);
    std::cerr << fmt::format("wrote {} samples to {}\n", command.n, command.output);
    return;
  }
  // N samples per context row, the row's 0-based index first.
  const Index rows = context.shape(0);
  Matrix out = xt::empty<Real>({rows * command.n, info.dim + 1});
  for (Index r = 0; r < rows; ++r) {
    const Matrix c = xt::view(context, xt::range(r, r + 1), xt::all());
    const Matrix samples = loaded.model.flow->sample(command.n, rng, c);
    for (Index i = 0; i < command.n; ++i) {
      out(r * command.n + i, 0) = static_cast<Real>(r);
      for (Index j = 0; j < info.dim; ++j) out(r * command.n + i, j + 1) = samples(i, j);
    }
  }
  std::vector<std::string> header = {"context_row"};
  for (const std::string& name : x_names(info)) header.push_back(name);
  write_table(command.output, out, header);
  std::cerr << fmt::format("wrote {} samples ({} for each of {}) to {}\n", out.shape(0), command.n,
                           plural(rows, "context row"), command.output);
}

void log_prob_command(const LogProbCommand& command) {
  format_of(command.output, "output");
  LoadedModel loaded = load(command);
  const Vector log_p = log_prob_of(loaded, command.input);
  Matrix column = xt::empty<Real>({log_p.size(), Index{1}});
  std::copy(log_p.begin(), log_p.end(), column.begin());
  write_table(command.output, column, {"log_prob"});
  std::cerr << fmt::format("wrote {} {} (nats, data units) to {}\n", log_p.size(),
                           loaded.dequantizer().enabled()
                               ? "dequantized log-probability bounds log P(x)"
                               : "log-densities",
                           command.output);
}

void evaluate_command(const EvaluateCommand& command) {
  LoadedModel loaded = load(command);
  // A model trained on dequantized integer data is scored by the dequantized
  // bound −log P̂(x) (fixed draws from the model's seed); otherwise −log p(x).
  const Dequantizer dequantizer = loaded.dequantizer();
  const Vector nll = -log_prob_of(loaded, command.input);
  const Index n = nll.size();
  // Mean and standard error of the NLL over rows (two passes for accuracy).
  Real mean = 0;
  for (Real v : nll) mean += v;
  mean /= static_cast<Real>(n);
  Real squares = 0;
  for (Real v : nll) squares += (v - mean) * (v - mean);
  const Real std_error = n > 1 ? std::sqrt(squares / static_cast<Real>(n - 1) / n) : NAN;
  // Bits per dimension: (NLL − Σ log w_j) / (d ln 2), d the x columns, w_j = 1
  // for the dequantized columns; for continuous data nll / (d ln 2), labelled.
  const BitsPerDim bits = bits_per_dim(mean, dequantizer, loaded.info.dim);
  const Real to_bits = 1.0 / (static_cast<Real>(loaded.info.dim) * std::log(2.0));
  if (command.json) {
    nlohmann::ordered_json out;
    out["rows"] = n;
    out["nll"] = mean;
    out["nll_stderr"] = std_error;
    if (dequantizer.enabled()) {
      out["nll_kind"] = "dequantized bound";
      out["dequantize_samples"] = dequantizer.samples();
    }
    if (command.bits_per_dim) {
      out["bits_per_dim"] = bits.value;
      out["bits_per_dim_stderr"] = std_error * to_bits;
      out["bits_per_dim_kind"] = bits.kind;
      out["bits_per_dim_meaning"] = bits.meaning;
    }
    std::cout << out.dump(2) << "\n";
    return;
  }
  // One row has no standard error.
  auto plus_minus = [n](Real se) { return n > 1 ? fmt::format(" ± {:.6f}", se) : std::string(); };
  std::cout << fmt::format(
      "rows: {}\nNLL: {:.6f}{} nats per row (data units{}{})\n", n, mean, plus_minus(std_error),
      loaded.info.context_dim() > 0 ? ", given each row's context" : "",
      dequantizer.enabled()
          ? fmt::format("; the dequantized bound -log P(x), {}",
                        dequantizer.samples() == 1
                            ? std::string("one U(0, 1) draw per row")
                            : fmt::format("{} draws per row", dequantizer.samples()))
          : "");
  if (command.bits_per_dim)
    std::cout << fmt::format("bits per dimension: {:.6f}{} ({}: {})\n", bits.value,
                             plus_minus(std_error * to_bits), bits.kind, bits.meaning);
}

void info_command(const ModelCommand& command) {
  const LoadedModel loaded = load(command);
  const CheckpointInfo& i = loaded.info;
  std::cout << fmt::format("model:          {}\n", command.model);
  std::cout << fmt::format("name:           {}\n", i.name);
  std::cout << fmt::format(
      "format:         flows checkpoint version {}, written by flows {} on {}\n", i.format_version,
      i.sdk_version, i.created);
  std::cout << fmt::format("x columns:      {}{}\n", i.dim, listed(i.columns));
  if (i.context_dim() == 0) {
    std::cout << "context:        none (an unconditional model, p(x))\n";
  } else {
    const ContextEncoder* encoder = loaded.model.flow->context_encoder();
    std::cout << fmt::format(
        "context:        {}{}: a conditional model, p(x | c); the context is standardized{}\n",
        plural(i.context_dim(), "column"), listed(i.context_columns),
        encoder && encoder->has_embedding()
            ? fmt::format(", then embedded in {} features", encoder->output_dim())
            : "");
  }
  std::cout << fmt::format("parameters:     {} trainable values\n", i.parameter_count);
  std::cout << fmt::format("trained steps:  {}\n", i.trained_steps);
  std::cout << fmt::format("standardized:   {}\n",
                           i.standardize ? "yes (part of the model)" : "no");
  if (i.dequantized.empty()) {
    std::cout << "dequantized:    no (continuous data)\n";
  } else {
    std::cout << fmt::format(
        "dequantized:    {} with U(0, 1) noise per mini-batch; evaluated by the dequantized "
        "bound with {}\n",
        loaded.dequantizer().column_names().size() == 1
            ? "column " + join_column_names(loaded.dequantizer().column_names())
            : "columns " + join_column_names(loaded.dequantizer().column_names()),
        i.dequantize_samples == 1 ? std::string("one fixed draw per row")
                                  : fmt::format("{} draws per row", i.dequantize_samples));
  }
  std::cout << fmt::format("bounds:         {}\n",
                           loaded.model.bounds ? loaded.model.bounds->describe() +
                                                     " (part of the model: samples stay inside)"
                                               : std::string("none"));
  if (const auto* mixture = dynamic_cast<const GaussianMixture*>(&loaded.model.flow->base()))
    std::cout << fmt::format("base:           gaussian_mixture, {} components\n",
                             mixture->components());
  std::cout << fmt::format("seed:           {}\n", i.seed);
  std::cout << fmt::format(
      "chain:          {} bijectors{}\n", loaded.model.flow->chain().size(),
      loaded.model.bounds
          ? (i.standardize ? ", the bounds then the standardization first" : ", the bounds first")
          : (i.standardize ? ", the standardization first" : ""));
  std::cout << "components:\n";
  for (const auto& c : i.components)
    std::cout << fmt::format("  {:<13}{:<20} {}\n", c.kind, c.name, c.origin);
  std::cout << "pipeline it was trained with:\n";
  std::string line;
  for (char ch : i.pipeline_yaml) {
    if (ch == '\n') {
      std::cout << "  " << line << "\n";
      line.clear();
    } else {
      line += ch;
    }
  }
  if (!line.empty()) std::cout << "  " << line << "\n";
}

}  // namespace flows::app
