#include "launch.hpp"

#include <cstdlib>
#include <string>

#include "flows/error.hpp"

#ifdef FLOWS_WITH_MPI
#include "mpi_ranks.hpp"
#endif

namespace flows::app {

int launched_processes() {
  // Open MPI's mpirun, then PMIx and PMI (MPICH, Slurm's srun --mpi=...),
  // then Slurm itself.
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "PMI_SIZE", "SLURM_NTASKS"}) {
    if (const char* value = std::getenv(name)) {
      const int n = std::atoi(value);
      if (n >= 1) return n;
    }
  }
  return 1;
}

std::shared_ptr<Ranks> start_ranks() {
  const int processes = launched_processes();
  if (processes <= 1) return nullptr;
#ifdef FLOWS_WITH_MPI
  return std::make_shared<MpiRanks>();
#else
  throw ConfigError(
      "this job was started as " + std::to_string(processes) +
      " processes (mpirun or srun), but this flows was built without MPI, so each would "
      "train a model of its own: install libopenmpi-dev (scripts/setup.sh does) and rebuild, "
      "or run one process");
#endif
}

void abort_job(Ranks* ranks, int status) {
#ifdef FLOWS_WITH_MPI
  if (ranks) MpiRanks::abort(status);
#else
  (void)ranks;
  (void)status;
#endif
}

}  // namespace flows::app
