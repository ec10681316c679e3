#pragma once
// flows::Ranks on MPI: MPI_COMM_WORLD, sums by MPI_Allreduce, rows gathered
// on rank 0 by MPI_Gatherv.
#include "flows/ranks.hpp"

namespace flows::app {

class MpiRanks final : public Ranks {
 public:
  MpiRanks();            // MPI_Init (once per process)
  ~MpiRanks() override;  // MPI_Finalize
  MpiRanks(const MpiRanks&) = delete;
  MpiRanks& operator=(const MpiRanks&) = delete;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  void sum(Real* values, Index count) override;
  bool same_on_every_rank(std::uint64_t value) override;
  std::vector<Real> gather(const Real* values, Index count) override;

  // MPI_Abort of the whole job.
  [[noreturn]] static void abort(int status);

 private:
  int rank_ = 0;
  int size_ = 1;
};

}  // namespace flows::app
