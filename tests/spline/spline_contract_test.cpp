// The three bijectors of the spline plugin against the contract suite.
#include <flows/testing/bijector_contract.hpp>

namespace {

BijectorCase spline_case(const std::string& name, const std::string& yaml, flows::Index dim,
                         flows::Real input_scale = 1.0) {
  BijectorCase c{name, FLOWS_PLUGIN_SPLINE, yaml, dim};
  c.input_scale = input_scale;
  return c;
}

// Untrained weights give this case a loss of order 10, so central differences
// carry about 2e-9 of round-off (machine epsilon x |L| / step); a floor of
// 1e-4 would allow 1e-9 and fail gradients that are right (seen under the
// sanitizer build's -O2 arithmetic).
BijectorCase with_floor(BijectorCase c, flows::Real absolute_floor) {
  c.gradient_check.absolute_floor = absolute_floor;
  return c;
}

}  // namespace

INSTANTIATE_TEST_SUITE_P(
    Spline, BijectorContract,
    ::testing::Values(
        spline_case("nsf_coupling_1", "{type: nsf_coupling, layers: 2, hidden: [8]}", 1),
        spline_case("nsf_coupling_2", "{type: nsf_coupling, layers: 2, hidden: [8, 8]}", 2),
        spline_case("nsf_coupling_3_bins_3",
                    "{type: nsf_coupling, layers: 3, hidden: [6], bins: 3, tail_bound: 2.0}", 3),
        spline_case("nsf_coupling_5_tanh",
                    "{type: nsf_coupling, layers: 4, hidden: [8], activation: tanh, bins: 4}", 5),
        spline_case("nsf_coupling_2_tails",
                    "{type: nsf_coupling, layers: 2, hidden: [8], tail_bound: 1.0}", 2, 2.0),
        with_floor(spline_case("nsf_coupling_2_no_identity_init",
                               "{type: nsf_coupling, layers: 3, hidden: [8], identity_init: false}",
                               2),
                   1e-3),
        spline_case("affine_coupling_1", "{type: affine_coupling, layers: 2, hidden: [8]}", 1),
        spline_case("affine_coupling_2", "{type: affine_coupling, layers: 3, hidden: [8, 8]}", 2),
        spline_case("affine_coupling_3",
                    "{type: affine_coupling, layers: 2, hidden: [8], log_scale_bound: 1.5}", 3),
        spline_case("affine_coupling_5_no_identity_init",
                    "{type: affine_coupling, layers: 4, hidden: [8], identity_init: false}", 5),
        spline_case("nsf_autoregressive_1", "{type: nsf_autoregressive, layers: 2, hidden: [8]}",
                    1),
        spline_case("nsf_autoregressive_2", "{type: nsf_autoregressive, layers: 2, hidden: [8, 8]}",
                    2),
        spline_case("nsf_autoregressive_3_bins_4",
                    "{type: nsf_autoregressive, layers: 3, hidden: [10], bins: 4}", 3),
        spline_case("nsf_autoregressive_5_tails",
                    "{type: nsf_autoregressive, layers: 2, hidden: [12], tail_bound: 1.5, "
                    "identity_init: false}",
                    5, 1.5),
        spline_case("nsf_autoregressive_3_residual",
                    "{type: nsf_autoregressive, layers: 2, hidden: [8, 8], residual_blocks: 1}",
                    3)),
    flows::testing::bijector_case_name);
