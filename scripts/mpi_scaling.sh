#!/usr/bin/env bash
# Data-parallel scaling (issue 14): the 64-D MAF of configs/maf_gaussians64.yaml
# (workload W4: 5 MADE layers of [256, 256], float32) at batch 4096, trained
# for STEPS steps (default 40) on 1 rank x 1 thread, 2 ranks x 1 thread and
# 1 rank x 2 threads, ROUNDS times each (default 3), interleaved. Prints each
# run's steps/s and the all-reduce share of its training time, from its
# metrics.json, then the medians. Needs a build with MPI (mpirun).
#   scripts/mpi_scaling.sh [STEPS] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
runner=${FLOWS_RUNNER:-build/apps/flows/flows}
steps=${1:-40}
rounds=${2:-3}
mpirun=(mpirun --oversubscribe --allow-run-as-root --bind-to none)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
args=(run configs/maf_gaussians64.yaml -q --set trainer.batch_size=4096
      --set "trainer.steps=$steps" --set trainer.eval_every=0 --set data.n_val=512
      --set 'stages=[train]')

setups=("1 rank x 1 thread" "2 ranks x 1 thread" "1 rank x 2 threads")
run_setup() {  # setup index, output folder
  case $1 in
    0) FLOWS_NUM_THREADS=1 "$runner" "${args[@]}" -o "$2" ;;
    1) FLOWS_NUM_THREADS=1 "${mpirun[@]}" -x FLOWS_NUM_THREADS -np 2 "$runner" "${args[@]}" -o "$2" ;;
    2) FLOWS_NUM_THREADS=2 "$runner" "${args[@]}" -o "$2" ;;
  esac
}

printf '%-20s %6s %10s %14s\n' setup round steps/s allreduce_share
for ((r = 1; r <= rounds; ++r)); do
  for s in 0 1 2; do
    dir="$out/$s-$r"
    run_setup "$s" "$dir" >"$dir.log" 2>&1 || { cat "$dir.log"; exit 1; }
    python3 - "$dir/metrics.json" "${setups[$s]}" "$r" >>"$out/rows" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
rate = m["steps"] / m["train_seconds"]
share = m.get("allreduce_seconds", 0.0) / m["train_seconds"]
print(f"{sys.argv[2]}\t{sys.argv[3]}\t{rate:.3f}\t{share:.4f}")
PY
    tail -1 "$out/rows" | awk -F'\t' '{printf "%-20s %6s %10s %14s\n", $1, $2, $3, $4}'
  done
done
echo
echo "medians over $rounds rounds ($steps steps of batch 4096 each):"
python3 - "$out/rows" <<'PY'
import statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
base = None
for setup in dict.fromkeys(r[0] for r in rows):
    rate = statistics.median(float(r[2]) for r in rows if r[0] == setup)
    share = statistics.median(float(r[3]) for r in rows if r[0] == setup)
    base = base or rate
    print(f"  {setup:<20} {rate:8.2f} steps/s  {rate / base:5.2f}x  all-reduce {100 * share:5.1f} % of the step")
PY
