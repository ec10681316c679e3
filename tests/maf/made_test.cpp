#include "flows/nn/made.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>
#include <xtensor-blas/xlinalg.hpp>
#include <xtensor/xbuilder.hpp>

#include "flows/error.hpp"
#include "flows/nn/made_masks.hpp"
#include "flows/rng.hpp"
#include "flows/testing/gradient_checker.hpp"

namespace {

using flows::Index;
using flows::Matrix;
using flows::Real;
using flows::Rng;
using flows::nn::Activation;
using flows::nn::Made;
using flows::nn::MadeOptions;
using flows::testing::check_gradients;
using flows::testing::DifferentiableFunction;
using flows::testing::numerical_jacobian;

MadeOptions options(std::vector<Index> hidden, Index k, Index blocks = 0,
                    Activation::Kind act = Activation::Kind::tanh) {
  MadeOptions o;
  o.hidden = std::move(hidden);
  o.out_multiplier = k;
  o.residual_blocks = blocks;
  o.activation = Activation(act);
  return o;
}

// Moves every parameter off its initial value (zero-initialised outputs, tiny
// residual weights) so structure tests see a generic network.
void perturb(Made& made, Rng& rng) {
  for (flows::Parameter* p : made.parameters())
    p->value += 0.3 * rng.normal(p->value.shape(0), p->value.shape(1));
}

DifferentiableFunction as_function(Made& made) {
  DifferentiableFunction f;
  f.forward = [&made](const Matrix& x) {
    Matrix y;
    made.forward(x, {}, y);
    return y;
  };
  f.backward = [&made](const Matrix& grad_y) {
    Matrix grad_x;
    made.backward(grad_y, grad_x);
    return grad_x;
  };
  f.params = made.parameters();
  return f;
}

struct OrderCase {
  std::string name;
  std::vector<Index> order;
};

std::vector<OrderCase> orders(Index dim) {
  Rng rng(7);
  std::vector<OrderCase> cases{{"natural", flows::nn::natural_order(dim)},
                               {"reversed", flows::nn::reversed_order(dim)},
                               {"random", flows::nn::random_order(dim, rng)},
                               {"random2", flows::nn::random_order(dim, rng)}};
  if (dim == 4) cases.push_back({"explicit", {2, 0, 3, 1}});
  return cases;
}

// The Jacobian of the MADE output with respect to its input, by central
// differences, is exactly zero wherever the ordering forbids a dependence
// (order[j] ≥ order[i] for output column b·D + i), and non-zero elsewhere
// (tanh keeps every path alive, widths ≥ D − 1 connect every allowed pair).
TEST(Made, JacobianIsStrictlyTriangularUnderEveryOrdering) {
  for (Index dim : {Index(1), Index(2), Index(4), Index(5)})
    for (Index blocks : {Index(0), Index(2)})
      for (const OrderCase& c : orders(dim)) {
        SCOPED_TRACE("dim " + std::to_string(dim) + ", order " + c.name + ", residual blocks " +
                     std::to_string(blocks));
        Rng rng(3);
        const Index k = 3;
        const std::vector<Index> hidden =
            blocks > 0 ? std::vector<Index>{9, 9} : std::vector<Index>{9, 7};
        Made made(c.order, options(hidden, k, blocks), rng);
        perturb(made, rng);
        const Matrix x = rng.normal(1, dim);
        const Matrix jac =
            numerical_jacobian([&](const Matrix& row) { return made.infer(row); }, x);
        ASSERT_EQ(jac.shape(0), k * dim);
        ASSERT_EQ(jac.shape(1), dim);
        for (Index b = 0; b < k; ++b)
          for (Index i = 0; i < dim; ++i)
            for (Index j = 0; j < dim; ++j) {
              const Real entry = jac(b * dim + i, j);
              if (c.order[j] >= c.order[i])
                EXPECT_EQ(entry, 0.0) << "output " << b * dim + i << " depends on input " << j;
              else
                EXPECT_GT(std::abs(entry), 1e-9)
                    << "output " << b * dim + i << " ignores input " << j;
            }
      }
}

TEST(Made, ConnectivityMatchesTheOrdering) {
  for (Index blocks : {Index(0), Index(1)})
    for (const OrderCase& c : orders(4)) {
      Rng rng(1);
      Made made(c.order, options({6, 6}, 2, blocks), rng);
      const Matrix allowed = flows::nn::autoregressive_connectivity(c.order);
      const Matrix reach = made.connectivity();
      ASSERT_EQ(reach.shape(0), 8u);
      for (Index b = 0; b < 2; ++b)
        for (Index i = 0; i < 4; ++i)
          for (Index j = 0; j < 4; ++j)
            EXPECT_EQ(reach(b * 4 + i, j), allowed(i, j)) << c.name << " blocks " << blocks;
    }
}

TEST(Made, GradientsMatchFiniteDifferences) {
  for (Index blocks : {Index(0), Index(2)})
    for (Activation::Kind act :
         {Activation::Kind::tanh, Activation::Kind::relu, Activation::Kind::silu}) {
      SCOPED_TRACE("blocks " + std::to_string(blocks) + ", activation " + Activation(act).name());
      Rng rng(11);
      Made made(flows::nn::random_order(3, rng), options({8, 8}, 2, blocks, act), rng);
      perturb(made, rng);
      const auto result = check_gradients(as_function(made), rng.normal(6, 3));
      EXPECT_TRUE(result.ok) << result.report;
    }
}

TEST(Made, TrainingForwardMatchesInferenceAndWorkspaceReuse) {
  for (Index blocks : {Index(0), Index(1)}) {
    Rng rng(5);
    Made made(flows::nn::natural_order(3), options({16, 16}, 2, blocks), rng);
    perturb(made, rng);
    Made::Workspace workspace;
    for (Index rows : {Index(5), Index(9), Index(1)}) {
      const Matrix x = rng.normal(rows, 3);
      Matrix y, y_inferred;
      made.forward(x, {}, y);
      made.infer(x, {}, y_inferred, workspace);
      EXPECT_EQ(y, y_inferred);
      EXPECT_EQ(y, made.infer(x));
    }
  }
}

TEST(Made, BackwardAccumulatesAndCanRepeatAfterOneForward) {
  Rng rng(2);
  Made made(flows::nn::natural_order(3), options({8}, 2, 1), rng);
  perturb(made, rng);
  const Matrix x = rng.normal(4, 3);
  const Matrix grad_y = rng.normal(4, 6);
  Matrix y, grad_x, grad_x_again;
  made.forward(x, {}, y);
  made.backward(grad_y, grad_x);
  std::vector<Matrix> once;
  for (const flows::Parameter* p : made.parameters()) once.push_back(p->grad);
  made.backward(grad_y, grad_x_again, nullptr,
                false);  // a vector-Jacobian product: no parameter change
  EXPECT_EQ(grad_x, grad_x_again);
  made.backward(grad_y, grad_x_again);
  const auto params = made.parameters();
  for (std::size_t k = 0; k < params.size(); ++k)
    for (Index e = 0; e < once[k].size(); ++e)
      // Each backward adds its rows one by one into the float64 sums, so
      // twice is 2 × once up to that summation's rounding.
      EXPECT_NEAR(params[k]->grad.flat(e), 2 * once[k].flat(e),
                  1e-12 * std::max<Real>(1, std::abs(once[k].flat(e))))
          << params[k]->name;
}

TEST(Made, MaskedWeightsGetNoGradientAndStayOutOfTheOutput) {
  Rng rng(4);
  Made made(flows::nn::natural_order(3), options({5}, 1), rng);
  const Matrix x = rng.normal(4, 3);
  const Matrix before = made.infer(x);
  // Writing into a masked entry (as a checkpoint might) changes nothing:
  // the layer keeps its unmasked weights only.
  flows::Parameter& w = made.output_weight();
  Matrix saved = flows::in_saved_order(w, w.value);
  ASSERT_EQ(saved(0, 0), 0.0);  // output 0 (first in the order) sees no hidden unit
  saved(0, 0) = 100;
  flows::from_saved_order(w, saved, w.value);
  EXPECT_EQ(flows::in_saved_order(w, w.value)(0, 0), 0.0);
  EXPECT_EQ(made.infer(x), before);
  Matrix y, grad_x;
  made.forward(x, {}, y);
  made.backward(rng.normal(4, 3), grad_x);
  EXPECT_EQ(flows::in_saved_order(w, w.grad)(0, 0), 0.0);
}

TEST(Made, ZeroOutputStartsAtZero) {
  Rng rng(0);
  MadeOptions o = options({8, 8}, 2);
  o.zero_output = true;
  Made made(flows::nn::natural_order(2), o, rng);
  const Matrix y = made.infer(rng.normal(3, 2));
  for (Real v : y) EXPECT_EQ(v, 0.0);
}

TEST(Made, ParametersAreNamedAndStable) {
  Rng rng(0);
  Made made(flows::nn::natural_order(2), options({4, 4}, 2, 2), rng);
  const auto params = made.parameters();
  ASSERT_EQ(params.size(), 12u);  // input, 2 blocks × 2 layers, output
  EXPECT_EQ(params.front()->name, "input.weight");
  EXPECT_EQ(params[2]->name, "block0.a.weight");
  EXPECT_EQ(params.back()->name, "output.bias");
  Made moved = std::move(made);
  EXPECT_EQ(moved.parameters(), params);
}

TEST(Made, BadInputIsAnError) {
  Rng rng(0);
  EXPECT_THROW(Made({0, 0}, options({4}, 1), rng), flows::ConfigError);
  EXPECT_THROW(Made({0, 1}, options({}, 1), rng), flows::ConfigError);
  EXPECT_THROW(Made({0, 1}, options({4, 0}, 1), rng), flows::ConfigError);
  EXPECT_THROW(Made({0, 1}, options({4, 5}, 1, 1), rng), flows::ConfigError);
  EXPECT_THROW(Made({0, 1}, options({4}, 0), rng), flows::ConfigError);
  Made made({0, 1}, options({4}, 1), rng);
  Matrix y, grad_x;
  EXPECT_THROW(made.backward(Matrix({2, 2}), grad_x), flows::Error);  // no forward yet
  EXPECT_THROW(made.forward(rng.normal(2, 3), {}, y), flows::DataError);
  EXPECT_THROW(made.infer(rng.normal(2, 1)), flows::DataError);
  made.forward(rng.normal(2, 2), {}, y);
  EXPECT_THROW(made.backward(rng.normal(3, 2), grad_x), flows::DataError);
}

TEST(MadeOptions, ReadsItsKeysAndChecksThem) {
  auto node =
      flows::ConfigNode::parse("{hidden: [32, 16], activation: elu, residual_blocks: 0}", "test");
  MadeOptions o;
  MadeOptions::read(node, o);
  node.finish();
  EXPECT_EQ(o.hidden, (std::vector<Index>{32, 16}));
  EXPECT_EQ(o.activation.name(), "elu");
  auto bad = flows::ConfigNode::parse("{activation: relu6}", "test");
  EXPECT_THROW(MadeOptions::read(bad, o), flows::ConfigError);
  auto unequal = flows::ConfigNode::parse("{hidden: [8, 4], residual_blocks: 2}", "test");
  EXPECT_THROW(MadeOptions::read(unequal, o), flows::ConfigError);
}

}  // namespace

