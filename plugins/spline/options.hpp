#pragma once
#include <string>
#include <vector>

#include <flows/config.hpp>
#include <flows/nn/made.hpp>
#include <flows/tensor.hpp>

#include "rational_quadratic_spline.hpp"

namespace flows::spline {

// The stack and network keys shared by the coupling bijectors.
struct CouplingNetworkOptions {
  Index layers = 5;                   // coupling layers in the stack (masks alternate)
  std::vector<Index> hidden{64, 64};  // hidden widths of each layer's MLP
  std::string activation = "relu";    // nonlinearity between hidden layers
  // The MLP's last layer starts at zero with biases that make each transform
  // the identity, so the stack starts as the identity map.
  bool identity_init = true;

  // Reads and checks the four keys; no finish() (the caller has more keys).
  static CouplingNetworkOptions read(ConfigNode& node);
};

// `nsf_coupling`: coupling layers whose transformer is a rational-quadratic spline.
struct NsfCouplingOptions {
  CouplingNetworkOptions network;  // layers, hidden, activation, identity_init
  SplineOptions spline;  // bins, tail_bound, min_bin_width, min_bin_height, min_derivative

  static NsfCouplingOptions from(ConfigNode& node);
};

// `affine_coupling`: RealNVP's affine coupling layers.
struct AffineCouplingOptions {
  CouplingNetworkOptions network;  // layers, hidden, activation, identity_init
  Real log_scale_bound = 3.0;      // S in s = S tanh(r / S): |log-scale| < S per layer

  static AffineCouplingOptions from(ConfigNode& node);
};

// `nsf_autoregressive`: autoregressive layers, a MADE giving each dimension's
// spline parameters from the dimensions before it.
struct NsfAutoregressiveOptions {
  Index layers = 5;           // autoregressive layers; the order reverses from one to the next
  nn::MadeOptions made;       // hidden ([64, 64]), activation (relu), residual_blocks (0)
  SplineOptions spline;       // bins, tail_bound, min_bin_width, min_bin_height, min_derivative
  bool identity_init = true;  // each MADE's output layer starts at the identity spline

  static NsfAutoregressiveOptions from(ConfigNode& node);
};

}  // namespace flows::spline
