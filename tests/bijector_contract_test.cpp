// Every bijector of the basic plugin and of the SDK against the contract
// suite, and the SDK's transformers against the transformer contract. A new
// bijector joins by adding its cases to a list here.
#include "flows/testing/bijector_contract.hpp"
#include "flows/testing/transformer_contract.hpp"

namespace {

BijectorCase basic(const std::string& name, const std::string& yaml, flows::Index dim) {
  return BijectorCase{name, FLOWS_PLUGIN_BASIC, yaml, dim};
}

// A built-in bijector reading a context of `context_dim` columns.
BijectorCase conditional(const std::string& name, const std::string& yaml, flows::Index dim,
                         flows::Index context_dim) {
  return BijectorCase{name, "", yaml, dim, context_dim};
}

}  // namespace

INSTANTIATE_TEST_SUITE_P(
    Basic, BijectorContract,
    ::testing::Values(
        basic("reverse_1", "{type: reverse}", 1), basic("reverse_2", "{type: reverse}", 2),
        basic("reverse_5", "{type: reverse}", 5), basic("permutation_2", "{type: permutation}", 2),
        basic("permutation_3", "{type: permutation}", 3),
        basic("permutation_5", "{type: permutation}", 5),
        basic("permutation_5_seed_1", "{type: permutation, seed: 1}", 5),
        basic("affine_1", "{type: affine}", 1), basic("affine_2", "{type: affine}", 2),
        basic("affine_5", "{type: affine, shift: 0.5, log_scale: -0.7}", 5),
        basic("actnorm_1", "{type: actnorm}", 1), basic("actnorm_2", "{type: actnorm}", 2),
        basic("actnorm_5", "{type: actnorm}", 5),
        basic("actnorm_5_no_init", "{type: actnorm, init_from_data: false}", 5),
        basic("lu_linear_1", "{type: lu_linear}", 1), basic("lu_linear_2", "{type: lu_linear}", 2),
        basic("lu_linear_4", "{type: lu_linear}", 4),
        basic("lu_linear_6_permuted", "{type: lu_linear, permute: true, seed: 3}", 6)),
    flows::testing::bijector_case_name);

// The SDK's generic flows with a context: the context laws of the suite.
INSTANTIATE_TEST_SUITE_P(
    Conditional, BijectorContract,
    ::testing::Values(
        conditional("autoregressive_affine_3_context_2",
                    "{type: autoregressive, transformer: {type: affine}, layers: 2, hidden: [8]}",
                    3, 2),
        conditional("autoregressive_affine_1_context_3",
                    "{type: autoregressive, transformer: {type: affine}, layers: 2, hidden: [8], "
                    "activation: tanh}",
                    1, 3),
        conditional("coupling_affine_4_context_1",
                    "{type: coupling, transformer: {type: affine}, layers: 2, hidden: [8]}", 4, 1),
        conditional("coupling_affine_2_context_2",
                    "{type: coupling, transformer: {type: affine}, layers: 3, hidden: [6], "
                    "activation: tanh}",
                    2, 2)),
    flows::testing::bijector_case_name);

INSTANTIATE_TEST_SUITE_P(Sdk, TransformerContract,
                         ::testing::Values(TransformerCase{"affine", "", "{type: affine}"},
                                           TransformerCase{"affine_tight_bound", "",
                                                           "{type: affine, log_scale_bound: 0.5}"},
                                           TransformerCase{"affine_wide_params", "",
                                                           "{type: affine}", 1.0, 3.0}),
                         flows::testing::transformer_case_name);
