// The checkpoint reader, then the model it describes rebuilt and restored
// (the work of load_model after the plugins are loaded).
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include <boost/crc.hpp>

#include "flows/checkpoint.hpp"
#include "flows/plugin_loader.hpp"
#include "fuzz_support.hpp"

namespace {

// The built-in components and the shipped plugins, loaded once.
std::shared_ptr<flows::Registry> registry() {
  static const auto registry = [] {
    auto r = std::make_shared<flows::Registry>();
    flows::register_builtins(*r);
    flows::load_plugins(flows::default_plugin_search_path(), *r);
    return r;
  }();
  return registry;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  // The last 4 bytes are the CRC-32 of the rest. Recomputing it lets mutations
  // reach the header and tensor parsing instead of stopping at the checksum.
  std::string bytes(reinterpret_cast<const char*>(data), size);
  if (bytes.size() >= 4) {
    boost::crc_32_type crc;
    crc.process_bytes(bytes.data(), bytes.size() - 4);
    const std::uint32_t sum = crc.checksum();
    for (int i = 0; i < 4; ++i) bytes[bytes.size() - 4 + i] = static_cast<char>(sum >> (8 * i));
  }
  const std::string origin = "fuzz-input.flows";
  return flows::fuzz::run_input(origin, [&] {
    const flows::Checkpoint checkpoint = flows::parse_checkpoint(bytes, origin);
    flows::rebuild_model(checkpoint, registry(), origin);
  });
}
