#pragma once
// The precision a network computes in. Parameters, their gradients, the
// optimizer's state, log-determinants, transformers, ODE states and
// checkpoints are always float64 (Real); only the matrix products and
// activations inside a network run in the chosen type, which halves their
// cost on the machine's SIMD units and in BLAS (SGEMM against DGEMM).
#include <string>
#include <type_traits>
#include <vector>

#include "flows/export.hpp"
#include "flows/tensor.hpp"

namespace flows {

enum class Precision { float32, float64 };

// "float32" / "float64".
FLOWS_API const std::string& precision_name(Precision precision);
FLOWS_API const std::vector<std::string>& precision_names();
// ConfigError naming the valid names for any other.
FLOWS_API Precision precision_from_name(const std::string& name);

// One S<float> and one S<double>, of which a network uses the one of its
// precision: the buffers of a network in both types, chosen by the type of
// the pass (see nn::MLP).
template <template <class> class S>
struct PerPrecision {
  S<float> f32;
  S<double> f64;
  template <class T>
  S<T>& get() {
    if constexpr (std::is_same_v<T, float>)
      return f32;
    else
      return f64;
  }
};

// dst = src converted elementwise, resized when its shape differs.
template <class To, class From>
void convert(const MatrixOf<From>& src, MatrixOf<To>& dst) {
  if (dst.shape() != src.shape()) dst.resize(src.shape());
  const From* s = src.data();
  To* d = dst.data();
  const Index n = src.size();
  for (Index k = 0; k < n; ++k) d[k] = static_cast<To>(s[k]);
}

}  // namespace flows
