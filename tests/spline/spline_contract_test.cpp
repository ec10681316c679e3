// The three bijectors of the spline plugin against the contract suite.
#include <flows/testing/bijector_contract.hpp>

namespace {

BijectorCase spline_case(const std::string& name, const std::string& yaml, flows::Index dim,
                         flows::Real input_scale = 1.0) {
  BijectorCase c{name, FLOWS_PLUGIN_SPLINE, yaml, dim};
  c.input_scale = input_scale;
  // Autoregressive splines (D MADE outputs per parameter block, ReLU kinks
  // near the random point) show central-difference discrepancies of up to
  // 4.4e-9 absolute on gradient entries of 1e-4 (measured), which a floor of
  // 1e-4 reads as 4e-5 relative; with a floor of 1e-3 the check allows 1e-8.
  if (yaml.find("autoregressive") != std::string::npos) c.gradient_check.absolute_floor = 1e-3;
  return c;
}

// Untrained weights give this case a loss of order 10, so central differences
// carry about 2e-9 of round-off (machine epsilon x |L| / step); a floor of
// 1e-4 would allow 1e-9 and fail gradients that are right (seen under the
// sanitizer build's -O2 arithmetic).
BijectorCase conditional(BijectorCase c, flows::Index context_dim) {
  c.name_for_test += "_context" + std::to_string(context_dim);
  c.context_dim = context_dim;
  return c;
}

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
                    "{type: nsf_autoregressive, layers: 2, hidden: [8, 8], residual_blocks: 1}", 3),
        // The SDK's generic bijectors with the plugin's transformer.
        spline_case("autoregressive_rq_3_explicit_order",
                    "{type: autoregressive, layers: 2, hidden: [8], order: [2, 0, 1], "
                    "transformer: {type: rational_quadratic, bins: 4}}",
                    3),
        spline_case("autoregressive_rq_3_inverted",
                    "{type: autoregressive, layers: 2, hidden: [8], inverted: true, "
                    "activation: tanh, transformer: {type: rational_quadratic, bins: 4}}",
                    3),
        spline_case("coupling_rq_4_alternate",
                    "{type: coupling, layers: 2, hidden: [8], mask: alternate, "
                    "transformer: {type: rational_quadratic, bins: 4}}",
                    4),
        spline_case("coupling_affine_5_random",
                    "{type: coupling, layers: 4, hidden: [8], mask: random}", 5),
        spline_case("coupling_affine_3_explicit",
                    "{type: coupling, layers: 2, hidden: [8], mask: [1, 0, 1]}", 3),
        // Conditional p(x | c): the context enters every conditioner.
        conditional(spline_case("nsf_autoregressive_2",
                                "{type: nsf_autoregressive, layers: 2, hidden: [8]}", 2),
                    2),
        conditional(
            spline_case("nsf_coupling_1", "{type: nsf_coupling, layers: 2, hidden: [8]}", 1), 2),
        conditional(spline_case("nsf_coupling_3",
                                "{type: nsf_coupling, layers: 2, hidden: [8], bins: 4}", 3),
                    1),
        conditional(spline_case("affine_coupling_2",
                                "{type: affine_coupling, layers: 2, hidden: [8, 8]}", 2),
                    3),
        conditional(spline_case("autoregressive_rq_3_inverted",
                                "{type: autoregressive, layers: 2, hidden: [8], inverted: true, "
                                "activation: tanh, transformer: {type: rational_quadratic}}",
                                3),
                    2)),
    flows::testing::bijector_case_name);
