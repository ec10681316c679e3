// Pipeline::load and build_model for conditional data: the context encoder
// and the width every component sees, the errors for a context nobody reads
// or one that is missing, and the refusal of `trainer: mle` for a bijector
// that is not trained by likelihood.
#include "flows/pipeline.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include "flows/error.hpp"
#include "runner_support.hpp"

namespace flows {
namespace {

namespace fs = std::filesystem;
using test_support::temp_dir;

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

fs::path write_yaml(const fs::path& dir, const std::string& text) {
  const fs::path file = dir / "pipeline.yaml";
  std::ofstream(file) << text;
  return file;
}

// The message of the ConfigError that loading `yaml` raises.
std::string load_error(const std::string& name, const std::string& yaml) {
  const fs::path dir = temp_dir("pipeline_" + name);
  try {
    Pipeline::load(write_yaml(dir, yaml).string());
  } catch (const ConfigError& e) {
    return e.what();
  }
  ADD_FAILURE() << "no ConfigError for:\n" << yaml;
  return "";
}

const char* kConditionalData =
    "data: {type: conditional_gaussian, n_train: 500, n_val: 50, n_test: 50, context_dim: 3}\n";

// Without context_embedding the encoder only standardizes: the components
// read the 3 raw columns, standardized with the training split's statistics.
TEST(Pipeline, ConditionalDataGetsAContextEncoderFittedOnTheTrainingSplit) {
  const fs::path dir = temp_dir("pipeline_encoder");
  Pipeline p = Pipeline::load(
      write_yaml(dir, std::string(kConditionalData) +
                          "model: {base: {type: conditional_diagonal_normal, hidden: [8]}}\n")
          .string());
  const Flow& flow = *p.model.flow;
  EXPECT_EQ(flow.context_dim(), 3u);
  ContextEncoder* encoder = p.model.flow->context_encoder();
  ASSERT_NE(encoder, nullptr);
  EXPECT_FALSE(encoder->has_embedding());
  EXPECT_EQ(encoder->output_dim(), 3u);
  EXPECT_EQ(p.model.flow->base().context_dim(), 3u);
  const Matrix& c = p.data.train_context;
  for (Index j = 0; j < 3; ++j) {
    Real mean = 0, var = 0;
    for (Index i = 0; i < c.shape(0); ++i) mean += c(i, j) / Real(c.shape(0));
    for (Index i = 0; i < c.shape(0); ++i) var += (c(i, j) - mean) * (c(i, j) - mean);
    EXPECT_NEAR(encoder->mean()(0, j), mean, 1e-12);
    EXPECT_NEAR(encoder->scale()(0, j), std::sqrt(var / Real(c.shape(0))), 1e-12);
  }
  // The flow scores the test split with its context.
  const Real nll = flow.mean_nll(p.data.test, p.data.test_context);
  EXPECT_TRUE(std::isfinite(nll));
}

TEST(Pipeline, WithoutStandardizeTheContextIsLeftAsIs) {
  const fs::path dir = temp_dir("pipeline_raw_context");
  Pipeline p = Pipeline::load(
      write_yaml(dir,
                 std::string(kConditionalData) +
                     "model: {standardize: false, base: {type: conditional_diagonal_normal}}\n")
          .string());
  ContextEncoder* encoder = p.model.flow->context_encoder();
  ASSERT_NE(encoder, nullptr);
  for (Index j = 0; j < 3; ++j) {
    EXPECT_EQ(encoder->mean()(0, j), 0.0);
    EXPECT_EQ(encoder->scale()(0, j), 1.0);
  }
  EXPECT_EQ(p.model.standardize, nullptr);
}

// The embedding's width is what every component is built for.
TEST(Pipeline, ContextEmbeddingSetsTheWidthTheComponentsRead) {
  const fs::path dir = temp_dir("pipeline_embedding");
  Pipeline p = Pipeline::load(
      write_yaml(dir, std::string(kConditionalData) +
                          "model:\n"
                          "  context_embedding: {hidden: [8, 8], features: 5, activation: tanh}\n"
                          "  base: {type: conditional_diagonal_normal}\n")
          .string());
  ContextEncoder* encoder = p.model.flow->context_encoder();
  ASSERT_NE(encoder, nullptr);
  EXPECT_TRUE(encoder->has_embedding());
  EXPECT_EQ(encoder->columns(), 3u);
  EXPECT_EQ(encoder->output_dim(), 5u);
  EXPECT_EQ(p.model.flow->base().context_dim(), 5u);
  EXPECT_EQ(p.model.flow->context_dim(), 3u);

  // features defaults to 16.
  Pipeline q = Pipeline::load(
      write_yaml(dir,
                 std::string(kConditionalData) +
                     "model: {context_embedding: {}, base: {type: conditional_diagonal_normal}}\n")
          .string());
  EXPECT_EQ(q.model.flow->context_encoder()->output_dim(), 16u);
}

// The same file and seed build the same model, embedding included.
TEST(Pipeline, AConditionalModelIsTheSameForTheSameSeed) {
  const fs::path dir = temp_dir("pipeline_same");
  const std::string yaml = std::string(kConditionalData) +
                           "seed: 4\nmodel:\n  context_embedding: {hidden: [4], features: 3}\n"
                           "  base: {type: conditional_diagonal_normal, hidden: [4]}\n";
  Pipeline a = Pipeline::load(write_yaml(dir, yaml).string());
  Pipeline b = Pipeline::load(write_yaml(dir, yaml).string());
  const ParameterList pa = a.model.flow->parameters(), pb = b.model.flow->parameters();
  ASSERT_EQ(pa.size(), pb.size());
  ASSERT_FALSE(pa.empty());
  for (std::size_t k = 0; k < pa.size(); ++k) EXPECT_EQ(pa[k]->value, pb[k]->value) << pa[k]->name;
}

TEST(Pipeline, ContextEmbeddingKeysAreChecked) {
  const std::string typo =
      load_error("embedding_typo", std::string(kConditionalData) +
                                       "model:\n  context_embedding: {featurs: 4}\n"
                                       "  base: {type: conditional_diagonal_normal}\n");
  EXPECT_TRUE(contains(typo, "model.context_embedding.featurs")) << typo;
  EXPECT_TRUE(contains(typo, "features")) << typo;
  const std::string zero =
      load_error("embedding_zero", std::string(kConditionalData) +
                                       "model:\n  context_embedding: {features: 0}\n"
                                       "  base: {type: conditional_diagonal_normal}\n");
  EXPECT_TRUE(contains(zero, "features")) << zero;
  const std::string activation = load_error(
      "embedding_activation", std::string(kConditionalData) +
                                  "model:\n  context_embedding: {activation: sigmoidal}\n"
                                  "  base: {type: conditional_diagonal_normal}\n");
  EXPECT_TRUE(contains(activation, "activation")) << activation;
}

TEST(Pipeline, ContextColumnsThatNothingReadsAreAnErrorNamingThem) {
  const std::string what = load_error(
      "unread", std::string(kConditionalData) + "model: {base: {type: standard_normal}}\n");
  EXPECT_TRUE(contains(what, "context columns c1, c2, c3")) << what;
  EXPECT_TRUE(contains(what, "no component of the model reads a context")) << what;
}

TEST(Pipeline, AConditionalComponentWithoutContextIsAnError) {
  const std::string base = load_error("no_context",
                                      "data: {type: moons, n_train: 100}\n"
                                      "model: {base: {type: conditional_diagonal_normal}}\n");
  EXPECT_TRUE(contains(base, "context")) << base;
  const std::string embedding =
      load_error("no_context_embedding",
                 "data: {type: moons, n_train: 100}\nmodel: {context_embedding: {features: 4}}\n");
  EXPECT_TRUE(contains(embedding, "model.context_embedding")) << embedding;
  EXPECT_TRUE(contains(embedding, "no context columns")) << embedding;
}

// flow_matching is fit by regression: `trainer: mle` (also the default) is
// refused when the pipeline is loaded, naming the bijector and the trainer.
TEST(Pipeline, MleIsRefusedForABijectorNotTrainedByLikelihood) {
  for (const std::string trainer : {"", "trainer: {type: mle, steps: 10}\n"}) {
    SCOPED_TRACE(trainer.empty() ? "default trainer" : trainer);
    const std::string what = load_error("mle_refused",
                                        "data: {type: moons, n_train: 100}\n"
                                        "model: {bijectors: [{type: flow_matching}]}\n" +
                                            trainer);
    EXPECT_TRUE(contains(what, "trainer.type")) << what;
    EXPECT_TRUE(contains(what, "'flow_matching'")) << what;
    EXPECT_TRUE(contains(what, "model.bijectors[0]")) << what;
    EXPECT_TRUE(contains(what, "type: cfm")) << what;
  }
}

// An empty chain is a mistake (a base-only model leaves `bijectors` out).
TEST(Pipeline, AnEmptyBijectorListIsRefused) {
  const std::string what =
      load_error("empty_chain", "data: {type: moons, n_train: 100}\nmodel: {bijectors: []}\n");
  EXPECT_TRUE(contains(what, "model.bijectors")) << what;
  EXPECT_TRUE(contains(what, "leave bijectors out")) << what;
}

// A plugin the pipeline names must load (the default plugin folders only
// warn): the run stops, naming the key, the file and the loader's reason.
TEST(Pipeline, APluginThePipelineNamesMustLoad) {
  const fs::path dir = temp_dir("pipeline_bad_plugin");
  std::ofstream(dir / "notalib.so") << "text, not a shared library\n";
  const std::string yaml = "plugins: [notalib.so]\ndata: {type: moons, n_train: 100}\nmodel: {}\n";
  try {
    Pipeline::load(write_yaml(dir, yaml).string());
    ADD_FAILURE() << "no error";
  } catch (const ConfigError& e) {
    const std::string what = e.what();
    EXPECT_TRUE(contains(what, "plugins")) << what;
    EXPECT_TRUE(contains(what, (dir / "notalib.so").string())) << what;
    EXPECT_TRUE(contains(what, "cannot be loaded as a shared library")) << what;
  }
}

// An unconditional pipeline has no context encoder and no context.
TEST(Pipeline, UnconditionalDataBuildsAnUnconditionalModel) {
  const fs::path dir = temp_dir("pipeline_plain");
  Pipeline p =
      Pipeline::load(write_yaml(dir, "data: {type: moons, n_train: 100}\nmodel: {}\n").string());
  EXPECT_EQ(p.model.flow->context_dim(), 0u);
  EXPECT_EQ(p.model.flow->context_encoder(), nullptr);
  EXPECT_EQ(p.data.context_dim(), 0u);
}

// Pipeline::parse loads YAML text as Pipeline::load loads a file: relative
// paths resolve against the folder of `origin`, and messages name it.
TEST(Pipeline, ParsedTextResolvesPathsAgainstItsOrigin) {
  const fs::path dir = temp_dir("pipeline_parse");
  std::ofstream(dir / "rows.csv") << "a,b\n1,2\n3,5\n4,4\n6,1\n2,2\n";
  const std::string origin = (dir / "inline.yaml").string();
  const std::string yaml =
      "data: {type: csv, path: rows.csv, val_fraction: 0, test_fraction: 0}\nmodel: {}\n";
  const Pipeline p = Pipeline::parse(yaml, origin);
  EXPECT_EQ(p.data.train.shape(0), 5u);
  EXPECT_EQ(p.data.columns, (std::vector<std::string>{"a", "b"}));
  try {
    Pipeline::parse(yaml + "typo: 1\n", origin);
    ADD_FAILURE() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_TRUE(contains(e.what(), origin + ":")) << e.what();
  }
}

}  // namespace
}  // namespace flows
