// The fused small dense kernel (small_dense_forward, through
// dense_layer_infer) against a plain double-precision reference, values and
// the activation's derivatives: every activation, accumulate, row and column
// tails of each SIMD width, masked row blocks whose unused entries are never
// read, float and double; and the backward kernels (input and weight
// gradients) against the same reference.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <xsimd/xsimd.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "flows/nn/activation.hpp"
#include "flows/nn/dense.hpp"
#include "flows/nn/masked_linear.hpp"
#include "flows/rng.hpp"

namespace {

using flows::Index;
using flows::Matrix;
using flows::MatrixOf;
using flows::Real;
using flows::nn::Activation;
using flows::nn::DenseCopy;
using flows::nn::RowBlock;

struct Shape {
  Index rows, in, out;
};

// Shapes around the kernel's panel and row-group sizes (6 and 8 rows; 8 or
// 16 floats, 4 or 8 doubles per vector; 2 or 4 vectors per panel; narrow
// layers of 1 to 8 outputs, with row tails and inputs that are not whole
// vectors), and past small_dense_suits, so that the BLAS path is checked
// against the same reference; the kernel itself runs on every shape too
// (direct).
const std::vector<Shape> kShapes{
    {1, 2, 64},    {7, 64, 64},   {13, 64, 4}, {50, 64, 23},  {100, 64, 46}, {17, 5, 3},
    {97, 64, 128}, {49, 128, 70}, {3, 1, 1},   {130, 33, 17}, {61, 300, 80}, {29, 64, 2},
    {31, 37, 3},   {9, 70, 5},    {23, 64, 6}, {15, 19, 7},   {35, 64, 8}};

Matrix uniform(Index rows, Index cols, flows::Rng& rng) {
  return rng.uniform(rows, cols) * 2 - 1;
}

// A staircase mask whose row i keeps its first 1 + (i * in) / out columns,
// the shape a MADE's masks take with units sorted by degree.
Matrix staircase(Index out, Index in) {
  Matrix m = xt::zeros<Real>({out, in});
  for (Index i = 0; i < out; ++i)
    for (Index j = 0; j < 1 + (i * in) / out; ++j) m(i, j) = 1;
  return m;
}

// As a MADE's output mask with units sorted by degree: the outputs of the
// first input see no hidden unit (here the first third of the rows), the rest
// a staircase.
Matrix with_empty_rows(Index out, Index in) {
  Matrix m = staircase(out, in);
  for (Index i = 0; i < out / 3; ++i)
    for (Index j = 0; j < in; ++j) m(i, j) = 0;
  return m;
}

template <class T>
MatrixOf<T> as(const Matrix& m) {
  MatrixOf<T> r(m.shape());
  for (Index k = 0; k < m.size(); ++k) r.data()[k] = static_cast<T>(m.data()[k]);
  return r;
}

enum class Masking { none, staircase, empty_rows };

template <class T>
void check_against_reference(const Shape& s, Activation f, bool accumulate, Masking masking,
                             bool direct) {
  const bool masked = masking != Masking::none;
  flows::Rng rng(s.rows * 1000 + s.in * 10 + s.out);
  const Matrix x = uniform(s.rows, s.in, rng), bias = uniform(1, s.out, rng);
  Matrix w = uniform(s.out, s.in, rng) * 2;
  const Matrix y0 = uniform(s.rows, s.out, rng);
  std::vector<RowBlock> blocks;
  DenseCopy<T> copy;
  if (masked) {
    const Matrix mask =
        masking == Masking::staircase ? staircase(s.out, s.in) : with_empty_rows(s.out, s.in);
    w *= mask;
    blocks = flows::nn::plan_row_blocks(mask, 5);
    copy.weight = as<T>(w);
    // Entries past a block's col_end are not kept by a blocked layer's copy:
    // NaN there fails the test if the kernel reads them.
    for (const RowBlock& b : blocks)
      for (Index i = b.row_begin; i < b.row_end; ++i)
        for (Index j = b.col_end; j < s.in; ++j)
          copy.weight(i, j) = std::numeric_limits<T>::quiet_NaN();
  } else {
    copy.weight = as<T>(w);
  }
  copy.bias = as<T>(bias);
  const MatrixOf<T> xt = as<T>(x);
  MatrixOf<T> y = as<T>(y0);
  MatrixOf<T> slope;
  if (direct) {  // the kernel itself, whatever small_dense_suits says
    copy.packed.pack(copy.weight, copy.bias.data(), masked ? &blocks : nullptr);
    flows::nn::small_dense_forward(xt, copy.packed, f, y, accumulate, &slope);
  } else {
    flows::nn::dense_layer_infer(copy, masked ? &blocks : nullptr, xt, f, y, accumulate, &slope);
  }

  ASSERT_EQ(y.shape(0), s.rows);
  ASSERT_EQ(y.shape(1), s.out);
  const Real eps = std::numeric_limits<T>::epsilon();
  for (Index r = 0; r < s.rows; ++r)
    for (Index j = 0; j < s.out; ++j) {
      Real sum = bias(0, j), magnitude = std::abs(bias(0, j));
      for (Index k = 0; k < s.in; ++k) {
        sum += x(r, k) * w(j, k);
        magnitude += std::abs(x(r, k) * w(j, k));
      }
      if (accumulate) {
        sum += y0(r, j);
        magnitude += std::abs(y0(r, j));
      }
      const Real expected = f.value(sum);
      // Rounding of the sum, amplified by at most max |f'| < 2, and of f.
      const Real tol = 4 * eps * (2 * (magnitude + 1) + std::abs(expected));
      ASSERT_NEAR(static_cast<Real>(y(r, j)), expected, tol)
          << f.name() << (accumulate ? " accumulate" : "")
          << (masking == Masking::staircase    ? " staircase"
              : masking == Masking::empty_rows ? " empty rows"
                                               : "")
          << (direct ? " direct" : "") << " shape " << s.rows << "x" << s.in << "->" << s.out
          << " at (" << r << ", " << j << ")";
      // f' is Lipschitz with a constant below 2 for every activation but
      // relu, whose pre-activations here are never within rounding of 0.
      ASSERT_NEAR(static_cast<Real>(slope(r, j)), f.derivative(sum), tol)
          << "f' of " << f.name() << " at (" << r << ", " << j << ")";
    }
}

template <class T>
void check_all() {
  for (const Shape& s : kShapes)
    for (const std::string& name : Activation::names())
      for (bool accumulate : {false, true})
        for (Masking masking : {Masking::none, Masking::staircase, Masking::empty_rows})
          for (bool direct : {false, true})
            check_against_reference<T>(s, Activation::from_name(name), accumulate, masking, direct);
}

TEST(SmallDense, MatchesReferenceInFloat) {
  check_all<float>();
}
TEST(SmallDense, MatchesReferenceInDouble) {
  check_all<double>();
}

// The shapes above include layers on both sides of the limits.
TEST(SmallDense, SizeLimitSplitsTheShapes) {
  EXPECT_TRUE(flows::nn::small_dense_suits<float>(64, 64));
  EXPECT_FALSE(flows::nn::small_dense_suits<float>(300, 80));  // past 64 KiB
}

// The packed panels cover every output column once, and a masked panel reads
// no further than its last column's block.
TEST(SmallDense, PanelsCoverTheOutputs) {
  const Matrix mask = staircase(70, 40);
  const auto blocks = flows::nn::plan_row_blocks(mask, 4);
  flows::nn::PackedDense<float> packed;
  const MatrixOf<float> w = as<float>(mask);
  packed.pack(w, nullptr, &blocks);
  Index next = 0;
  for (const auto& p : packed.panels) {
    EXPECT_EQ(p.column_begin, next);
    next += p.columns;
    Index needed = 0;
    for (Index j = p.column_begin; j < p.column_begin + p.columns; ++j)
      for (Index k = 0; k < 40; ++k)
        if (mask(j, k) != 0) needed = std::max(needed, k + 1);
    EXPECT_GE(p.inputs, needed);
    EXPECT_LE(p.inputs, 40);
  }
  EXPECT_EQ(next, 70);
  EXPECT_LT(packed.panels.front().inputs, 40);  // the staircase's first panel is cut
}

// Output columns that see no input (a MADE's outputs for its first input)
// are planned as a block of their own, and whole SIMD vectors of them are a
// panel that reads nothing: only the bias is computed there.
TEST(SmallDense, ColumnsWithoutInputsAreAPanelOfTheirOwn) {
  constexpr Index width = xsimd::batch<float>::size;
  const Index out = 3 * width + 5, empty = width + 3;  // one whole vector without inputs
  Matrix mask = xt::ones<Real>({out, Index(40)});
  for (Index i = 0; i < empty; ++i)
    for (Index j = 0; j < 40; ++j) mask(i, j) = 0;
  const auto blocks = flows::nn::plan_row_blocks(mask, 32);
  ASSERT_GE(blocks.size(), 2u);
  EXPECT_EQ(blocks[0].row_begin, 0u);
  EXPECT_EQ(blocks[0].row_end, empty);
  EXPECT_EQ(blocks[0].col_end, 0u);
  EXPECT_EQ(blocks[1].row_begin, empty);
  flows::nn::PackedDense<float> packed;
  packed.pack(as<float>(mask), nullptr, &blocks);
  ASSERT_GE(packed.panels.size(), 2u);
  EXPECT_EQ(packed.panels[0].columns, width);
  EXPECT_EQ(packed.panels[0].inputs, 0u);
  for (std::size_t k = 1; k < packed.panels.size(); ++k) EXPECT_EQ(packed.panels[k].inputs, 40u);
}

// Through the layer: infer with f is infer followed by f.forward.
TEST(SmallDense, MaskedLinearFusesTheActivation) {
  flows::Rng rng(3);
  flows::nn::MaskedLinear layer(staircase(64, 64), rng);
  const MatrixOf<float> x = as<float>(uniform(33, 64, rng));
  const Activation f(Activation::Kind::tanh);
  DenseCopy<float> copy;
  MatrixOf<float> fused, plain;
  layer.infer(x, fused, copy, f);
  layer.infer(x, plain, copy);
  f.forward(plain, plain);
  ASSERT_EQ(fused.shape(), plain.shape());
  for (Index k = 0; k < fused.size(); ++k) EXPECT_EQ(fused.data()[k], plain.data()[k]);
}

}  // namespace

