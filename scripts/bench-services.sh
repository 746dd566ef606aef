#!/usr/bin/env bash
# Service benchmark (issue 5): a release `berth server`, `berth-fleet` (INSTANCES hollow agents in
# one process) and `berth-service-bench`: create SERVICES services of TASKS tasks each, time them
# to RUNNING, then roll every service to a new revision and time that.
#
#   scripts/bench-services.sh [SERVICES TASKS INSTANCES]      (default 100 100 1000)
#
# Extra arguments for berth-service-bench go in BENCH_ARGS (e.g. BENCH_ARGS=--spread); BENCH_LOGS=DIR
# keeps the server's and the fleet's logs; BIN=DIR runs the binaries in DIR rather than building
# them (a copy of an earlier build, for a before/after); PERF=SECONDS records a flat CPU profile of the
# server (perf, 250 Hz) for that long from the first CreateService, printed at the end. Server,
# agents and client all run on this machine and share its cores, so the figures are the control
# plane's on that many cores, not a distributed deployment's.
set -euo pipefail
cd "$(dirname "$0")/.."
services=${1:-100}
tasks=${2:-100}
instances=${3:-1000}
cluster=svc-bench

bin=${BIN:-target/release}
[ -n "${BIN:-}" ] || cargo build --release --locked -p berth -p berth-load >/dev/null
dir=$(mktemp -d "${TMPDIR:-/tmp}/berth-bench-services.XXXXXX")
cleanup() {
  kill "${fleet:-}" "${server:-}" 2>/dev/null || true
  wait 2>/dev/null || true
  # BENCH_LOGS=DIR keeps the server's and the fleet's logs (e.g. with
  # RUST_LOG=info,berth_server::controller=debug for the controller's pass timings).
  [ -n "${BENCH_LOGS:-}" ] && mkdir -p "$BENCH_LOGS" && cp "$dir"/*.log "$dir"/perf.data "$BENCH_LOGS"/ 2>/dev/null
  rm -rf "$dir"
}
trap cleanup EXIT
fail() {
  echo "$1" >&2
  for log in server.log fleet.log; do
    [ -s "$dir/$log" ] && { echo "--- last lines of $log" >&2; tail -20 "$dir/$log" >&2; }
  done
  exit 1
}

# Agents are heard from once per poll; with a long heartbeat timeout a busy, shared CPU cannot
# make the server think them lost mid-benchmark.
"$bin"/berth server --listen 127.0.0.1:0 --data-dir "$dir/data" \
  --agent-heartbeat-timeout 3600 >"$dir/ready" 2>"$dir/server.log" &
server=$!
for _ in $(seq 1 100); do [ -s "$dir/ready" ] && break; sleep 0.1; done
addr=$(sed -n 's|.*listening on http://||p' "$dir/ready")
[ -n "$addr" ] || fail "the server did not start"
# The server writes its admin credential before the ready line: everything below signs with it
# (berth-fleet makes one join token with it, and its agents join with that).
creds="$dir/data/admin.credentials"
key() { sed -n "s/^$1 *= *//p" "$creds"; }
curl -sf --aws-sigv4 aws:amz:us-east-1:ecs --user "$(key aws_access_key_id):$(key aws_secret_access_key)" \
  -X POST "http://$addr/" -H 'content-type: application/x-amz-json-1.1' \
  -H 'x-amz-target: AmazonEC2ContainerServiceV20141113.CreateCluster' \
  -d "{\"clusterName\":\"$cluster\"}" >/dev/null || fail "CreateCluster failed"

# 8192 CPU units and 16 GiB per instance: 32 tasks of 256 CPU / 128 MiB each, so 1,000
# instances hold 100 × 100 tasks twice over, as the rolling update at maximumPercent 200 needs.
"$bin"/berth-fleet --server "http://$addr" --credentials-file "$creds" \
  --cluster "$cluster" --count "$instances" --cpu 8192 --memory 16384 --zones 3 \
  --data-dir "$dir/fleet" >"$dir/fleet.out" 2>"$dir/fleet.log" &
fleet=$!
for _ in $(seq 1 1200); do
  grep -q '^fleet ready' "$dir/fleet.out" 2>/dev/null && break
  kill -0 "$fleet" 2>/dev/null || fail "berth-fleet exited"
  sleep 0.1
done
grep -q '^fleet ready' "$dir/fleet.out" || fail "the fleet did not register in 120 s"
cat "$dir/fleet.out"
grep "^registered" "$dir/fleet.log" || true
echo "server, $instances agents and the client share $(nproc) cores"

if [ -n "${PERF:-}" ]; then
  perf record -q -F 250 -p "$server" -o "$dir/perf.data" -- sleep "$PERF" 2>/dev/null &
  profiler=$!
fi
# shellcheck disable=SC2086 # BENCH_ARGS is a list of arguments
"$bin"/berth-service-bench --addr "$addr" --credentials-file "$creds" --cluster "$cluster" \
  --services "$services" --tasks-per-service "$tasks" \
  --server-pid "$server" --fleet-pid "$fleet" ${BENCH_ARGS:-} || fail "the benchmark failed"
if [ -n "${PERF:-}" ]; then
  wait "$profiler" || true
  echo "--- server CPU profile, first ${PERF} s (perf report, top symbols)"
  perf report -i "$dir/perf.data" --stdio --no-children --sort symbol 2>/dev/null |
    grep -v "^#" | grep -v "^$" | head -25 || true
fi
