#include "flows/config.hpp"

#include <gtest/gtest.h>

#include <string>

namespace flows {
namespace {

std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(ConfigNode, ReadsTypedValuesAndKeepsDefaults) {
  ConfigNode root = ConfigNode::parse("a: 1.5\nb: 3\nc: true\nd: hello\ne: [1, 2]\n", "t.yaml");
  Real a = 0;
  Index b = 0;
  bool c = false;
  std::string d;
  std::vector<Index> e;
  Real absent = 7;
  root.read("a", a);
  root.read("b", b);
  root.read("c", c);
  root.read("d", d);
  root.read("e", e);
  root.read("absent", absent);
  EXPECT_EQ(a, 1.5);
  EXPECT_EQ(b, 3u);
  EXPECT_TRUE(c);
  EXPECT_EQ(d, "hello");
  EXPECT_EQ(e, (std::vector<Index>{1, 2}));
  EXPECT_EQ(absent, 7);
  EXPECT_NO_THROW(root.finish());
}

TEST(ConfigNode, UnknownKeyNamesLineColumnPathAndSuggestion) {
  ConfigNode root =
      ConfigNode::parse("trainer:\n  steps: 10\n  stpes_x: 3\n  batch_sise: 4\n", "pipe.yaml");
  ConfigNode trainer = root.child("trainer");
  Index steps = 0, batch_size = 0;
  trainer.read("steps", steps);
  trainer.read("batch_size", batch_size);
  std::string msg = message_of([&] { trainer.finish(); });
  // The first unknown key is reported, with its line (1-based) and column.
  EXPECT_NE(msg.find("pipe.yaml:3:3"), std::string::npos) << msg;
  EXPECT_NE(msg.find("trainer.stpes_x"), std::string::npos) << msg;
  EXPECT_NE(msg.find("unknown key"), std::string::npos) << msg;
}

TEST(ConfigNode, MisspelledKeySuggestsTheClosest) {
  ConfigNode root = ConfigNode::parse("trainer:\n  batch_sise: 4\n", "pipe.yaml");
  ConfigNode trainer = root.child("trainer");
  Index batch_size = 0;
  trainer.read("batch_size", batch_size);
  std::string msg = message_of([&] { trainer.finish(); });
  EXPECT_NE(msg.find("pipe.yaml:2:3"), std::string::npos) << msg;
  EXPECT_NE(msg.find("trainer.batch_sise"), std::string::npos) << msg;
  EXPECT_NE(msg.find("did you mean 'batch_size'"), std::string::npos) << msg;
}

TEST(ConfigNode, WrongTypeNamesKeyAndValue) {
  ConfigNode root = ConfigNode::parse("model:\n  lr: fast\n", "p.yaml");
  ConfigNode model = root.child("model");
  Real lr = 0;
  std::string msg = message_of([&] { model.read("lr", lr); });
  EXPECT_NE(msg.find("p.yaml:2:3"), std::string::npos) << msg;
  EXPECT_NE(msg.find("model.lr"), std::string::npos) << msg;
  EXPECT_NE(msg.find("'fast'"), std::string::npos) << msg;
}

TEST(ConfigNode, NegativeCountIsRejected) {
  ConfigNode root = ConfigNode::parse("steps: -3\n", "p.yaml");
  Index steps = 0;
  std::string msg = message_of([&] { root.read("steps", steps); });
  EXPECT_NE(msg.find("steps"), std::string::npos) << msg;
  EXPECT_NE(msg.find(">= 0"), std::string::npos) << msg;
}

TEST(ConfigNode, ExpectReportsPathOfFailedCheck) {
  ConfigNode root = ConfigNode::parse("opt:\n  lr: -1\n", "p.yaml");
  ConfigNode opt = root.child("opt");
  Real lr = 0;
  opt.read("lr", lr);
  std::string msg = message_of([&] { opt.expect(lr > 0, "lr", "must be > 0"); });
  EXPECT_EQ(msg, "p.yaml:2:3: opt.lr: must be > 0");
}

TEST(ConfigNode, MalformedYamlNamesLine) {
  std::string msg = message_of([] { ConfigNode::parse("a: [1, 2\nb: 3\n", "bad.yaml"); });
  EXPECT_NE(msg.find("bad.yaml:"), std::string::npos) << msg;
  EXPECT_NE(msg.find("malformed YAML"), std::string::npos) << msg;
}

TEST(ConfigNode, ListElementsCarryIndexedPaths) {
  ConfigNode root = ConfigNode::parse("bijectors:\n  - {type: a}\n  - {type: b, k: x}\n", "p.yaml");
  auto items = root.children("bijectors");
  ASSERT_EQ(items.size(), 2u);
  Real k = 0;
  std::string msg = message_of([&] { items[1].read("k", k); });
  EXPECT_NE(msg.find("bijectors[1].k"), std::string::npos) << msg;
  EXPECT_NE(msg.find("p.yaml:3:"), std::string::npos) << msg;
}

TEST(ConfigNode, MissingRequiredSectionIsAnError) {
  ConfigNode root = ConfigNode::parse("a: 1\n", "p.yaml");
  std::string msg = message_of([&] { root.child("model"); });
  EXPECT_NE(msg.find("model: missing required section"), std::string::npos) << msg;
}

TEST(ConfigNode, SetOverridesNestedValues) {
  ConfigNode root = ConfigNode::parse("trainer: {steps: 10}\n", "p.yaml");
  root.set("trainer.steps", "3");
  root.set("output", "runs/x");
  Index steps = 0;
  ConfigNode trainer = root.child("trainer");
  trainer.read("steps", steps);
  std::string output;
  root.read("output", output);
  EXPECT_EQ(steps, 3u);
  EXPECT_EQ(output, "runs/x");
}

TEST(ConfigNode, SetIndexesListsByNumber) {
  ConfigNode root = ConfigNode::parse("model: {bijectors: [{type: a}, {type: b}]}\n", "p.yaml");
  root.set("model.bijectors.1.layers", "4");
  ConfigNode model = root.child("model");
  auto items = model.children("bijectors");
  Index layers = 0;
  items[1].read("layers", layers);
  EXPECT_EQ(layers, 4u);
  EXPECT_THROW(root.set("model.bijectors.5.layers", "1"), ConfigError);
}

TEST(ClosestMatch, FindsNearNamesOnly) {
  EXPECT_EQ(closest_match("revrse", {"reverse", "affine", "actnorm"}), "reverse");
  EXPECT_EQ(closest_match("zzzzzzzzzz", {"reverse", "affine"}), "");
  EXPECT_EQ(edit_distance("kitten", "sitting"), 3u);
}

}  // namespace
}  // namespace flows
