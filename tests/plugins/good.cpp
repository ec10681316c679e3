// A minimal plugin for the loader tests: one distribution-free optimizer name.
#include <flows/plugin.hpp>

namespace {

class NoopOptimizer : public flows::Optimizer {
 public:
  flows::Real learning_rate() const override { return 0.0; }
  void step(const flows::ParameterList&, flows::Real) override {}
};

void register_test_plugin(flows::Registry& registry) {
  registry.add<flows::Optimizer>("test_noop",
                                 [](flows::ConfigNode& options, const flows::BuildContext&) {
                                   options.finish();
                                   return std::make_unique<NoopOptimizer>();
                                 });
}

}  // namespace

FLOWS_PLUGIN(register_test_plugin)
