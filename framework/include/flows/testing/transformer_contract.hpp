#pragma once
// The laws every transformer obeys (flows::Transformer, a monotone elementwise
// map y = τ(x; θ) with θ per element), as a value-parameterized GoogleTest
// suite beside the bijector contract. A transformer joins with one line:
//
//   #include <flows/testing/transformer_contract.hpp>
//   INSTANTIATE_TEST_SUITE_P(Mine, TransformerContract,
//       ::testing::Values(TransformerCase{"sinh_arcsinh", PLUGIN_FILE, "{type: sinh_arcsinh}"}),
//       flows::testing::transformer_case_name);
//
// As with the bijector contract, the TEST_P definitions must be compiled once
// per test binary; other files of that binary define
// FLOWS_TRANSFORMER_CONTRACT_INSTANTIATE_ONLY before the include.
//
// Every law runs at random parameters, θ = identity_value + parameter_scale ·
// N(0, 1) per entry, on a batch of kColumns columns, through each of the
// parameter layouts the SDK's conditioners use (see flows::ColumnSet):
//   all      every column, stride kColumns, offset 0 (MADE, all at once)
//   subset   columns {1, 3, 4}, stride 3, offset 0 (a coupling's half)
//   single   column 2 alone, stride kColumns, offset 2 (MADE, one column)
// The laws: τ⁻¹(τ(x)) = x and τ(τ⁻¹(y)) = y, other columns untouched; the
// log-derivative of the inverse is minus the forward's; logdet is added to;
// log τ′ against central differences, τ elementwise and increasing; the same
// map with or without a cache and in place; dL/dx and dL/dθ of
// L = Σ r·y + Σ s·logdet against central differences; the layouts agree;
// identity_value gives the identity; the same YAML builds the same map.
#include <gtest/gtest.h>

#include <cctype>
#include <cmath>
#include <cstdint>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "flows/config.hpp"
#include "flows/error.hpp"
#include "flows/parameter.hpp"
#include "flows/plugin_loader.hpp"
#include "flows/registry.hpp"
#include "flows/rng.hpp"
#include "flows/tensor.hpp"
#include "flows/testing/assertions.hpp"
#include "flows/testing/gradient_checker.hpp"
#include "flows/transformer.hpp"

namespace flows::testing {

// One transformer configuration under test. Only the first three fields are
// needed.
struct TransformerCase {
  std::string name_for_test;   // test name suffix; characters outside [A-Za-z0-9_] become '_'
  std::string plugin_file;     // plugin to load (from CMake's $<TARGET_FILE:...>); "" if built in
  std::string yaml;            // the transformer's options, e.g. "{type: affine}"
  Real input_scale = 1.0;      // standard deviation of the random inputs x
  Real parameter_scale = 1.0;  // standard deviation of θ around identity_value
  std::uint64_t seed = 0;      // BuildContext seed; also seeds the random batches
  Real tolerance = 1e-9;       // round trips, logdet identities, identity at identity_value
  Real derivative_tolerance = 1e-6;  // log τ′ against central differences (relative)
  GradientCheckOptions gradient_check{1e-6, 1e-5, 1e-4, 0};
};

inline void PrintTo(const TransformerCase& c, std::ostream* out) {
  *out << c.name_for_test << ": " << c.yaml
       << (c.plugin_file.empty() ? std::string(" (built-in)") : " from " + c.plugin_file);
}

inline std::string transformer_case_name(const ::testing::TestParamInfo<TransformerCase>& info) {
  std::string name;
  for (char ch : info.param.name_for_test)
    name += std::isalnum(static_cast<unsigned char>(ch)) ? ch : '_';
  return name.empty() ? "case" + std::to_string(info.index) : name;
}

// Which columns a transformer acts on and how its parameter matrix is laid out.
struct TransformerLayout {
  std::string name;
  std::vector<Index> cols;
  Index stride = 0;
  Index offset = 0;
  Index param_columns = 0;  // width of the parameter matrix (params_per_dim · stride)

  ColumnSet set() const { return ColumnSet{cols.data(), cols.size(), stride, offset}; }
  bool transforms(Index col) const {
    for (Index c : cols)
      if (c == col) return true;
    return false;
  }
};

class TransformerContract : public ::testing::TestWithParam<TransformerCase> {
 protected:
  static constexpr Index kColumns = 5;
  static constexpr Index kBatch = 6;

