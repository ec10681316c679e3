// The rational-quadratic spline transformer against the transformer contract,
// as the registry builds it from the plugin.
#include <flows/testing/transformer_contract.hpp>

namespace {

using flows::testing::TransformerCase;

TransformerCase spline(const std::string& name, const std::string& yaml,
                       flows::Real input_scale = 1.0) {
  TransformerCase c{name, FLOWS_PLUGIN_SPLINE, yaml};
  c.input_scale = input_scale;
  return c;
}

}  // namespace

INSTANTIATE_TEST_SUITE_P(
    Spline, TransformerContract,
    ::testing::Values(spline("rational_quadratic", "{type: rational_quadratic}"),
                      spline("rational_quadratic_3_bins", "{type: rational_quadratic, bins: 3}"),
                      // Inputs of scale 3 reach both linear tails of [-2, 2].
                      spline("rational_quadratic_tails",
                             "{type: rational_quadratic, bins: 5, tail_bound: 2.0}", 3.0)),
    flows::testing::transformer_case_name);
