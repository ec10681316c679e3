// Checkpoints: every bijector survives a file round trip exactly; damaged,
// foreign and mismatched files give their own clear errors; a failed write
// keeps the previous file; training resumes with its optimizer state.
#include "flows/checkpoint.hpp"

#include <signal.h>
#include <sys/resource.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <map>

#include <gtest/gtest.h>

#include "flows/detail/file_io.hpp"
#include "flows/error.hpp"
#include "flows/pipeline.hpp"
#include "flows/plugin_loader.hpp"
#include "runner_support.hpp"

namespace flows {
namespace {

using test_support::temp_dir;
namespace fs = std::filesystem;

// A pipeline file with one bijector `bijector_yaml` on 2-D moons; nothing is trained.
fs::path write_pipeline(const fs::path& dir, const std::string& bijector_yaml,
                        const std::string& extra = "", const std::string& trainer = "mle") {
  const fs::path file = dir / "pipeline.yaml";
  std::ofstream(file) << "name: ckpt\nseed: 3\n"
                         "data: {type: moons, n_train: 400, n_val: 100, n_test: 100}\n"
                         "model:\n  bijectors:\n    - "
                      << bijector_yaml << "\n"
                      << "trainer: {type: " << trainer
                      << ", steps: 20, batch_size: 64, eval_every: 10}\n"
                      << extra;
  return file;
}

// Moves every parameter away from its initial value (non-trainable ones by a
// positive factor, so variances stay positive), so that a round trip that
// lost a tensor would be seen.
void perturb(Flow& flow, std::uint64_t seed) {
  Rng rng(seed);
  for (Parameter* p : flow.parameters()) {
    const Matrix noise = rng.normal(p->value.shape(0), p->value.shape(1));
    if (p->trainable)
      p->value += 0.05 * noise;
    else
      p->value *= xt::exp(0.05 * noise);
  }
}

std::string bytes_of(const fs::path& path) {
  return detail::read_whole_file(path.string());
}

void write_bytes(const fs::path& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

// A small saved model (a 2-layer MAF) and its path.
fs::path saved_maf(const fs::path& dir) {
  Pipeline p = Pipeline::load(write_pipeline(dir, "{type: maf, layers: 2, hidden: [8]}").string());
  perturb(*p.model.flow, 1);
  const fs::path file = dir / "model.flows";
  write_checkpoint(file.string(), make_checkpoint(p));
  return file;
}

std::string load_error(const fs::path& file) {
  try {
    load_model(file.string());
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

// Every bijector name that the shipped plugins register, saved and loaded
// through a file: log_prob and samples are bit-identical.
TEST(Checkpoint, EveryBijectorRoundTripsExactly) {
  Registry registry;
  register_builtins(registry);
  load_plugins({FLOWS_PLUGIN_DIR}, registry);
  const std::vector<std::string> names = registry.names(Kind::bijector);
  ASSERT_GE(names.size(), 11u);  // basic 4, maf 3, spline 3, flow_matching 1
  for (const std::string& name : names) {
    SCOPED_TRACE("bijector " + name);
    const fs::path dir = temp_dir("ckpt_" + name);
    // The bound maps need a range that holds the test's (standardized) rows.
    const std::string yaml = name == "bounds"  ? "{type: bounds, bounds: [-50, 50]}"
                             : name == "logit" ? "{type: logit, low: -50, high: 50}"
                                               : "{type: " + name + "}";
    ConfigNode node = ConfigNode::parse(yaml, "probe.yaml");
    const std::string trainer =
        registry.make<Bijector>(node, BuildContext{2, 0, 1, &registry})->trainer();
    Pipeline p = Pipeline::load(write_pipeline(dir, yaml, "", trainer).string());
    perturb(*p.model.flow, 7);
    const Matrix x = Rng(11).normal(50, 2);
    const Vector before = p.model.flow->log_prob(x);
    Rng sample_rng(5);
    const Matrix drawn = p.model.flow->sample(20, sample_rng);

    const fs::path file = dir / "model.flows";
    write_checkpoint(file.string(), make_checkpoint(p));
    const LoadedModel loaded = load_model(file.string());
    const Vector after = loaded.model.flow->log_prob(x);
    for (Index i = 0; i < x.shape(0); ++i) ASSERT_EQ(after(i), before(i)) << "row " << i;
    Rng again(5);
    const Matrix redrawn = loaded.model.flow->sample(20, again);
    for (Index k = 0; k < drawn.size(); ++k) ASSERT_EQ(redrawn.flat(k), drawn.flat(k));
    EXPECT_EQ(loaded.info.dim, 2u);
    EXPECT_TRUE(std::any_of(loaded.info.components.begin(), loaded.info.components.end(),
                            [&](const auto& c) { return c.kind == "bijector" && c.name == name; }));
    fs::remove_all(dir);
  }
}

TEST(Checkpoint, InfoRecordsWhatTheModelIsAndNeeds) {
  const fs::path dir = temp_dir("ckpt_info");
  const Checkpoint c = read_checkpoint(saved_maf(dir).string());
  EXPECT_EQ(c.info.format_version, kCheckpointFormatVersion);
  EXPECT_EQ(c.info.name, "ckpt");
  EXPECT_EQ(c.info.seed, 3u);
  EXPECT_TRUE(c.info.standardize);
  ASSERT_EQ(c.info.components.size(), 2u);
  std::map<std::string, std::string> origin;
  for (const auto& comp : c.info.components) origin[comp.kind + " " + comp.name] = comp.origin;
  EXPECT_EQ(origin["distribution standard_normal"], "built-in");
  EXPECT_NE(origin["bijector maf"].find("flows_plugin_maf"), std::string::npos);
  EXPECT_NE(c.info.model_yaml.find("layers: 2"), std::string::npos);
  EXPECT_NE(c.tensors.find("model/bijector0/mean"), nullptr);     // the standardization
  EXPECT_NE(c.tensors.find("model/bijector1/0.order"), nullptr);  // MAF ordering, as structure
  EXPECT_TRUE(c.tensors.find("model/bijector1/0.order")->structure);
  EXPECT_NE(c.tensors.find("trainer/optimizer/step"), nullptr);
}

TEST(Checkpoint, TruncatedFilesAreNamedAsTruncated) {
  const fs::path dir = temp_dir("ckpt_truncated");
  const fs::path file = saved_maf(dir);
  const std::string bytes = bytes_of(file);
  for (std::size_t keep :
       {std::size_t{8}, std::size_t{20}, std::size_t{40}, bytes.size() / 2, bytes.size() - 1}) {
    SCOPED_TRACE("kept " + std::to_string(keep) + " bytes");
    write_bytes(dir / "cut.flows", bytes.substr(0, keep));
    const std::string msg = load_error(dir / "cut.flows");
    EXPECT_NE(msg.find("truncated"), std::string::npos) << msg;
    EXPECT_NE(msg.find("cut.flows"), std::string::npos) << msg;
  }
}

TEST(Checkpoint, AFlippedByteIsCaughtByTheChecksum) {
  const fs::path dir = temp_dir("ckpt_flip");
  const fs::path file = saved_maf(dir);
  const std::string bytes = bytes_of(file);
  // In the header YAML, in the tensors, and in the checksum itself.
  for (std::size_t at : {std::size_t{40}, bytes.size() / 2, bytes.size() - 6, bytes.size() - 1}) {
    SCOPED_TRACE("byte " + std::to_string(at));
    std::string damaged = bytes;
    damaged[at] = static_cast<char>(damaged[at] ^ 0x10);
    write_bytes(dir / "flip.flows", damaged);
    const std::string msg = load_error(dir / "flip.flows");
    EXPECT_NE(msg.find("corrupted checkpoint: CRC-32"), std::string::npos) << msg;
  }
}

// The bytes of a checkpoint with another format version, and the checksum a
// writer of that version would compute.
std::string with_version(std::string bytes, unsigned char version) {
  bytes[8] = static_cast<char>(version);
  const std::size_t body = bytes.size() - 4;
  std::uint32_t crc = 0xffffffffu;  // CRC-32 (ISO-HDLC), bit by bit
  for (std::size_t i = 0; i < body; ++i) {
    crc ^= static_cast<unsigned char>(bytes[i]);
    for (int b = 0; b < 8; ++b) crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1u)));
  }
  crc ^= 0xffffffffu;
  for (int i = 0; i < 4; ++i) bytes[body + i] = static_cast<char>((crc >> (8 * i)) & 0xff);
  return bytes;
}

TEST(Checkpoint, ANewerFormatVersionIsRefusedByName) {
  const fs::path dir = temp_dir("ckpt_version");
  write_bytes(dir / "v3.flows", with_version(bytes_of(saved_maf(dir)), 3));
  const std::string msg = load_error(dir / "v3.flows");
  EXPECT_NE(msg.find("format version 3"), std::string::npos) << msg;
  EXPECT_NE(msg.find("newer"), std::string::npos) << msg;
}

// Files of format version 1 predate conditional flows (and the rewritten
// bijectors whose tensors they hold): refused, naming the version, asking
// for retraining.
TEST(Checkpoint, AVersion1FileIsRefusedAsWrittenBeforeConditionalFlows) {
  EXPECT_EQ(kCheckpointFormatVersion, 2u);
  const fs::path dir = temp_dir("ckpt_version1");
  write_bytes(dir / "v1.flows", with_version(bytes_of(saved_maf(dir)), 1));
  const std::string msg = load_error(dir / "v1.flows");
  EXPECT_NE(msg.find("v1.flows: checkpoint format version 1"), std::string::npos) << msg;
  EXPECT_NE(msg.find("before conditional flows"), std::string::npos) << msg;
  EXPECT_NE(msg.find("reads version 2"), std::string::npos) << msg;
  EXPECT_NE(msg.find("Retrain"), std::string::npos) << msg;
  EXPECT_EQ(msg.find("newer"), std::string::npos) << msg;
}

TEST(Checkpoint, AForeignFileIsNotACheckpoint) {
  const fs::path dir = temp_dir("ckpt_foreign");
  write_bytes(dir / "x.flows", "name: not a checkpoint\n");
  EXPECT_NE(load_error(dir / "x.flows").find("not a flows checkpoint"), std::string::npos);
  write_bytes(dir / "empty.flows", "");
  EXPECT_NE(load_error(dir / "empty.flows").find("not a flows checkpoint"), std::string::npos);
  EXPECT_NE(load_error(dir / "absent.flows").find("no such file"), std::string::npos);
}

// A model saved with a plugin this installation does not have.
TEST(Checkpoint, AMissingPluginIsNamed) {
  const fs::path dir = temp_dir("ckpt_plugin");
  Checkpoint c = read_checkpoint(saved_maf(dir).string());
  for (auto& comp : c.info.components)
    if (comp.name == "maf") comp = {"bijector", "planar", "/opt/elsewhere/libflows_planar.so"};
  const auto at = c.info.model_yaml.find("type: maf");
  ASSERT_NE(at, std::string::npos);
  c.info.model_yaml.replace(at, 9, "type: planar");
  write_checkpoint((dir / "planar.flows").string(), c);
  try {
    load_model((dir / "planar.flows").string());
    FAIL() << "loaded a model whose plugin is missing";
  } catch (const PluginError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("bijector 'planar'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("/opt/elsewhere/libflows_planar.so"), std::string::npos) << msg;
  }
}

// Tensors that do not fit the model rebuilt from the YAML.
TEST(Checkpoint, AMismatchedTensorIsNamedWithBothShapes) {
  const fs::path dir = temp_dir("ckpt_shape");
  Checkpoint c = read_checkpoint(saved_maf(dir).string());
  const auto at = c.info.model_yaml.find("hidden: [8]");
  ASSERT_NE(at, std::string::npos);
  c.info.model_yaml.replace(at, 11, "hidden: [9]");
  write_checkpoint((dir / "wide.flows").string(), c);
  const std::string msg = load_error(dir / "wide.flows");
  EXPECT_NE(msg.find("in the file, but the model built from its YAML has"), std::string::npos)
      << msg;
}

TEST(Checkpoint, ChangedStructureIsRefused) {
  const fs::path dir = temp_dir("ckpt_structure");
  Checkpoint c = read_checkpoint(saved_maf(dir).string());
  for (auto& e : c.tensors.entries)
    if (e.name == "model/bijector1/1.order") std::swap(e.value(0, 0), e.value(0, 1));
  write_checkpoint((dir / "order.flows").string(), c);
  const std::string msg = load_error(dir / "order.flows");
  EXPECT_NE(msg.find("structure 'model/bijector1/1.order' differs"), std::string::npos) << msg;
}

// State a component cannot hold: the error names the file.
TEST(Checkpoint, InvalidStateValuesAreRefusedNamingTheFile) {
  const fs::path dir = temp_dir("ckpt_values");
  Pipeline p = Pipeline::load(
      write_pipeline(dir, "{type: maf, layers: 2, hidden: [8], batch_norm: true}").string());
  const Checkpoint good = make_checkpoint(p);
  auto damaged = [&](const std::string& tensor, Real value) {
    Checkpoint c = good;
    bool found = false;
    for (auto& e : c.tensors.entries)
      if (e.name == tensor) e.value(0, 0) = value, found = true;
    EXPECT_TRUE(found) << tensor;
    write_checkpoint((dir / "bad.flows").string(), c);
    return load_error(dir / "bad.flows");
  };
  std::string msg = damaged("model/bijector1/1.running_var", -5);
  EXPECT_NE(msg.find("bad.flows: batch_norm: loaded running variance"), std::string::npos) << msg;
  msg = damaged("model/bijector0/scale", 0);
  EXPECT_NE(msg.find("bad.flows: standardization: scale of column 1"), std::string::npos) << msg;
  msg = damaged("model/bijector1/0.input.weight", NAN);
  EXPECT_NE(msg.find("non-finite entry"), std::string::npos) << msg;
}

TEST(Checkpoint, ResumingWithAnotherSeedIsRefused) {
  const fs::path dir = temp_dir("ckpt_seed");
  const fs::path file = saved_maf(dir);
  try {
    Pipeline::load((dir / "pipeline.yaml").string(),
                   {"seed=5", "trainer.resume_from=" + file.string()});
    FAIL() << "resumed with another seed";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("built with seed 3, this pipeline has seed 5"),
              std::string::npos)
        << e.what();
  }
}

TEST(Checkpoint, ALoadedPermutationReplacesTheRebuiltOne) {
  const fs::path dir = temp_dir("ckpt_perm");
  Pipeline p = Pipeline::load(write_pipeline(dir, "{type: permutation, seed: 1}").string());
  Checkpoint c = make_checkpoint(p);
  for (auto& e : c.tensors.entries)
    if (e.name == "model/bijector1/order") std::swap(e.value(0, 0), e.value(0, 1));
  write_checkpoint((dir / "perm.flows").string(), c);
  const LoadedModel loaded = load_model((dir / "perm.flows").string());
  const Matrix x = {{1.0, 2.0}};
  const Matrix z0 = p.model.flow->chain()[1]->forward(x, {}).value;
  const Matrix z1 = loaded.model.flow->chain()[1]->forward(x, {}).value;
  EXPECT_EQ(z1(0, 0), z0(0, 1));
  EXPECT_EQ(z1(0, 1), z0(0, 0));
  // An order that is not a permutation is refused.
  for (auto& e : c.tensors.entries)
    if (e.name == "model/bijector1/order") e.value(0, 0) = e.value(0, 1);
  write_checkpoint((dir / "bad.flows").string(), c);
  EXPECT_NE(load_error(dir / "bad.flows").find("not a permutation"), std::string::npos);
}

// A write that fails midway (the file-size limit stops it) keeps the
// previous checkpoint and leaves no temporary file behind.
TEST(Checkpoint, AFailedWriteKeepsThePreviousFile) {
  const fs::path dir = temp_dir("ckpt_failed_write");
  const fs::path file = saved_maf(dir);
  const std::string previous = bytes_of(file);
  Pipeline big =
      Pipeline::load(write_pipeline(dir, "{type: maf, layers: 4, hidden: [64, 64]}").string());
  const Checkpoint larger = make_checkpoint(big);

  rlimit old{};
  ASSERT_EQ(getrlimit(RLIMIT_FSIZE, &old), 0);
  auto* old_handler = signal(SIGXFSZ, SIG_IGN);  // a write past the limit fails with EFBIG
  rlimit limited = old;
  limited.rlim_cur = previous.size() + 1000;
  ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &limited), 0);
  std::string message;
  try {
    write_checkpoint(file.string(), larger);
  } catch (const IoError& e) {
    message = e.what();
  }
  setrlimit(RLIMIT_FSIZE, &old);
  signal(SIGXFSZ, old_handler);

