#include "flows/checkpoint.hpp"

#include <algorithm>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <map>
#include <set>

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>
#include <boost/crc.hpp>

#include "flows/data/columns.hpp"
#include "flows/detail/file_io.hpp"
#include "flows/error.hpp"
#include "flows/plugin_loader.hpp"
#include "flows/version.hpp"

// File layout, format version 2 (integers little-endian; version 1 had the
// same layout, without context_columns in the header, and is refused because
// its tensors belong to the bijectors before the conditional rewrite):
//
//   offset 0   8 bytes  magic "FLOWSCKP"
//          8   u32      format version
//         12   u32      reserved, 0
//         16   u64      header bytes H
//         24   u64      tensor bytes T
//         32   H bytes  header: YAML (CheckpointInfo and the tensor table)
//     32 + H   T bytes  tensors: float64 little-endian, row-major, in table order
// 32 + H + T   u32      CRC-32 (ISO-HDLC, as zlib) of every byte before it
//
// The fixed part comes first so that a wrong format version or a truncated
// file is told apart from corruption, which the checksum catches.

namespace flows {

namespace fs = std::filesystem;

namespace {

constexpr char kMagic[8] = {'F', 'L', 'O', 'W', 'S', 'C', 'K', 'P'};
constexpr std::size_t kFixedBytes = 32;
constexpr std::size_t kChecksumBytes = 4;

void require_little_endian() {
  const std::uint16_t probe = 1;
  unsigned char first;
  std::memcpy(&first, &probe, 1);
  if (first != 1) throw IoError("checkpoints store little-endian doubles; this host is big-endian");
}

void put_u32(std::string& out, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
void put_u64(std::string& out, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
std::uint64_t get_le(std::string_view in, std::size_t at, int bytes) {
  std::uint64_t v = 0;
  for (int i = 0; i < bytes; ++i)
    v |= static_cast<std::uint64_t>(static_cast<unsigned char>(in[at + i])) << (8 * i);
  return v;
}

std::uint32_t crc32(const char* data, std::size_t size) {
  boost::crc_32_type crc;
  crc.process_bytes(data, size);
  return crc.checksum();
}

std::string utc_now() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return text;
}

// Every `type:` in the model section, with the kinds that know the name.
void collect_components(const YAML::Node& node,
                        const std::map<std::pair<Kind, std::string>, std::string>& origins,
                        std::vector<CheckpointInfo::Component>& out) {
  if (node.IsMap()) {
    const YAML::Node type = node["type"];
    if (type && type.IsScalar()) {
      const std::string name = type.as<std::string>();
      for (Kind kind : all_kinds()) {
        auto it = origins.find({kind, name});
        if (it == origins.end()) continue;
        const bool seen = std::any_of(out.begin(), out.end(), [&](const auto& c) {
          return c.kind == kind_name(kind) && c.name == name;
        });
        if (!seen) out.push_back({kind_name(kind), name, it->second});
      }
    }
    for (const auto& item : node) collect_components(item.second, origins, out);
  } else if (node.IsSequence()) {
    for (const auto& item : node) collect_components(item, origins, out);
  }
}

std::string header_yaml(const Checkpoint& c) {
  const CheckpointInfo& i = c.info;
  YAML::Emitter out;
  out << YAML::BeginMap;
  out << YAML::Key << "format" << YAML::Value << "flows-checkpoint";
  out << YAML::Key << "format_version" << YAML::Value << i.format_version;
  out << YAML::Key << "sdk_version" << YAML::Value << i.sdk_version;
  out << YAML::Key << "created" << YAML::Value << i.created;
  out << YAML::Key << "name" << YAML::Value << i.name;
  out << YAML::Key << "seed" << YAML::Value << static_cast<std::uint64_t>(i.seed);
  out << YAML::Key << "dim" << YAML::Value << static_cast<std::uint64_t>(i.dim);
  out << YAML::Key << "columns" << YAML::Value << YAML::Flow << i.columns;
  out << YAML::Key << "context_columns" << YAML::Value << YAML::Flow << i.context_columns;
  out << YAML::Key << "standardize" << YAML::Value << i.standardize;
  if (!i.dequantized.empty()) {
    std::vector<std::uint64_t> columns(i.dequantized.begin(), i.dequantized.end());
    out << YAML::Key << "dequantize" << YAML::Value << YAML::Flow << columns;
    out << YAML::Key << "dequantize_samples" << YAML::Value
        << static_cast<std::uint64_t>(i.dequantize_samples);
  }
  out << YAML::Key << "trained_steps" << YAML::Value << static_cast<std::uint64_t>(i.trained_steps);
  out << YAML::Key << "parameter_count" << YAML::Value
      << static_cast<std::uint64_t>(i.parameter_count);
  out << YAML::Key << "components" << YAML::Value << YAML::BeginSeq;
  for (const auto& comp : i.components)
    out << YAML::Flow << YAML::BeginMap << YAML::Key << "kind" << YAML::Value << comp.kind
        << YAML::Key << "name" << YAML::Value << comp.name << YAML::Key << "origin" << YAML::Value
        << comp.origin << YAML::EndMap;
  out << YAML::EndSeq;
  out << YAML::Key << "model" << YAML::Value << YAML::Literal << i.model_yaml;
  out << YAML::Key << "pipeline" << YAML::Value << YAML::Literal << i.pipeline_yaml;
  out << YAML::Key << "tensors" << YAML::Value << YAML::BeginSeq;
  for (const auto& e : c.tensors.entries)
    out << YAML::Flow << YAML::BeginMap << YAML::Key << "name" << YAML::Value << e.name << YAML::Key
        << "rows" << YAML::Value << static_cast<std::uint64_t>(e.value.shape(0)) << YAML::Key
        << "cols" << YAML::Value << static_cast<std::uint64_t>(e.value.shape(1)) << YAML::Key
        << "structure" << YAML::Value << e.structure << YAML::EndMap;
  out << YAML::EndSeq;
  out << YAML::EndMap;
  if (!out.good()) throw Error(std::string("checkpoint header: ") + out.GetLastError());
  return std::string(out.c_str()) + "\n";
}

template <class T>
T header_value(const YAML::Node& header, const char* key, const std::string& path) {
  // An entry of the component list or tensor table may be anything.
  if (!header.IsMap())
    throw DataError(fmt::format(
        "{}: the checkpoint header is malformed: line {} of the header holds a {} where a "
        "mapping with '{}' is expected",
        path, header.Mark().line + 1,
        header.IsSequence() ? "list"
        : header.IsNull()   ? "nothing"
                            : "single value",
        key));
  const YAML::Node node = header[key];
  if (!node) throw DataError(fmt::format("{}: the checkpoint header has no '{}'", path, key));
  try {
    return node.as<T>();
  } catch (const YAML::Exception&) {
    throw DataError(fmt::format("{}: the checkpoint header's '{}' is malformed", path, key));
  }
}

}  // namespace

Checkpoint make_checkpoint(const CheckpointParts& parts) {
  const Flow& flow = *parts.model->flow;
  Checkpoint c;
  CheckpointInfo& i = c.info;
  i.sdk_version = sdk_version();
  i.created = utc_now();
  i.name = parts.name;
  i.seed = parts.seed;
  i.dim = flow.dim();
  i.columns = parts.columns;
  i.context_columns = parts.context_columns;
  if (i.context_dim() != flow.context_dim())
    throw Error(fmt::format("checkpoint: the data has {} context columns, the model reads {}",
                            i.context_dim(), flow.context_dim()));
  i.standardize = parts.model->standardize != nullptr;
  i.dequantized = parts.dequantize.columns();
  i.dequantize_samples = parts.dequantize.samples();
  i.parameter_count = parameter_count(parts.model->flow->parameters());
  i.model_yaml = parts.model_yaml;
  i.pipeline_yaml = parts.pipeline_yaml;

  std::map<std::pair<Kind, std::string>, std::string> origins;
  for (const auto& l : parts.registry->listing()) origins[{l.kind, l.name}] = l.origin;
  collect_components(YAML::Load(i.model_yaml), origins, i.components);

  StateSaver saver(c.tensors);
  ScopedStateVisitor model(saver, "model/");
  parts.model->flow->visit_state(model);
  if (parts.trainer) {
    ScopedStateVisitor trainer(saver, "trainer/");
    parts.trainer->visit_state(*parts.model->flow, trainer);
  }
  if (const auto* steps = c.tensors.find("trainer/steps_done"))
    i.trained_steps = static_cast<Index>(steps->value(0, 0));
  return c;
}

void write_checkpoint(const std::string& path, const Checkpoint& checkpoint) {
  require_little_endian();
  const std::string header = header_yaml(checkpoint);
  std::uint64_t tensor_bytes = 0;
  for (const auto& e : checkpoint.tensors.entries) tensor_bytes += e.value.size() * sizeof(Real);

  std::string bytes(kMagic, sizeof kMagic);
  put_u32(bytes, kCheckpointFormatVersion);
  put_u32(bytes, 0);
  put_u64(bytes, header.size());
  put_u64(bytes, tensor_bytes);
  bytes.reserve(kFixedBytes + header.size() + tensor_bytes + kChecksumBytes);
  bytes += header;
  for (const auto& e : checkpoint.tensors.entries)
    bytes.append(reinterpret_cast<const char*>(e.value.data()), e.value.size() * sizeof(Real));
  put_u32(bytes, crc32(bytes.data(), bytes.size()));

  detail::write_atomically(path, [&bytes](std::FILE* file) {
    return std::fwrite(bytes.data(), 1, bytes.size(), file) == bytes.size();
  });
}

Checkpoint read_checkpoint(const std::string& path) {
  return parse_checkpoint(detail::read_whole_file(path), path);
}

Checkpoint parse_checkpoint(std::string_view bytes, const std::string& path) {
  require_little_endian();
  const std::size_t size = bytes.size();
  const std::size_t magic_seen = std::min(size, sizeof kMagic);
  if (size == 0 || std::memcmp(bytes.data(), kMagic, magic_seen) != 0)
    throw DataError(
        fmt::format("{}: not a flows checkpoint (it does not start with 'FLOWSCKP')", path));
  if (size < kFixedBytes + kChecksumBytes)
    throw DataError(fmt::format(
        "{}: truncated checkpoint: {} bytes, shorter than the {}-byte fixed header and checksum",
        path, size, kFixedBytes + kChecksumBytes));

  const auto version = static_cast<std::uint32_t>(get_le(bytes, 8, 4));
  if (version == 1)
    throw DataError(fmt::format(
        "{}: checkpoint format version 1, written before conditional flows and the rewritten "
        "bijectors; this build of flows ({}) reads version {} only. Retrain the model (flows run "
        "on its pipeline) to get a version-{} file",
        path, sdk_version(), kCheckpointFormatVersion, kCheckpointFormatVersion));
  if (version != kCheckpointFormatVersion)
    throw DataError(fmt::format(
        "{}: checkpoint format version {}, but this build of flows ({}) reads version {}{}", path,
        version, sdk_version(), kCheckpointFormatVersion,
        version > kCheckpointFormatVersion ? "; it was written by a newer flows" : ""));

  if (get_le(bytes, 12, 4) != 0)
    throw DataError(
        fmt::format("{}: corrupted checkpoint: the reserved header field is not 0", path));
  const std::uint64_t header_bytes = get_le(bytes, 16, 8);
  const std::uint64_t tensor_bytes = get_le(bytes, 24, 8);
  const std::uint64_t limit = std::uint64_t{1} << 50;  // no real checkpoint comes near
  if (header_bytes > limit || tensor_bytes > limit)
    throw DataError(fmt::format("{}: corrupted checkpoint: impossible section sizes", path));
  const std::uint64_t expected = kFixedBytes + header_bytes + tensor_bytes + kChecksumBytes;
  if (size < expected)
    throw DataError(
        fmt::format("{}: truncated checkpoint: its header announces {} bytes, the file has {}",
                    path, expected, size));
  if (size > expected)
    throw DataError(fmt::format(
        "{}: corrupted checkpoint: {} unexpected bytes after the end announced by its header", path,
        size - expected));
  const auto stored = static_cast<std::uint32_t>(get_le(bytes, size - kChecksumBytes, 4));
  const std::uint32_t computed = crc32(bytes.data(), size - kChecksumBytes);
  if (stored != computed)
    throw DataError(
        fmt::format("{}: corrupted checkpoint: CRC-32 is {:08x}, the file records {:08x}", path,
                    computed, stored));

  YAML::Node header;
  try {
    header = YAML::Load(std::string(bytes.substr(kFixedBytes, header_bytes)));
  } catch (const YAML::Exception& e) {
    throw DataError(fmt::format("{}: the checkpoint header is not valid YAML: {}", path, e.msg));
  }
  if (!header.IsMap()) throw DataError(fmt::format("{}: the checkpoint header is empty", path));

  Checkpoint c;
  CheckpointInfo& i = c.info;
  i.format_version = version;
  i.sdk_version = header_value<std::string>(header, "sdk_version", path);
  i.created = header_value<std::string>(header, "created", path);
  i.name = header_value<std::string>(header, "name", path);
  i.seed = header_value<Index>(header, "seed", path);
  i.dim = header_value<Index>(header, "dim", path);
  i.columns = header_value<std::vector<std::string>>(header, "columns", path);
  i.context_columns = header_value<std::vector<std::string>>(header, "context_columns", path);
  i.standardize = header_value<bool>(header, "standardize", path);
  if (header["dequantize"]) {
    i.dequantized = header_value<std::vector<Index>>(header, "dequantize", path);
    i.dequantize_samples = header_value<Index>(header, "dequantize_samples", path);
  }
  i.trained_steps = header_value<Index>(header, "trained_steps", path);
  i.parameter_count = header_value<Index>(header, "parameter_count", path);
  i.model_yaml = header_value<std::string>(header, "model", path);
  i.pipeline_yaml = header_value<std::string>(header, "pipeline", path);
  const YAML::Node components = header["components"];
  if (!components || !components.IsSequence())
    throw DataError(fmt::format("{}: the checkpoint header has no component list", path));
  for (const YAML::Node& comp : components)
    i.components.push_back({header_value<std::string>(comp, "kind", path),
                            header_value<std::string>(comp, "name", path),
                            header_value<std::string>(comp, "origin", path)});

  const YAML::Node table = header["tensors"];
  if (!table || !table.IsSequence())
    throw DataError(fmt::format("{}: the checkpoint header has no tensor table", path));
  std::uint64_t offset = kFixedBytes + header_bytes;
  const std::uint64_t end = offset + tensor_bytes;
  std::set<std::string> names;
  for (const YAML::Node& t : table) {
    const auto name = header_value<std::string>(t, "name", path);
    const auto rows = header_value<Index>(t, "rows", path);
    const auto cols = header_value<Index>(t, "cols", path);
    const std::uint64_t n = static_cast<std::uint64_t>(rows) * cols;
    if ((cols != 0 && n / cols != rows) || n > (end - offset) / sizeof(Real))
      throw DataError(
          fmt::format("{}: tensor '{}' ({} x {}) does not fit in the file's tensor section", path,
                      name, rows, cols));
    if (!names.insert(name).second)
      throw DataError(fmt::format("{}: tensor '{}' appears twice", path, name));
    TensorStore::Entry entry{name, xt::empty<Real>({rows, cols}),
                             header_value<bool>(t, "structure", path)};
    if (n > 0) std::memcpy(entry.value.data(), bytes.data() + offset, n * sizeof(Real));
    offset += n * sizeof(Real);
    c.tensors.entries.push_back(std::move(entry));
  }
  if (offset != end)
    throw DataError(fmt::format("{}: the tensor table accounts for {} of the {} tensor bytes", path,
                                offset - (kFixedBytes + header_bytes), tensor_bytes));
  if (i.dim == 0) throw DataError(fmt::format("{}: the checkpoint's dim is 0", path));
  if (!i.columns.empty() && i.columns.size() != i.dim)
    throw DataError(fmt::format("{}: the checkpoint names {} columns for {} dimensions", path,
                                i.columns.size(), i.dim));
  for (Index j : i.dequantized)
    if (j >= i.dim)
      throw DataError(
          fmt::format("{}: the checkpoint dequantizes column {} of {}", path, j, i.dim));
  if (i.dequantize_samples < 1)
    throw DataError(fmt::format("{}: the checkpoint's dequantize_samples is 0", path));
  for (std::size_t k = 0; k < i.context_columns.size(); ++k)
    if (std::find(i.context_columns.begin(), i.context_columns.begin() + k, i.context_columns[k]) !=
        i.context_columns.begin() + k)
      throw DataError(fmt::format("{}: the checkpoint names context column '{}' twice", path,
                                  i.context_columns[k]));
  return c;
}

void restore_model(const Checkpoint& checkpoint, Model& model, const std::string& source) {
  if (model.flow->dim() != checkpoint.info.dim)
    throw DataError(fmt::format("{}: the checkpoint's model has {} dimensions, this one {}", source,
                                checkpoint.info.dim, model.flow->dim()));
  if (model.flow->context_dim() != checkpoint.info.context_dim())
    throw DataError(
        fmt::format("{}: the checkpoint's model reads {} context columns{}, this one {}", source,
                    checkpoint.info.context_dim(),
                    checkpoint.info.context_columns.empty()
                        ? ""
                        : " (" + join_column_names(checkpoint.info.context_columns) + ")",
                    model.flow->context_dim()));
  if ((model.standardize != nullptr) != checkpoint.info.standardize)
    throw DataError(fmt::format(
        "{}: the checkpoint's model {} the data standardization, this one {} (model.standardize)",
        source, checkpoint.info.standardize ? "includes" : "does not include",
        model.standardize ? "does" : "does not"));
  StateLoader loader(checkpoint.tensors, source);
  ScopedStateVisitor scoped(loader, "model/");
  try {
    model.flow->visit_state(scoped);
  } catch (const DataError& e) {
    // A component's own check (not a permutation, a scale <= 0) names no file.
    const std::string what = e.what();
    if (what.compare(0, source.size(), source) == 0) throw;
    throw DataError(fmt::format("{}: {}", source, what));
  }
  const std::vector<std::string> extra = loader.unvisited("model/");
  if (!extra.empty())
    throw DataError(fmt::format(
        "{}: {} tensor(s) of the file are not part of the model built from its YAML, the first "
        "'{}' (saved from a different model?)",
        source, extra.size(), extra.front()));
}

LoadedModel load_model(const std::string& path, const std::vector<std::string>& plugin_paths) {
  Checkpoint checkpoint = read_checkpoint(path);
  const CheckpointInfo& info = checkpoint.info;
  std::shared_ptr<Registry> registry = make_registry(plugin_paths);

  for (const auto& component : info.components) {
    Kind kind = Kind::bijector;
    bool known_kind = false;
    for (Kind k : all_kinds())
      if (component.kind == kind_name(k)) kind = k, known_kind = true;
    if (!known_kind)
      throw DataError(fmt::format("{}: unknown component kind '{}'", path, component.kind));
    if (registry->contains(kind, component.name)) continue;
    std::error_code ec;
    // Only files named the way flows_add_plugin names them are tried, so that
    // a checkpoint cannot make the loader open an arbitrary library.
    const bool plugin_file =
        fs::path(component.origin).filename().string().rfind("flows_plugin_", 0) == 0;
    if (plugin_file && fs::is_regular_file(component.origin, ec))
      load_plugins({component.origin}, *registry);
    if (registry->contains(kind, component.name)) continue;
    std::vector<std::string> search = default_plugin_search_path();
    search.insert(search.end(), plugin_paths.begin(), plugin_paths.end());
    std::string searched;
    for (const std::string& s : search) searched += (searched.empty() ? "" : ", ") + s;
    std::string skipped;
    for (const auto& f : registry->failures()) skipped += "; skipped " + f.message;
    throw PluginError(fmt::format(
        "{}: the model needs {} '{}' from plugin {}, which is not loaded (searched: {}{}). Put "
        "the plugin's folder in $FLOWS_PLUGIN_PATH or pass the file with --plugins",
        path, component.kind, component.name, component.origin,
        searched.empty() ? "nothing" : searched, skipped));
  }

  return rebuild_model(checkpoint, registry, path);
}

LoadedModel rebuild_model(const Checkpoint& checkpoint, std::shared_ptr<Registry> registry,
                          const std::string& source) {
  const CheckpointInfo& info = checkpoint.info;
  ConfigNode model_node = ConfigNode::parse(info.model_yaml, source + " (model section)");
  model_node.mark_read("standardize");
  // The context standardization and embedding come back with the state
  // ("model/context/..."), so the model is built for the same context width.
  LoadedModel loaded{
      registry,
      build_model(model_node, *registry, ModelInputs{info.dim, info.context_columns, info.columns},
                  info.seed),
      info};
  model_node.finish();
  if (info.standardize)
    loaded.model.standardize = std::make_shared<Standardize>(xt::zeros<Real>({Index{1}, info.dim}),
                                                             xt::ones<Real>({Index{1}, info.dim}));
  prepend_data_layers(loaded.model);
  restore_model(checkpoint, loaded.model, source);
  return loaded;
}

void restore_trainer(const Checkpoint& checkpoint, Trainer& trainer, Flow& flow,
                     const std::string& source) {
  StateLoader loader(checkpoint.tensors, source);
  ScopedStateVisitor visitor(loader, "trainer/");
  trainer.visit_state(flow, visitor);
}

}  // namespace flows
