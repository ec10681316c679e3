// Resource limits (issue 15): the memory limit, the estimates and their
// messages, the readers' checks before they allocate, and the pipeline's
// checks of its data, model and sample counts before any work.
#include "flows/resources.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "flows/config.hpp"
#include "flows/data/csv.hpp"
#include "flows/data/npy.hpp"
#include "flows/parameter.hpp"
#include "flows/pipeline.hpp"
#include "runner_support.hpp"

namespace flows {
namespace {

namespace fs = std::filesystem;
using test_support::ScopedEnv;
using test_support::temp_dir;

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// The message of the ResourceError `body` raises ("" and a failure when none).
template <class Body>
std::string resource_error(Body&& body) {
  try {
    body();
  } catch (const ResourceError& e) {
    return e.what();
  }
  ADD_FAILURE() << "no ResourceError";
  return "";
}

// A file of `size` bytes that starts with `head` and is a hole after it:
// big on paper, nothing on disk, and slow to read whole.
fs::path sparse_file(const fs::path& path, const std::string& head, std::uintmax_t size) {
  std::ofstream(path, std::ios::binary) << head;
  fs::resize_file(path, size);
  return path;
}

TEST(MemoryLimit, IsThePhysicalMemoryOrLess) {
  ScopedEnv unset("FLOWS_MEMORY_LIMIT", nullptr);
  const MemoryLimit limit = memory_limit();
  const double physical = double(::sysconf(_SC_PHYS_PAGES)) * double(::sysconf(_SC_PAGESIZE));
  EXPECT_GT(limit.bytes, 0);
  EXPECT_LE(limit.bytes, physical);
  EXPECT_FALSE(limit.source.empty());
}

TEST(MemoryLimit, TheEnvironmentCanLowerItButNotRaiseIt) {
  {
    ScopedEnv lower("FLOWS_MEMORY_LIMIT", "512M");
    EXPECT_EQ(memory_limit().bytes, 512.0 * 1024 * 1024);
    EXPECT_EQ(memory_limit().source, "FLOWS_MEMORY_LIMIT");
  }
  {
    ScopedEnv bytes("FLOWS_MEMORY_LIMIT", "123456");
    EXPECT_EQ(memory_limit().bytes, 123456.0);
  }
  ScopedEnv unset("FLOWS_MEMORY_LIMIT", nullptr);
  const double machine = memory_limit().bytes;
  ScopedEnv higher("FLOWS_MEMORY_LIMIT", "1000000T");
  EXPECT_EQ(memory_limit().bytes, machine);
}

TEST(MemoryLimit, AMalformedEnvironmentValueIsNamed) {
  for (const char* bad : {"lots", "12Q", "-5G", "0"}) {
    ScopedEnv env("FLOWS_MEMORY_LIMIT", bad);
    try {
      memory_limit();
      ADD_FAILURE() << bad;
    } catch (const ConfigError& e) {
      EXPECT_TRUE(contains(e.what(), "FLOWS_MEMORY_LIMIT")) << e.what();
      EXPECT_TRUE(contains(e.what(), bad)) << e.what();
    }
  }
}

TEST(CheckMemory, RefusesWithTheEstimateWhatItIsForAndTheLimit) {
  ScopedEnv limit("FLOWS_MEMORY_LIMIT", "24000000000");
  EXPECT_NO_THROW(check_memory({2e10, "a", "b", "c"}, "here"));
  const std::string what = resource_error(
      [] { check_memory(sample_memory(1e12, 2, "sample.n = 1000000000000"), "p.yaml:3:4"); });
  EXPECT_EQ(what,
            "p.yaml:3:4: sample.n = 1000000000000 needs about 80000 GB for the samples (n x "
            "columns x 8 bytes, times 5 working copies); this machine has 24 GB "
            "(FLOWS_MEMORY_LIMIT)");
}

TEST(CheckMemory, GigabytesAreRoundedForReading) {
  EXPECT_EQ(format_bytes(1.6e13), "16000 GB");
  EXPECT_EQ(format_bytes(2.44e9), "2.4 GB");
  EXPECT_EQ(format_bytes(3.1e7), "31 MB");
  EXPECT_EQ(format_bytes(128), "128 bytes");
}

TEST(CheckMemory, EstimatesAddTheirParts) {
  EXPECT_DOUBLE_EQ(data_memory(10, 3, "s").bytes, 10 * 3 * 8 * memory::kDataCopies);
  EXPECT_DOUBLE_EQ(data_memory(10, 3, "s", 100, "x").bytes, 10 * 3 * 8 * memory::kDataCopies + 100);
  EXPECT_DOUBLE_EQ(sample_memory(10, 3, "s").bytes, 10 * 3 * 8 * memory::kSampleCopies);
  EXPECT_DOUBLE_EQ(model_memory(1000, 40, 256, 1, "s").bytes,
                   1000 * 8 * memory::kParameterCopies + 256 * 40 * 8 * memory::kActivationCopies);
  // Two more threads: two replicas.
  EXPECT_DOUBLE_EQ(model_memory(1000, 0, 256, 3, "s").bytes,
                   1000 * 8 * (memory::kParameterCopies + 2 * memory::kReplicaCopies));
}

TEST(ResourceLimits, ACsvIsRefusedByItsLinesBeforeItsValuesAreParsed) {
  ScopedEnv limit("FLOWS_MEMORY_LIMIT", "10K");
  std::string text = "a,b,c\n";
  for (int i = 0; i < 1000; ++i) text += "1,2,3\n";
  const std::string what = resource_error([&] { parse_csv(text, "big.csv"); });
  // 1002 x 3 x 8 x 3 + the 6006 bytes of text.
  EXPECT_TRUE(contains(what, "big.csv: 1002 lines of 3 fields needs about 78150 bytes")) << what;
  EXPECT_TRUE(contains(what, "for the data")) << what;
  ScopedEnv enough("FLOWS_MEMORY_LIMIT", "1M");
  EXPECT_EQ(parse_csv(text, "big.csv").shape(0), 1000u);
}

TEST(ResourceLimits, ACsvFileLargerThanMemoryIsRefusedBeforeItIsRead) {
  const fs::path dir = temp_dir("resources_csv");
  // 100 GB on paper: read_csv would try to read it whole.
  const fs::path file = sparse_file(dir / "huge.csv", "a,b\n1,2\n", std::uintmax_t(100) << 30);
  ScopedEnv limit("FLOWS_MEMORY_LIMIT", "8G");
  const std::string what = resource_error([&] { read_csv(file.string()); });
  EXPECT_TRUE(contains(what, file.string() + ": a file of 107 GB needs about 107 GB for reading "
                                             "it whole"))
      << what;
  fs::remove_all(dir);
}

// The .npy preamble and header for `dict`, padded to 64 bytes.
std::string npy_header(const std::string& dict) {
  std::string header = dict;
  header.append((64 - (10 + header.size() + 1) % 64) % 64, ' ');
  header += '\n';
  const auto length = static_cast<std::uint16_t>(header.size());
  std::string out = std::string("\x93NUMPY", 6) + char(1) + '\0';
  out += char(length & 0xFF);
  out += char(length >> 8);
  return out + header;
}

TEST(ResourceLimits, AnNpyFileIsRefusedByItsHeaderBeforeItsBodyIsRead) {
  const fs::path dir = temp_dir("resources_npy");
  const std::string head =
      npy_header("{'descr': '<f8', 'fortran_order': False, 'shape': (1000000000, 10), }");
  // The body the header promises (80 GB) is a hole: reading it would take minutes.
  const fs::path file = sparse_file(dir / "huge.npy", head, head.size() + std::uintmax_t(8e10));
  ScopedEnv limit("FLOWS_MEMORY_LIMIT", "8G");
  const std::string what = resource_error([&] { read_npy(file.string()); });
  EXPECT_TRUE(
      contains(what, file.string() + ": an array of shape (1000000000, 10) needs about " +
                         format_bytes(1e10 * 8 * memory::kDataCopies + 8e10 + double(head.size()))))
      << what;
  EXPECT_TRUE(contains(what, "rows x columns x 8 bytes")) << what;
  fs::remove_all(dir);
}

TEST(ResourceLimits, AnNpyArrayInMemoryIsCheckedToo) {
  std::string bytes = npy_header("{'descr': '<f8', 'fortran_order': False, 'shape': (1000, 2), }");
  bytes.append(1000 * 2 * 8, '\0');
  ScopedEnv limit("FLOWS_MEMORY_LIMIT", "10K");
  const std::string what = resource_error([&] { parse_npy(bytes, "x.npy"); });
  EXPECT_TRUE(contains(what, "x.npy: an array of shape (1000, 2) needs about")) << what;
  ScopedEnv enough("FLOWS_MEMORY_LIMIT", "1M");
  EXPECT_EQ(parse_npy(bytes, "x.npy").shape(0), 1000u);
}

// The ResourceError of loading the pipeline `yaml`.
std::string load_refusal(const std::string& name, const std::string& yaml) {
  const fs::path dir = temp_dir("resources_" + name);
  return resource_error([&] { Pipeline::parse(yaml, (dir / "pipeline.yaml").string()); });
}

const std::string kSmallData = "data: {type: moons, n_train: 100, n_val: 10, n_test: 10}\n";

TEST(ResourceLimits, ASyntheticDataSetIsRefusedBeforeItIsDrawn) {
  const std::string what = load_refusal(
      "toy", "data: {type: moons, n_train: 1000000000000}\nmodel: {bijectors: [{type: affine}]}\n");
  EXPECT_TRUE(contains(what, "pipeline.yaml:1:"));
  EXPECT_TRUE(contains(what,
                       ": data: 1000000012000 rows of 2 columns (n_train + n_val + n_test) "
                       "needs about 48000 GB"))
      << what;
  for (const std::string data : {"{type: conditional_gaussian, n_train: 1000000000000}",
                                 "{type: binomials, n_train: 1000000000000}",
                                 "{type: correlated_gaussians, n_train: 100, dim: 10000000}"}) {
    const std::string refused =
        load_refusal("synthetic", "data: " + data + "\nmodel: {bijectors: [{type: affine}]}\n");
    EXPECT_TRUE(contains(refused, "needs about")) << data << ": " << refused;
  }
}

TEST(ResourceLimits, SampleCountsAreRefusedBeforeTraining) {
  std::string what = load_refusal("sample", kSmallData +
                                                "model: {bijectors: [{type: affine}]}\n"
                                                "sample: {n: 1000000000000}\n");
  EXPECT_TRUE(contains(what, "pipeline.yaml:3:"));
  EXPECT_TRUE(contains(what, ": sample.n = 1000000000000 needs about 80000 GB for the samples"))
      << what;
  what = load_refusal("quality", kSmallData +
                                     "model: {bijectors: [{type: affine}]}\n"
                                     "evaluate: {quality_rows: 1000000000000}\n");
  EXPECT_TRUE(contains(what, "evaluate.quality_rows = 1000000000000 needs about")) << what;
  // Stages that do not run are not counted.
  EXPECT_NO_THROW(Pipeline::parse(kSmallData + "model: {bijectors: [{type: affine}]}\n"
                                               "sample: {n: 1000000000000}\nstages: [train]\n",
                                  (temp_dir("resources_unused") / "p.yaml").string()));
}

TEST(ResourceLimits, AWideNetworkIsRefusedBeforeItIsBuilt) {
  const std::string what =
      load_refusal("wide", kSmallData +
                               "model: {bijectors: [{type: autoregressive, hidden: [100000000]}]}\n"
                               "trainer: {batch_size: 100}\nthreads: 1\n");
  EXPECT_TRUE(contains(what, "pipeline.yaml:2:"));
  EXPECT_TRUE(contains(what, ": model.bijectors[0].hidden = [100000000] needs about")) << what;
  // 1·10^8 + 10^8 weights and biases in, 10^8 + 1 out.
  EXPECT_TRUE(contains(what,
                       "for training the model (300000001 parameters x 8 bytes x 10 (values, "
                       "gradients, Adam's moments, working copies), and batch_size 100 x "
                       "100000000 hidden units x 8 bytes x 2 for the activations)"))
      << what;
}

TEST(ResourceLimits, TheBuiltModelsParametersAreCheckedToo) {
  // The 4 parameters of an affine bijector: only a tiny limit refuses them.
  ScopedEnv limit("FLOWS_MEMORY_LIMIT", "100");
  const std::string what = load_refusal("built",
                                        "data: {type: moons, n_train: 1, n_val: 0, "
                                        "n_test: 0}\nmodel: {bijectors: [{type: affine}]}\n"
                                        "stages: [train]\nthreads: 1\n");
  EXPECT_TRUE(contains(what, "the model's 4 parameters needs about 320 bytes")) << what;
}

TEST(NetworkSizes, CountEveryHiddenListTimesItsLayers) {
  ConfigNode model = ConfigNode::parse(
      "bijectors: [{type: autoregressive, hidden: [10, 20]}, {type: coupling, layers: 3, "
      "hidden: [5]}, {type: affine}]\n",
      "m.yaml");
  const NetworkSizes sizes = network_sizes(model);
  // From one input to one output: (10 + 10) + (10·20 + 20) + (20 + 1) = 261,
  // and 3 × ((5 + 5) + (5 + 1)) = 48.
  EXPECT_DOUBLE_EQ(sizes.parameters, 261 + 48);
  EXPECT_DOUBLE_EQ(sizes.activations, 30 + 15);
  EXPECT_EQ(sizes.networks, 2u);
  EXPECT_EQ(sizes.largest, "model.bijectors[0].hidden = [10, 20]");
  EXPECT_FALSE(model.has("nothing"));  // the section itself is left unread
  EXPECT_THROW(model.finish(), ConfigError);
}

TEST(NetworkSizes, AreALowerBoundOfTheBuiltModel) {
  for (const std::string bijector :
       {"{type: autoregressive, hidden: [16, 16]}", "{type: coupling, layers: 2, hidden: [12]}"}) {
    const fs::path dir = temp_dir("resources_bound");
    const Pipeline p = Pipeline::parse(kSmallData + "model: {bijectors: [" + bijector + "]}\n",
                                       (dir / "p.yaml").string());
    const double estimate = network_sizes(p.model_node).parameters;
    double built = 0;
    for (const Parameter* parameter : p.model.flow->parameters()) built += parameter->size();
    EXPECT_GT(estimate, 0) << bijector;
    EXPECT_LE(estimate, built) << bijector;
  }
}

}  // namespace
}  // namespace flows
