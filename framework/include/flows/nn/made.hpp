#pragma once
#include <memory>
#include <vector>

#include "flows/config.hpp"
#include "flows/export.hpp"
#include "flows/nn/activation.hpp"
#include "flows/nn/masked_linear.hpp"
#include "flows/parameter.hpp"
#include "flows/rng.hpp"
#include "flows/tensor.hpp"

namespace flows::nn {

// The shape of a MADE network. Plugins that condition on a MADE (MAF, the
// autoregressive spline) read these keys from their YAML node with read().
struct FLOWS_API MadeOptions {
  // Widths of the hidden layers (at least one). With residual_blocks > 0 every
  // entry must be equal; the width is hidden[0] and the count is unused.
  std::vector<Index> hidden{64, 64};
  // Nonlinearity between layers (relu, tanh, elu, selu, silu, identity).
  Activation activation{Activation::Kind::relu};
  // Outputs per input dimension k: the output has k·D columns, k blocks of D
  // (column b·D + i is parameter b of dimension i; see made_masks.hpp).
  Index out_multiplier = 1;
  // 0: a plain MADE (masked MLP). B > 0: a residual MADE, B masked residual
  // blocks of two layers each between the input and output layers.
  Index residual_blocks = 0;
  // Output layer's weight and bias start at zero (the output is 0 for every
  // input, so e.g. an affine autoregressive layer starts as the identity).
  bool zero_output = false;
  // Columns of a context c that every output may depend on (conditional
  // MADE): they enter the first layer beside x with degree 0, so every hidden
  // unit sees them and the autoregressive masks of x are unchanged.
  Index context_features = 0;
  // The type the products and activations run in (parameters stay float64).
  Precision precision = Precision::float64;

  // Reads the keys "hidden", "activation" and "residual_blocks" (when present)
  // from `node` and checks them; does not call finish(), so the caller's own
  // keys can sit in the same node.
  static void read(ConfigNode& node, MadeOptions& options);
};

// MADE, the masked autoencoder for distribution estimation (Germain, Gregor,
// Murray & Larochelle 2015): an MLP whose weights are masked (made_masks.hpp)
// so that output column b·D + i depends only on the inputs j with
// order[j] < order[i]. Its Jacobian ∂y/∂x is therefore strictly triangular in
// the ordering, which is what makes the autoregressive flows built on it cheap
// to evaluate.
//
// With residual blocks it is the residual MADE of Nash & Durkan 2019
// ("Autoregressive Energy Machines", sec. 3; nflows' ResidualMADE):
//   h₀ = x W₀ᵀ + b₀                                  (masked, degrees as the hidden layer)
//   hₖ = hₖ₋₁ + f(f(hₖ₋₁) Aₖᵀ + aₖ) Bₖᵀ + bₖ       (k = 1..B, pre-activation blocks)
//   y  = f(h_B) W_outᵀ + b_out
// where every hidden unit of every block keeps the degrees of h₀, so the masks
// of Aₖ and Bₖ (m_out ≥ m_in) and the identity path keep the autoregressive
// property. Bₖ and bₖ start in U(-1e-3, 1e-3), so each block starts near the
// identity. Without residual blocks:
//   h₀ = x,  hₖ = f(hₖ₋₁ Wₖᵀ + bₖ) (k = 1..L),  y = h_L W_outᵀ + b_out.
//
// Training: forward() records what backward() needs in member buffers reused
// while the batch size stays the same (no allocation per step). backward() may
// be called several times after one forward() (e.g. vector-Jacobian products
// at one point); each call with accumulate_param_grads *adds* to the
// gradients. Inference: infer() is const and keeps no state; pass a Workspace
// to reuse its buffers across calls (e.g. the D passes of an inverse).
class FLOWS_API Made {
 public:
  // The buffers of one pass in the compute type T: the training record
  // (see made.cpp for each slot) or infer's scratch.
  template <class T>
  struct Buffers {
    MatrixOf<T> input, y, h, a, b, grad_y, grad_a, grad_b, grad_c, grad_input;
    std::vector<MatrixOf<T>> out, slope, hidden;
    std::vector<DenseCopy<T>> copies;  // infer's weight copies
  };
  // Buffers for infer(); opaque, reusable across calls of any batch size.
  struct Workspace {
    PerPrecision<Buffers> buffers;
  };