namespace {

// The MADE as a function of [x, c]: the checker perturbs context columns too.
DifferentiableFunction as_conditional_function(Made& made) {
  DifferentiableFunction f;
  const Index d = made.dim(), c = made.context_features();
  auto split = [d, c](const Matrix& xc, Matrix& x, Matrix& ctx) {
    x = xt::view(xc, xt::all(), xt::range(0, d));
    ctx = xt::view(xc, xt::all(), xt::range(d, d + c));
  };
  f.forward = [&made, split](const Matrix& xc) {
    Matrix x, ctx, y;
    split(xc, x, ctx);
    made.forward(x, ctx, y);
    return y;
  };
  f.backward = [&made, d, c](const Matrix& grad_y) {
    Matrix grad_x;
    Matrix grad_c = xt::zeros<flows::Real>({grad_y.shape(0), c});
    made.backward(grad_y, grad_x, &grad_c);
    Matrix out({grad_y.shape(0), d + c});
    xt::view(out, xt::all(), xt::range(0, d)) = grad_x;
    xt::view(out, xt::all(), xt::range(d, d + c)) = grad_c;
    return out;
  };
  f.params = made.parameters();
  return f;
}

}  // namespace

TEST(Made, ContextGradientsMatchFiniteDifferences) {
  for (Index blocks : {Index(0), Index(1)})
    for (Index dim : {Index(1), Index(3)}) {
      SCOPED_TRACE("blocks " + std::to_string(blocks) + ", dim " + std::to_string(dim));
      Rng rng(13);
      MadeOptions o = options({8, 8}, 2, blocks);
      o.context_features = 2;
      Made made(flows::nn::random_order(dim, rng), o, rng);
      perturb(made, rng);
      const auto result = check_gradients(as_conditional_function(made), rng.normal(5, dim + 2));
      EXPECT_TRUE(result.ok) << result.report;
    }
}

