#pragma once
// `flows doctor` (issue 15): checks of every bijector of a model, layer by
// layer, so that a user learns which layer is wrong rather than that the
// likelihood is. The runner's `doctor` command and the report stage share
// these functions.
#include <memory>
#include <string>
#include <vector>

#include "flows/checkpoint.hpp"
#include "flows/diagnostics.hpp"
#include "flows/export.hpp"
#include "flows/flow.hpp"
#include "flows/pipeline.hpp"
#include "flows/registry.hpp"
#include "flows/tensor.hpp"

namespace flows {

struct DoctorOptions {
  Index rows = 2000;     // data rows used (at most; evenly spaced through the given ones)
  Index samples = 2000;  // draws from the base for the round trip from the latent side
  Index fd_rows = 8;     // rows of the finite-difference log-det check
  Index seed = 0;        // of the draws from the base
  // A round trip fails above this error, max |x' − x| / max(1, |x|) over
  // rows and columns (float32 networks, the default, give ≈ 1e-6 and less).
  double round_trip_tolerance = 1e-4;
  // The log-det check fails above this |logdet − log|det J_fd|| (nats):
  // central differences in float64 at step 1e-5 · max(1, |x|) on a float64
  // copy of the model.
  double logdet_tolerance = 1e-3;
  // The same for a NumericallySolved bijector (flow_matching's ODE, dopri5
  // at rtol = atol = 1e-5 gave round trips to 1.2e-4 and log-dets to 9e-3).
  double solve_round_trip_tolerance = 1e-3;
  double solve_logdet_tolerance = 0.05;
};

// One line of the doctor's table.
struct DoctorRow {
  std::string layer;  // index in Flow::chain(), "k.j" for layer j of a multi-layer bijector k
  std::string type;   // the bijector's name ("standardize", "maf", "lu_linear", ...)
  Finding finding;
};

struct DoctorReport {
  std::vector<DoctorRow> rows;
  std::string source;  // what the checks ran on: "2000 test rows, 2000 samples"
  bool ok() const;
  Index failures() const;
};

// Runs every check on `flow`: for every bijector of its chain (the data
// layers first; a Chain inside it is entered, its layers named "k.j"):
//  - the round trip on data rows: x_k, the rows after layers 0..k-1, against
//    inverse(forward(x_k)); and on samples: z from the base, run back through
//    the inverses, against forward(inverse(z_k)) at every layer;
//  - log|det J| against a finite-difference Jacobian on the first fd_rows rows
//    of x_k, computed on `exact` (a float64 copy of flow, see
//    float64_model; flow itself when null);
//  - the bijector's own checks (Diagnosable) on x_k.
// x (n x dim, data units) and context (its rows' raw context; empty for an
// unconditional model) may be empty: the samples then stand in for data rows
// (a conditional model needs context rows, DataError otherwise).
FLOWS_API DoctorReport run_doctor(Flow& flow, const Matrix& x, const Matrix& context,
                                  const DoctorOptions& options = {}, Flow* exact = nullptr);

// The model of `checkpoint` with every network computing in float64 (the
// same parameters; `registry` must offer its components).
FLOWS_API std::shared_ptr<Flow> float64_model(const Checkpoint& checkpoint,
                                              std::shared_ptr<Registry> registry,
                                              const std::string& source);

// The doctor of a pipeline's model on its held-out rows (test, else val,
// else train; dequantized with the fixed evaluation draws when the data are),
// with a float64 copy for the log-det check.
FLOWS_API DoctorReport diagnose_pipeline(Pipeline& pipeline, const DoctorOptions& options = {});

// The report as a text table: layer, type, check, value, threshold, ok/FAIL
// ("info" for a finding without threshold), then each failure's advice.
FLOWS_API std::string doctor_table(const DoctorReport& report);

}  // namespace flows
