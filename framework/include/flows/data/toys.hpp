#pragma once
#include <string>
#include <vector>

#include "flows/export.hpp"
#include "flows/rng.hpp"
#include "flows/tensor.hpp"

namespace flows {

// The built-in two-dimensional toy distributions, the standard test beds of
// density estimation papers (scikit-learn's make_moons/make_circles; FFJORD's
// toy generators, Grathwohl et al. 2019). make_toy() draws n points (n x 2) of
// the named toy. Every draw comes from `rng`, so a seed reproduces it. `noise`
// (>= 0) means, per toy (default in brackets):
//   moons [0.05], circles [0.08]  std of Gaussian noise added to each coordinate
//   8gaussians [0.5]              std of each component before the 1/1.414 scaling
//   checkerboard [0]              std of Gaussian jitter (the reference has none)
//   pinwheel [0.1]                tangential std of each arm
//   spirals [0.1], rings [0.08]   std of Gaussian noise added to each coordinate
// An unknown name raises ConfigError listing the valid ones; negative noise too.
FLOWS_API Matrix make_toy(const std::string& name, Index n, Real noise, Rng& rng);

// The toy names, in the order the documentation lists them.
FLOWS_API const std::vector<std::string>& toy_names();

// The noise a toy uses unless told otherwise (moons 0.05, circles 0.08, ...).
FLOWS_API Real toy_default_noise(const std::string& name);

}  // namespace flows
