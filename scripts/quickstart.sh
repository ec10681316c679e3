#!/usr/bin/env bash
# Sets up, builds, and runs the quickstart pipeline.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
build/apps/flows/flows run configs/quickstart.yaml
