#pragma once
// The one header through which the SDK and plugins see xtensor.
#include <cstddef>

#include <xtensor/xbuilder.hpp>
#include <xtensor/xnoalias.hpp>
#include <xtensor/xtensor.hpp>
#include <xtensor/xview.hpp>

namespace flows {

// Real is the single switch for precision.
using Real = double;
// One row per sample, one column per dimension.
using Matrix = xt::xtensor<Real, 2>;
// One entry per sample (log-densities, log-determinants).
using Vector = xt::xtensor<Real, 1>;
using Index = std::size_t;

}  // namespace flows
