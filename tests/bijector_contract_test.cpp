// Every bijector of the project against the contract suite. A new bijector
// joins by adding its cases to a list here.
#include "flows/testing/bijector_contract.hpp"

namespace {

BijectorCase basic(const std::string& name, const std::string& yaml, flows::Index dim) {
  return BijectorCase{name, FLOWS_PLUGIN_BASIC, yaml, dim};
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
        basic("actnorm_5_no_init", "{type: actnorm, init_from_data: false}", 5)),
    flows::testing::bijector_case_name);