  EXPECT_NE(message.find("write failed"), std::string::npos) << message;
  EXPECT_EQ(bytes_of(file), previous);
  std::size_t files = 0;
  for (const auto& entry : fs::directory_iterator(dir)) files += entry.is_regular_file();
  EXPECT_EQ(files, 2u);  // pipeline.yaml and model.flows: no temporary left
  EXPECT_NO_THROW(load_model(file.string()));
}

// A conditional pipeline on conditional_gaussian (context c1, c2): a context
// embedding, a conditional base and the SDK's autoregressive and coupling
// flows, nothing trained.
fs::path write_conditional_pipeline(const fs::path& dir, const std::string& bijectors) {
  const fs::path file = dir / "pipeline.yaml";
  std::ofstream(file)
      << "name: cond\nseed: 5\n"
         "data: {type: conditional_gaussian, context_dim: 2, n_train: 400, n_val: 100, n_test: "
         "100}\n"
         "model:\n"
         "  context_embedding: {hidden: [6], features: 4}\n"
         "  base: {type: conditional_diagonal_normal, hidden: [5]}\n"
         "  bijectors: "
      << bijectors << "\n"
      << "trainer: {type: mle, steps: 20, batch_size: 64, eval_every: 10}\n";
  return file;
}

// The context standardization, the embedding and every conditional layer
// come back from the file: log p(x | c) and samples at a context are
// bit-identical, and the loaded model names its x and context columns.
TEST(Checkpoint, AConditionalModelRoundTripsExactly) {
  const fs::path dir = temp_dir("ckpt_conditional");
  Pipeline p = Pipeline::load(
      write_conditional_pipeline(dir, "[{type: autoregressive, layers: 2}, {type: coupling}]")
          .string());
  perturb(*p.model.flow, 9);
  const Matrix x = Rng(11).normal(300, 2);
  const Matrix c = Rng(12).normal(300, 2);
  const Vector before = p.model.flow->log_prob(x, c);
  const Matrix one = {{0.3, -1.2}};
  Rng sample_rng(5);
  const Matrix drawn = p.model.flow->sample(20, sample_rng, one);

  const fs::path file = dir / "model.flows";
  write_checkpoint(file.string(), make_checkpoint(p));
  const LoadedModel loaded = load_model(file.string());
  EXPECT_TRUE(loaded.conditional());
  EXPECT_EQ(loaded.context_dim(), 2u);
  EXPECT_EQ(loaded.columns(), (std::vector<std::string>{"x1", "x2"}));
  EXPECT_EQ(loaded.context_columns(), (std::vector<std::string>{"c1", "c2"}));
  EXPECT_EQ(loaded.model.flow->context_dim(), 2u);
  const Vector after = loaded.model.flow->log_prob(x, c);
  for (Index i = 0; i < x.shape(0); ++i) ASSERT_EQ(after(i), before(i)) << "row " << i;
  Rng again(5);
  const Matrix redrawn = loaded.model.flow->sample(20, again, one);
  for (Index k = 0; k < drawn.size(); ++k) ASSERT_EQ(redrawn.flat(k), drawn.flat(k));
  // The context matters: another context gives another density.
  const Vector elsewhere = loaded.model.flow->log_prob(x, Matrix(c + 1.0));
  EXPECT_NE(elsewhere(0), after(0));

  // The standardization and the embedding are in the file under "model/context/".
  const Checkpoint read = read_checkpoint(file.string());
  EXPECT_NE(read.tensors.find("model/context/mean"), nullptr);
  EXPECT_NE(read.tensors.find("model/context/scale"), nullptr);
  std::size_t context_tensors = 0;
  for (const auto& e : read.tensors.entries)
    context_tensors += e.name.rfind("model/context/", 0) == 0;
  EXPECT_GT(context_tensors, 2u);  // the embedding's weights and biases too
  EXPECT_EQ(read.info.context_columns, (std::vector<std::string>{"c1", "c2"}));
}

