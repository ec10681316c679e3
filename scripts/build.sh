#!/usr/bin/env bash
# Configures and builds flows in ./build (Release, 2 jobs by default).
# Extra arguments go to the CMake configure step; FLOWS_TARGETS="a b" builds
# only those targets (default: everything).
# The Python module is built for the first python3 on PATH, unless that one
# has no NumPy (a pyenv or conda python, say) and Debian's /usr/bin/python3
# has: then for Debian's. -DPython3_EXECUTABLE=... chooses.
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${FLOWS_BUILD_DIR:-build}
jobs=${FLOWS_JOBS:-2}
launcher=()
if command -v ccache >/dev/null 2>&1; then launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache); fi
python=()
if [[ " $* " != *" -DPython3_EXECUTABLE="* ]] && ! python3 -c "import numpy" >/dev/null 2>&1 &&
   [ -x /usr/bin/python3 ] && /usr/bin/python3 -c "import numpy" >/dev/null 2>&1; then
  echo "build: $(command -v python3 || echo python3) has no NumPy; the Python module is built for /usr/bin/python3"
  python=(-DPython3_EXECUTABLE=/usr/bin/python3)
fi
cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=${FLOWS_BUILD_TYPE:-Release} "${launcher[@]}" "${python[@]}" "$@"
targets=()
for t in ${FLOWS_TARGETS:-}; do targets+=(--target "$t"); done
cmake --build "$build_dir" -j "$jobs" "${targets[@]}"
