// Using a saved model from C++: load it, score a few points, draw samples.
// A conditional model p(x | c) is scored and sampled at one context row (all
// context columns 0, which is the training data's mean only by chance).
//
//   score_and_sample runs/quickstart/model.flows
//
// Build against an installed SDK with find_package(flows) and
// target_link_libraries(app PRIVATE flows::sdk); the model's plugins are
// found the way the runner finds them.
#include <iostream>

#include <flows/checkpoint.hpp>
#include <flows/error.hpp>

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: score_and_sample MODEL.flows\n";
    return 2;
  }
  try {
    const flows::LoadedModel loaded = flows::load_model(argv[1]);
    const flows::Flow& flow = *loaded.model.flow;
    std::cout << loaded.info.name << ": " << loaded.info.dim << " dimensions, "
              << loaded.info.parameter_count << " parameters\n";
    // The context of a conditional model, in the data's units: here one row
    // of zeros for the points below (empty for an unconditional model).
    flows::Matrix context;
    if (loaded.conditional()) {
      std::cout << "given context columns:";
      for (const std::string& name : loaded.context_columns()) std::cout << " " << name;
      std::cout << " (all 0 below)\n";
      context = xt::zeros<flows::Real>({flows::Index{1}, loaded.context_dim()});
    }
    // n rows of that context (empty when unconditional).
    auto context_rows = [&](flows::Index n) {
      return loaded.conditional() ? flows::Matrix(xt::zeros<flows::Real>({n, loaded.context_dim()}))
                                  : flows::Matrix();
    };

    // log p(x) in the data's units, for a few points at the origin and along the first axis.
    flows::Matrix x = flows::Matrix(xt::zeros<flows::Real>({flows::Index{3}, loaded.info.dim}));
    x(1, 0) = 0.5;
    x(2, 0) = 1.0;
    const flows::Vector log_p = flow.log_prob(x, context_rows(x.shape(0)));
    for (flows::Index i = 0; i < x.shape(0); ++i)
      std::cout << "log p(x" << i << ") = " << log_p(i) << "\n";

    // Samples and their log-densities from one pass.
    flows::Rng rng(42);
    const flows::Transformed drawn = flow.sample_and_log_prob(5, rng, context);
    for (flows::Index i = 0; i < drawn.value.shape(0); ++i) {
      std::cout << "sample " << i << ":";
      for (flows::Index j = 0; j < drawn.value.shape(1); ++j) std::cout << " " << drawn.value(i, j);
      std::cout << "  (log p = " << drawn.logdet(i) << ")\n";
    }
  } catch (const flows::Error& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
