#pragma once
#include <string>
#include <vector>

#include "flows/export.hpp"
#include "flows/rng.hpp"
#include "flows/tensor.hpp"

namespace flows::nn {

// The masks of MADE, the masked autoencoder for distribution estimation
// (Germain, Gregor, Murray & Larochelle 2015, "MADE: Masked Autoencoder for
// Distribution Estimation", sec. 4). Every unit gets a degree; a hidden unit of
// degree m' sees units of the layer below with degree m ≤ m', and an output of
// degree d sees hidden units with degree < d (strictly), so output i depends
// only on inputs that come before input i in the ordering.
//
// An ordering is given as `order`, with order[i] the 0-based position of input
// i in the autoregressive order (as zuko's `order`): input i has degree
// order[i] + 1, and output i may depend on input j iff order[j] < order[i].
//
// Output layout with out_multiplier k: k blocks of D, output unit b·D + i is
// parameter b of dimension i (b < k, i < D). A MAF with k = 2 reads the shifts
// from columns [0, D) and the log-scales from [D, 2D); a spline with K bins
// takes k = 3K - 1 blocks.

// 0, 1, …, D-1: input 0 comes first.
FLOWS_API std::vector<Index> natural_order(Index dim);
// D-1, …, 0: input D-1 comes first.
FLOWS_API std::vector<Index> reversed_order(Index dim);
// A uniformly random permutation of 0..D-1, from rng.
FLOWS_API std::vector<Index> random_order(Index dim, Rng& rng);
// By name: "natural", "reversed" or "random" (which draws from rng); another
// name is a ConfigError listing these.
FLOWS_API std::vector<Index> make_order(const std::string& name, Index dim, Rng& rng);
FLOWS_API const std::vector<std::string>& order_names();
// Raises ConfigError unless order is a permutation of 0..size-1.
FLOWS_API void check_order(const std::vector<Index>& order);

// Degrees of the inputs: order[i] + 1, in 1..D.
FLOWS_API std::vector<Index> input_degrees(const std::vector<Index>& order);
// Degrees of a hidden layer of `width` units for D inputs: unit j gets
// (j mod (D-1)) + 1, cycling through 1..D-1 (the deterministic assignment of
// nflows and the MADE reference code). A unit of degree D would feed no output,
// so D never occurs; width ≥ D-1 lets every input reach the outputs. For D = 1
// every hidden unit gets degree 0: it sees no input, and the single output
// depends on nothing but the biases, as it must.
//
// With a context (conditional MADE; the context inputs have degree 0) the
// cycle is 0..D-1 instead: units of degree 0 see the context alone and feed
// every output, so even the first dimension of the order depends on the
// context (as zuko's masked MLP allows; a MADE without degree-0 units would
// leave it a constant).
FLOWS_API std::vector<Index> hidden_degrees(Index width, Index dim, bool with_context = false);

// M[j, i] = 1 iff out_degrees[j] ≥ in_degrees[i] (into a hidden layer); shape
// out x in, like the weight it masks.
FLOWS_API Matrix hidden_mask(const std::vector<Index>& in_degrees,
                             const std::vector<Index>& out_degrees);
// The output layer's mask, shape (k·D) x in, for the layer below with
// in_degrees and the D inputs with dim_degrees (from input_degrees()):
// M[b·D + i, j] = 1 iff dim_degrees[i] > in_degrees[j] (strict).
FLOWS_API Matrix output_mask(const std::vector<Index>& in_degrees,
                             const std::vector<Index>& dim_degrees, Index out_multiplier);

// The masks of a MADE with hidden layer widths `hidden` (may be empty: one
// masked layer straight from inputs to outputs), one per layer, for
// MLP(masks, activation, rng). Hidden degrees as hidden_degrees().
FLOWS_API std::vector<Matrix> made_masks(const std::vector<Index>& order,
                                         const std::vector<Index>& hidden,
                                         Index out_multiplier = 1);

// D x D: A[i, j] = 1 iff output i may depend on input j (order[j] < order[i]);
// strictly triangular once rows and columns are sorted by order.
FLOWS_API Matrix autoregressive_connectivity(const std::vector<Index>& order);

}  // namespace flows::nn
