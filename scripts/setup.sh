#!/usr/bin/env bash
# Installs every system package flows needs on Debian 12, skipping those present.
# The Python module (`import flows`) needs the last five; without them the rest
# still builds and the Python tests are skipped. clang and libclang-rt-14-dev
# (libFuzzer) are for scripts/fuzz.sh only. libopenmpi-dev and openmpi-bin give
# the runner `mpirun -np N flows run` (without them it builds for one process).
set -euo pipefail

packages=(
  cmake g++ make
  xtensor-dev libxtensor-blas-dev xtl-dev libxsimd-dev
  libyaml-cpp-dev libfmt-dev libboost-dev
  libopenblas-dev liblapack-dev
  libgtest-dev libbenchmark-dev libcli11-dev nlohmann-json3-dev
  libopenmpi-dev openmpi-bin
  clang libclang-rt-14-dev
  python3-dev pybind11-dev python3-pybind11 python3-numpy python3-pytest
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#packages[@]} packages present"
  exit 0
fi

echo "setup: installing ${missing[*]}"
sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then sudo_cmd=(sudo); fi
"${sudo_cmd[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