namespace {

// An input past a row block's col_end never enters that block's sums, even
// when it is not finite (a masked weight times inf would be NaN): the BLAS
// path skips those columns, and so does the narrow kernel.
TEST(SmallDense, InputsPastAMaskedRowsEndDoNotEnterItsSum) {
  for (Index out : {Index(2), Index(4), Index(40)}) {
    Matrix mask = xt::zeros<Real>({out, Index(19)});
    for (Index i = 0; i < out; ++i) mask(i, 0) = 1;
    const auto blocks = flows::nn::plan_row_blocks(mask, 32);
    DenseCopy<float> copy;
    copy.weight = as<float>(mask * 0.5);
    copy.bias = MatrixOf<float>({1, out});
    copy.bias.fill(0.25f);
    MatrixOf<float> x = xt::zeros<float>({Index(3), Index(19)});
    for (Index r = 0; r < 3; ++r) {
      x(r, 0) = 2;
      for (Index k = 1; k < 19; ++k) x(r, k) = std::numeric_limits<float>::infinity();
    }
    MatrixOf<float> y;
    flows::nn::dense_layer_infer(copy, &blocks, x, Activation(Activation::Kind::identity), y,
                                 false);
    for (float v : y) EXPECT_EQ(v, 1.25f) << "out " << out;
  }
}

}  // namespace

