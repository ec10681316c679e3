// The pipeline loader on arbitrary YAML: every check and every build step of
// Pipeline::load (plugins, data, model, trainer, resume_from), no training.
// The input stands for a file in configs/, so the relative data paths of the
// seeds (configs/*.yaml and fuzz/corpus/pipeline) resolve.
#include <cstddef>
#include <cstdint>
#include <string>

#include "flows/pipeline.hpp"
#include "fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const std::string origin = FLOWS_SOURCE_DIR "/configs/fuzz-input.yaml";
  const std::string text(reinterpret_cast<const char*>(data), size);
  return flows::fuzz::run_input(origin, [&] { flows::Pipeline::parse(text, origin); });
}
