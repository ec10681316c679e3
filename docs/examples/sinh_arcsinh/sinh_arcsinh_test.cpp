// The SDK's contract suite, run on the out-of-tree sinh_arcsinh bijector.
#include <flows/testing/bijector_contract.hpp>

INSTANTIATE_TEST_SUITE_P(
    SinhArcsinh, BijectorContract,
    ::testing::Values(BijectorCase{"dim_1", PLUGIN_FILE, "{type: sinh_arcsinh}", 1},
                      BijectorCase{"dim_3_skewed", PLUGIN_FILE,
                                   "{type: sinh_arcsinh, skew: 0.5, log_tail: -0.3}", 3}),
    flows::testing::bijector_case_name);
