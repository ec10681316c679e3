// The .npy reader on arbitrary bytes.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "flows/data/npy.hpp"
#include "fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  return flows::fuzz::run_input("fuzz-input.npy",
                                [&] { flows::parse_npy(bytes, "fuzz-input.npy"); });
}
