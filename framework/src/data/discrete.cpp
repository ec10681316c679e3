#include "flows/data/discrete.hpp"

#include <cmath>
#include <random>

#include <fmt/format.h>

#include "flows/data/datasets.hpp"
#include "flows/error.hpp"
#include "flows/resources.hpp"
#include "flows/streams.hpp"

namespace flows {

namespace {

const Real kMeans[4][2] = {{2, 2}, {2, 8}, {8, 2}, {8, 8}};
// (a, b) of Beta(a, b) for each column of each unit_box component.
const Real kBeta[3][2][2] = {{{0.7, 3}, {3, 0.7}}, {{6, 2}, {6, 2}}, {{2, 6}, {3, 3}}};

Real normal_cdf(Real x) {
  return 0.5 * std::erfc(-x / std::sqrt(2.0));
}

Real log_choose(Index n, Index k) {
  return std::lgamma(n + 1.0) - std::lgamma(k + 1.0) - std::lgamma(n - k + 1.0);
}

Real beta_draw(Real a, Real b, Rng& rng) {
  std::gamma_distribution<Real> ga(a, 1.0), gb(b, 1.0);
  for (;;) {
    const Real x = ga(rng.engine()), y = gb(rng.engine());
    const Real v = x / (x + y);
    if (v > 0 && v < 1) return v;  // strictly inside, as the box's logit needs
  }
}

}  // namespace

const std::vector<std::string>& discrete_dataset_names() {
  static const std::vector<std::string> names = {"binomials", "quantized_gaussians", "unit_box"};
  return names;
}

DiscreteDatasetOptions DiscreteDatasetOptions::from(ConfigNode& node, const std::string& name) {
  DiscreteDatasetOptions o;
  node.read("n_train", o.n_train);
  node.read("n_val", o.n_val);
  node.read("n_test", o.n_test);
  if (node.has("seed")) {
    Index seed = 0;
    node.read("seed", seed);
    o.seed = seed;
  }
  node.expect(o.n_train > 0, "n_train", "must be > 0");
  if (name == "binomials") {
    node.read("trials", o.trials);
    node.read("probs", o.probs);
    node.expect(!o.trials.empty(), "trials", "needs one entry per column");
    node.expect(o.trials.size() == o.probs.size(), "probs",
                fmt::format("needs one probability per column ({} trials given)", o.trials.size()));
    for (Index t : o.trials) node.expect(t >= 1, "trials", "every entry must be >= 1");
    for (Real p : o.probs) node.expect(p > 0 && p < 1, "probs", "every entry must be in (0, 1)");
  } else if (name == "quantized_gaussians") {
    node.read("scale", o.scale);
    node.expect(o.scale > 0 && std::isfinite(o.scale), "scale", "must be > 0");
  }
  node.finish();
  check_split_memory(node, o.n_train, o.n_val, o.n_test,
                     name == "binomials" ? static_cast<Index>(o.trials.size()) : 2);
  return o;
}

DiscreteDataset::DiscreteDataset(std::string name, DiscreteDatasetOptions options)
    : name_(std::move(name)), options_(std::move(options)) {}

Matrix DiscreteDataset::draw(Index n, Rng& rng) const {
  if (name_ == "binomials") {
    const Index d = options_.trials.size();
    Matrix out = xt::empty<Real>({n, d});
    for (Index j = 0; j < d; ++j) {
      std::binomial_distribution<long> b(static_cast<long>(options_.trials[j]), options_.probs[j]);
      for (Index i = 0; i < n; ++i) out(i, j) = static_cast<Real>(b(rng.engine()));
    }
    return out;
  }
  if (name_ == "quantized_gaussians") {
    Matrix out = rng.normal(n, 2);
    for (Index i = 0; i < n; ++i) {
      const Index m = rng.index(4);
      for (Index j = 0; j < 2; ++j)
        out(i, j) = std::floor(kMeans[m][j] + options_.scale * out(i, j));
    }
    return out;
  }
  if (name_ == "unit_box") {
    Matrix out = xt::empty<Real>({n, Index{2}});
    for (Index i = 0; i < n; ++i) {
      const Index m = rng.index(3);
      for (Index j = 0; j < 2; ++j) out(i, j) = beta_draw(kBeta[m][j][0], kBeta[m][j][1], rng);
    }
    return out;
  }
  throw ConfigError("unknown discrete data set '" + name_ + "'");
}

DataSplits DiscreteDataset::load(Rng& rng) const {
  const Rng base = options_.seed ? Rng(*options_.seed) : rng;
  DataSplits s;
  Rng train = base.derive(stream_tags::discrete_train),
      val = base.derive(stream_tags::discrete_val), test = base.derive(stream_tags::discrete_test);
  s.train = draw(options_.n_train, train);
  s.val = draw(options_.n_val, val);
  s.test = draw(options_.n_test, test);
  const Index d = s.train.shape(1);
  for (Index j = 0; j < d; ++j) s.columns.push_back(fmt::format("x{}", j + 1));
  return s;
}

Real binomials_entropy(const std::vector<Index>& trials, const std::vector<Real>& probs) {
  Real h = 0;
  for (std::size_t j = 0; j < trials.size(); ++j) {
    const Index n = trials[j];
    const Real p = probs[j];
    for (Index k = 0; k <= n; ++k) {
      const Real log_pmf = log_choose(n, k) + k * std::log(p) + (n - k) * std::log1p(-p);
      h -= std::exp(log_pmf) * log_pmf;
    }
  }
  return h;
}

Real quantized_gaussians_pmf(long k1, long k2, Real scale) {
  Real p = 0;
  for (const auto& mu : kMeans) {
    const Real a = normal_cdf((k1 + 1 - mu[0]) / scale) - normal_cdf((k1 - mu[0]) / scale);
    const Real b = normal_cdf((k2 + 1 - mu[1]) / scale) - normal_cdf((k2 - mu[1]) / scale);
    p += 0.25 * a * b;
  }
  return p;
}

Real quantized_gaussians_entropy(Real scale) {
  // Beyond 40 standard deviations of every mean the mass underflows.
  const long reach = static_cast<long>(std::ceil(40 * scale)) + 10;
  Real h = 0;
  for (long k1 = -reach; k1 <= 10 + reach; ++k1)
    for (long k2 = -reach; k2 <= 10 + reach; ++k2) {
      const Real p = quantized_gaussians_pmf(k1, k2, scale);
      if (p > 1e-300) h -= p * std::log(p);
    }
  return h;
}

}  // namespace flows
