// Speed of the flow_matching plugin on the workload W3: moons
// (standardized), a velocity MLP on [x, t] with 3 hidden layers of 64 SELU
// units, Adam lr 1e-3, batch 256, straight path with σ_min = 0, independent
// coupling. Prints the median training step, sampling 10,000 points with
// dopri5 (1e-5), rk4 (100 steps) and euler (100 steps) with their function
// evaluations, and the exact test NLL of 2,000 points with dopri5 (1e-5).
// The figures are this machine's own; ../shared/peers/side_by_side.py sets
// them beside the Python tools' (through flows-bench -w W3).
//
//   fm_bench [steps (3000)] [points (10000)]
//
// Everything goes through the registry and YAML, as the bench app would. The
// function evaluations come from a `counting` ode_solver registered here,
// which wraps the solver named under its own `solver:` key.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>

#include <flows/config.hpp>
#include <flows/data/toys.hpp>
#include <flows/flow.hpp>
#include <flows/ode_solver.hpp>
#include <flows/plugin_loader.hpp>
#include <flows/registry.hpp>
#include <flows/standardize.hpp>
#include <flows/trainer.hpp>

namespace {

using namespace flows;
using Clock = std::chrono::steady_clock;

double since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Adds up the statistics of every solve of the solver it wraps.
class CountingSolver : public OdeSolver {
 public:
  explicit CountingSolver(std::shared_ptr<OdeSolver> inner) : inner_(std::move(inner)) {}
  OdeStats integrate(const OdeSystem& f, Matrix& x, Real t0, Real t1) const override {
    const OdeStats s = inner_->integrate(f, x, t0, t1);
    total.function_evaluations += s.function_evaluations;
    total.steps_accepted += s.steps_accepted;
    total.steps_rejected += s.steps_rejected;
    ++solves;
    return s;
  }
  mutable OdeStats total;
  mutable Index solves = 0;