// An unconditional model's file has no context columns.
TEST(Checkpoint, AnUnconditionalModelHasNoContextColumns) {
  const fs::path dir = temp_dir("ckpt_unconditional");
  const LoadedModel loaded = load_model(saved_maf(dir).string());
  EXPECT_FALSE(loaded.conditional());
  EXPECT_TRUE(loaded.context_columns().empty());
  EXPECT_EQ(loaded.model.flow->context_dim(), 0u);
}

TEST(Checkpoint, AConditionalCheckpointDoesNotFitAnUnconditionalModel) {
  const fs::path dir = temp_dir("ckpt_conditional_mismatch");
  Pipeline conditional =
      Pipeline::load(write_conditional_pipeline(dir, "[{type: coupling}]").string());
  const Checkpoint c = make_checkpoint(conditional);
  Pipeline plain =
      Pipeline::load(write_pipeline(dir, "{type: maf, layers: 2, hidden: [8]}").string());
  try {
    restore_model(c, plain.model, "cond.flows");
    FAIL() << "restored a conditional model into an unconditional one";
  } catch (const DataError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("reads 2 context columns (c1, c2), this one 0"), std::string::npos) << msg;
  }
}

// Resuming on data whose context columns have other names is refused.
TEST(Checkpoint, ResumingOnOtherContextColumnsIsRefused) {
  const fs::path dir = temp_dir("ckpt_resume_context");
  const fs::path yaml = write_conditional_pipeline(dir, "[{type: coupling}]");
  Pipeline p = Pipeline::load(yaml.string());
  Checkpoint c = make_checkpoint(p);
  c.info.context_columns = {"pressure", "temperature"};
  const fs::path file = dir / "renamed.flows";
  write_checkpoint(file.string(), c);
  try {
    Pipeline::load(yaml.string(), {"trainer.resume_from=" + file.string()});
    FAIL() << "resumed on other context columns";
  } catch (const DataError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("(pressure, temperature), this pipeline's data has (c1, c2)"),
              std::string::npos)
        << msg;
  }
}

