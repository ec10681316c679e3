#include "flows/dataset.hpp"

#include <cstdint>
#include <string>

#include <fmt/format.h>

#include "flows/bijector.hpp"
#include "flows/detail/crc64.hpp"
#include "flows/error.hpp"

namespace flows {

namespace {

using detail::Crc64;

void add(Crc64& crc, const Matrix& m) {
  const std::uint64_t shape[2] = {m.size() ? m.shape(0) : 0, m.size() ? m.shape(1) : 0};
  crc.process_bytes(shape, sizeof shape);
  crc.process_bytes(m.data(), m.size() * sizeof(Real));
}

void add(Crc64& crc, const std::vector<std::string>& names) {
  for (const std::string& name : names) crc.process_bytes(name.c_str(), name.size() + 1);
  crc.process_byte(0);
}

}  // namespace

bool training_rows_are_shared(Index held_out_rows, Ranks* ranks) {
  return held_out_rows > 0 && ranks != nullptr && ranks->size() > 1;
}

std::pair<Index, Index> training_share(Index train_rows, Index held_out_rows, Ranks* ranks) {
  if (!training_rows_are_shared(held_out_rows, ranks)) return {0, train_rows};
  return share_of(train_rows, ranks, kInferenceRowGroup);
}

void keep_training_share(DataSplits& splits, Ranks* ranks) {
  if (splits.train_is_shared()) return;
  const Index rows = splits.train.shape(0);
  const Index held_out = splits.val.shape(0) + splits.test.shape(0);
  if (!training_rows_are_shared(held_out, ranks)) return;
  const auto [begin, end] = training_share(rows, held_out, ranks);
  // The other ranks' rows are about to go: a digest of every training row
  // lets the ranks compare them (check_same_data_on_every_rank).
  Crc64 crc;
  crc.process_bytes(&splits.source_digest, sizeof splits.source_digest);
  add(crc, splits.train);
  add(crc, splits.train_context);
  splits.source_digest = crc.checksum();
  splits.train = Matrix(xt::view(splits.train, xt::range(begin, end), xt::all()));
  if (splits.train_context.size() != 0)
    splits.train_context = Matrix(xt::view(splits.train_context, xt::range(begin, end), xt::all()));
  splits.train_begin = begin;
  splits.train_total = rows;
}

void check_same_data_on_every_rank(const DataSplits& d, Ranks* ranks) {
  if (ranks == nullptr || ranks->size() <= 1) return;
  Crc64 crc;
  const std::uint64_t sizes[3] = {d.train_rows(), d.source_digest, d.train_is_shared()};
  crc.process_bytes(sizes, sizeof sizes);
  add(crc, d.columns);
  add(crc, d.context_columns);
  for (const Matrix* m : {&d.val, &d.val_context, &d.test, &d.test_context}) add(crc, *m);
  if (!d.train_is_shared()) {
    add(crc, d.train);
    add(crc, d.train_context);
  }
  if (!ranks->same_on_every_rank(crc.checksum()))
    throw DataError(fmt::format(
        "the {} ranks of this job disagree: the training data differs between ranks (each rank "
        "read its own file or rows: their sizes, columns, held-out rows or file contents differ); "
        "start every rank with the same command, files and build",
        ranks->size()));
}

DataSplits Dataset::load_share(Rng& rng, Ranks* ranks) const {
  DataSplits splits = load(rng);
  keep_training_share(splits, ranks);
  return splits;
}

}  // namespace flows
