#!/usr/bin/env bash
# Mesos scheduler API benchmark (issue 6): a release `berth server`, `berth-fleet` (INSTANCES
# hollow agents in one process, cluster `default`, where Mesos frameworks schedule) and
# `berth-mesos-bench` with FRAMEWORKS frameworks: the offer cycle (free capacity → OFFERS) and
# LAUNCH → TASK_RUNNING.
#
#   scripts/bench-mesos.sh [INSTANCES FRAMEWORKS]      (default 1000 4)
#
# Extra arguments for berth-mesos-bench go in BENCH_ARGS (e.g. BENCH_ARGS="--tasks 2000");
# BENCH_LOGS=DIR keeps the server's and the fleet's logs; BENCH_BIN=DIR runs the berth,
# berth-fleet and berth-mesos-bench binaries in DIR instead of building them (to compare two
# builds under the same conditions); BENCH_PERF=FILE records the server's profile with
# `perf record` (DWARF call graphs, 199 Hz) while the benchmark runs. Server, agents and client
# all run on this machine and share its cores, so the figures are the control plane's on that
# many cores, not a distributed deployment's.
set -euo pipefail
cd "$(dirname "$0")/.."
instances=${1:-1000}
frameworks=${2:-4}

if [ -n "${BENCH_BIN:-}" ]; then
  bin=$BENCH_BIN
else
  cargo build --release --locked -p berth -p berth-load >/dev/null
  bin=${CARGO_TARGET_DIR:-target}/release
fi
dir=$(mktemp -d "${TMPDIR:-/tmp}/berth-bench-mesos.XXXXXX")
cleanup() {
  kill "${fleet:-}" "${server:-}" "${perf:-}" 2>/dev/null || true
  wait 2>/dev/null || true
  # BENCH_LOGS=DIR keeps the server's and the fleet's logs (e.g. with
  # RUST_LOG=info,berth_server::mesos=debug).
  [ -n "${BENCH_LOGS:-}" ] && mkdir -p "$BENCH_LOGS" && cp "$dir"/*.log "$BENCH_LOGS"/ 2>/dev/null
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
# make the server think them lost mid-benchmark (which would rescind their offers).
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
  -d '{"clusterName":"default"}' >/dev/null || fail "CreateCluster failed"

# berth-fleet's default size (8192 CPU units, 16 GiB): each instance takes dozens of the
# benchmark's 0.1-cpu tasks, so every offer can be accepted.
"$bin"/berth-fleet --server "http://$addr" --credentials-file "$creds" \
  --cluster default --count "$instances" --data-dir "$dir/fleet" >"$dir/fleet.out" 2>"$dir/fleet.log" &
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

if [ -n "${BENCH_PERF:-}" ]; then
  perf record -q --call-graph dwarf -F 199 -p "$server" -o "$BENCH_PERF" 2>"$dir/perf.log" &
  perf=$!
fi
# shellcheck disable=SC2086 # BENCH_ARGS is a list of arguments
"$bin"/berth-mesos-bench --addr "$addr" --credentials-file "$creds" --cluster default \
  --frameworks "$frameworks" --server-pid "$server" --fleet-pid "$fleet" ${BENCH_ARGS:-} \
  || fail "the benchmark failed"
if [ -n "${perf:-}" ]; then
  kill -INT "$perf" && wait "$perf" || true
  perf=
fi
# Offers are Raft entries; what they cost on disk is part of the picture.
echo "server data directory after the benchmark: $(du -sm "$dir/data" | cut -f1) MiB"
