#pragma once
#include <vector>

#include "flows/config.hpp"
#include "flows/optimizer.hpp"

namespace flows {

struct SgdOptions {
  Real lr = 1e-2;           // peak learning rate
  Real momentum = 0.0;      // heavy-ball momentum in [0, 1)
  Real weight_decay = 0.0;  // L2 penalty added to the gradient
  static SgdOptions from(ConfigNode& node);
};

// Stochastic gradient descent with optional momentum (PyTorch's convention:
// v = μ v + g; w -= lr v).
class Sgd : public Optimizer {
 public:
  explicit Sgd(SgdOptions options) : options_(options) {}
  Real learning_rate() const override { return options_.lr; }
  void step(const ParameterList& params, Real lr) override;
  void visit_state(const ParameterList& params, StateVisitor& visitor) override;

 private:
  void ensure_velocity(const ParameterList& params);
  SgdOptions options_;
  std::vector<Matrix> velocity_;
};

}  // namespace flows
