#pragma once
#include <string>

#include "flows/export.hpp"
#include "flows/parameter.hpp"
#include "flows/state.hpp"
#include "flows/tensor.hpp"

namespace flows {

class Ranks;  // ranks.hpp

// A bijector's rows are independent in inference, except in one that must
// process rows together (an adaptive ODE solve shares its step sizes among
// the rows it integrates at once, and larger groups need fewer steps): it
// groups rows [k g, (k + 1) g) of its input, g = kInferenceRowGroup, and says
// so (rows_independent_in_inference() false). Batches are then cut (across
// threads by Flow, into cache blocks by Chain, into shares across ranks) only
// at multiples of g counted from the first row, so that its results depend
// on the data alone, not on the thread or rank count. A chain whose rows are
// all independent is cut on blocks of 256 rows instead (Flow::row_granule).
inline constexpr Index kInferenceRowGroup = 1024;

// The result of transforming a batch: the values and log|det J| per row.
struct Transformed {
  Matrix value;
  Vector logdet;
};

// An invertible map between data space (x) and latent space (z). "forward" is
// the normalizing direction x -> z, as in nflows and TensorFlow Probability:
//   log p_x(x) = log p_z(f(x)) + log|det ∂f/∂x|.
//
// `context` is the conditioning matrix c of p(x | c): one row per sample and
// context_dim() columns. An unconditional bijector has context_dim() = 0 and
// ignores whatever context it is given (a chain passes the model's context to
// every layer, conditional or not).
//
// The public calls check their arguments once, here, and then call the
// private *_impl functions that a bijector implements (the non-virtual
// interface idiom): an implementation may assume x has dim() columns, the
// context n x context_dim() (when context_dim() > 0) and that backward
// follows a forward_train with matching shapes.
class FLOWS_API Bijector {
 public:
  virtual ~Bijector() = default;

  // Name used in messages ("maf", "permutation").
  const std::string& name() const { return name_; }
  Index dim() const { return dim_; }
  Index context_dim() const { return context_dim_; }
  // The trainer that fits this bijector: "mle" when it has a likelihood
  // gradient (every discrete bijector); otherwise the name of the trainer to
  // use (flow_matching: "cfm"), and forward_train/backward raise ConfigError.
  const std::string& trainer() const { return trainer_; }
  bool trains_by_likelihood() const { return trainer_ == "mle"; }
  // True when the training pass treats rows independently, so that a
  // mini-batch may be cut into row blocks trained on separate threads (each
  // on a replica of the flow) with the same gradient up to summation order.
  // False for a layer whose training pass uses statistics of the whole batch
  // (batch_norm; actnorm until its data-dependent initialisation): the
  // trainer then runs the step on one thread.
  virtual bool rows_independent_in_training() const { return true; }
  // False for a layer that processes inference rows in groups
  // (kInferenceRowGroup, above); composites answer for all their layers.
  virtual bool rows_independent_in_inference() const { return true; }
  // On several processes (issue 14) the trainer passes the job's ranks here
  // before training and nullptr after. A layer whose training pass uses
  // statistics of the whole mini-batch then computes them over the ranks'
  // shares together (batch_moments, batch_moments.hpp), so that every rank
  // sees the statistics of one process; the others ignore it. Composites
  // pass it to their layers.
  virtual void share_batch_statistics(Ranks* /*ranks*/) {}

  // Inference, no state kept, safe to call from several threads at once
  // (Flow runs row blocks in parallel). forward: z = f(x) and log|det ∂f/∂x|.
  Transformed forward(const Matrix& x, const Matrix& context = {}) const;
  // x = f⁻¹(z) and log|det ∂f⁻¹/∂z| (the negative of forward's at x).
  Transformed inverse(const Matrix& z, const Matrix& context = {}) const;

  // Training: the forward pass in training mode (batch statistics, data-
  // dependent initialisation), recording what backward needs. z and logdet
  // are resized as needed, so callers can reuse them across steps.
  void forward_train(const Matrix& x, const Matrix& context, Matrix& z, Vector& logdet);
  // For the last forward_train: given dL/dz and dL/dlogdet, writes dL/dx into
  // grad_x and *accumulates* dL/dθ into parameters()' gradients. When
  // grad_context is given (n x context_dim()), dL/dc is *added* to it.
  void backward(const Matrix& grad_z, const Vector& grad_logdet, Matrix& grad_x,
                Matrix* grad_context = nullptr);

  virtual ParameterList parameters() = 0;

  // Saves or restores everything that, with the options, defines this
  // bijector (checkpoints). The default visits parameters(); bijectors with
  // other state (a permutation) or structure drawn from the seed (orderings)
  // override it, call visit_parameters, and validate after loading.
  virtual void visit_state(StateVisitor& visitor);

 protected:
  // dim ≥ 1 (the registry checks a pipeline's dimension before any factory
  // runs; this raises ConfigError for direct construction).
  Bijector(std::string name, Index dim, Index context_dim = 0);
  // For bijectors fit by another objective than the likelihood (see trainer()).
  void fitted_by(std::string trainer) { trainer_ = std::move(trainer); }

 private:
  virtual Transformed forward_impl(const Matrix& x, const Matrix& context) const = 0;
  virtual Transformed inverse_impl(const Matrix& z, const Matrix& context) const = 0;
  virtual void forward_train_impl(const Matrix& x, const Matrix& context, Matrix& z,
                                  Vector& logdet) = 0;
  // grad_context is null when no context gradient is wanted or context_dim() = 0.
  virtual void backward_impl(const Matrix& grad_z, const Vector& grad_logdet, Matrix& grad_x,
                             Matrix* grad_context) = 0;

  void check_context(const Matrix& context, Index rows, const char* call) const;

  std::string name_;
  Index dim_;
  Index context_dim_;
  std::string trainer_ = "mle";
  Index recorded_rows_ = 0;
  bool recorded_ = false;
};

// Base of a bijector whose parameters are fit by a trainer other than maximum
// likelihood (flow matching's velocity field, fit by regression): it has no
// training pass, and Bijector::forward_train refuses before reaching one.
class FLOWS_API RegressionFittedBijector : public Bijector {
 protected:
  RegressionFittedBijector(std::string name, Index dim, Index context_dim, std::string trainer)
      : Bijector(std::move(name), dim, context_dim) {
    fitted_by(std::move(trainer));
  }

 private:
  void forward_train_impl(const Matrix&, const Matrix&, Matrix&, Vector&) final;
  void backward_impl(const Matrix&, const Vector&, Matrix&, Matrix*) final;
};

}  // namespace flows
