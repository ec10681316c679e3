#pragma once
// How the runner finds out that mpirun or srun started it, and the ranks it
// then trains on (issue 14).
#include <memory>

#include "flows/ranks.hpp"

namespace flows::app {

// The number of processes a launcher (mpirun, srun, any PMI/PMIx launcher)
// says this job has, from its environment; 1 when none started this one.
int launched_processes();

// The ranks of this job: MPI's when flows was built with MPI and a launcher
// started more than one process, else null (one process: nothing to share).
// Without MPI in the build, a job of several processes is refused with a
// ConfigError that says so. MPI is finalized when the last owner lets go.
std::shared_ptr<Ranks> start_ranks();

// After an error on one rank: ends the whole job (MPI_Abort) so that no
// rank waits forever on the one that failed. Returns when there are no ranks.
void abort_job(Ranks* ranks, int status);

}  // namespace flows::app
