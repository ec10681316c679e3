#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "flows/export.hpp"
#include "flows/ranks.hpp"
#include "flows/rng.hpp"
#include "flows/tensor.hpp"

namespace flows {

// The three splits of a data set, in the data's own units. For conditional
// density estimation p(x | c) each split also has its context rows (one per
// data row); an unconditional data set has empty context matrices.
//
// On several processes (issue 14) each rank may hold only its share of the
// training rows: rows [train_begin, train_begin + train.shape(0)) of the
// split's train_rows(), the share_of(train_rows(), ranks, kInferenceRowGroup)
// of that rank. The validation and test splits are whole on every rank.
struct DataSplits {
  Matrix train;
  Matrix val;
  Matrix test;
  std::vector<std::string> columns;  // names of the x columns when the source has them
  Matrix train_context;
  Matrix val_context;
  Matrix test_context;
  std::vector<std::string> context_columns;  // names of the context columns
  Index train_begin = 0;                     // the first training row this process holds
  Index train_total = 0;  // the training split's rows when only a share is held; 0: all held
  // What every rank of a job must agree on beyond the rows it holds (a
  // digest of the source files' bytes, for example); 0 when the source has
  // nothing more to say.
  std::uint64_t source_digest = 0;

  // Context columns (0: unconditional data).
  Index context_dim() const { return context_columns.size(); }
  // The rows of the whole training split, held here or not.
  Index train_rows() const { return train_total > 0 ? train_total : train.shape(0); }
  // Whether this process holds only a share of the training rows.
  bool train_is_shared() const { return train_total > 0; }
};

// A source of data, built by name (kind "dataset").
class FLOWS_API Dataset {
 public:
  virtual ~Dataset() = default;
  virtual DataSplits load(Rng& rng) const = 0;
  // This process's part of the data on several ranks: the splits load()
  // gives, with the training split cut to this rank's share
  // (keep_training_share). A source that can read only those rows (csv,
  // npy) overrides it; the result must be the same.
  virtual DataSplits load_share(Rng& rng, Ranks* ranks) const;
};

// Whether the ranks share the training rows out: on several ranks, when
// there are held-out rows. Then every rank's DataSplits is shared
// (train_total set), even one whose share is every row or none.
FLOWS_API bool training_rows_are_shared(Index held_out_rows, Ranks* ranks);
// The rows of the training split (of train_rows) that this rank holds:
// share_of(rows, ranks, kInferenceRowGroup), so that a training split is
// scored (Pipeline::split_nll) on the ranks' own rows. The whole split when
// there are no held-out rows (the evaluation and the report then need every
// training row on rank 0) or when ranks is null or has one rank.
FLOWS_API std::pair<Index, Index> training_share(Index train_rows, Index held_out_rows,
                                                 Ranks* ranks);
// Cuts the training split (and its context) of `splits` to this rank's
// training_share, setting train_begin and train_total.
FLOWS_API void keep_training_share(DataSplits& splits, Ranks* ranks);

// On several ranks: DataError, on every rank, unless every rank holds the
// same data apart from its share of the training rows: the same splits'
// sizes, column names, held-out rows, training rows when they are not
// shared out, and source_digest.
FLOWS_API void check_same_data_on_every_rank(const DataSplits& splits, Ranks* ranks);

}  // namespace flows
