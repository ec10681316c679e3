// The broken-pipeline set of issue 15: each pipeline below is wrong in one
// way. The runner must stop before any work with exit status 1 (not 0, not a
// signal) and a message that names the problem, and write nothing.
#include <gtest/gtest.h>

#include "runner_support.hpp"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include <sys/wait.h>

namespace {

namespace fs = std::filesystem;
using namespace flows::test_support;

const std::string kData = "data: {type: moons, n_train: 200, n_val: 50, n_test: 50}\n";
const std::string kModel = "model: {bijectors: [{type: affine}]}\n";
const std::string kFast = "trainer: {steps: 2}\n";

// A flow-matching pipeline whose bijector gets `options` (e.g. its solver).
std::string flow_matching(const std::string& options) {
  return kData + "model: {bijectors: [{type: flow_matching, hidden: [8], " + options +
         "}]}\ntrainer: {type: cfm, steps: 2}\n";
}

// A pipeline whose only bijector is `bijector`.
std::string with_bijector(const std::string& bijector) {
  return kData + "model: {bijectors: [" + bijector + "]}\n" + kFast;
}

struct Broken {
  std::string name;
  std::string yaml;                                             // the pipeline's text
  std::vector<std::string> expected;                            // every one must be in the message
  std::vector<std::pair<std::string, std::string>> files = {};  // written beside it
  std::string arguments = "";                                   // extra arguments after the file
  std::string environment = "";  // VAR=value settings before the command
};

// A .npy file of `rows` x 2 float64 zeros.
std::string npy_of_zeros(int rows) {
  std::string header =
      "{'descr': '<f8', 'fortran_order': False, 'shape': (" + std::to_string(rows) + ", 2), }";
  header.append((64 - (10 + header.size() + 1) % 64) % 64, ' ');
  header += '\n';
  std::string out = std::string("\x93NUMPY\x01\x00", 8);
  out += static_cast<char>(header.size() & 0xFF);
  out += static_cast<char>(header.size() >> 8);
  return out + header + std::string(rows * 2 * 8, '\0');
}

// A CSV file of `rows` rows of two numbers, with a header.
std::string csv_rows(int rows) {
  std::string out = "a,b\n";
  for (int i = 0; i < rows; ++i) out += std::to_string(i) + ",1\n";
  return out;
}

std::vector<Broken> broken_pipelines() {
  return {
      {"unknown_top_level_key", "nmae: x\n" + kData + kModel + kFast, {"nmae", "unknown key"}},
      {"seed_not_an_integer", "seed: abc\n" + kData + kModel + kFast, {"seed"}},
      {"negative_steps", kData + kModel + "trainer: {steps: -5}\n", {"trainer.steps"}},
      {"zero_batch_size",
       kData + kModel + "trainer: {steps: 2, batch_size: 0}\n",
       {"trainer.batch_size"}},
      {"negative_learning_rate",
       kData + kModel + "trainer: {steps: 2, optimizer: {type: adam, lr: -1.0}}\n",
       {"lr"}},
      {"unknown_trainer", kData + kModel + "trainer: {type: mle2}\n", {"mle2"}},
      {"no_data_section", kModel + kFast, {"data"}},
      {"unknown_dataset", "data: {type: moonz}\n" + kModel + kFast, {"moonz", "moons"}},
      {"missing_csv_file",
       "data: {type: csv, path: absent.csv}\n" + kModel + kFast,
       {"absent.csv"}},
      {"csv_with_text_in_a_number",
       "data: {type: csv, path: bad.csv}\n" + kModel + kFast,
       {"bad.csv", "row 3, column 2"},
       {{"bad.csv", "a,b\n1,2\n3,oops\n5,6\n"}}},
      {"missing_npy_file",
       "data: {type: npy, path: absent.npy}\n" + kModel + kFast,
       {"absent.npy"}},
      {"zero_training_rows", "data: {type: moons, n_train: 0}\n" + kModel + kFast, {"n_train"}},
      {"unknown_context_column",
       "data: {type: csv, path: ok.csv, context_columns: [zz]}\n" + kModel + kFast,
       {"zz"},
       {{"ok.csv", "a,b,c\n1,2,3\n4,5,6\n7,8,9\n1,3,5\n2,4,6\n"}}},
      {"empty_bijector_list", kData + "model: {bijectors: []}\n" + kFast, {"model.bijectors"}},
      {"unknown_bijector", with_bijector("{type: revers}"), {"revers", "reverse"}},
      {"bijector_without_type", with_bijector("{layers: 2}"), {"type"}},
      {"zero_hidden_width", with_bijector("{type: autoregressive, hidden: [0]}"), {"hidden"}},
      {"negative_layer_count", with_bijector("{type: coupling, layers: -1}"), {"layers"}},
      {"affine_log_scale_out_of_range",
       with_bijector("{type: affine, log_scale: 1000}"),
       {"log_scale"}},
      {"unknown_base",
       kData + "model: {base: {type: nope}, bijectors: [{type: affine}]}\n" + kFast,
       {"nope"}},
      {"plugin_that_is_not_a_library",
       "plugins: [notalib.so]\n" + kData + kModel + kFast,
       {"plugins: plugin ", "notalib.so: cannot be loaded as a shared library"},
       {{"notalib.so", "this is text, not a shared library\n"}}},
      {"plugin_that_does_not_exist",
       "plugins: [absent.so]\n" + kData + kModel + kFast,
       {"plugins: '", "absent.so' does not exist"}},
      {"plugin_of_another_abi",
       "plugins: [" + std::string(FLOWS_TEST_PLUGIN_WRONG_ABI) + "]\n" + kData + kModel + kFast,
       {"plugins: plugin ", "ABI version"}},
      {"plugin_without_the_flows_entry_points",
       "plugins: [" + std::string(FLOWS_SDK_LIBRARY) + "]\n" + kData + kModel + kFast,
       {"plugins: plugin ", "not a flows plugin"}},
      {"unknown_stage", kData + kModel + kFast + "stages: [train, evaluat]\n", {"evaluat"}},
      {"dopri5_with_zero_atol",
       flow_matching("solver: {type: dopri5, atol: 0}"),
       {"solver.atol", "> 0"}},
      {"dopri5_with_negative_rtol",
       flow_matching("solver: {type: dopri5, rtol: -1.0e-3}"),
       {"solver.rtol"}},
      {"unknown_ode_solver", flow_matching("solver: {type: rk5}"), {"rk5"}},
      {"fixed_step_solver_with_zero_steps",
       flow_matching("solver: {type: rk4, steps: 0}"),
       {"solver.steps"}},
      {"mle_for_flow_matching",
       kData + "model: {bijectors: [{type: flow_matching, hidden: [8]}]}\n" + kFast,
       {"trainer.type", "type: cfm"}},
      {"spline_with_zero_min_derivative",
       with_bijector("{type: nsf_coupling, hidden: [8], min_derivative: 0}"),
       {"min_derivative", "> 0"}},
      {"spline_with_zero_min_bin_width",
       with_bijector("{type: nsf_autoregressive, hidden: [8], min_bin_width: 0.0}"),
       {"min_bin_width", "> 0"}},
      {"spline_with_negative_tail_bound",
       with_bijector("{type: nsf_autoregressive, hidden: [8], tail_bound: -1.0}"),
       {"tail_bound"}},
      {"zero_samples", kData + kModel + kFast + "sample: {n: 0}\n", {"sample.n"}},
      {"too_few_quality_rows",
       kData + kModel + kFast + "evaluate: {quality_rows: 1}\n",
       {"evaluate.quality_rows"}},
      {"resume_from_a_missing_checkpoint",
       kData + kModel + "trainer: {steps: 2, resume_from: absent.flows}\n",
       {"resume_from", "absent.flows"}},
      {"malformed_yaml", "data: {type: moons\n" + kModel, {"broken.yaml"}},
      {"not_a_mapping", "- data\n- model\n", {"mapping"}},
      {"override_without_a_value", kData + kModel + kFast, {"KEY=VALUE"}, {}, "--set trainer"},
      // Resource limits: refused before the work, with the estimate.
      {"data_set_larger_than_memory",
       "data: {type: moons, n_train: 1000000000000}\n" + kModel + kFast,
       {"data: 1000000012000 rows of 2 columns (n_train + n_val + n_test) needs about 48000 GB "
        "for the data",
        "this machine has"}},
      {"csv_larger_than_memory",
       "data: {type: csv, path: big.csv}\n" + kModel + kFast,
       {"big.csv: 2002 lines of 2 fields needs about", "for the data", "(FLOWS_MEMORY_LIMIT)"},
       {{"big.csv", csv_rows(2000)}},
       "",
       "FLOWS_MEMORY_LIMIT=50K"},
      {"npy_larger_than_memory",
       "data: {type: npy, path: big.npy}\n" + kModel + kFast,
       {"big.npy: an array of shape (2000, 2) needs about", "for the data", "(FLOWS_MEMORY_LIMIT)"},
       {{"big.npy", npy_of_zeros(2000)}},
       "",
       "FLOWS_MEMORY_LIMIT=50K"},
      {"network_larger_than_memory",
       with_bijector("{type: autoregressive, hidden: [100000000]}"),
       {"model.bijectors[0].hidden = [100000000] needs about", "for training the model",
        "parameters x 8 bytes x"}},
      {"sample_count_larger_than_memory",
       kData + kModel + kFast + "sample: {n: 1000000000000}\n",
       {"sample.n = 1000000000000 needs about 80000 GB for the samples"}},
  };
}

// gtest prints a failing case by its name.
void PrintTo(const Broken& c, std::ostream* out) {
  *out << c.name;
}

class BrokenPipeline : public ::testing::TestWithParam<Broken> {};

TEST_P(BrokenPipeline, ExitsWithStatusOneNamingTheProblem) {
  const Broken& c = GetParam();
  const fs::path dir = temp_dir("broken_" + c.name);
  const fs::path yaml = dir / "broken.yaml";
  std::ofstream(yaml) << c.yaml;
  for (const auto& [name, text] : c.files) std::ofstream(dir / name) << text;
  const fs::path log = dir / "output.txt";
  const std::string command = c.environment + " " + std::string(FLOWS_RUNNER) + " run -q " +
                              yaml.string() + " -o " + (dir / "out").string() + " " + c.arguments +
                              " > " + log.string() + " 2>&1";
  const int status = std::system(command.c_str());
  const std::string output = read_file(log);
  ASSERT_TRUE(WIFEXITED(status)) << "ended by a signal\n" << output;
  EXPECT_EQ(WEXITSTATUS(status), 1) << output;
  EXPECT_NE(output.find("error: "), std::string::npos) << output;
  for (const std::string& what : c.expected)
    EXPECT_NE(output.find(what), std::string::npos) << "'" << what << "' not named in:\n" << output;
  EXPECT_FALSE(fs::exists(dir / "out")) << "the run wrote output";
  fs::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(Runner, BrokenPipeline, ::testing::ValuesIn(broken_pipelines()),
                         [](const ::testing::TestParamInfo<Broken>& info) {
                           return info.param.name;
                         });

}  // namespace
