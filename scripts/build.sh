#!/usr/bin/env bash
# Configures and builds flows in ./build (Release, 2 jobs by default).
# Extra arguments go to the CMake configure step; FLOWS_TARGETS="a b" builds
# only those targets (default: everything).
# The Python module is built for the first python3 on PATH; when that one has
# no NumPy (a pyenv or conda python, say) the module still builds but its
# tests are skipped: pass -DPython3_EXECUTABLE=/usr/bin/python3 to use
# Debian's.
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${FLOWS_BUILD_DIR:-build}
jobs=${FLOWS_JOBS:-2}
launcher=()
if command -v ccache >/dev/null 2>&1; then launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache); fi
cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=${FLOWS_BUILD_TYPE:-Release} "${launcher[@]}" "$@"
targets=()
for t in ${FLOWS_TARGETS:-}; do targets+=(--target "$t"); done
cmake --build "$build_dir" -j "$jobs" "${targets[@]}"