// resume_from restores parameters and optimizer state exactly, then
// training continues from the saved step.
TEST(Checkpoint, TrainingResumesWithItsOptimizerState) {
  const fs::path dir = temp_dir("ckpt_resume");
  Pipeline first =
      Pipeline::load(write_pipeline(dir, "{type: maf, layers: 2, hidden: [8]}").string());
  Rng rng(1);
  first.trainer->train(*first.model.flow, first.data, rng, {});
  const fs::path file = dir / "model.flows";
  write_checkpoint(file.string(), make_checkpoint(first));
  ASSERT_EQ(read_checkpoint(file.string()).info.trained_steps, 20u);

  Pipeline resumed =
      Pipeline::load(write_pipeline(dir, "{type: maf, layers: 2, hidden: [8]}", "").string(),
                     {"trainer.resume_from=" + file.string(), "trainer.steps=30"});
  const Checkpoint saved = read_checkpoint(file.string());
  const Checkpoint now = make_checkpoint(resumed);
  ASSERT_EQ(now.tensors.entries.size(), saved.tensors.entries.size());
  for (std::size_t k = 0; k < now.tensors.entries.size(); ++k) {
    const auto& a = now.tensors.entries[k];
    const auto& b = saved.tensors.entries[k];
    ASSERT_EQ(a.name, b.name);
    for (Index i = 0; i < a.value.size(); ++i)
      ASSERT_EQ(a.value.flat(i), b.value.flat(i)) << a.name << " entry " << i;
  }
  EXPECT_NE(saved.tensors.find("trainer/optimizer/m0"), nullptr);

  Rng again(1);
  const TrainReport report = resumed.trainer->train(*resumed.model.flow, resumed.data, again, {});
  EXPECT_EQ(report.steps, 30u);
  ASSERT_FALSE(report.curve.empty());
  EXPECT_EQ(report.curve.front().step, 30u);  // eval_every 10: steps 21..30 ran
  EXPECT_EQ(make_checkpoint(resumed).info.trained_steps, 30u);

  // Nothing left to train is an error that says what to change.
  Pipeline done =
      Pipeline::load((dir / "pipeline.yaml").string(), {"trainer.resume_from=" + file.string()});
  try {
    Rng r(1);
    done.trainer->train(*done.model.flow, done.data, r, {});
    FAIL() << "trained past the end";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("raise trainer.steps"), std::string::npos) << e.what();
  }
}

