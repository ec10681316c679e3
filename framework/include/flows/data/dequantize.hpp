#pragma once
#include <string>
#include <vector>

#include "flows/config.hpp"
#include "flows/export.hpp"
#include "flows/flow.hpp"
#include "flows/rng.hpp"
#include "flows/tensor.hpp"

namespace flows {

// Uniform dequantization of integer-valued columns (Theis, van den Oord and
// Bethge 2016, "A note on the evaluation of generative models", Sec. 3.1;
// used by every image flow since RealNVP). A continuous density p fitted to
// y = x + u, u ~ U(0, 1)^D on the dequantized columns, bounds the probability
// mass of the integer point x (Jensen's inequality):
//   log P(x) = log ∫_{[0,1)^D} p(x + u) du ≥ E_u[log p(x + u)],
// and with k draws the importance-weighted estimate is tighter in expectation
// (Burda et al. 2016; Ho et al. 2019, Flow++, Sec. 3.1):
//   log P(x) ≳ log (1/k) Σ_s p(x + u_s).
// So −log p(x + u), averaged over the data, is an upper bound on the code
// length of x in nats, and bits/dim = (NLL − Σ_j log w_j) / (D ln 2) for bins
// of width w_j (here 1: the integer grid).
class FLOWS_API Dequantizer {
 public:
  // No dequantization (continuous data).
  Dequantizer() = default;
  // Dequantizes `columns` (0-based, ascending, < dim) of data with `dim`
  // columns named `names` (may be empty); evaluation averages over `samples`
  // draws per row.
  Dequantizer(Index dim, std::vector<Index> columns, Index samples = 1,
              std::vector<std::string> names = {});

  bool enabled() const { return !columns_.empty(); }
  Index dim() const { return dim_; }
  const std::vector<Index>& columns() const { return columns_; }
  Index samples() const { return samples_; }
  // The dequantized columns' names ("x0"-style when the data names none).
  std::vector<std::string> column_names() const;
  // Per column: the bin width (1) of a dequantized column, 0 for the others.
  std::vector<Real> bin_widths() const;

  // DataError for the first value of a dequantized column that is not an
  // integer (or not finite), naming `what` (e.g. "the train split"), the
  // 1-based row, the column and the value.
  // x may be a share of the split's rows, beginning at its row first_row.
  void check_integer(const Matrix& x, const std::string& what, Index first_row = 0) const;
  // Adds u ~ U(0, 1) (never exactly 0) to every dequantized column of x.
  void add_noise(Matrix& x, Rng& rng) const;
  // Makes the draws add_noise would make for `rows` rows, without the rows:
  // a process skips the draws of the rows other processes hold.
  void skip_noise(Index rows, Rng& rng) const;
  // The rows of x with one draw of noise each.
  Matrix dequantized(const Matrix& x, Rng& rng) const;
  // floor() of the dequantized columns of samples (so samples are integers
  // again); `upper` (one per column, +inf when open) keeps a sample at the
  // top end of a bounded column in the last bin, [hi − 1, hi).
  Matrix quantize(const Matrix& samples, const std::vector<Real>& upper = {}) const;

  // −log P̂(x) per row: −log (1/k) Σ_s p(x + u_s | c) with k = samples()
  // draws from rng (k = 1: −log p(x + u)). Without dequantization: −log p(x | c).
  Vector nll(const Flow& flow, const Matrix& x, const Matrix& context, Rng& rng) const;
  Real mean_nll(const Flow& flow, const Matrix& x, const Matrix& context, Rng& rng) const;
  // The sum of nll over rows [begin, end) of x, with the draws mean_nll
  // makes for those rows: the noise of every row is drawn, so that each
  // process of a job can score its own rows and the sums add up to
  // mean_nll's (begin and end on multiples of Flow::row_granule()).
  Real nll_sum(const Flow& flow, const Matrix& x, const Matrix& context, Rng& rng, Index begin,
               Index end) const;
  // The same sum for a process that holds only rows [first, first +
  // held.shape(0)) of a split of `total` rows (first on a multiple of
  // kInferenceRowGroup): the draws of the other rows are made and skipped.
  Real nll_sum_of_held(const Flow& flow, const Matrix& held, const Matrix& context, Rng& rng,
                       Index first, Index total) const;

 private:
  Index dim_ = 0;
  std::vector<Index> columns_;
  Index samples_ = 1;
  std::vector<std::string> names_;
};

// The `dequantize` and `dequantize_samples` keys of a pipeline's data
// section, read (and marked read) before the data set's factory sees it.
struct FLOWS_API DequantizeOptions {
  bool all = false;                  // dequantize: uniform
  std::vector<std::string> columns;  // dequantize: [names or 0-based indices]
  Index samples = 1;                 // dequantize_samples: k draws per row at evaluation
  std::string where;                 // file:line:column: data.dequantize, for messages

  bool enabled() const { return all || !columns.empty(); }
  static DequantizeOptions from(ConfigNode& data_node);
  // The dequantizer for data with these columns (names may be empty:
  // positions). ConfigError (at `where`) for an unknown column.
  Dequantizer resolve(Index dim, const std::vector<std::string>& names) const;
};

// Bits per dimension of a mean NLL (nats per row) of D-dimensional data.
struct BitsPerDim {
  Real value = 0;
  // "dequantized bound", "partly dequantized bound" or "continuous density".
  std::string kind;
  // A sentence saying what the number is.
  std::string meaning;
};
// (nll − Σ_j log w_j) / (D ln 2), w_j the bin widths of the dequantized
// columns; for continuous data nll / (D ln 2), labelled as a density.
FLOWS_API BitsPerDim bits_per_dim(Real nll, const Dequantizer& dequantizer, Index dim);

}  // namespace flows