// The context reaches every output (degree 0), and the masks of x stay
// autoregressive: output i still ignores x_j for order[j] ≥ order[i].
TEST(Made, ContextReachesEveryOutputAndKeepsTheOrdering) {
  for (Index blocks : {Index(0), Index(2)}) {
    Rng rng(5);
    MadeOptions o = options({6, 6}, 2, blocks);
    o.context_features = 3;
    const std::vector<Index> order{2, 0, 3, 1};
    Made made(order, o, rng);
    const Matrix reach = made.connectivity();
    ASSERT_EQ(reach.shape(1), 7u);
    for (Index r = 0; r < reach.shape(0); ++r) {
      const Index i = r % 4;
      for (Index j = 0; j < 4; ++j) EXPECT_EQ(reach(r, j), order[j] < order[i] ? 1.0 : 0.0);
      for (Index j = 4; j < 7; ++j) EXPECT_EQ(reach(r, j), 1.0) << "output " << r;
    }
    // A context of the wrong width is refused.
    EXPECT_THROW(made.infer(rng.normal(2, 4), rng.normal(2, 2)), flows::DataError);
  }
}

// A MADE wide enough for the blocked products (units ordered by degree, empty
// blocks of the masks skipped) computes what the masked network of its
// parameters computes, written out densely here in the units' own order:
// plain  h_k = f(h_{k-1} (W_k ⊙ M_k)ᵀ + b_k),  y = h_L (W ⊙ M)ᵀ + b;
// residual as in made.hpp. Gradients match finite differences there too.
TEST(Made, BlockedProductsComputeTheDenseMaskedNetwork) {
  auto dense = [](const flows::nn::MaskedLinear& l, const Matrix& x) {
    // The parameters in the units' order (the layer keeps them in its compute order).
    Matrix w = flows::in_saved_order(l.weight(), l.weight().value) * l.mask();
    const Matrix b = flows::in_saved_order(l.bias(), l.bias().value);
    Matrix y = xt::linalg::dot(x, xt::transpose(w));
    for (Index i = 0; i < y.shape(0); ++i)
      for (Index j = 0; j < y.shape(1); ++j) y(i, j) += b(0, j);
    return y;
  };
  for (Index blocks : {Index(0), Index(1)})
    for (Index context : {Index(0), Index(2)})
      for (const OrderCase& c : orders(10)) {
        SCOPED_TRACE("blocks " + std::to_string(blocks) + ", context " + std::to_string(context) +
                     ", order " + c.name);
        Rng rng(21);
        MadeOptions o = options({64, 64}, 2, blocks);
        o.context_features = context;
        Made made(c.order, o, rng);
        perturb(made, rng);
        const Made& net = made;  // its layers, read-only
        Index blocked = 0;
        for (Index k = 0; k < net.layer_count(); ++k)
          blocked += net.layer(k).row_blocks().size() > 1;
        EXPECT_GE(blocked, 2u) << "the masks should be cut into row blocks";

        const Matrix x = rng.normal(6, 10), ctx = rng.normal(6, context);
        Matrix input = x;
        if (context > 0) input = xt::concatenate(xt::xtuple(x, ctx), 1);
        const Activation& f = o.activation;
        auto act = [&f](Matrix a) {
          Matrix h;
          f.forward(a, h);
          return h;
        };
        Matrix expected;
        const Index last = net.layer_count() - 1;
        if (blocks == 0) {
          Matrix h = input;
          for (Index k = 0; k < last; ++k) h = act(dense(net.layer(k), h));
          expected = dense(net.layer(last), h);
        } else {
          Matrix h = dense(net.layer(0), input);
          for (Index k = 0; k < blocks; ++k)
            h = h + dense(net.layer(2 + 2 * k), act(dense(net.layer(1 + 2 * k), act(h))));
          expected = dense(net.layer(last), act(h));
        }
        Matrix y;
        made.forward(x, ctx, y);
        ASSERT_EQ(y.shape(), expected.shape());
        for (Index k = 0; k < y.size(); ++k) EXPECT_NEAR(y.flat(k), expected.flat(k), 1e-12);
        EXPECT_EQ(made.infer(x, ctx), y);
      }
}

TEST(Made, BlockedGradientsMatchFiniteDifferences) {
  for (Index blocks : {Index(0), Index(1)}) {
    SCOPED_TRACE("blocks " + std::to_string(blocks));
    Rng rng(23);
    MadeOptions o = options({64, 64}, 2, blocks);
    o.context_features = 2;
    Made made(flows::nn::random_order(10, rng), o, rng);
    // Off the initial values (the residual branch starts near zero), but
    // gently: 64-wide tanh layers with large weights make the loss so big
    // that rounding dominates the central differences.
    for (flows::Parameter* p : made.parameters())
      p->value += 0.05 * rng.normal(p->value.shape(0), p->value.shape(1));
    const auto result = check_gradients(as_conditional_function(made), rng.normal(4, 12));
    EXPECT_TRUE(result.ok) << result.report;
  }
}
