#include "flows/data/toys.hpp"

#include <cmath>
#include <utility>

#include <fmt/format.h>

#include "flows/config.hpp"
#include "flows/error.hpp"

// The formulas follow scikit-learn's make_moons / make_circles
// (sklearn/datasets/_samples_generator.py) and the toy generators of FFJORD
// (Grathwohl et al. 2019, rtqichen/ffjord lib/toy_data.py), which torchcfm
// (Tong et al. 2023) reuses. The code is our own.

namespace flows {
namespace {

constexpr Real kPi = 3.14159265358979323846;

// numpy.linspace(start, stop, num, endpoint)[i].
Real linspace_at(Real start, Real stop, Index num, bool endpoint, Index i) {
  if (endpoint) {
    if (num <= 1) return start;
    return i + 1 == num ? stop : start + (stop - start) * Real(i) / Real(num - 1);
  }
  return start + (stop - start) * Real(i) / Real(num);
}

// Fisher-Yates over rows, as sklearn.utils.shuffle permutes samples.
void shuffle_rows(Matrix& m, Rng& rng) {
  const Index n = m.shape(0);
  for (Index i = n; i > 1; --i) {
    const Index j = rng.index(i);
    if (j == i - 1) continue;
    for (Index c = 0; c < m.shape(1); ++c) std::swap(m(i - 1, c), m(j, c));
  }
}

void add_noise(Matrix& m, Real std, Rng& rng) {
  if (std == 0) return;
  for (auto& v : m) v += std * rng.normal();
}

// Two interleaving half circles (sklearn make_moons): n/2 points on the outer
// half circle (cos t, sin t), t = linspace(0, π, n/2), the rest on the inner
// one (1 - cos t, 1 - sin t - 0.5); then shuffled and Gaussian noise of std
// `noise` added to each coordinate. x in [-1, 2], y in [-0.5, 1] before noise.
Matrix moons(Index n, Real noise, Rng& rng) {
  const Index n_out = n / 2;
  const Index n_in = n - n_out;
  Matrix x({n, 2});
  for (Index i = 0; i < n_out; ++i) {
    const Real t = linspace_at(0, kPi, n_out, true, i);
    x(i, 0) = std::cos(t);
    x(i, 1) = std::sin(t);
  }
  for (Index i = 0; i < n_in; ++i) {
    const Real t = linspace_at(0, kPi, n_in, true, i);
    x(n_out + i, 0) = 1 - std::cos(t);
    x(n_out + i, 1) = 1 - std::sin(t) - 0.5;
  }
  shuffle_rows(x, rng);
  add_noise(x, noise, rng);
  return x;
}

// Two concentric circles (sklearn make_circles, factor 0.5): n/2 points evenly
// spaced on the unit circle, the rest on the circle of radius 0.5, angles
// linspace(0, 2π, endpoint=False); shuffled, then Gaussian noise of std
// `noise` per coordinate.
Matrix circles(Index n, Real noise, Rng& rng) {
  const Real factor = 0.5;
  const Index n_out = n / 2;
  const Index n_in = n - n_out;
  Matrix x({n, 2});
  for (Index i = 0; i < n_out; ++i) {
    const Real t = linspace_at(0, 2 * kPi, n_out, false, i);
    x(i, 0) = std::cos(t);
    x(i, 1) = std::sin(t);
  }
  for (Index i = 0; i < n_in; ++i) {
    const Real t = linspace_at(0, 2 * kPi, n_in, false, i);
    x(n_out + i, 0) = factor * std::cos(t);
    x(n_out + i, 1) = factor * std::sin(t);
  }
  shuffle_rows(x, rng);
  add_noise(x, noise, rng);
  return x;
}

// A mixture of eight equally weighted Gaussians (FFJORD "8gaussians"): centres
// at radius 4 in the directions of the compass points and their diagonals,
// each of std `noise` (0.5), and the whole divided by 1.414, so the centres sit
// at radius ≈ 2.83 with std ≈ 0.35.
Matrix eight_gaussians(Index n, Real noise, Rng& rng) {
  const Real scale = 4;
  const Real h = 1 / std::sqrt(Real(2));
  const Real centers[8][2] = {{1, 0}, {-1, 0}, {0, 1}, {0, -1}, {h, h}, {h, -h}, {-h, h}, {-h, -h}};
  Matrix x({n, 2});
  for (Index i = 0; i < n; ++i) {
    const Real px = noise * rng.normal();
    const Real py = noise * rng.normal();
    const Index k = rng.index(8);
    x(i, 0) = (px + scale * centers[k][0]) / 1.414;
    x(i, 1) = (py + scale * centers[k][1]) / 1.414;
  }
  return x;
}

// A 4 x 4 checkerboard on [-4, 4)² (FFJORD "checkerboard"): x1 uniform on
// [-2, 2), x2 uniform on one of the two unit cells of its column that keep the
// board's colour, x2 = u - 2b + (floor(x1) mod 2) with u ~ U[0, 1), b ∈ {0, 1};
// both times 2. The reference has no noise; `noise` (default 0) adds Gaussian
// jitter of that std.
Matrix checkerboard(Index n, Real noise, Rng& rng) {
  Matrix x({n, 2});
  for (Index i = 0; i < n; ++i) {
    const Real x1 = rng.uniform() * 4 - 2;
    const Real u = rng.uniform();
    const Real b = Real(rng.index(2));
    const Real parity = std::floor(x1) - 2 * std::floor(std::floor(x1) / 2);  // Python's % 2
    x(i, 0) = 2 * x1;
    x(i, 1) = 2 * (u - 2 * b + parity);
  }
  add_noise(x, noise, rng);
  return x;
}

// Five curved arms (FFJORD "pinwheel", after Johnson et al. 2016): a point of
// arm k starts at (r, s) with r ~ N(1, 0.3²) radial and s ~ N(0, noise²)
// tangential (noise 0.1), is rotated by the angle 2πk/5 + 0.25·exp(r), and
// scaled by 2; arms hold n/5 points each (the remainder spread over the first
// arms), then the rows are shuffled.
Matrix pinwheel(Index n, Real noise, Rng& rng) {
  const Index classes = 5;
  const Real radial_std = 0.3;
  const Real rate = 0.25;
  Matrix x({n, 2});
  for (Index i = 0; i < n; ++i) {
    const Index k = i * classes / n;
    const Real r = radial_std * rng.normal() + 1;
    const Real s = noise * rng.normal();
    const Real angle = 2 * kPi * Real(k) / Real(classes) + rate * std::exp(r);
    const Real c = std::cos(angle);
    const Real sn = std::sin(angle);
    // Row vector (r, s) times [[c, -sn], [sn, c]].
    x(i, 0) = 2 * (r * c + s * sn);
    x(i, 1) = 2 * (-r * sn + s * c);
  }
  shuffle_rows(x, rng);
  return x;
}

// Two interleaved spirals (FFJORD "2spirals"): with t = sqrt(u)·3π (u uniform,
// so points spread evenly along the arc), one arm is
// (-t cos t + 0.5 u1, t sin t + 0.5 u2) and the other its negative; both are
// divided by 3, then Gaussian noise of std `noise` (0.1) is added; shuffled.
Matrix spirals(Index n, Real noise, Rng& rng) {
  const Index n_first = n - n / 2;
  Matrix x({n, 2});
  for (Index i = 0; i < n; ++i) {
    const Real t = std::sqrt(rng.uniform()) * 540 * (2 * kPi) / 360;
    const Real px = -std::cos(t) * t + rng.uniform() * 0.5;
    const Real py = std::sin(t) * t + rng.uniform() * 0.5;
    const Real sign = i < n_first ? 1 : -1;
    x(i, 0) = sign * px / 3;
    x(i, 1) = sign * py / 3;
  }
  add_noise(x, noise, rng);
  shuffle_rows(x, rng);
  return x;
}

// Four concentric rings (FFJORD "rings"): radii 3, 2.25, 1.5 and 0.75, a
// quarter of the points each (the innermost takes the remainder), evenly
// spaced in angle; shuffled, then Gaussian noise of std `noise` (0.08).
Matrix rings(Index n, Real noise, Rng& rng) {
  const Index quarter = n / 4;
  const Index counts[4] = {quarter, quarter, quarter, n - 3 * quarter};
  const Real radii[4] = {1.0, 0.75, 0.5, 0.25};
  Matrix x({n, 2});
  Index row = 0;
  for (int ring = 0; ring < 4; ++ring) {
    for (Index i = 0; i < counts[ring]; ++i, ++row) {
      const Real t = linspace_at(0, 2 * kPi, counts[ring], false, i);
      x(row, 0) = 3 * radii[ring] * std::cos(t);
      x(row, 1) = 3 * radii[ring] * std::sin(t);
    }
  }
  shuffle_rows(x, rng);
  add_noise(x, noise, rng);
  return x;
}

struct Toy {
  const char* name;
  Matrix (*make)(Index, Real, Rng&);
  Real default_noise;
};

const Toy kToys[] = {
    {"moons", moons, 0.05},
    {"circles", circles, 0.08},
    {"8gaussians", eight_gaussians, 0.5},
    {"checkerboard", checkerboard, 0.0},
    {"pinwheel", pinwheel, 0.1},
    {"spirals", spirals, 0.1},
    {"rings", rings, 0.08},
};

const Toy& find_toy(const std::string& name) {
  for (const Toy& toy : kToys)
    if (name == toy.name) return toy;
  std::string list;
  for (const auto& n : toy_names()) list += (list.empty() ? "" : ", ") + n;
  const std::string hint = closest_match(name, toy_names());
  throw ConfigError(fmt::format("unknown toy data set '{}'{}; available: {}", name,
                                hint.empty() ? "" : fmt::format(" (did you mean '{}'?)", hint),
                                list));
}

}  // namespace

const std::vector<std::string>& toy_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> out;
    for (const Toy& toy : kToys) out.emplace_back(toy.name);
    return out;
  }();
  return names;
}

Real toy_default_noise(const std::string& name) {
  return find_toy(name).default_noise;
}

Matrix make_toy(const std::string& name, Index n, Real noise, Rng& rng) {
  const Toy& toy = find_toy(name);
  if (!(noise >= 0) || !std::isfinite(noise))
    throw ConfigError(fmt::format("toy '{}': noise must be finite and >= 0, got {}", name, noise));
  if (n == 0) return Matrix({0, 2});
  return toy.make(n, noise, rng);
}

}  // namespace flows
