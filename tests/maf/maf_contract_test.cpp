// The bijector contract suite for the maf plugin's bijectors.
#include <flows/testing/bijector_contract.hpp>

namespace {

BijectorCase make_case(std::string name, std::string yaml, flows::Index dim,
                       bool train_matches_inference = true, flows::Index context_dim = 0) {
  BijectorCase c{std::move(name), FLOWS_PLUGIN_MAF, std::move(yaml), dim};
  c.train_matches_inference = train_matches_inference;
  c.context_dim = context_dim;
  return c;
}

}  // namespace

INSTANTIATE_TEST_SUITE_P(
    Maf, BijectorContract,
    ::testing::Values(
        make_case("maf_1", "{type: maf, layers: 1, hidden: [8]}", 1),
        make_case("maf_2", "{type: maf, layers: 1, hidden: [8, 8]}", 2),
        make_case("maf_3_layers3", "{type: maf, layers: 3, hidden: [8, 8], activation: tanh}", 3),
        make_case("maf_5_layers3", "{type: maf, layers: 3, hidden: [12]}", 5),
        make_case("maf_2_layers3_relu", "{type: maf, layers: 3, hidden: [16, 16]}", 2),
        make_case("maf_3_batch_norm",
                  "{type: maf, layers: 3, hidden: [8], batch_norm: true, activation: tanh}", 3,
                  false),
        make_case("maf_2_batch_norm_1layer",
                  "{type: maf, layers: 1, hidden: [8], batch_norm: true}", 2),
        make_case("maf_3_residual",
                  "{type: maf, layers: 2, hidden: [8], residual_blocks: 2, activation: tanh}", 3),
        make_case("maf_5_random_order",
                  "{type: maf, layers: 3, hidden: [10, 10], order: random, permute: random, "
                  "seed: 3, activation: silu}",
                  5),
        make_case("maf_2_identity_init", "{type: maf, layers: 2, hidden: [8], identity_init: true}",
                  2),
        make_case("maf_3_tight_bound",
                  "{type: maf, layers: 2, hidden: [8], log_scale_bound: 0.5, activation: elu}", 3),
        make_case("iaf_1", "{type: iaf, layers: 1, hidden: [8]}", 1),
        make_case("iaf_2", "{type: iaf, layers: 1, hidden: [8, 8], activation: tanh}", 2),
        make_case("iaf_3_layers3", "{type: iaf, layers: 3, hidden: [8, 8], activation: tanh}", 3),
        make_case("iaf_5_layers3_random",
                  "{type: iaf, layers: 3, hidden: [12], permute: random, activation: tanh}", 5),
        make_case("iaf_3_residual_batch_norm",
                  "{type: iaf, layers: 2, hidden: [8], residual_blocks: 1, batch_norm: true, "
                  "activation: tanh}",
                  3, false),
        // Conditional: the context enters every MADE (p(x | c)).
        make_case("maf_1_context2", "{type: maf, layers: 2, hidden: [8], activation: tanh}", 1,
                  true, 2),
        make_case("maf_3_context2", "{type: maf, layers: 2, hidden: [8, 8], activation: tanh}", 3,
                  true, 2),
        make_case("maf_3_context1_residual",
                  "{type: maf, layers: 2, hidden: [8], residual_blocks: 1, activation: tanh}", 3,
                  true, 1),
        make_case("iaf_3_context2", "{type: iaf, layers: 2, hidden: [8], activation: tanh}", 3,
                  true, 2),
        make_case("batch_norm_1", "{type: batch_norm}", 1, false),
        make_case("batch_norm_3", "{type: batch_norm, momentum: 0.5, epsilon: 1.0e-3}", 3, false)),
    flows::testing::bijector_case_name);
