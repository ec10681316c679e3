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
// A matrix of another element type: the float32 buffers inside networks
// (precision.hpp).
template <class T>
using MatrixOf = xt::xtensor<T, 2>;
// One row per sample, one column per dimension.
using Matrix = MatrixOf<Real>;
// One entry per sample (log-densities, log-determinants).
using Vector = xt::xtensor<Real, 1>;
using Index = std::size_t;

}  // namespace flows
