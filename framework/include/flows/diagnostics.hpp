#pragma once
// What a bijector can say about its own health (`flows doctor`, issue 15).
// The generic checks of every layer (round trips, the log-determinant against
// a finite-difference Jacobian) live in flows/doctor.hpp; a bijector that has
// something specific to say (a spline's tail share, a matrix's condition)
// also implements Diagnosable, found by dynamic_cast (which works across
// plugins: the interface's type information is the SDK's).
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "flows/export.hpp"
#include "flows/tensor.hpp"

namespace flows {

// One check of one layer: the measured value against a threshold. A finding
// with a NaN threshold is information (it cannot fail), e.g. the tail_bound
// that would cover a spline's inputs.
struct Finding {
  std::string check;  // what was measured, e.g. "spline inputs outside [-B, B]"
  double value = 0;
  double threshold = std::numeric_limits<double>::quiet_NaN();
  bool ok = true;
  std::string advice;  // what to do about it (may be empty when ok)
};

// A bijector with checks of its own. `x` are rows of its input (data side,
// after the layers before it), `context` the context the bijector sees (the
// encoder's output; empty for an unconditional model), one row per row of x.
class FLOWS_API Diagnosable {
 public:
  virtual ~Diagnosable();  // defined in the SDK, so its type information is the SDK's
  virtual std::vector<Finding> diagnose(const Matrix& x, const Matrix& context) const = 0;
};

// A transformer that is the identity outside [-B, B] (the rational-quadratic
// spline): the autoregressive and coupling layers ask it for B to report the
// share of their inputs that its bins never reach.
class FLOWS_API BoundedTransformer {
 public:
  virtual ~BoundedTransformer();
  virtual Real tail_bound() const = 0;
};

// A marker for a bijector computed by an adaptive numerical solve (an ODE
// flow): its forward and inverse agree, and its log|det| is right, only to
// the solve's accuracy, and a finite difference across a change of the step
// sequence is no derivative. The doctor judges its round trips and log-dets
// against DoctorOptions' solve tolerances instead of the float ones.
class FLOWS_API NumericallySolved {
 public:
  virtual ~NumericallySolved();
};

// Judgement thresholds of the doctor's checks (docs/user_guide.md, "flows
// doctor", gives the values healthy models were measured to have).
// A spline layer fails when more than this share of its inputs lies outside
// [-B, B], where every layer is the identity and no training reshapes them
// (the banana: 1.8 % outside B = 3 cost 0.05 nats).
inline constexpr double kTailShareThreshold = 0.005;
// The share of inputs a suggested tail_bound covers, and its margin.
inline constexpr double kTailCoverage = 0.999;
inline constexpr double kTailMargin = 1.2;
// lu_linear fails above this 2-norm condition number of W; affine and
// actnorm above this ratio of their largest to smallest scale.
inline constexpr double kConditionThreshold = 1e6;
inline constexpr double kScaleRatioThreshold = 1e6;

// The tail_bound that covers `coverage` of |values| (non-finite values are
// skipped) with a margin: ⌈2 · margin · q(|v|)⌉ / 2, the quantile q taken as
// the order statistic ⌈coverage · n⌉, rounded up to a multiple of 0.5 and at
// least 0.5. NaN when no value is finite.
FLOWS_API Real suggested_tail_bound(const std::vector<Real>& values,
                                    double coverage = kTailCoverage, double margin = kTailMargin);

// The findings of a layer whose transformer maps columns `cols` of `inputs`
// (the transformer's inputs, one row per sample) with tail bound B: the share
// outside [-B, B] (fails above kTailShareThreshold) and the suggested bound
// (information).
FLOWS_API std::vector<Finding> tail_findings(const Matrix& inputs, const std::vector<Index>& cols,
                                             Real bound);

}  // namespace flows
