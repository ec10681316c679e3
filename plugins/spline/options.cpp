#include "options.hpp"

#include <cmath>

#include <flows/nn/activation.hpp>

namespace flows::spline {

CouplingNetworkOptions CouplingNetworkOptions::read(ConfigNode& node) {
  CouplingNetworkOptions o;
  node.read("layers", o.layers);
  node.read("hidden", o.hidden);
  node.read("activation", o.activation);
  node.read("identity_init", o.identity_init);
  node.expect(o.layers >= 1 && o.layers <= 1000, "layers", "must be in [1, 1000]");
  bool positive = true;
  for (Index h : o.hidden) positive = positive && h > 0;
  node.expect(positive, "hidden", "every width must be positive");
  node.expect_one_of("activation", o.activation, nn::Activation::names());
  return o;
}

NsfCouplingOptions NsfCouplingOptions::from(ConfigNode& node) {
  NsfCouplingOptions o;
  o.network = CouplingNetworkOptions::read(node);
  o.spline = SplineOptions::read(node);
  node.finish();
  return o;
}

AffineCouplingOptions AffineCouplingOptions::from(ConfigNode& node) {
  AffineCouplingOptions o;
  o.network = CouplingNetworkOptions::read(node);
  node.read("log_scale_bound", o.log_scale_bound);
  node.expect(std::isfinite(o.log_scale_bound) && o.log_scale_bound > 0, "log_scale_bound",
              "must be a positive number");
  node.finish();
  return o;
}

NsfAutoregressiveOptions NsfAutoregressiveOptions::from(ConfigNode& node) {
  NsfAutoregressiveOptions o;
  node.read("layers", o.layers);
  node.expect(o.layers >= 1 && o.layers <= 1000, "layers", "must be in [1, 1000]");
  nn::MadeOptions::read(node, o.made);
  o.spline = SplineOptions::read(node);
  node.read("identity_init", o.identity_init);
  node.finish();
  return o;
}

}  // namespace flows::spline
