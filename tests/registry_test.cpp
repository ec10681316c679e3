#include "flows/registry.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <string>

#include <unistd.h>

#include "flows/plugin.hpp"
#include "flows/plugin_loader.hpp"

namespace flows {
namespace {

std::string config_error(Registry& registry, const std::string& yaml) {
  ConfigNode node = ConfigNode::parse(yaml, "r.yaml");
  try {
    registry.make<Optimizer>(node, BuildContext{2, 0, 0, &registry});
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(Registry, BuiltinsAreRegisteredUnderEveryKind) {
  Registry registry;
  register_builtins(registry);
  EXPECT_TRUE(registry.contains(Kind::distribution, "standard_normal"));
  EXPECT_TRUE(registry.contains(Kind::distribution, "diagonal_normal"));
  EXPECT_TRUE(registry.contains(Kind::distribution, "conditional_diagonal_normal"));
  EXPECT_TRUE(registry.contains(Kind::transformer, "affine"));
  EXPECT_TRUE(registry.contains(Kind::optimizer, "adam"));
  EXPECT_TRUE(registry.contains(Kind::optimizer, "sgd"));
  EXPECT_TRUE(registry.contains(Kind::trainer, "mle"));
  EXPECT_TRUE(registry.contains(Kind::dataset, "moons"));
  EXPECT_FALSE(registry.contains(Kind::bijector, "adam"));
}

TEST(Registry, BijectorsAndDistributionsNeedADataDimension) {
  Registry registry;
  register_builtins(registry);
  ConfigNode base = ConfigNode::parse("{type: standard_normal}", "r.yaml");
  EXPECT_THROW(registry.make<BaseDistribution>(base, BuildContext{0, 0, 0, &registry}),
               ConfigError);
  ConfigNode flow = ConfigNode::parse("{type: coupling, transformer: {type: affine}}", "r.yaml");
  EXPECT_THROW(registry.make<Bijector>(flow, BuildContext{0, 0, 0, &registry}), ConfigError);
}

TEST(Registry, UnknownNameListsAvailableAndClosest) {
  Registry registry;
  register_builtins(registry);
  std::string msg = config_error(registry, "{type: adma, lr: 0.1}");
  EXPECT_NE(msg.find("r.yaml:1:2"), std::string::npos) << msg;
  EXPECT_NE(msg.find("unknown optimizer 'adma'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("did you mean 'adam'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("available: adam, sgd"), std::string::npos) << msg;
}

TEST(Registry, MissingTypeIsAnError) {
  Registry registry;
  register_builtins(registry);
  std::string msg = config_error(registry, "{lr: 0.1}");
  EXPECT_NE(msg.find("type: missing required key"), std::string::npos) << msg;
}

TEST(Registry, FactoryRejectsUnknownOption) {
  Registry registry;
  register_builtins(registry);
  std::string msg = config_error(registry, "{type: adam, learning_rate: 0.1}");
  EXPECT_NE(msg.find("learning_rate"), std::string::npos) << msg;
  EXPECT_NE(msg.find("unknown key"), std::string::npos) << msg;
}

TEST(Registry, DuplicateNameNamesBothOrigins) {
  Registry registry;
  register_builtins(registry);
  Factory<Optimizer> f = [](ConfigNode&, const BuildContext&) -> std::unique_ptr<Optimizer> {
    return nullptr;
  };
  registry.begin_plugin("other.so", nullptr);
  try {
    registry.add<Optimizer>("adam", f);
    FAIL() << "duplicate accepted";
  } catch (const PluginError& e) {
    EXPECT_NE(std::string(e.what()).find("other.so"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("built-in"), std::string::npos) << e.what();
  }
  registry.end_plugin();
}

TEST(PluginLoader, LoadsAPluginAndListsItsNamesWithTheFile) {
  Registry registry;
  LoadedPlugin plugin = load_plugin(FLOWS_TEST_PLUGIN_GOOD, registry);
  EXPECT_EQ(plugin.file, FLOWS_TEST_PLUGIN_GOOD);
  ASSERT_TRUE(registry.contains(Kind::optimizer, "test_noop"));
  bool listed = false;
  for (const auto& l : registry.listing())
    if (l.name == "test_noop") listed = l.origin == FLOWS_TEST_PLUGIN_GOOD;
  EXPECT_TRUE(listed);
}

TEST(PluginLoader, ObjectsKeepTheirLibraryLoaded) {
  std::shared_ptr<Optimizer> optimizer;
  {
    Registry registry;
    load_plugin(FLOWS_TEST_PLUGIN_GOOD, registry);
    ConfigNode node = ConfigNode::parse("{type: test_noop}", "t.yaml");
    optimizer = registry.make<Optimizer>(node, BuildContext{1, 0, 0, &registry});
  }
  // The registry (and its handle on the library) is gone; the object's code must still be mapped.
  EXPECT_EQ(optimizer->learning_rate(), 0.0);
  ParameterList none;
  optimizer->step(none, 1.0);
  optimizer.reset();
}

TEST(PluginLoader, WrongAbiIsRefusedNamingFileAndBothVersions) {
  Registry registry;
  try {
    load_plugin(FLOWS_TEST_PLUGIN_WRONG_ABI, registry);
    FAIL() << "wrong ABI accepted";
  } catch (const PluginError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(FLOWS_TEST_PLUGIN_WRONG_ABI), std::string::npos) << msg;
    EXPECT_NE(msg.find("ABI version " + std::to_string(FLOWS_SDK_ABI_VERSION + 41)),
              std::string::npos)
        << msg;
    EXPECT_NE(msg.find("ABI version " + std::to_string(FLOWS_SDK_ABI_VERSION) + ";"),
              std::string::npos)
        << msg;
  }
}

TEST(PluginLoader, MissingFileIsAPluginError) {
  Registry registry;
  try {
    load_plugin("/nonexistent/flows_plugin_x.so", registry);
    FAIL();
  } catch (const PluginError& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/flows_plugin_x.so: no such file"),
              std::string::npos)
        << e.what();
  }
}

TEST(PluginLoader, ALibraryWithoutEntryPointsIsNotAPlugin) {
  Registry registry;
  // The SDK library itself is a shared library but not a plugin.
  const std::string sdk = std::string(FLOWS_SDK_LIBRARY);
  try {
    load_plugin(sdk, registry);
    FAIL();
  } catch (const PluginError& e) {
    EXPECT_NE(std::string(e.what()).find("not a flows plugin"), std::string::npos) << e.what();
  }
}

// The loader's own reason, once, without the stray errno text of the
// library's exception ("Bad file descriptor").
TEST(PluginLoader, AFileThatIsNotALibraryIsRefusedWithTheLoadersReason) {
  const std::string file = (std::filesystem::temp_directory_path() /
                            ("flows_plugin_text_" + std::to_string(::getpid()) + ".so"))
                               .string();
  std::ofstream(file) << "text, not a shared library\n";
  Registry registry;
  try {
    load_plugin(file, registry);
    FAIL();
  } catch (const PluginError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find(file + ": cannot be loaded as a shared library: "), std::string::npos)
        << what;
    EXPECT_EQ(what.find("Bad file descriptor"), std::string::npos) << what;
    EXPECT_EQ(what.find("boost"), std::string::npos) << what;
  }
  std::filesystem::remove(file);
}

TEST(PluginLoader, APluginRegisteringATakenNameIsRefusedWhole) {
  Registry registry;
  register_builtins(registry);
  try {
    load_plugin(FLOWS_TEST_PLUGIN_DUPLICATE, registry);
    FAIL();
  } catch (const PluginError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(FLOWS_TEST_PLUGIN_DUPLICATE), std::string::npos) << msg;
    EXPECT_NE(msg.find("optimizer 'adam'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("already registered by built-in"), std::string::npos) << msg;
  }
  // Nothing of the refused plugin stays, not even the names it registered first.
  EXPECT_FALSE(registry.contains(Kind::optimizer, "dup_first"));
  EXPECT_TRUE(registry.contains(Kind::optimizer, "adam"));
}

TEST(PluginLoader, ABrokenPluginIsSkippedAndTheRestStillLoad) {
  Registry registry;
  register_builtins(registry);
  auto loaded = load_plugins({FLOWS_TEST_PLUGIN_WRONG_ABI, FLOWS_TEST_PLUGIN_GOOD}, registry);
  ASSERT_EQ(loaded.size(), 1u);
  EXPECT_TRUE(registry.contains(Kind::optimizer, "test_noop"));
  ASSERT_EQ(registry.failures().size(), 1u);
  EXPECT_EQ(registry.failures()[0].file, FLOWS_TEST_PLUGIN_WRONG_ABI);
  // A name it would have offered is unknown, and the error says why.
  std::string msg = config_error(registry, "{type: from_the_broken_one}");
  EXPECT_NE(msg.find("plugin " + std::string(FLOWS_TEST_PLUGIN_WRONG_ABI) + " was not loaded"),
            std::string::npos)
      << msg;
}

TEST(PluginLoader, AFactoryThatThrowsIsNamedWithItsPlugin) {
  Registry registry;
  load_plugin(FLOWS_TEST_PLUGIN_THROWING, registry);
  try {
    ConfigNode node = ConfigNode::parse("{type: always_throws}", "t.yaml");
    registry.make<Optimizer>(node, BuildContext{1, 0, 0, &registry});
    FAIL();
  } catch (const PluginError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("t.yaml:1:2"), std::string::npos) << msg;
    EXPECT_NE(msg.find("optimizer 'always_throws'"), std::string::npos) << msg;
    EXPECT_NE(msg.find(FLOWS_TEST_PLUGIN_THROWING), std::string::npos) << msg;
    EXPECT_NE(msg.find("out of coffee"), std::string::npos) << msg;
  }
}

TEST(PluginLoader, SearchPathLoadsEachPluginFileOnce) {
  Registry registry;
  auto loaded = load_plugins({FLOWS_PLUGIN_DIR, FLOWS_PLUGIN_DIR}, registry);
  ASSERT_FALSE(loaded.empty());
  EXPECT_TRUE(registry.contains(Kind::bijector, "reverse"));
  std::set<std::string> files;
  for (const auto& p : loaded) EXPECT_TRUE(files.insert(p.file).second) << p.file;
}

}  // namespace
}  // namespace flows
