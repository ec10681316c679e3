#include "flows/data/datasets.hpp"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <memory>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "flows/data/columns.hpp"
#include "flows/data/conditional_toys.hpp"
#include "flows/data/csv.hpp"
#include "flows/data/discrete.hpp"
#include "flows/data/npy.hpp"
#include "flows/data/toys.hpp"
#include "flows/detail/crc64.hpp"
#include "flows/error.hpp"
#include "flows/resources.hpp"
#include "flows/streams.hpp"

namespace flows {
namespace {

namespace fs = std::filesystem;

// Reads an optional key; the read registers the key as known even when it is
// absent, so a misspelling gets a "did you mean" hint from finish().
template <class T>
void read_optional(ConfigNode& node, const std::string& key, std::optional<T>& out) {
  T value{};
  node.read(key, value);
  if (node.has(key)) out = value;
}

// Relative paths are taken from the folder of the YAML file that names them.
std::string resolve(const std::string& path, const std::string& origin) {
  if (path.empty() || fs::path(path).is_absolute()) return path;
  const fs::path folder = fs::path(origin).parent_path();
  return folder.empty() ? path : (folder / path).lexically_normal().string();
}

// Rows of `m` listed in `rows`, in that order.
Matrix take_rows(const Matrix& m, const std::vector<Index>& rows, Index begin, Index end) {
  Matrix out({end - begin, m.shape(1)});
  for (Index i = begin; i < end; ++i)
    for (Index c = 0; c < m.shape(1); ++c) out(i - begin, c) = m(rows[i], c);
  return out;
}

bool is_index(const std::string& s) {
  return !s.empty() && s.size() < 19 && s.find_first_not_of("0123456789") == std::string::npos;
}

// Positions of the context columns named in `wanted`: a name of `names`, or
// (when it is not one) a 0-based index; raises ConfigError `where: ...` naming
// the columns `path` has.
std::vector<Index> resolve_context_columns(const std::vector<std::string>& wanted,
                                           const std::vector<std::string>& names,
                                           const std::string& path, const std::string& where) {
  const Index cols = names.size();
  auto available = [&] {
    std::string list;
    for (Index j = 0; j < cols; ++j) list += fmt::format("{}{} ({})", j ? ", " : "", names[j], j);
    return fmt::format("{} has {} column{}: {}", path, cols, cols == 1 ? "" : "s", list);
  };
  std::vector<Index> out;
  for (const std::string& entry : wanted) {
    const auto named = std::find(names.begin(), names.end(), entry);
    Index at = 0;
    if (named != names.end()) {
      at = static_cast<Index>(named - names.begin());
    } else if (is_index(entry)) {
      at = std::stoull(entry);
      if (at >= cols)
        throw ConfigError(fmt::format("{}: column index {} is out of range; {} (0-based)", where,
                                      entry, available()));
    } else {
      throw ConfigError(fmt::format("{}: no column '{}'; {}", where, entry, available()));
    }
    if (std::find(out.begin(), out.end(), at) != out.end())
      throw ConfigError(fmt::format("{}: column '{}' ({}) is listed twice", where, names[at], at));
    out.push_back(at);
  }
  if (out.size() == cols)
    throw ConfigError(
        fmt::format("{}: every column is a context column, which leaves no x to model; {}", where,
                    available()));
  return out;
}

}  // namespace

void check_split_memory(const ConfigNode& node, Index n_train, Index n_val, Index n_test,
                        Index cols, double extra_bytes, const std::string& extra) {
  const double rows = double(n_train) + double(n_val) + double(n_test);
  check_data_memory(rows, double(cols),
                    fmt::format("{:.0f} rows of {} column{} (n_train + n_val + n_test)", rows, cols,
                                cols == 1 ? "" : "s"),
                    node.where("n_train") + (node.path().empty() ? "" : ": " + node.path()),
                    extra_bytes, extra);
}

ToyDatasetOptions ToyDatasetOptions::from(ConfigNode& node) {
  ToyDatasetOptions o;
  node.read("n_train", o.n_train);
  node.read("n_val", o.n_val);
  node.read("n_test", o.n_test);
  read_optional(node, "noise", o.noise);
  read_optional(node, "seed", o.seed);
  node.expect(o.n_train > 0, "n_train", "must be > 0");
  node.expect(!o.noise || (*o.noise >= 0 && std::isfinite(*o.noise)), "noise",
              fmt::format("must be finite and >= 0, got {}", o.noise.value_or(0)));
  node.finish();
  check_split_memory(node, o.n_train, o.n_val, o.n_test, 2);
  return o;
}

ToyDataset::ToyDataset(std::string name, ToyDatasetOptions options)
    : name_(std::move(name)), options_(std::move(options)) {
  toy_default_noise(name_);  // rejects an unknown name now rather than at load()
}

DataSplits ToyDataset::load(Rng& rng) const {
  const Real noise = options_.noise.value_or(toy_default_noise(name_));
  Rng train_rng = data_stream(options_.seed, rng, DataUse::train);
  Rng val_rng = data_stream(options_.seed, rng, DataUse::val);
  Rng test_rng = data_stream(options_.seed, rng, DataUse::test);
  DataSplits splits;
  splits.train = make_toy(name_, options_.n_train, noise, train_rng);
  splits.val = make_toy(name_, options_.n_val, noise, val_rng);
  splits.test = make_toy(name_, options_.n_test, noise, test_rng);
  splits.columns = {"x1", "x2"};
  return splits;
}

ConditionalToyOptions ConditionalToyOptions::from(ConfigNode& node, const std::string& name) {
  ConditionalToyOptions o;
  node.read("n_train", o.n_train);
  node.read("n_val", o.n_val);
  node.read("n_test", o.n_test);
  read_optional(node, "seed", o.seed);
  node.expect(o.n_train > 0, "n_train", "must be > 0");
  if (name == "conditional_gaussian") {
    node.read("context_dim", o.context_dim);
    node.expect(o.context_dim >= 1, "context_dim", "must be >= 1");
  } else {
    node.read("theta_dim", o.simulator.theta_dim);
    node.read("obs_dim", o.simulator.obs_dim);
    node.read("obs_noise", o.simulator.obs_noise);
    node.expect(o.simulator.theta_dim >= 1, "theta_dim", "must be >= 1");
    node.expect(o.simulator.obs_dim >= 1, "obs_dim", "must be >= 1");
    node.expect(o.simulator.obs_noise > 0 && std::isfinite(o.simulator.obs_noise), "obs_noise",
                fmt::format("must be finite and > 0, got {}", o.simulator.obs_noise));
  }
  node.finish();
  check_split_memory(node, o.n_train, o.n_val, o.n_test,
                     name == "conditional_gaussian" ? 2 + o.context_dim
                                                    : o.simulator.theta_dim + o.simulator.obs_dim);
  return o;
}

ConditionalToyDataset::ConditionalToyDataset(std::string name, ConditionalToyOptions options)
    : name_(std::move(name)), options_(std::move(options)) {
  const auto& names = conditional_toy_names();
  if (std::find(names.begin(), names.end(), name_) == names.end())
    throw ConfigError(fmt::format("unknown conditional toy data set '{}'", name_));
}

DataSplits ConditionalToyDataset::load(Rng& rng) const {
  DataSplits splits;
  const Index sizes[3] = {options_.n_train, options_.n_val, options_.n_test};
  Matrix* x[3] = {&splits.train, &splits.val, &splits.test};
  Matrix* c[3] = {&splits.train_context, &splits.val_context, &splits.test_context};
  for (int split = 0; split < 3; ++split) {
    Rng split_rng = data_stream(options_.seed, rng, static_cast<DataUse>(split));
    if (name_ == "conditional_gaussian") {
      *c[split] = split_rng.normal(sizes[split], options_.context_dim);
      *x[split] = conditional_gaussian_sample(*c[split], split_rng);
    } else {
      options_.simulator.simulate(sizes[split], split_rng, *x[split], *c[split]);
    }
  }
  if (name_ == "conditional_gaussian") {
    splits.columns = {"x1", "x2"};
    for (Index j = 1; j <= options_.context_dim; ++j)
      splits.context_columns.push_back(fmt::format("c{}", j));
  } else {
    for (Index j = 1; j <= options_.simulator.theta_dim; ++j)
      splits.columns.push_back(fmt::format("theta{}", j));
    for (Index j = 1; j <= options_.simulator.obs_dim; ++j)
      splits.context_columns.push_back(fmt::format("xobs{}", j));
  }
  return splits;
}

FileDatasetOptions FileDatasetOptions::from(ConfigNode& node, FileFormat format) {
  FileDatasetOptions o;
  node.read("path", o.path);
  node.read("train", o.train);
  node.read("val", o.val);
  node.read("test", o.test);
  node.read("val_fraction", o.val_fraction);
  node.read("test_fraction", o.test_fraction);
  node.read("shuffle", o.shuffle);
  read_optional(node, "seed", o.seed);
  if (format == FileFormat::csv) {
    node.read("header", o.header);
    node.expect_one_of("header", o.header, {"auto", "true", "false"});
  }
  node.read("context_columns", o.context_columns);
  node.expect(!node.has("context_columns") || !o.context_columns.empty(), "context_columns",
              "is empty; leave it out for unconditional data");
  if (format == FileFormat::npy)
    for (const std::string& entry : o.context_columns)
      node.expect(is_index(entry), "context_columns",
                  fmt::format("'{}' is not a column index; NPY files have no column names, so "
                              "give 0-based indices",
                              entry));

  const bool one_file = node.has("path");
  const bool split_files = node.has("train") || node.has("val") || node.has("test");
  node.expect(!(one_file && split_files), "path",
              "give either 'path' (one file, split by val_fraction and test_fraction) or "
              "'train', 'val' and 'test', not both");
  node.expect(one_file || split_files, "",
              "needs 'path' (one file, split by val_fraction and test_fraction) or 'train', "
              "'val' and 'test' (one file per split)");
  if (one_file) {
    node.expect(!o.path.empty(), "path", "must not be empty");
    node.expect(o.val_fraction >= 0 && o.val_fraction < 1, "val_fraction",
                fmt::format("must be in [0, 1), got {}", o.val_fraction));
    node.expect(o.test_fraction >= 0 && o.test_fraction < 1, "test_fraction",
                fmt::format("must be in [0, 1), got {}", o.test_fraction));
    node.expect(o.val_fraction + o.test_fraction < 1, "test_fraction",
                fmt::format("val_fraction + test_fraction must be < 1, got {} + {}", o.val_fraction,
                            o.test_fraction));
  } else {
    const std::pair<const char*, const std::string*> files[] = {
        {"train", &o.train}, {"val", &o.val}, {"test", &o.test}};
    for (const auto& [key, value] : files) {
      node.expect(node.has(key), key, "missing: with 'train', 'val' and 'test' give all three");
      node.expect(!value->empty(), key, "must not be empty");
    }
    for (const char* key : {"val_fraction", "test_fraction", "shuffle", "seed"})
      node.expect(!node.has(key), key,
                  "applies only to one file given by 'path', not to 'train'/'val'/'test'");
  }

  const std::string& origin = node.origin();
  for (auto [key, value] : {std::pair<const char*, std::string*>{"path", &o.path},
                            {"train", &o.train},
                            {"val", &o.val},
                            {"test", &o.test}}) {
    if (value->empty()) continue;
    const std::string given = *value;
    *value = resolve(given, origin);
    std::error_code ec;
    node.expect(fs::is_regular_file(*value, ec), key,
                fmt::format("file '{}' does not exist{}", *value,
                            *value != given
                                ? fmt::format(" (relative paths are resolved against the folder "
                                              "of {})",
                                              origin)
                                : ""));
  }
  node.finish();
  return o;
}

FileDataset::FileDataset(FileFormat format, FileDatasetOptions options, std::string where,
                         std::string context_where)
    : format_(format),
      options_(std::move(options)),
      where_(std::move(where)),
      context_where_(std::move(context_where)) {
  if (context_where_.empty())
    context_where_ = where_.empty() ? "context_columns" : where_ + ".context_columns";
}

void FileDataset::split_context(const Matrix& table, const std::vector<std::string>& names,
                                const std::string& path, Matrix& x, Matrix& context,
                                DataSplits& splits) const {
  const Index cols = table.shape(1);
  const std::vector<std::string> all = names.empty() ? positional_column_names(cols) : names;
  const std::vector<Index> picked =
      resolve_context_columns(options_.context_columns, all, path, context_where_);
  std::vector<Index> rest;
  for (Index j = 0; j < cols; ++j)
    if (std::find(picked.begin(), picked.end(), j) == picked.end()) rest.push_back(j);
  x = take_columns(table, rest);
  context = take_columns(table, picked);
  if (splits.context_columns.empty()) {
    splits.columns.clear();
    for (Index j : rest) splits.columns.push_back(all[j]);
    for (Index j : picked) splits.context_columns.push_back(all[j]);
  }
}

namespace {

// A digest of a file that every rank computes alike without reading it
// whole: its size and 16 evenly spaced blocks of 64 KiB (all of a file of
// up to 1 MiB), so that ranks reading different copies disagree.
std::uint64_t file_digest(const std::string& path, std::uint64_t digest) {
  std::error_code ec;
  const std::uint64_t size = fs::file_size(path, ec);
  detail::Crc64 crc;
  crc.process_bytes(&digest, sizeof digest);
  crc.process_bytes(&size, sizeof size);
  constexpr std::uint64_t kBlock = 64 << 10, kBlocks = 16;
  std::ifstream in(path, std::ios::binary);
  std::vector<char> block(kBlock);
  for (std::uint64_t k = 0; k < kBlocks && in; ++k) {
    const std::uint64_t at =
        size <= kBlock * kBlocks ? k * kBlock : k * ((size - kBlock) / (kBlocks - 1));
    if (at >= size) break;
    in.seekg(static_cast<std::streamoff>(at));
    in.read(block.data(), static_cast<std::streamsize>(std::min(kBlock, size - at)));
    crc.process_bytes(block.data(), static_cast<std::size_t>(in.gcount()));
  }
  return crc.checksum();
}

}  // namespace

FileDataset::SplitPlan FileDataset::plan_split(Index n, Rng& rng) const {
  SplitPlan plan;
  plan.n_val = static_cast<Index>(std::llround(options_.val_fraction * Real(n)));
  plan.n_test = static_cast<Index>(std::llround(options_.test_fraction * Real(n)));
  if (plan.n_val + plan.n_test >= n)
    throw DataError(
        fmt::format("{}{}: {} rows leave none for training after val_fraction {} "
                    "({} rows) and test_fraction {} ({} rows)",
                    where_.empty() ? "" : where_ + ": ", options_.path, n, options_.val_fraction,
                    plan.n_val, options_.test_fraction, plan.n_test));
  plan.order.resize(n);
  for (Index i = 0; i < n; ++i) plan.order[i] = i;
  if (options_.shuffle) {
    Rng shuffle_rng = data_stream(options_.seed, rng, DataUse::file_shuffle);
    for (Index i = n; i > 1; --i) std::swap(plan.order[i - 1], plan.order[shuffle_rng.index(i)]);
  }
  plan.n_train = n - plan.n_val - plan.n_test;
  return plan;
}

void FileDataset::split_contexts(const std::string& path, DataSplits& splits) const {
  if (options_.context_columns.empty()) return;
  const std::vector<std::string> names = splits.columns;
  for (auto [x, c] : {std::pair{&splits.train, &splits.train_context},
                      {&splits.val, &splits.val_context},
                      {&splits.test, &splits.test_context}}) {
    const Matrix table = *x;
    split_context(table, names, path, *x, *c, splits);
  }
}

DataSplits FileDataset::load(Rng& rng) const {
  DataSplits splits;

  if (!options_.path.empty()) {
    const Matrix all = read_whole(options_.path, splits.columns);
    const SplitPlan plan = plan_split(all.shape(0), rng);
    splits.train = take_rows(all, plan.order, 0, plan.n_train);
    splits.val = take_rows(all, plan.order, plan.n_train, plan.n_train + plan.n_val);
    splits.test = take_rows(all, plan.order, plan.n_train + plan.n_val, all.shape(0));
    split_contexts(options_.path, splits);
    return splits;
  }

  return load_split_files(nullptr);
}

DataSplits FileDataset::load_split_files(Ranks* ranks) const {
  const std::string prefix = where_.empty() ? "" : where_ + ": ";
  DataSplits splits;
  std::vector<std::string> val_names;
  std::vector<std::string> test_names;
  const bool several = ranks != nullptr && ranks->size() > 1;
  if (!several) splits.train = read_whole(options_.train, splits.columns);
  // With ranks, the held-out rows first: whether there are any decides
  // whether the training rows are shared out.
  splits.val = read_whole(options_.val, val_names);
  splits.test = read_whole(options_.test, test_names);
  if (several) {
    const Index n_train = count_rows(options_.train, splits.columns).first;
    const Index held_out = splits.val.shape(0) + splits.test.shape(0);
    const auto [begin, end] = training_share(n_train, held_out, ranks);
    std::vector<bool> keep(n_train, false);
    std::fill(keep.begin() + static_cast<std::ptrdiff_t>(begin),
              keep.begin() + static_cast<std::ptrdiff_t>(end), true);
    splits.train = read_rows(options_.train, keep, splits.columns);
    splits.train_begin = begin;
    splits.train_total = training_rows_are_shared(held_out, ranks) ? n_train : 0;
    for (const std::string* path : {&options_.train, &options_.val, &options_.test})
      splits.source_digest = file_digest(*path, splits.source_digest);
  }
  auto check = [&](const char* key, const std::string& path, const Matrix& m,
                   const std::vector<std::string>& names) {
    if (m.shape(1) != splits.train.shape(1))
      throw DataError(fmt::format("{}{} '{}' has {} column{} but train '{}' has {}", prefix, key,
                                  path, m.shape(1), m.shape(1) == 1 ? "" : "s", options_.train,
                                  splits.train.shape(1)));
    if (!names.empty() && !splits.columns.empty() && names != splits.columns) {
      Index c = 0;
      while (names[c] == splits.columns[c]) ++c;
      throw DataError(fmt::format("{}{} '{}' names column {} '{}' but train '{}' names it '{}'",
                                  prefix, key, path, c + 1, names[c], options_.train,
                                  splits.columns[c]));
    }
  };
  check("val", options_.val, splits.val, val_names);
  check("test", options_.test, splits.test, test_names);
  if (!options_.context_columns.empty()) {
    const std::vector<std::string> names = splits.columns;
    const std::pair<Matrix*, Matrix*> parts[] = {{&splits.train, &splits.train_context},
                                                 {&splits.val, &splits.val_context},
                                                 {&splits.test, &splits.test_context}};
    const std::string* paths[] = {&options_.train, &options_.val, &options_.test};
    for (int k = 0; k < 3; ++k) {
      const Matrix table = *parts[k].first;
      split_context(table, names, *paths[k], *parts[k].first, *parts[k].second, splits);
    }
  }
  return splits;
}

CsvHeader FileDataset::header_mode() const {
  return options_.header == "true"    ? CsvHeader::present
         : options_.header == "false" ? CsvHeader::absent
                                      : CsvHeader::detect;
}

Matrix FileDataset::read_whole(const std::string& path, std::vector<std::string>& names) const {
  return format_ == FileFormat::csv ? read_csv(path, &names, header_mode()) : read_npy(path);
}

std::pair<Index, Index> FileDataset::count_rows(const std::string& path,
                                                std::vector<std::string>& names) const {
  if (format_ == FileFormat::npy) {
    const NpyShape shape = npy_shape(path);
    return {shape.rows, shape.columns};
  }
  CsvRowCount counted = count_csv_rows(path, header_mode());
  names = std::move(counted.header);
  return {counted.rows, counted.columns};
}

Matrix FileDataset::read_rows(const std::string& path, const std::vector<bool>& keep,
                              std::vector<std::string>& names) const {
  return format_ == FileFormat::csv ? read_csv_rows(path, keep, &names, header_mode())
                                    : read_npy_rows(path, keep);
}

// Reads the rows this rank holds: every held-out row and its share of the
// training rows, split as load() splits them.
DataSplits FileDataset::load_share(Rng& rng, Ranks* ranks) const {
  if (ranks == nullptr || ranks->size() <= 1) return load(rng);
  if (options_.path.empty()) return load_split_files(ranks);
  DataSplits splits;
  const auto [n, cols] = count_rows(options_.path, splits.columns);
  const SplitPlan plan = plan_split(n, rng);
  const auto [begin, end] = training_share(plan.n_train, plan.n_val + plan.n_test, ranks);
  const Index trained = end - begin;
  check_data_memory(double(trained + plan.n_val + plan.n_test), double(cols),
                    fmt::format("{} training rows (this rank's share) and {} held-out rows of {} "
                                "column{}",
                                trained, plan.n_val + plan.n_test, cols, cols == 1 ? "" : "s"),
                    options_.path);
  // Each file row's place in the splits (n: not this rank's), and the rows
  // to read; the readers put every value straight into its split.
  std::vector<Index> position(n, n);
  std::vector<bool> keep(n, false);
  for (Index i = begin; i < end; ++i) position[plan.order[i]] = i;
  for (Index i = plan.n_train; i < n; ++i) position[plan.order[i]] = i;
  for (Index r = 0; r < n; ++r) keep[r] = position[r] < n;
  splits.train = Matrix({trained, cols});
  splits.val = Matrix({plan.n_val, cols});
  splits.test = Matrix({plan.n_test, cols});
  auto place = [&](Index row, Index column, Real value) {
    const Index i = position[row];
    if (i < plan.n_train)
      splits.train(i - begin, column) = value;
    else if (i < plan.n_train + plan.n_val)
      splits.val(i - plan.n_train, column) = value;
    else
      splits.test(i - plan.n_train - plan.n_val, column) = value;
  };
  if (format_ == FileFormat::npy) {
    read_npy_rows_into(options_.path, keep, place);
  } else {
    auto place_row = [&](Index row, const Real* values) {
      for (Index c = 0; c < cols; ++c) place(row, c, values[c]);
    };
    read_csv_rows_into(options_.path, keep, place_row, &splits.columns, header_mode());
  }
  split_contexts(options_.path, splits);
  splits.train_begin = begin;
  splits.train_total = training_rows_are_shared(plan.n_val + plan.n_test, ranks) ? plan.n_train : 0;
  splits.source_digest = file_digest(options_.path, 0);
  return splits;
}

void register_datasets(Registry& registry) {
  for (const std::string& name : toy_names())
    registry.add<Dataset>(name, [name](ConfigNode& node, const BuildContext&) {
      return std::make_unique<ToyDataset>(name, ToyDatasetOptions::from(node));
    });
  for (const std::string& name : conditional_toy_names())
    registry.add<Dataset>(name, [name](ConfigNode& node, const BuildContext&) {
      return std::make_unique<ConditionalToyDataset>(name, ConditionalToyOptions::from(node, name));
    });
  for (const std::string& name : discrete_dataset_names())
    registry.add<Dataset>(name, [name](ConfigNode& node, const BuildContext&) {
      return std::make_unique<DiscreteDataset>(name, DiscreteDatasetOptions::from(node, name));
    });
  const std::pair<const char*, FileFormat> formats[] = {{"csv", FileFormat::csv},
                                                        {"npy", FileFormat::npy}};
  for (const auto& [name, format] : formats)
    registry.add<Dataset>(name, [format = format](ConfigNode& node, const BuildContext&) {
      const std::string where = node.where() + (node.path().empty() ? "" : ": " + node.path());
      const std::string key_path =
          node.path().empty() ? "context_columns" : node.path() + ".context_columns";
      const std::string context_where = node.where("context_columns") + ": " + key_path;
      return std::make_unique<FileDataset>(format, FileDatasetOptions::from(node, format), where,
                                           context_where);
    });
}

}  // namespace flows
