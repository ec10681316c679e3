#include "flows/parameter.hpp"

#include <cmath>

namespace flows {

Parameter::Parameter(std::string name_, Matrix value_, bool trainable_)
    : name(std::move(name_)),
      value(std::move(value_)),
      grad(xt::zeros_like(value)),
      trainable(trainable_) {}

void Parameter::zero_grad() {
  std::fill(grad.begin(), grad.end(), Real(0));
}

void zero_grad(const ParameterList& params) {
  for (Parameter* p : params) p->zero_grad();
}

Index parameter_count(const ParameterList& params) {
  Index n = 0;
  for (const Parameter* p : params)
    if (p->trainable) n += p->size();
  return n;
}

Real gradient_norm(const ParameterList& params) {
  Real sum = 0;
  for (const Parameter* p : params)
    for (Real g : p->grad) sum += g * g;
  return std::sqrt(sum);
}

void append(ParameterList& list, const ParameterList& more) {
  list.insert(list.end(), more.begin(), more.end());
}

}  // namespace flows
