#include "mpi_ranks.hpp"

#include <mpi.h>

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <string>

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

void MpiRanks::abort(int status) {
  MPI_Abort(MPI_COMM_WORLD, status);
  std::exit(status);  // MPI_Abort does not return; this is for the compiler
}

}  // namespace flows::app
