#include "actnorm.hpp"

#include <algorithm>
#include <cmath>
#include <string>

#include <flows/batch_moments.hpp>
#include <flows/error.hpp>

namespace flows::basic {

ActNorm::ActNorm(Index dim, bool init_from_data, Real epsilon)
    : Affine(dim, 0.0, 0.0, "actnorm"), epsilon_(epsilon), initialized_(!init_from_data) {}

void ActNorm::forward_train_impl(const Matrix& x, const Matrix& context, Matrix& z,
                                 Vector& logdet) {
  if (!initialized_) {
    const bool untouched =
        std::all_of(shift_.value.begin(), shift_.value.end(), [](Real v) { return v == 0; }) &&
        std::all_of(log_scale_.value.begin(), log_scale_.value.end(),
                    [](Real v) { return v == 0; });
    if (untouched)
      initialize(x);
    else
      initialized_ = true;
  }
  Affine::forward_train_impl(x, context, z, logdet);
}

// Data-dependent initialisation of ActNorm (Kingma & Dhariwal 2018, "Glow:
// Generative Flow with Invertible 1x1 Convolutions", sec. 3.1): with the
// batch's per-dimension mean μ_j and (population) variance σ²_j,
//   b_j = μ_j,   s_j = ½ log(σ²_j + ε),
// so z = (x − b) e^{−s} has mean 0 and variance σ²/(σ² + ε) ≈ 1 on that batch.
void ActNorm::initialize(const Matrix& x) {
  BatchMoments moments;  // once per model: the first batch
  batch_moments(x, dim(), ranks_, moments);
  if (moments.rows < 2)
    throw DataError(name() + ": data-dependent initialisation needs a batch of at " +
                    "least 2 rows, got " + std::to_string(moments.rows));
  for (Index j = 0; j < dim(); ++j) {
    const Real mean = moments.mean[j], var = moments.var[j];
    if (!std::isfinite(mean) || !std::isfinite(var))
      throw DataError(name() + ": the initialisation batch has non-finite values in " + "column " +
                      std::to_string(j));
    shift_.value(0, j) = mean;
    log_scale_.value(0, j) = 0.5 * std::log(var + epsilon_);
  }
  initialized_ = true;
}

ActNormOptions ActNormOptions::from(ConfigNode& node) {
  ActNormOptions o;
  node.read("init_from_data", o.init_from_data);
  node.read("epsilon", o.epsilon);
  node.expect(o.epsilon > 0 && std::isfinite(o.epsilon), "epsilon", "must be > 0");
  node.finish();
  return o;
}

std::unique_ptr<Bijector> make_actnorm(ConfigNode& node, const BuildContext& context) {
  const ActNormOptions options = ActNormOptions::from(node);
  return std::make_unique<ActNorm>(context.dim, options.init_from_data, options.epsilon);
}

}  // namespace flows::basic
