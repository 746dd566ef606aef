#!/usr/bin/env bash
# Fault soak: the fault suite (crates/cli/tests/faults.rs: leader SIGKILL, leader SIGSTOP,
# rolling restart, two of five SIGKILLed, partitions in network namespaces, a full disk, a
# server's clock jumping) again and again, each round with a new seed, until a run fails or
# RUNS rounds have passed. Every run ends with the history checker (crates/history); a
# failing one prints its seed, the command that repeats it, and where its history was
# written (target/tmp/berth-faults/).
#
#   scripts/soak-faults.sh [RUNS] [FILTER]
#
# RUNS rounds (default 20); each runs every fault test once with BERTH_FAULT_SEED = the
# round's seed (nextest runs two at a time). FILTER runs only the tests whose names contain
# it (e.g. `sigstop`). SOAK_SEED=N makes the seeds N, N+1, ... (default: from the clock).
# Logs of every round go to target/soak-faults/. The partition, disk and clock tests need
# root (network namespaces and nftables, tmpfs) and libfaketime; BERTH_FAULTS_MINIMAL=1 lets
# them pass without where those cannot be had.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-20}
filter=${2:-}
start=${SOAK_SEED:-$(date +%s)}
logs=target/soak-faults
mkdir -p "$logs"

# Namespaces a killed run left behind (named after the test process's pid).
if command -v ip >/dev/null && [ "$(id -u)" = 0 ]; then
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep '^berth-faults-' || true); do
    pid=${ns#berth-faults-}
    pid=${pid%%-*}
    if ! kill -0 "$pid" 2>/dev/null; then
      ip netns del "$ns" || true
    fi
  done
fi

# The harness's self-test does not depend on the seed; the soak runs the faults.
expr='not test(=the_check_rejects_a_stale_read_in_a_real_history)'
if [ -n "$filter" ]; then
  expr="test(/$filter/) & $expr"
fi
cargo nextest run -p berth --test faults --no-run

began=$(date +%s)
for ((round = 1; round <= runs; round++)); do
  seed=$((start + round - 1))
  log="$logs/seed-$seed.log"
  echo "== round $round/$runs: BERTH_FAULT_SEED=$seed"
  if BERTH_FAULT_SEED=$seed cargo nextest run -p berth --test faults -E "$expr" \
      --success-output final --failure-output final >"$log" 2>&1; then
    grep -E '^\s*[a-z_]+: checked in' "$log" | sed -E 's/^\s*/   /' || true
  else
    echo
    grep -E 'FAIL|panicked|the check failed|history in' "$log" | head -20 || true
    echo
    echo "FAILED at round $round with seed $seed (log: $log). Repeat with:"
    echo "  BERTH_FAULT_SEED=$seed cargo nextest run -p berth --test faults -E '$expr'"
    exit 1
  fi
done
echo "$runs rounds passed (seeds $start..$((start + runs - 1))) in $(($(date +%s) - began)) s"
