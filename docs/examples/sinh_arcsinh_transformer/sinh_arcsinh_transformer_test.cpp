// The SDK's transformer contract on this plugin's transformer, and the
// bijector contract on the SDK's generic flows built with it (unconditional
// and conditional): the transformer needs no code of its own to be a flow.
#include <flows/testing/bijector_contract.hpp>
#include <flows/testing/transformer_contract.hpp>

namespace {

TransformerCase with_scales(TransformerCase c, flows::Real input_scale,
                            flows::Real parameter_scale) {
  c.input_scale = input_scale;
  c.parameter_scale = parameter_scale;
  return c;
}

BijectorCase flow(const std::string& name, const std::string& kind, flows::Index dim,
                  flows::Index context_dim) {
  return BijectorCase{name, PLUGIN_FILE,
                      "{type: " + kind +
                          ", transformer: {type: sinh_arcsinh}, layers: 2, hidden: [8], "
                          "activation: tanh}",
                      dim, context_dim};
}

}  // namespace

INSTANTIATE_TEST_SUITE_P(
    SinhArcsinh, TransformerContract,
    ::testing::Values(
        TransformerCase{"default", PLUGIN_FILE, "{type: sinh_arcsinh}"},
        TransformerCase{"tight_bound", PLUGIN_FILE, "{type: sinh_arcsinh, log_tail_bound: 0.5}"},
        with_scales(TransformerCase{"wide", PLUGIN_FILE, "{type: sinh_arcsinh}"}, 2.0, 0.5)),
    flows::testing::transformer_case_name);

INSTANTIATE_TEST_SUITE_P(SinhArcsinhFlows, BijectorContract,
                         ::testing::Values(flow("autoregressive_3", "autoregressive", 3, 0),
                                           flow("coupling_3", "coupling", 3, 0),
                                           flow("autoregressive_2_context_2", "autoregressive", 2,
                                                2),
                                           flow("coupling_4_context_1", "coupling", 4, 1)),
                         flows::testing::bijector_case_name);
