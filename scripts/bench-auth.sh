#!/usr/bin/env bash
# What authentication costs: RunTask/s and DescribeTasks/s (64 clients, scripts/bench.sh's
# setup) from three servers built from this tree, in interleaved rounds:
#
#   baseline  this tree with scripts/bench-auth-baseline.patch applied: the caller is whoever
#             its access key id names (no SigV4 verification, no secret unsealed, no policy
#             evaluated). Built for this benchmark only, in a copy of the tree; berth itself
#             has no switch that turns verification off.
#   verified  this tree as it is: SigV4 verification and policy evaluation on every request.
#   tls       the same binary with `--tls`.
#
#   scripts/bench-auth.sh [ROUNDS] [SECONDS]
#
# The binaries are copied aside before the rounds start, so rebuilds of the shared target
# directory cannot change them mid-series; BENCH_AUTH_REUSE=1 runs more rounds with the copies
# of an earlier run. Before measuring, each arm is checked to be what it says: a request
# signed with a wrong secret is refused by `verified` and answered by `baseline`. Prints every
# run, then the medians and the median of the per-round ratios (which cancels drift between
# rounds).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
seconds=${2:-10}
work=${BENCH_AUTH_DIR:-/tmp/berth-bench-auth}

if [ -z "${BENCH_AUTH_REUSE:-}" ]; then
  rm -rf "$work" && mkdir -p "$work/tree" "$work/bin"
  cargo build --release --locked -p berth -p berth-load >/dev/null
  cp target/release/berth "$work/bin/verified"
  cp target/release/berth-load "$work/bin/berth-load"
  # The baseline: a copy of this tree (uncommitted changes included), patched, built with the
  # shared target directory so that dependencies are not rebuilt. Cargo names a workspace
  # member's artifacts by its path inside the workspace and judges them by modification time,
  # so the copy's unchanged crates reuse this tree's artifacts and its patched file replaces
  # them: this tree's own file is touched afterwards so that its next build compiles it again,
  # and the baseline binary is not left where scripts/bench.sh would take it.
  tar --exclude=./target --exclude=./.git --exclude='./.venv*' -cf - . | tar -xf - -C "$work/tree"
  patch -s -d "$work/tree" -p1 <scripts/bench-auth-baseline.patch || {
    echo "scripts/bench-auth-baseline.patch no longer applies to crates/server/src/auth.rs: refresh it" >&2
    exit 1
  }
  CARGO_TARGET_DIR=$PWD/target cargo build --release --locked -p berth \
    --manifest-path "$work/tree/Cargo.toml" >/dev/null 2>"$work/baseline-build.log" || {
    cat "$work/baseline-build.log" >&2; exit 1
  }
  cp target/release/berth "$work/bin/baseline"
  touch crates/server/src/auth.rs
  rm -f target/release/berth
fi

# Starts ARM's server in a fresh data directory; sets `pid`, `addr`, `dir`.
start() {
  local server=$work/bin/verified tls=()
  [ "$1" = baseline ] && server=$work/bin/baseline
  [ "$1" = tls ] && tls=(--tls)
  dir=$(mktemp -d "${TMPDIR:-/tmp}/berth-bench-auth.XXXXXX")
  "$server" server --listen 127.0.0.1:0 --data-dir "$dir/data" --agent-heartbeat-timeout 3600 \
    "${tls[@]}" >"$dir/ready" 2>"$dir/server.log" &
  pid=$!
  for _ in $(seq 1 100); do [ -s "$dir/ready" ] && break; sleep 0.1; done
  addr=$(sed -n 's|.*listening on https\?://||p' "$dir/ready")
  if [ -z "$addr" ]; then
    echo "the $1 server did not start" >&2; cat "$dir/server.log" >&2; kill "$pid" 2>/dev/null; exit 1
  fi
}

stop() {
  kill "$pid"; wait "$pid" || true
  rm -rf "$dir"
}

# A ListClusters signed with the admin key id and a wrong secret: the HTTP status.
wrong_secret_status() {
  local key
  key=$(sed -n 's/^aws_access_key_id *= *//p' "$dir/data/admin.credentials")
  curl -s -o /dev/null -w '%{http_code}' --aws-sigv4 "aws:amz:us-east-1:ecs" \
    --user "$key:not-the-secret" -H 'content-type: application/x-amz-json-1.1' \
    -H 'x-amz-target: AmazonEC2ContainerServiceV20141113.ListClusters' -d '{}' "http://$addr/"
}
start verified
status=$(wrong_secret_status); stop
[ "$status" = 400 ] || { echo "verified answered a wrong secret with $status, not 400" >&2; exit 1; }
start baseline
status=$(wrong_secret_status); stop
[ "$status" = 200 ] || { echo "baseline answered a wrong secret with $status, not 200" >&2; exit 1; }

results="$work/results.jsonl"
: >"$results"
for round in $(seq 1 "$rounds"); do
  for arm in baseline verified tls; do
    start "$arm"
    access=(--credentials-file "$dir/data/admin.credentials")
    [ "$arm" = tls ] && access+=(--ca-file "$dir/data/ca.pem")
    echo "round $round/$rounds: $arm ($(uptime | sed 's/.*load/load/'))"
    "$work/bin/berth-load" --addr "$addr" "${access[@]}" --clients 64 --duration "$seconds" \
      --warmup 2 --server-pid "$pid" --json |
      while read -r line; do
        echo "$line"
        printf '{"round":%s,"arm":"%s","result":%s}\n' "$round" "$arm" "$line" >>"$results"
      done
    stop
  done
done

python3 - "$results" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
by = {}
for r in rows:
    by.setdefault((r["result"]["phase"], r["arm"]), {})[r["round"]] = r["result"]
phases = sorted({p for p, _ in by})
arms = ["baseline", "verified", "tls"]
med = statistics.median
print()
print(f"{'phase':<15} {'arm':<9} {'req/s':>9} {'p50 ms':>7} {'p99 ms':>7} {'srv µs/req':>10} {'all cpu':>8}")
for p in phases:
    for a in arms:
        runs = list(by.get((p, a), {}).values())
        if not runs:
            continue
        cpu = [r["server_cpu_s"] / r["ok"] * 1e6 for r in runs if r["ok"] and r["server_cpu_s"]]
        busy = [r["machine_cpu_s"] / r["seconds"] for r in runs if r["machine_cpu_s"]]
        print(f"{p:<15} {a:<9} {med(r['per_second'] for r in runs):>9.0f} "
              f"{med(r['p50_ms'] for r in runs):>7.2f} {med(r['p99_ms'] for r in runs):>7.2f} "
              f"{med(cpu) if cpu else float('nan'):>10.1f} {med(busy) * 100 if busy else float('nan'):>7.0f}%")
    for num, den in [("verified", "baseline"), ("tls", "verified")]:
        a, b = by.get((p, num), {}), by.get((p, den), {})
        ratios = [a[k]["per_second"] / b[k]["per_second"] for k in a if k in b]
        if ratios:
            print(f"{p:<15} {num}/{den}: median of per-round ratios {med(ratios):.3f} "
                  f"(rounds: {' '.join(f'{x:.3f}' for x in ratios)})")
PY
