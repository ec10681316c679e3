#!/usr/bin/env bash
# Builds the libFuzzer harnesses of fuzz/ with clang, AddressSanitizer and
# UndefinedBehaviorSanitizer (in build-fuzz, or $FLOWS_FUZZ_BUILD_DIR) and runs
# each for SECONDS (default 60), one after another, printing the executions of
# each. FLOWS_FUZZ_HARNESSES="csv npy" runs only those.
#
# Inputs that find new code go to <build>/corpus/<harness>; the seeds in
# fuzz/corpus stay as they are. A finding (crash, sanitizer report, an
# exception that is not a flows::Error, an error that does not name its input,
# a timeout, running out of memory) leaves its input in
# <build>/artifacts/<harness>/ and makes the script fail: fix the reader, then
# copy the input to fuzz/regressions/<harness>/ so that ctest replays it.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
build_dir=${FLOWS_FUZZ_BUILD_DIR:-build-fuzz}
harnesses=${FLOWS_FUZZ_HARNESSES:-csv npy checkpoint pipeline}
targets=""
for h in $harnesses; do targets+=" fuzz_$h"; done

FLOWS_BUILD_DIR=$build_dir FLOWS_BUILD_TYPE=RelWithDebInfo FLOWS_TARGETS="$targets" \
  scripts/build.sh -DCMAKE_CXX_COMPILER=clang++ -DFLOWS_BUILD_FUZZERS=ON -DFLOWS_BUILD_TESTS=OFF \
  -DFLOWS_PYTHON=OFF

export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
status=0
for h in $harnesses; do
  corpus=$build_dir/corpus/$h
  artifacts=$build_dir/artifacts/$h
  log=$build_dir/fuzz-$h.log
  mkdir -p "$corpus" "$artifacts"
  seeds=(fuzz/corpus/$h fuzz/regressions/$h)
  if [ "$h" = pipeline ]; then seeds+=(configs); fi
  result=clean
  "$build_dir/fuzz/fuzz_$h" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 \
    -print_final_stats=1 -artifact_prefix="$artifacts/" "$corpus" "${seeds[@]}" 2>"$log" ||
    { result="FINDING (see $log and $artifacts)"; status=1; }
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  echo "fuzz: $h: ${runs:-?} executions in ${seconds} s: $result"
done
exit $status
