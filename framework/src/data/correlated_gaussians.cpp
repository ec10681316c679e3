#include "flows/data/correlated_gaussians.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <utility>

#include <fmt/format.h>

#include "flows/data/datasets.hpp"
#include "flows/error.hpp"
#include "flows/gaussian_mixture.hpp"
#include "flows/resources.hpp"
#include "flows/streams.hpp"

namespace flows {
namespace {

constexpr Real kLog2Pi = 1.83787706640934548356;  // log(2π)

}  // namespace

CorrelatedGaussians::CorrelatedGaussians(Index dim, Index components, Real separation,
                                         Rng& structure_rng)
    : dim_(dim) {
  if (dim == 0) throw ConfigError("correlated_gaussians: dim must be >= 1");
  if (components == 0) throw ConfigError("correlated_gaussians: components must be >= 1");
  if (!(separation >= 0) || !std::isfinite(separation))
    throw ConfigError(fmt::format(
        "correlated_gaussians: separation must be finite and >= 0, got {}", separation));
  means_ = Matrix({components, dim});
  for (Index k = 0; k < components; ++k)
    for (Index j = 0; j < dim; ++j) means_(k, j) = separation * structure_rng.normal();
  const Real off_diagonal = 1 / std::sqrt(static_cast<Real>(dim));
  for (Index k = 0; k < components; ++k) {
    Matrix l = xt::zeros<Real>({dim, dim});
    Real log_det = 0;
    for (Index i = 0; i < dim; ++i) {
      for (Index j = 0; j < i; ++j) l(i, j) = off_diagonal * structure_rng.normal();
      const Real log_diagonal = 0.25 * structure_rng.normal();
      l(i, i) = std::exp(log_diagonal);
      log_det += log_diagonal;
    }
    factors_.push_back(std::move(l));
    log_det_.push_back(log_det);
  }
}

Matrix CorrelatedGaussians::draw(Index n, Rng& rng) const {
  const Index d = dim_;
  Matrix x({n, d});
  std::vector<Real> eps(d);
  for (Index r = 0; r < n; ++r) {
    const Index k = rng.index(components());
    for (Index j = 0; j < d; ++j) eps[j] = rng.normal();
    const Matrix& l = factors_[k];
    for (Index i = 0; i < d; ++i) {
      Real v = means_(k, i);
      for (Index j = 0; j <= i; ++j) v += l(i, j) * eps[j];
      x(r, i) = v;
    }
  }
  return x;
}

Vector CorrelatedGaussians::log_prob(const Matrix& x) const {
  const Index d = dim_;
  if (x.shape(1) != d)
    throw DataError(fmt::format("correlated_gaussians log_prob: x has {} column{}, expected {}",
                                x.shape(1), x.shape(1) == 1 ? "" : "s", d));
  const Index n = x.shape(0), kk = components();
  Vector out = xt::zeros<Real>({n});
  std::vector<Real> y(d), terms(kk);
  for (Index r = 0; r < n; ++r) {
    for (Index k = 0; k < kk; ++k) {
      // y = L_k⁻¹ (x − μ_k) by forward substitution.
      const Matrix& l = factors_[k];
      Real sq = 0;
      for (Index i = 0; i < d; ++i) {
        Real v = x(r, i) - means_(k, i);
        for (Index j = 0; j < i; ++j) v -= l(i, j) * y[j];
        y[i] = v / l(i, i);
        sq += y[i] * y[i];
      }
      terms[k] = -0.5 * sq - log_det_[k] - 0.5 * static_cast<Real>(d) * kLog2Pi;
    }
    out(r) = log_sum_exp(terms.data(), kk) - std::log(static_cast<Real>(kk));
  }
  return out;
}

CorrelatedGaussiansOptions CorrelatedGaussiansOptions::from(ConfigNode& node) {
  CorrelatedGaussiansOptions o;
  node.read("n_train", o.n_train);
  node.read("n_val", o.n_val);
  node.read("n_test", o.n_test);
  std::uint64_t seed = 0;
  node.read("seed", seed);
  if (node.has("seed")) o.seed = seed;
  node.read("dim", o.dim);
  node.read("components", o.components);
  node.read("separation", o.separation);
  node.expect(o.n_train > 0, "n_train", "must be > 0");
  node.expect(o.dim >= 1, "dim", "must be >= 1");
  node.expect(o.components >= 1, "components", "must be >= 1");
  node.expect(o.separation >= 0 && std::isfinite(o.separation), "separation",
              fmt::format("must be finite and >= 0, got {}", o.separation));
  node.finish();
  // The K lower-triangular factors are D x D each.
  const double factors = double(o.components) * double(o.dim) * double(o.dim) * 8;
  check_split_memory(
      node, o.n_train, o.n_val, o.n_test, o.dim, factors,
      fmt::format("components x dim x dim x 8 bytes for the factors ({})", format_bytes(factors)));
  return o;
}

CorrelatedGaussiansDataset::CorrelatedGaussiansDataset(CorrelatedGaussiansOptions options)
    : options_(std::move(options)) {}

CorrelatedGaussians CorrelatedGaussiansDataset::distribution(const Rng& rng) const {
  Rng structure = data_stream(options_.seed, rng, DataUse::structure);
  return CorrelatedGaussians(options_.dim, options_.components, options_.separation, structure);
}

DataSplits CorrelatedGaussiansDataset::load(Rng& rng) const {
  const CorrelatedGaussians p = distribution(rng);
  DataSplits splits;
  const Index sizes[3] = {options_.n_train, options_.n_val, options_.n_test};
  Matrix* x[3] = {&splits.train, &splits.val, &splits.test};
  for (int split = 0; split < 3; ++split) {
    Rng split_rng = data_stream(options_.seed, rng, static_cast<DataUse>(split));
    *x[split] = p.draw(sizes[split], split_rng);
  }
  for (Index j = 1; j <= options_.dim; ++j) splits.columns.push_back(fmt::format("x{}", j));
  return splits;
}

void register_correlated_gaussians(Registry& registry) {
  registry.add<Dataset>("correlated_gaussians", [](ConfigNode& node, const BuildContext&) {
    return std::make_unique<CorrelatedGaussiansDataset>(CorrelatedGaussiansOptions::from(node));
  });
}

}  // namespace flows
