#pragma once
// `tail_bound: auto` (issue 15): a spline's bound B set from the training
// data before the model is built, so that the checkpoint stores the number
// and loading a model never needs data.
#include <optional>

#include "flows/export.hpp"
#include "flows/ranks.hpp"
#include "flows/tensor.hpp"

namespace flows {

struct Pipeline;

// The smallest bound `auto` gives: the doctor's suggestion for N(0, 1)
// inputs, ⌈2 · 1.2 · 3.29⌉ / 2 = 4, since the layers next to a standard
// normal base see nearly N(0, 1) inputs however light the data's tails.
inline constexpr Real kAutoTailBoundFloor = 4.0;

// B for rows x (every column pooled): max(kAutoTailBoundFloor,
// suggested_tail_bound(x)), the 99.9 % quantile of |x| times 1.2, rounded
// up to a multiple of 0.5 (diagnostics.hpp).
FLOWS_API Real auto_tail_bound(const Matrix& x);
// The same bound when each rank holds a share of the rows: every rank gets
// that of all rows together, exactly (each rank sends rank 0 only its
// largest values that can reach the quantile).
FLOWS_API Real auto_tail_bound(const Matrix& x, Ranks* ranks);

// Replaces every `tail_bound: auto` in the pipeline's model section (at any
// depth: nsf_* options, a rational_quadratic transformer, a plugin's) by
// auto_tail_bound of the training rows as the first bijector sees them: one
// dequantized draw (the one the standardization is fitted on), mapped through
// model.bounds, standardized when model.standardize (the raw values
// otherwise). Call after the data are loaded and before build_model. Returns
// the value, or nothing when no key says auto.
// With ranks, the training rows are each rank's share (DataSplits) and the
// bound is that of all of them.
FLOWS_API std::optional<Real> resolve_auto_tail_bounds(Pipeline& pipeline, Ranks* ranks = nullptr);

}  // namespace flows