  // `order` as in made_masks.hpp (order[i] = position of input i; natural_order,
  // reversed_order, random_order, or explicit). ConfigError for an invalid
  // order or options (empty hidden, zero width, unequal widths with residual
  // blocks, out_multiplier 0).
  Made(const std::vector<Index>& order, const MadeOptions& options, Rng& rng);
  // Parameters point into layers_, which live on the heap: moving keeps them valid.
  Made(Made&&) = default;

  Index dim() const { return order_.size(); }
  Index context_features() const { return options_.context_features; }
  Index out_multiplier() const { return options_.out_multiplier; }
  Index out_features() const { return options_.out_multiplier * dim(); }
  const std::vector<Index>& order() const { return order_; }
  const MadeOptions& options() const { return options_; }

  // Training forward pass: y (n x k·D) from x (n x D) and the context (n x
  // context_features, or empty when there are none); records for backward().
  // DataError when x or the context has the wrong width.
  void forward(const Matrix& x, const Matrix& context, Matrix& y);
  // For the last forward(): writes dL/dx into grad_x, *adds* dL/dc to
  // grad_context when it is given, and, unless accumulate_param_grads is
  // false, *adds* dL/dθ to the parameters' gradients.
  void backward(const Matrix& grad_y, Matrix& grad_x, Matrix* grad_context = nullptr,
                bool accumulate_param_grads = true);

  // y for x, keeping no state.
  void infer(const Matrix& x, const Matrix& context, Matrix& y, Workspace& workspace) const;
  Matrix infer(const Matrix& x, const Matrix& context = {}) const;

  // Every layer's weight then bias, input layer first, output layer last;
  // names "input.weight", "block0.a.weight", "hidden1.weight", "output.bias",
  // ... Pointers stay valid while this object lives (also across a move).
  ParameterList parameters();
  Parameter& output_weight();
  Parameter& output_bias();

  // (k·D) x (D + context_features): entry [r, j] is 1 when some path of
  // unmasked weights links input j to output r (computed from the masks
  // alone), else 0. Context columns come after the D inputs.
  Matrix connectivity() const;

  // The masked layers in the order of parameters(): their masks in the units'
  // own order, and the row blocks their products run on.
  Index layer_count() const { return layers_.size(); }
  const MaskedLinear& layer(Index k) const { return *layers_[k]; }

 private:
  // [x, context] into `input` in T (x alone when there is no context).
  template <class T>
  void join_input(const Matrix& x, const Matrix& context, MatrixOf<T>& input) const;
  template <class T>
  void forward_as(const Matrix& x, const Matrix& context, Matrix& y);
  template <class T>
  void backward_as(const Matrix& grad_y, Matrix& grad_x, Matrix* grad_context,
                   bool accumulate_param_grads);
  template <class T>
  void infer_as(const Matrix& x, const Matrix& context, Matrix& y, Buffers<T>& b) const;
  // y from the output layer's result (columns in the compute order).
  template <class T>
  void output_to(const MatrixOf<T>& computed, Matrix& y) const;
  bool residual() const { return options_.residual_blocks > 0; }
  MaskedLinear& layer(Index k) { return *layers_[k]; }

  std::vector<Index> order_;
  MadeOptions options_;
  // Plain: hidden layers then output. Residual: input layer, then A₁, B₁, …,
  // A_B, B_B, then output.
  std::vector<std::unique_ptr<MaskedLinear>> layers_;
  // The compute order of the input units (x then context) and of the outputs
  // (units sorted by degree; see the constructor); empty: their own order.
  std::vector<Index> input_units_, output_units_;
  // Their inverses: the compute position of each unit (empty when in order).
  std::vector<Index> input_positions_, output_positions_;

  // Training record of the last forward, in the network's precision.
  PerPrecision<Buffers> record_;
  bool recorded_ = false;
};

}  // namespace flows::nn
