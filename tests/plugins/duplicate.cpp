// A plugin that registers one new name, then a name the SDK already has: the
// loader must refuse the whole plugin and keep none of its names.
#include <flows/plugin.hpp>

namespace {

class NoopOptimizer : public flows::Optimizer {
 public:
  flows::Real learning_rate() const override { return 0.0; }
  void step(const flows::ParameterList&, flows::Real) override {}
};

std::unique_ptr<flows::Optimizer> make_noop(flows::ConfigNode& options,
                                            const flows::BuildContext&) {
  options.finish();
  return std::make_unique<NoopOptimizer>();
}

void register_duplicate(flows::Registry& registry) {
  registry.add<flows::Optimizer>("dup_first", &make_noop);
  registry.add<flows::Optimizer>("adam", &make_noop);
}

}  // namespace

FLOWS_PLUGIN(register_duplicate)
