#include "mpi_ranks.hpp"

#include <mpi.h>

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <string>
#include <vector>

#include "flows/error.hpp"

namespace flows::app {

namespace {

void check(int code, const char* what) {
  if (code == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(code, text, &length);
  throw Error(std::string("MPI: ") + what + " failed: " + std::string(text, length));
}

}  // namespace

MpiRanks::MpiRanks() {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized) check(MPI_Init(nullptr, nullptr), "MPI_Init");
  // Errors come back as codes, so that they become flows errors whose
  // handler ends the job with MPI_Abort (a rank that died is one).
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  check(MPI_Comm_rank(MPI_COMM_WORLD, &rank_), "MPI_Comm_rank");
  check(MPI_Comm_size(MPI_COMM_WORLD, &size_), "MPI_Comm_size");
}

MpiRanks::~MpiRanks() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
}

void MpiRanks::sum(Real* values, Index count) {
  static_assert(sizeof(Real) == sizeof(double), "the sums are MPI_DOUBLE");
  // In pieces of at most INT_MAX values (MPI counts are int).
  while (count > 0) {
    const int piece = static_cast<int>(std::min<Index>(count, INT_MAX));
    check(MPI_Allreduce(MPI_IN_PLACE, values, piece, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD),
          "MPI_Allreduce of the gradients");
    values += piece;
    count -= static_cast<Index>(piece);
  }
}

bool MpiRanks::same_on_every_rank(std::uint64_t value) {
  std::uint64_t low = value, high = value;
  check(MPI_Allreduce(MPI_IN_PLACE, &low, 1, MPI_UINT64_T, MPI_MIN, MPI_COMM_WORLD),
        "MPI_Allreduce");
  check(MPI_Allreduce(MPI_IN_PLACE, &high, 1, MPI_UINT64_T, MPI_MAX, MPI_COMM_WORLD),
        "MPI_Allreduce");
  return low == high;
}

std::vector<Real> MpiRanks::gather(const Real* values, Index count) {
  // MPI counts and displacements are int: more than INT_MAX values in all is
  // refused (16 GB of samples; the memory checks stop such a run earlier).
  const long long mine = static_cast<long long>(count);
  std::vector<long long> counts(rank_ == 0 ? static_cast<std::size_t>(size_) : 0);
  check(MPI_Gather(&mine, 1, MPI_LONG_LONG, counts.data(), 1, MPI_LONG_LONG, 0, MPI_COMM_WORLD),
        "MPI_Gather of the row counts");
  std::vector<int> ints, offsets;
  long long total = 0;
  for (long long c : counts) {
    offsets.push_back(static_cast<int>(std::min<long long>(total, INT_MAX)));
    ints.push_back(static_cast<int>(std::min<long long>(c, INT_MAX)));
    total += c;
  }
  int fits = total <= INT_MAX && mine <= INT_MAX ? 1 : 0;
  check(MPI_Bcast(&fits, 1, MPI_INT, 0, MPI_COMM_WORLD), "MPI_Bcast");
  if (!fits) throw Error("MPI: the rows to gather on rank 0 hold more than 2^31 - 1 values");
  std::vector<Real> all(static_cast<std::size_t>(total));
  check(MPI_Gatherv(values, static_cast<int>(mine), MPI_DOUBLE, all.data(), ints.data(),
                    offsets.data(), MPI_DOUBLE, 0, MPI_COMM_WORLD),
        "MPI_Gatherv of the rows");
  return all;
}

void MpiRanks::abort(int status) {
  MPI_Abort(MPI_COMM_WORLD, status);
  std::exit(status);  // MPI_Abort does not return; this is for the compiler
}

}  // namespace flows::app