  void SetUp() override { transformer_ = build(); }

  std::shared_ptr<Transformer> build() {
    const TransformerCase& c = GetParam();
    if (!registry_) {
      registry_ = std::make_unique<Registry>();
      register_builtins(*registry_);
      if (!c.plugin_file.empty()) load_plugin(c.plugin_file, *registry_);
    }
    ConfigNode node = ConfigNode::parse(c.yaml, "TransformerCase " + c.name_for_test);
    BuildContext context;
    context.dim = kColumns;
    context.seed = c.seed;
    context.registry = registry_.get();
    std::shared_ptr<Transformer> t = registry_->make<Transformer>(node, context);
    if (!t) throw Error("the factory of " + c.yaml + " returned nothing");
    return t;
  }

  Index params_per_dim() const { return transformer_->params_per_dim(); }

  std::vector<TransformerLayout> layouts() const {
    const Index p = params_per_dim();
    return {TransformerLayout{"all", {0, 1, 2, 3, 4}, kColumns, 0, p * kColumns},
            TransformerLayout{"subset", {1, 3, 4}, 3, 0, p * 3},
            TransformerLayout{"single", {2}, kColumns, 2, p * kColumns}};
  }

  Matrix random_input(Index rows) { return rng_.normal(rows, kColumns) * GetParam().input_scale; }

  // θ for `rows` rows: column q holds parameter q / stride (every column of
  // the matrix, used by the layout or not, gets a plausible value).
  Matrix random_params(Index rows, const TransformerLayout& layout) {
    Matrix params = rng_.normal(rows, layout.param_columns) * GetParam().parameter_scale;
    for (Index i = 0; i < rows; ++i)
      for (Index q = 0; q < layout.param_columns; ++q)
        params(i, q) += transformer_->identity_value(q / layout.stride);
    return params;
  }

  // y = τ(x) on the layout's columns (others copied from x) and Σ log τ′ per row.
  Transformed forward(const Matrix& x, const TransformerLayout& layout, const Matrix& params,
                      std::vector<Real>* cache = nullptr) const {
    Transformed out{x, xt::zeros<Real>({x.shape(0)})};
    if (cache) cache->assign(x.shape(0) * layout.cols.size() * transformer_->cache_size(), 0.0);
    transformer_->forward(x, out.value, out.logdet, layout.set(), params,
                          cache ? cache->data() : nullptr);
    return out;
  }

  Transformed inverse(const Matrix& y, const TransformerLayout& layout,
                      const Matrix& params) const {
    Transformed out{y, xt::zeros<Real>({y.shape(0)})};
    transformer_->inverse(y, out.value, out.logdet, layout.set(), params);
    return out;
  }

