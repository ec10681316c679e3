// The runner's launch detection (apps/flows/mpi/launch.cpp), built here
// without MPI: the launchers' variables give the job's size, and a runner
// without MPI refuses a job of several processes instead of training one
// model per process.
#include "launch.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include "flows/error.hpp"

namespace flows::app {
namespace {

const char* const kLauncherVariables[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "PMI_SIZE",
                                          "SLURM_NTASKS"};

// Clears the launchers' variables for one test and puts them back after.
class Launch : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* name : kLauncherVariables) {
      const char* value = std::getenv(name);
      saved_.emplace_back(name, value ? std::string(value) : std::string("\x01"));
      ::unsetenv(name);
    }
  }
  void TearDown() override {
    for (const auto& [name, value] : saved_) {
      if (value == "\x01")
        ::unsetenv(name.c_str());
      else
        ::setenv(name.c_str(), value.c_str(), 1);
    }
  }
  std::vector<std::pair<std::string, std::string>> saved_;
};

TEST_F(Launch, WithoutALauncherTheRunnerIsOneProcess) {
  EXPECT_EQ(launched_processes(), 1);
  EXPECT_EQ(start_ranks(), nullptr);
}

// mpirun (Open MPI), PMIx and PMI launchers, and Slurm's srun.
TEST_F(Launch, EachLaunchersVariableGivesTheJobsSize) {
  for (const char* name : kLauncherVariables) {
    ::setenv(name, "4", 1);
    EXPECT_EQ(launched_processes(), 4) << name;
    ::unsetenv(name);
  }
  ::setenv("SLURM_NTASKS", "1", 1);
  EXPECT_EQ(start_ranks(), nullptr) << "one task is one process";
}

TEST_F(Launch, ARunnerBuiltWithoutMpiRefusesAJobOfSeveralProcesses) {
  ::setenv("SLURM_NTASKS", "2", 1);
  try {
    start_ranks();
    ADD_FAILURE() << "a 2-process job started without MPI";
  } catch (const ConfigError& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("started as 2 processes"), std::string::npos) << message;
    EXPECT_NE(message.find("built without MPI"), std::string::npos) << message;
  }
}

}  // namespace
}  // namespace flows::app
