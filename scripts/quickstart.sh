#!/usr/bin/env bash
# Sets up, builds what the quickstart needs (the runner and the plugins, not
# the test suites), and runs the quickstart pipeline. scripts/test.sh builds
# and tests everything.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
plugins=$(for list in plugins/*/CMakeLists.txt; do basename "$(dirname "$list")"; done)
FLOWS_TARGETS="flows $plugins" scripts/build.sh
"${FLOWS_BUILD_DIR:-build}"/apps/flows/flows run configs/quickstart.yaml
