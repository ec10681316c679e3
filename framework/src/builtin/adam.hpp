#pragma once
#include <vector>

#include "flows/config.hpp"
#include "flows/optimizer.hpp"

namespace flows {

struct AdamOptions {
  Real lr = 1e-3;           // peak learning rate
  Real beta1 = 0.9;         // decay of the first-moment average
  Real beta2 = 0.999;       // decay of the second-moment average
  Real eps = 1e-8;          // added to the denominator
  Real weight_decay = 0.0;  // decoupled (AdamW) weight decay
  static AdamOptions from(ConfigNode& node);
};

class Adam : public Optimizer {
 public:
  explicit Adam(AdamOptions options) : options_(options) {}
  Real learning_rate() const override { return options_.lr; }
  void step(const ParameterList& params, Real lr) override;
  void visit_state(const ParameterList& params, StateVisitor& visitor) override;

 private:
  // Zero moments shaped like `params` unless they already are.
  void ensure_moments(const ParameterList& params);
  AdamOptions options_;
  std::vector<Matrix> m_, v_;
  Index t_ = 0;
};

}  // namespace flows
