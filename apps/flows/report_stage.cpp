// The report stage: report.html with the training curve, data against
// samples, the model's density, the doctor's table and the metrics.
#include <iostream>

#include <fmt/format.h>

#include "flows/doctor.hpp"
#include "flows/streams.hpp"
#include "outputs.hpp"
#include "report.hpp"
#include "rows.hpp"
#include "stages.hpp"

namespace flows::app {

namespace {

constexpr Index kReportRows = 2000;  // data rows and samples the plots show

// The doctor's table, or why it could not run (the report is written either way).
void add_doctor(RunSession& s, ReportInputs& inputs) {
  try {
    DoctorOptions doctor;  // half the command's rows: an ODE flow's solves take seconds
    doctor.rows = doctor.samples = 1000;
    doctor.seed = component_seed(s.options().seed, ComponentSeed::doctor);
    inputs.doctor = diagnose_pipeline(s.pipeline, doctor);
    if (!inputs.doctor->ok())
      std::cerr << fmt::format(
          "doctor: {} of {} checks failed (the table is in report.html; `flows doctor {}` "
          "prints it)\n",
          inputs.doctor->failures(), inputs.doctor->rows.size(), s.run.file);
  } catch (const std::exception& e) {
    inputs.doctor_error = e.what();
    std::cerr << "warning: the doctor's checks could not run: " << e.what() << "\n";
  }
}

}  // namespace

void report_stage(RunSession& s) {
  const PipelineOptions& options = s.options();
  const DataSplits& data = s.data();
  const Model& model = s.model();
  ReportInputs inputs;
  inputs.title = options.name;
  if (s.trained) {
    inputs.loss_name = s.report.loss_name;
    inputs.curve = s.report.curve;
  }
  const HeldOut reference = held_out(data);
  inputs.columns = data.columns;
  inputs.data = first_rows(*reference.x, kReportRows);
  inputs.context_columns = data.context_columns;
  if (s.conditional()) {
    // The same rows as inputs.data; the samples are drawn at their contexts.
    inputs.context = first_rows(*reference.context, kReportRows);
    Rng rng = run_stream(options.seed, RunStream::samples);
    inputs.samples = s.pipeline.sample(inputs.context.shape(0), rng, inputs.context);
  } else {
    if (s.samples.shape(0) == 0) {
      Rng rng = run_stream(options.seed, RunStream::samples);
      s.samples = s.pipeline.sample(kReportRows, rng);
    }
    inputs.samples = first_rows(s.samples, kReportRows);
  }
  set_model_functions(inputs, model.flow);
  if (model.bounds && inputs.log_prob) {
    // The density is 0 outside the box (the bounds refuse such rows).
    auto bounds = model.bounds;
    auto inner = inputs.log_prob;
    inputs.log_prob = [bounds, inner](const Matrix& x) {
      return log_prob_inside(*bounds, inner, x);
    };
  }
  inputs.seed = component_seed(options.seed, ComponentSeed::report);
  add_doctor(s, inputs);
  inputs.metrics = s.shown;
  inputs.pipeline_yaml = s.pipeline.root.dump();
  write_file_atomically(s.out + "/report.html", render_report(inputs));
  std::cerr << fmt::format("wrote {}/report.html\n", s.out);
}

}  // namespace flows::app