  // Declared first: the transformer is destroyed before the registry.
  std::unique_ptr<Registry> registry_;
  std::shared_ptr<Transformer> transformer_;
  Rng rng_ = Rng(GetParam().seed).derive(2);
};

#ifndef FLOWS_TRANSFORMER_CONTRACT_INSTANTIATE_ONLY

GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(TransformerContract);

TEST_P(TransformerContract, DeclaresItsSizesAndIdentityValues) {
  EXPECT_GE(params_per_dim(), 1);
  for (Index p = 0; p < params_per_dim(); ++p)
    EXPECT_TRUE(std::isfinite(transformer_->identity_value(p))) << "identity_value(" << p << ")";
}

// θ = identity_value everywhere makes τ the identity with log τ′ = 0.
TEST_P(TransformerContract, IdentityValuesGiveTheIdentity) {
  for (const TransformerLayout& layout : layouts()) {
    SCOPED_TRACE("layout " + layout.name);
    Matrix params({kBatch, layout.param_columns});
    for (Index i = 0; i < kBatch; ++i)
      for (Index q = 0; q < layout.param_columns; ++q)
        params(i, q) = transformer_->identity_value(q / layout.stride);
    const Matrix x = random_input(kBatch);
    const Transformed y = forward(x, layout, params);
    EXPECT_TRUE(all_near(y.value, x, GetParam().tolerance, "τ(x) at the identity values"));
    EXPECT_TRUE(all_near(y.logdet, Vector(xt::zeros<Real>({kBatch})), GetParam().tolerance,
                         "Σ log τ′ at the identity values"));
  }
}

// τ⁻¹(τ(x)) = x and τ(τ⁻¹(y)) = y; columns outside the set are left as they are.
TEST_P(TransformerContract, InverseUndoesForwardAndForwardUndoesInverse) {
  for (const TransformerLayout& layout : layouts()) {
    SCOPED_TRACE("layout " + layout.name);
    const Matrix params = random_params(kBatch, layout);
    const Matrix x = random_input(kBatch);
    EXPECT_TRUE(all_near(inverse(forward(x, layout, params).value, layout, params).value, x,
                         GetParam().tolerance, "τ⁻¹(τ(x))"));
    const Matrix y = random_input(kBatch);
    EXPECT_TRUE(all_near(forward(inverse(y, layout, params).value, layout, params).value, y,
                         GetParam().tolerance, "τ(τ⁻¹(y))"));

    // Into a separate output prefilled with a marker: only the set's columns change.
    Matrix out = xt::zeros<Real>({kBatch, kColumns}) + 12345.0;
    Vector logdet = xt::zeros<Real>({kBatch});
    transformer_->forward(x, out, logdet, layout.set(), params, nullptr);
    Matrix back = xt::zeros<Real>({kBatch, kColumns}) - 54321.0;
    transformer_->inverse(out, back, logdet, layout.set(), params);
    for (Index i = 0; i < kBatch; ++i)
      for (Index j = 0; j < kColumns; ++j) {
        if (layout.transforms(j)) {
          EXPECT_NEAR(back(i, j), x(i, j), GetParam().tolerance * (1 + std::abs(x(i, j))))
              << "row " << i << ", column " << j;
        } else {
          EXPECT_EQ(out(i, j), 12345.0) << "forward wrote column " << j << " outside its set";
          EXPECT_EQ(back(i, j), -54321.0) << "inverse wrote column " << j << " outside its set";
        }
      }
  }
}

// log (τ⁻¹)′ at y = τ(x) is −log τ′(x), and both are *added* to logdet.
TEST_P(TransformerContract, InverseLogDerivativeIsMinusForwardAndBothAccumulate) {
  for (const TransformerLayout& layout : layouts()) {
    SCOPED_TRACE("layout " + layout.name);
    const Matrix params = random_params(kBatch, layout);
    const Matrix x = random_input(kBatch);
    const Transformed y = forward(x, layout, params);
    const Transformed back = inverse(y.value, layout, params);
    EXPECT_TRUE(all_near(back.logdet, Vector(-y.logdet), GetParam().tolerance,
                         "inverse log-derivative at τ(x) against -(forward's at x)"));

    const Vector start = xt::view(rng_.normal(1, kBatch), 0, xt::all());
    Matrix out = x;
    Vector logdet = start;
    transformer_->forward(x, out, logdet, layout.set(), params, nullptr);
    EXPECT_TRUE(all_near(Vector(logdet - start), y.logdet, GetParam().tolerance,
                         "forward's addition to a non-zero logdet"));
    Matrix in = y.value;
    logdet = start;
    transformer_->inverse(y.value, in, logdet, layout.set(), params);
    EXPECT_TRUE(all_near(Vector(logdet - start), back.logdet, GetParam().tolerance,
                         "inverse's addition to a non-zero logdet"));
  }
}

// τ is elementwise and strictly increasing, and Σ log τ′ matches central
// differences: perturbing x(i, j) moves y(i, j) alone, by τ′ > 0.
TEST_P(TransformerContract, LogDerivativeMatchesFiniteDifferences) {
  const Real h = 1e-6;
  for (const TransformerLayout& layout : layouts()) {
    SCOPED_TRACE("layout " + layout.name);
    const Matrix params = random_params(kBatch, layout);
    const Matrix x = random_input(kBatch);
    const Transformed y = forward(x, layout, params);
    Vector numeric_logdet = xt::zeros<Real>({kBatch});
    for (Index i = 0; i < kBatch; ++i)
      for (Index j = 0; j < kColumns; ++j) {
        Matrix up = x, down = x;
        up(i, j) += h;
        down(i, j) -= h;
        const Matrix y_up = forward(up, layout, params).value;
        const Matrix y_down = forward(down, layout, params).value;
        for (Index r = 0; r < kBatch; ++r)
          for (Index c = 0; c < kColumns; ++c)
            if (r != i || c != j) {
              EXPECT_EQ(y_up(r, c), y.value(r, c))
                  << "moving x(" << i << "," << j << ") moved y(" << r << "," << c << ")";
            }
        const Real derivative = (y_up(i, j) - y_down(i, j)) / (up(i, j) - down(i, j));
        if (!layout.transforms(j)) continue;
        EXPECT_GT(derivative, 0) << "τ is not increasing at x(" << i << "," << j << ")";
        numeric_logdet(i) += std::log(derivative);
      }
    for (Index i = 0; i < kBatch; ++i)
      EXPECT_NEAR(y.logdet(i), numeric_logdet(i),
                  GetParam().derivative_tolerance * (1 + std::abs(numeric_logdet(i))))
          << "row " << i;
  }
}

// With or without a cache, and in place (out = in), forward gives the same map.
TEST_P(TransformerContract, CacheAndInPlaceDoNotChangeTheMap) {
  for (const TransformerLayout& layout : layouts()) {
    SCOPED_TRACE("layout " + layout.name);
    const Matrix params = random_params(kBatch, layout);
    const Matrix x = random_input(kBatch);
    const Transformed plain = forward(x, layout, params);
    std::vector<Real> cache;
    const Transformed cached = forward(x, layout, params, &cache);
    EXPECT_TRUE(all_near(cached.value, plain.value, GetParam().tolerance, "τ(x) with a cache"));
    EXPECT_TRUE(all_near(cached.logdet, plain.logdet, GetParam().tolerance, "log τ′ with a cache"));
    Matrix in_place = x;
    Vector logdet = xt::zeros<Real>({kBatch});
    transformer_->forward(in_place, in_place, logdet, layout.set(), params, nullptr);
    EXPECT_TRUE(all_near(in_place, plain.value, GetParam().tolerance, "τ(x) in place"));
    Matrix back = in_place;
    transformer_->inverse(back, back, logdet, layout.set(), params);
    EXPECT_TRUE(all_near(back, x, GetParam().tolerance, "τ⁻¹ in place"));
  }
}

// dL/dx and dL/dθ of L = Σ r·y + Σ s·logdet against central differences
// (flows::testing::check_gradients, with θ as one parameter); grad_in starts
// as a copy of grad_out, so columns outside the set pass dL/dy through.
TEST_P(TransformerContract, GradientsMatchFiniteDifferences) {
  for (const TransformerLayout& layout : layouts()) {
    SCOPED_TRACE("layout " + layout.name);
    Parameter theta("theta", random_params(kBatch, layout));
    std::vector<Real> cache;
    DifferentiableFunction f;
    f.forward = [&](const Matrix& x) {
      const Transformed y = forward(x, layout, theta.value, &cache);
      Matrix out({x.shape(0), kColumns + 1});
      xt::view(out, xt::all(), xt::range(0, kColumns)) = y.value;
      xt::view(out, xt::all(), kColumns) = y.logdet;
      return out;
    };
    f.backward = [&](const Matrix& grad_y) {
      Matrix grad_in = xt::view(grad_y, xt::all(), xt::range(0, kColumns));
      const Vector grad_logdet = xt::view(grad_y, xt::all(), kColumns);
      Matrix grad_params = xt::zeros<Real>({grad_y.shape(0), layout.param_columns});
      transformer_->backward(cache.data(), grad_in, grad_logdet, layout.set(), grad_in,
                             grad_params);
      theta.grad += grad_params;
      return grad_in;
    };
    f.params = {&theta};
    const GradientCheckResult result =
        check_gradients(f, random_input(kBatch), GetParam().gradient_check);
    EXPECT_TRUE(result.ok) << result.report;
  }
}

// backward writes the same gradients into a separate grad_in as in place.
TEST_P(TransformerContract, BackwardInPlaceMatchesSeparateOutput) {
  for (const TransformerLayout& layout : layouts()) {
    SCOPED_TRACE("layout " + layout.name);
    const Matrix params = random_params(kBatch, layout);
    std::vector<Real> cache;
    forward(random_input(kBatch), layout, params, &cache);
    const Matrix grad_out = rng_.normal(kBatch, kColumns);
    const Vector grad_logdet = xt::view(rng_.normal(1, kBatch), 0, xt::all());
    Matrix separate = grad_out;
    Matrix grad_a = xt::zeros<Real>({kBatch, layout.param_columns});
    transformer_->backward(cache.data(), grad_out, grad_logdet, layout.set(), separate, grad_a);
    Matrix in_place = grad_out;
    Matrix grad_b = xt::zeros<Real>({kBatch, layout.param_columns});
    transformer_->backward(cache.data(), in_place, grad_logdet, layout.set(), in_place, grad_b);
    EXPECT_TRUE(all_near(in_place, separate, 0.0, "dL/dx in place"));
    EXPECT_TRUE(all_near(grad_b, grad_a, 0.0, "dL/dθ with dL/dx in place"));
  }
}

// An element's value depends only on its own parameters, wherever they sit:
// one call on every column (layout "all") equals one call per column (MADE's
// single-column layout) on the same parameter matrix, and the coupling
// layout with those parameters packed by its own stride.
TEST_P(TransformerContract, ParameterLayoutsAgree) {
  const std::vector<TransformerLayout> all = layouts();
  const TransformerLayout& every = all[0];
  const Matrix params = random_params(kBatch, every);
  const Matrix x = random_input(kBatch);
  const Transformed whole = forward(x, every, params);

  Matrix by_column = x;
  Vector logdet = xt::zeros<Real>({kBatch});
  std::vector<Index> one(1);
  for (Index j = 0; j < kColumns; ++j) {
    one[0] = j;
    transformer_->forward(by_column, by_column, logdet, ColumnSet{one.data(), 1, kColumns, j},
                          params, nullptr);
  }
  EXPECT_TRUE(all_near(by_column, whole.value, GetParam().tolerance, "τ(x) one column at a time"));
  EXPECT_TRUE(
      all_near(logdet, whole.logdet, GetParam().tolerance, "Σ log τ′ one column at a time"));

  const TransformerLayout& subset = all[1];
  const Index p_count = params_per_dim();
  Matrix packed({kBatch, subset.param_columns});
  for (Index i = 0; i < kBatch; ++i)
    for (Index p = 0; p < p_count; ++p)
      for (Index j = 0; j < subset.cols.size(); ++j)
        packed(i, p * subset.stride + j) = params(i, p * kColumns + subset.cols[j]);
  const Transformed part = forward(x, subset, packed);
  Matrix expected = x;
  for (Index i = 0; i < kBatch; ++i)
    for (Index j : subset.cols) expected(i, j) = whole.value(i, j);
  EXPECT_TRUE(all_near(part.value, expected, GetParam().tolerance,
                       "τ(x) in the coupling layout against every column at once"));
}

// Outputs stay finite for inputs far out (5 input scales) at random parameters.
TEST_P(TransformerContract, OutputsAreFiniteFarOut) {
  const TransformerLayout layout = layouts()[0];
  const Matrix params = random_params(kBatch, layout);
  const Matrix x = random_input(kBatch) * 5.0;
  const Transformed y = forward(x, layout, params);
  EXPECT_TRUE(all_finite(y.value, "τ(x)"));
  EXPECT_TRUE(all_finite(y.logdet, "Σ log τ′"));
  const Transformed back = inverse(y.value, layout, params);
  EXPECT_TRUE(all_finite(back.value, "τ⁻¹(τ(x))"));
}

// The same YAML builds the same map (checkpoints rebuild from YAML).
TEST_P(TransformerContract, SameYamlBuildsTheSameTransformer) {
  const std::shared_ptr<Transformer> again = build();
  const TransformerLayout layout = layouts()[0];
  const Matrix params = random_params(kBatch, layout);
  const Matrix x = random_input(kBatch);
  const Transformed a = forward(x, layout, params);
  Transformed b{x, xt::zeros<Real>({kBatch})};
  again->forward(x, b.value, b.logdet, layout.set(), params, nullptr);
  EXPECT_TRUE(all_near(b.value, a.value, 0.0, "τ(x) of a second build"));
  EXPECT_EQ(again->params_per_dim(), transformer_->params_per_dim());
  EXPECT_EQ(again->cache_size(), transformer_->cache_size());
}

#endif  // FLOWS_TRANSFORMER_CONTRACT_INSTANTIATE_ONLY

}  // namespace flows::testing

using flows::testing::TransformerCase;
using flows::testing::TransformerContract;