namespace {

// The backward kernels against the same kind of reference: the input
// gradient (dL/dy) W ⊙ slope through the transposed packing, and the weight
// gradient (dL/dy)ᵀ x inside the row blocks, which writes nothing outside
// them; with NaN in the copy's entries past each block's col_end, as above.
template <class T>
void check_backward_against_reference(const Shape& s, Masking masking, bool with_slope) {
  const bool masked = masking != Masking::none;
  flows::Rng rng(s.rows * 1000 + s.in * 10 + s.out + 7);
  const Matrix x = uniform(s.rows, s.in, rng), grad_y = uniform(s.rows, s.out, rng);
  const Matrix slope = uniform(s.rows, s.in, rng);
  Matrix w = uniform(s.out, s.in, rng) * 2;
  std::vector<RowBlock> blocks{RowBlock{0, s.out, s.in}};
  if (masked) {
    const Matrix mask =
        masking == Masking::staircase ? staircase(s.out, s.in) : with_empty_rows(s.out, s.in);
    w *= mask;
    blocks = flows::nn::plan_row_blocks(mask, 5);
  }
  DenseCopy<T> copy;
  copy.weight = as<T>(w);
  for (const RowBlock& b : blocks)
    for (Index i = b.row_begin; i < b.row_end; ++i)
      for (Index j = b.col_end; j < s.in; ++j)
        copy.weight(i, j) = std::numeric_limits<T>::quiet_NaN();
  const MatrixOf<T> x_t = as<T>(x), grad_y_t = as<T>(grad_y), slope_t = as<T>(slope);
  const std::string where = fmt::format("shape {}x{}->{}{}{}", s.rows, s.in, s.out,
                                        masking == Masking::staircase    ? " staircase"
                                        : masking == Masking::empty_rows ? " empty rows"
                                                                         : "",
                                        with_slope ? " with slope" : "");
  const Real eps = std::numeric_limits<T>::epsilon();

  MatrixOf<T> grad_x({s.rows, s.in});
  copy.packed_transposed.pack_transposed(copy.weight, masked ? &blocks : nullptr);
  flows::nn::small_dense_input_gradient<T>(copy.packed_transposed, grad_y_t, grad_x,
                                           with_slope ? &slope_t : nullptr);
  for (Index r = 0; r < s.rows; ++r)
    for (Index c = 0; c < s.in; ++c) {
      Real sum = 0, magnitude = 0;
      for (Index k = 0; k < s.out; ++k) {
        sum += grad_y(r, k) * w(k, c);
        magnitude += std::abs(grad_y(r, k) * w(k, c));
      }
      const Real factor = with_slope ? slope(r, c) : 1;
      ASSERT_NEAR(static_cast<Real>(grad_x(r, c)), sum * factor,
                  4 * eps * (magnitude + 1) * std::abs(factor) + 1e-30)
          << "input gradient, " << where << " at (" << r << ", " << c << ")";
    }

  if (!flows::nn::small_weight_gradient_suits<T>(s.in, s.out)) return;
  const T sentinel = T(12345);
  MatrixOf<T> grad_w({s.out, s.in});
  grad_w.fill(sentinel);
  flows::nn::small_dense_weight_gradient(x_t, grad_y_t, masked ? &blocks : nullptr, grad_w);
  for (const RowBlock& b : blocks)
    for (Index j = b.row_begin; j < b.row_end; ++j) {
      for (Index c = 0; c < b.col_end; ++c) {
        Real sum = 0, magnitude = 0;
        for (Index i = 0; i < s.rows; ++i) {
          sum += grad_y(i, j) * x(i, c);
          magnitude += std::abs(grad_y(i, j) * x(i, c));
        }
        ASSERT_NEAR(static_cast<Real>(grad_w(j, c)), sum, 4 * eps * (magnitude + 1))
            << "weight gradient, " << where << " at (" << j << ", " << c << ")";
      }
      for (Index c = b.col_end; c < s.in; ++c)
        ASSERT_EQ(grad_w(j, c), sentinel) << "written outside its block, " << where;
    }
}

template <class T>
void check_backward_all() {
  std::vector<Shape> shapes = kShapes;
  // Whole vectors of inputs for the weight gradient, in both types, with row
  // groups that do not divide the outputs and batches of 0 and 1 rows.
  for (Shape s : {Shape{37, 64, 64}, Shape{256, 64, 4}, Shape{5, 32, 70}, Shape{1, 16, 13},
                  Shape{0, 64, 64}, Shape{64, 128, 100}})
    shapes.push_back(s);
  for (const Shape& s : shapes)
    for (Masking masking : {Masking::none, Masking::staircase, Masking::empty_rows})
      for (bool with_slope : {false, true})
        check_backward_against_reference<T>(s, masking, with_slope);
}

TEST(SmallDense, BackwardMatchesReferenceInFloat) {
  check_backward_all<float>();
}
TEST(SmallDense, BackwardMatchesReferenceInDouble) {
  check_backward_all<double>();
}

// MaskedLinear's backward with a slope is its backward times the slope, on
// the fused kernel (64 x 64) and on BLAS (past small_dense_suits).
TEST(SmallDense, MaskedLinearBackwardFusesTheSlope) {
  for (Index width : {Index(64), Index(256)}) {
    flows::Rng rng(5);
    flows::nn::MaskedLinear layer(staircase(width, width), rng);
    const MatrixOf<float> x = as<float>(uniform(21, width, rng));
    const MatrixOf<float> grad_y = as<float>(uniform(21, width, rng));
    const MatrixOf<float> slope = as<float>(uniform(21, width, rng));
    MatrixOf<float> y, f_slope, fused, plain;
    layer.forward(x, y, Activation(Activation::Kind::identity), f_slope);
    layer.backward(x, grad_y, fused, false, &slope);
    layer.backward(x, grad_y, plain, false);
    ASSERT_EQ(fused.shape(), plain.shape());
    for (Index k = 0; k < fused.size(); ++k)
      EXPECT_FLOAT_EQ(fused.data()[k], plain.data()[k] * slope.data()[k]) << "width " << width;
  }
}

}  // namespace
