#pragma once
#include <memory>

#include <flows/config.hpp>
#include <flows/registry.hpp>

#include "affine.hpp"

namespace flows::basic {

// ActNorm: the elementwise affine map of Affine whose shift and scale are set
// from the first training batch so that its output has zero mean and unit
// variance per dimension, and learned freely afterwards.
class ActNorm final : public Affine {
 public:
  ActNorm(Index dim, bool init_from_data, Real epsilon);
  // The initialisation reads the whole first batch; afterwards an affine map.
  bool rows_independent_in_training() const override { return initialized_; }
  // On several ranks the first batch is every rank's share together.
  void share_batch_statistics(Ranks* ranks) override { ranks_ = ranks; }

 private:
  // The first call (when init_from_data) initialises shift and log_scale from
  // x, unless they no longer hold their construction values (zero): values
  // loaded from a checkpoint are kept, so resumed training does not restart.
  void forward_train_impl(const Matrix& x, const Matrix& context, Matrix& z,
                          Vector& logdet) override;
  void initialize(const Matrix& x);

  Real epsilon_;
  bool initialized_;
  Ranks* ranks_ = nullptr;
};

struct ActNormOptions {
  bool init_from_data = true;  // set shift/scale from the first training batch
  Real epsilon = 1e-6;         // added to each variance before the square root

  static ActNormOptions from(ConfigNode& node);
};

// Factory of `actnorm`.
std::unique_ptr<Bijector> make_actnorm(ConfigNode& node, const BuildContext& context);

}  // namespace flows::basic
