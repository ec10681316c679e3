#!/usr/bin/env bash
# Sets up, builds everything (the test suites and the Python module too), and
# runs the whole test suite with ctest (the pytest files included).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh -DFLOWS_BUILD_TESTS=ON
cd "${FLOWS_BUILD_DIR:-build}"
ctest --output-on-failure -j 2
