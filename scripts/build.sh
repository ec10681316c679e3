#!/usr/bin/env bash
# Configures and builds flows in ./build (Release, 2 jobs by default).
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${FLOWS_BUILD_DIR:-build}
jobs=${FLOWS_JOBS:-2}
launcher=()
if command -v ccache >/dev/null 2>&1; then launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache); fi
cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=${FLOWS_BUILD_TYPE:-Release} "${launcher[@]}" "$@"
cmake --build "$build_dir" -j "$jobs"