TEST(Checkpoint, ResumingAnotherModelFailsNamingTheTensor) {
  const fs::path dir = temp_dir("ckpt_resume_other");
  const fs::path file = saved_maf(dir);
  try {
    Pipeline::load(write_pipeline(dir, "{type: maf, layers: 2, hidden: [16]}").string(),
                   {"trainer.resume_from=" + file.string()});
    FAIL() << "resumed a different model";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("model.flows: tensor 'model/bijector1/"),
              std::string::npos)
        << e.what();
  }
}

// parse_checkpoint and rebuild_model are load_model without the file and the
// plugin loading: the same model, errors naming the given origin.
TEST(Checkpoint, ParsedBytesRebuildTheModelThatLoadModelLoads) {
  const fs::path dir = temp_dir("ckpt_parse");
  const fs::path file = saved_maf(dir);
  const LoadedModel loaded = load_model(file.string());
  const LoadedModel rebuilt =
      rebuild_model(parse_checkpoint(bytes_of(file), "inline"), loaded.registry, "inline");
  const Matrix x = {{0.3, -1.2}, {2.0, 0.1}};
  EXPECT_EQ(rebuilt.model.flow->log_prob(x), loaded.model.flow->log_prob(x));
  try {
    parse_checkpoint("FLOWSCKP", "inline");
    ADD_FAILURE() << "no error";
  } catch (const DataError& e) {
    EXPECT_EQ(std::string(e.what()).rfind("inline: truncated checkpoint", 0), 0u) << e.what();
  }
}

// Found by fuzz/checkpoint_fuzzer.cpp (fuzz/regressions/checkpoint/
// tensor_entry_not_a_mapping.flows): an entry of the tensor table that is not
// a mapping escaped as a YAML::BadSubscript, which ended the process.
TEST(Checkpoint, ATensorEntryThatIsNotAMappingIsNamedByItsLine) {
  const fs::path dir = temp_dir("ckpt_bad_entry");
  std::string bytes = bytes_of(saved_maf(dir));
  const std::size_t start = bytes.find("  - {name: model/", bytes.find("\ntensors:"));
  const std::size_t end = bytes.find('\n', start);
  std::string entry = "  - false";  // the same length, so the section sizes still hold
  entry.resize(end - start, ' ');
  bytes.replace(start, end - start, entry);
  write_bytes(dir / "bad.flows", with_version(bytes, 2));
  const std::string msg = load_error(dir / "bad.flows");
  EXPECT_NE(msg.find("bad.flows: the checkpoint header is malformed: line "), std::string::npos)
      << msg;
  EXPECT_NE(msg.find("a single value where a mapping with 'name' is expected"), std::string::npos)
      << msg;
}

}  // namespace
}  // namespace flows
