#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <flows/bijector.hpp>
#include <flows/config.hpp>
#include <flows/registry.hpp>

#include "conditioner.hpp"
#include "elementwise_transform.hpp"
#include "options.hpp"

namespace flows::spline {

// Rows per block of the inference paths.
constexpr Index kInferenceBlock = 2048;
// Calls f(values, logdet) on consecutive blocks of t's rows (copies when t
// has more than one block), writing the results back.
void for_each_block(Transformed& t, const std::function<void(Matrix&, Vector&)>& f);

// A stack of coupling layers (Dinh, Krueger and Bengio 2015; Dinh,
// Sohl-Dickstein and Bengio 2017, sec. 3.2-3.4): layer l splits the columns
// into a conditioning set A_l and a transformed set B_l, and
//   z_A = x_A,   z_B = τ(x_B; θ(x_A)),   log|det| = Σ_{j∈B} log τ'(x_j),
// with θ an MLP of x_A. The inverse is as cheap: θ depends on x_A = z_A only.
//
// Masks: the columns are halved, A = the first ⌊D/2⌋ of an ordering and B the
// rest; the next layer swaps A and B (alternating masks), so every column is
// transformed once per pair of layers. The first pair uses the natural order;
// later pairs use a random permutation of the columns (fixed by the seed) when
// D ≥ 3, which plays the role of permutations between layers without moving
// data. With D = 1 there is nothing to condition on: every layer transforms
// column 0 with parameters that are learned constants (an unconditional
// elementwise transform).
class Coupling final : public Bijector {
 public:
  Coupling(Index dim, const CouplingNetworkOptions& options,
           std::shared_ptr<const ElementwiseTransform> transform, std::uint64_t seed,
           std::string name);

  Index layers() const { return layers_.size(); }
  // Layer l's conditioning and transformed columns.
  const std::vector<Index>& conditioning(Index l) const { return layers_[l].cond; }
  const std::vector<Index>& transformed(Index l) const { return layers_[l].trans; }

  Index dim() const override { return dim_; }
  Transformed forward(const Matrix& x, const Matrix& context) const override;
  Transformed inverse(const Matrix& z, const Matrix& context) const override;
  void forward_train(const Matrix& x, const Matrix& context, Matrix& z, Vector& logdet) override;
  void backward(const Matrix& grad_z, const Vector& grad_logdet, Matrix& grad_x) override;
  ParameterList parameters() override { return params_; }
  // Parameters, and each layer's column split as structure.
  void visit_state(StateVisitor& visitor) override;

 private:
  struct Layer {
    std::vector<Index> cond, trans;
    std::unique_ptr<Conditioner> net;
    // Training buffers, reused while the batch size stays the same.
    Matrix cond_in, theta, grad_theta, grad_cond;
    std::vector<Real> cache;
  };
  ColumnSet column_set(const Layer& layer) const;
  void check_columns(const Matrix& m, const char* what) const;

  Index dim_;
  std::shared_ptr<const ElementwiseTransform> transform_;
  std::string name_;
  std::vector<Layer> layers_;
  ParameterList params_;
  Index recorded_rows_ = 0;
  bool recorded_ = false;
};

// Factories of `nsf_coupling` and `affine_coupling`.
std::unique_ptr<Bijector> make_nsf_coupling(ConfigNode& node, const BuildContext& context);
std::unique_ptr<Bijector> make_affine_coupling(ConfigNode& node, const BuildContext& context);

}  // namespace flows::spline