 private:
  std::shared_ptr<OdeSolver> inner_;
};

CountingSolver* last_counter = nullptr;

std::unique_ptr<OdeSolver> make_counting(ConfigNode& node, const BuildContext& context) {
  ConfigNode inner = node.child("solver");
  auto solver = std::make_unique<CountingSolver>(context.registry->make<OdeSolver>(inner, context));
  node.finish();
  last_counter = solver.get();
  return solver;
}

std::string field_yaml(const std::string& solver, bool sample_logdet) {
  return "{type: flow_matching, hidden: [64, 64, 64], activation: selu, time_frequencies: 0, "
         "sample_logdet: " +
         std::string(sample_logdet ? "true" : "false") +
         ", solver: {type: counting, solver: " + solver + "}}";
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? NAN : v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) try {
  const Index steps = argc > 1 ? std::stoul(argv[1]) : 3000;
  const Index points = argc > 2 ? std::stoul(argv[2]) : 10000;
  Registry registry;
  register_builtins(registry);
  load_plugin(FLOWS_PLUGIN_FLOW_MATCHING, registry);
  registry.add<OdeSolver>("counting", &make_counting);

  Rng data_rng(1);
  const Matrix train = make_toy("moons", 20000, 0.05, data_rng);
  const Matrix val = make_toy("moons", 2000, 0.05, data_rng);
  const Matrix test = make_toy("moons", 2000, 0.05, data_rng);
  auto standardize = std::make_shared<Standardize>(Standardize::fit(train));
  Real log_scale_sum = 0;
  for (Real s : standardize->scale()) log_scale_sum += std::log(s);

  auto build = [&](const std::string& yaml, std::uint64_t seed) {
    ConfigNode node = ConfigNode::parse(yaml, "fm_bench");
    return registry.make<Bijector>(node, BuildContext{2, 0, seed, &registry});
  };
  auto make_flow = [&](std::shared_ptr<Bijector> fm) {
    ConfigNode base_node = ConfigNode::parse("{type: standard_normal}", "fm_bench");
    auto base = registry.make<BaseDistribution>(base_node, BuildContext{2, 0, 0, &registry});
    auto flow = std::make_shared<Flow>(base, std::vector<std::shared_ptr<Bijector>>{fm});
    flow->prepend(standardize);
    return flow;
  };
  auto train_flow = [&](Flow& flow, const std::string& trainer_yaml, Index n_steps) {
    ConfigNode node = ConfigNode::parse(trainer_yaml, "fm_bench");
    node.set("steps", std::to_string(n_steps));
    auto trainer = registry.make<Trainer>(node, BuildContext{2, 0, 5, &registry});
    std::vector<double> step_seconds;
    double last = 0;
    TrainerCallbacks callbacks;
    callbacks.on_progress = [&](const Progress& p) {
      step_seconds.push_back(p.seconds - last);
      last = p.seconds;
    };
    Rng rng(3);
    const auto start = Clock::now();
    DataSplits data;
    data.train = train;
    data.val = val;
    trainer->train(flow, data, rng, callbacks);
    return std::make_pair(median(step_seconds), since(start));
  };

  const std::string cfm =
      "{type: cfm, path: straight, sigma_min: 0.0, coupling: independent, batch_size: 256, "
      "eval_every: 500, optimizer: {type: adam, lr: 1.0e-3}}";
  auto trained = build(field_yaml("{type: dopri5, rtol: 1.0e-5, atol: 1.0e-5}", false), 7);
  auto flow = make_flow(trained);
  const auto [step, wall] = train_flow(*flow, cfm, steps);
  fmt::print("W3 training: median step {:.3f} ms, {} steps in {:.2f} s\n", 1e3 * step, steps, wall);
  {
    auto other = make_flow(build(field_yaml("{type: rk4}", false), 7));
    const std::string ot =
        "{type: cfm, coupling: ot, batch_size: 256, eval_every: 0, optimizer: {type: adam}}";
    const auto [ot_step, ot_wall] = train_flow(*other, ot, 200);
    fmt::print("OT coupling (exact assignment, batch 256): median step {:.3f} ms\n", 1e3 * ot_step);
    (void)ot_wall;
  }

  const std::vector<std::pair<std::string, std::string>> solvers = {
      {"dopri5 1e-5", "{type: dopri5, rtol: 1.0e-5, atol: 1.0e-5}"},
      {"rk4 100 steps", "{type: rk4, steps: 100}"},
      {"euler 100 steps", "{type: euler, steps: 100}"}};
  for (std::size_t k = 0; k < solvers.size(); ++k) {
    auto fm = build(field_yaml(solvers[k].second, false), 7);
    CountingSolver* counter = last_counter;
    for (Index p = 0; p < fm->parameters().size(); ++p)
      fm->parameters()[p]->value = trained->parameters()[p]->value;
    auto sampler = make_flow(fm);
    Rng rng(4);
    const auto start = Clock::now();
    const Matrix samples = sampler->sample(points, rng);
    const double seconds = since(start);
    fmt::print("sample {} points, {:<16} {:.3f} s, {} NFE\n", points, solvers[k].first + ":",
               seconds, counter->total.function_evaluations);
  }
  {
    auto fm = build(field_yaml("{type: dopri5, rtol: 1.0e-5, atol: 1.0e-5}", true), 7);
    CountingSolver* counter = last_counter;
    for (Index p = 0; p < fm->parameters().size(); ++p)
      fm->parameters()[p]->value = trained->parameters()[p]->value;
    auto scorer = make_flow(fm);
    const auto start = Clock::now();
    const Real nll = scorer->mean_nll(test);
    const double seconds = since(start);
    fmt::print(
        "exact test NLL of {} points, dopri5 1e-5: {:.3f} s, {} NFE; NLL {:.4f} data units, "
        "{:.4f} standardized\n",
        test.shape(0), seconds, counter->total.function_evaluations, nll, nll - log_scale_sum);
  }
  return 0;
} catch (const std::exception& e) {
  std::cerr << "fm_bench: " << e.what() << "\n";
  return 1;
}
