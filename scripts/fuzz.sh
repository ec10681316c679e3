#!/usr/bin/env bash
# Builds the libFuzzer harnesses of fuzz/ with clang, AddressSanitizer and
# UndefinedBehaviorSanitizer (in build-fuzz, or $FLOWS_FUZZ_BUILD_DIR) and runs
# each for SECONDS (default 60), one after another, printing the executions of
# each. FLOWS_FUZZ_HARNESSES="csv npy" runs only those. docs/testing.md has more.
#
# Inputs that reach new code collect in <build>/corpus/<harness>; the seeds in
# fuzz/corpus stay as they are. A finding (a crash, a sanitizer report, an
# exception that is not a flows::Error, an error that does not name its input)
# stops that harness, leaves its input in <build>/artifacts/<harness>/ and
# makes the script fail: fix the reader, then copy the input to
# fuzz/regressions/<harness>/ so that ctest replays it. Inputs that run longer
# than 10 s or need more than 4 GB are counted and kept too, without stopping:
# they ask for a big data set or model, which is not a fault of a reader.
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
  options=()
  if [ "$h" = pipeline ]; then
    # The shipped pipelines are seeds too, with a hundred rows per split and
    # small networks, so that one input loads in milliseconds.
    for f in configs/*.yaml; do
      sed -E -e 's/\b(n_train|n_val|n_test): *[0-9]+/\1: 100/g' \
        -e 's/\bhidden: *\[[0-9, ]*\]/hidden: [8, 8]/g' "$f" >"$corpus/config-$(basename "$f")"
    done
    options+=(-max_len=4096)
  fi
  start=$(date +%s)
  result=clean
  "$build_dir/fuzz/fuzz_$h" -fork=1 -ignore_timeouts=1 -ignore_ooms=1 -timeout=10 \
    -rss_limit_mb=4096 -max_total_time="$seconds" -artifact_prefix="$artifacts/" "${options[@]}" \
    "$corpus" "fuzz/corpus/$h" "fuzz/regressions/$h" >"$log" 2>&1 ||
    { result="FINDING: see $log and $artifacts"; status=1; }
  # Fork mode reports "#<executions>: cov: ... oom/timeout/crash: a/b/c time: ...".
  last=$(grep -E '^#[0-9]+: cov:' "$log" | tail -1)
  runs=$(sed -E 's/^#([0-9]+):.*/\1/' <<<"$last")
  limits=$(sed -E 's/.*oom\/timeout\/crash: ([0-9]+)\/([0-9]+)\/.*/\1 out of memory, \2 timeouts/' <<<"$last")
  echo "fuzz: $h: ${runs:-?} executions in $(($(date +%s) - start)) s (${limits:-?}): $result"
done
exit $status
