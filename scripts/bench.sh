#!/usr/bin/env bash
# Control-plane benchmark: a release `berth server` (single node, durable, fresh data dir on
# local disk) and `berth-load` with 64 concurrent clients on loopback, RunTask(count=1) then
# DescribeTasks, every request SigV4-signed with the admin credential the server wrote to
# <data-dir>/admin.credentials. Repeats the whole run (fresh server each time) and prints every
# run's table, with the CPU berth-load and the server used in each measured window.
#
#   scripts/bench.sh [RUNS] [SECONDS] [CLIENTS]
#
# BENCH_TLS=1 serves HTTPS (`berth server --tls`; berth-load trusts <data-dir>/ca.pem).
# BENCH_SERVER=PATH runs another `berth` binary as the server: one built from before
# authentication (BENCHMARKS.md's baseline) writes no credential and ignores signatures, so
# berth-load signs with a throwaway key. BENCH_ARGS adds arguments to berth-load (e.g. --json).
# BENCH_VOTERS=N (N > 1) starts N servers as one Raft group instead (`berth-failover --hold`:
# loopback, one cluster secret, every server durable) and points berth-load at the leader, so
# every RunTask is committed by a quorum of N without a forwarding hop; `srv cpu` is then the
# leader's (plain HTTP only).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
seconds=${2:-10}
clients=${3:-64}
server_bin=${BENCH_SERVER:-target/release/berth}
voters=${BENCH_VOTERS:-1}
tls=()
[ -n "${BENCH_TLS:-}" ] && tls=(--tls)
if [ "$voters" -gt 1 ] && [ -n "${BENCH_TLS:-}" ]; then
  echo "BENCH_VOTERS and BENCH_TLS do not combine" >&2; exit 1
fi

cargo build --release --locked -p berth -p berth-load >/dev/null
for run in $(seq 1 "$runs"); do
  dir=$(mktemp -d "${TMPDIR:-/tmp}/berth-bench.XXXXXX")
  if [ "$voters" -gt 1 ]; then
    # Prints `leader ID HOST:PORT PID CREDENTIALS-FILE` once the group is healthy.
    target/release/berth-failover --berth "$server_bin" --servers "$voters" --hold \
      -- --agent-heartbeat-timeout 3600 >"$dir/ready" 2>"$dir/server.log" &
    group=$!
    for _ in $(seq 1 600); do [ -s "$dir/ready" ] && break; sleep 0.1; done
    read -r _ leader addr server credentials <"$dir/ready" || true
    if [ -z "${addr:-}" ]; then
      echo "the servers did not start" >&2; cat "$dir/server.log" >&2; kill "$group" 2>/dev/null; exit 1
    fi
    echo "run $run/$runs ($voters voters, berth-load to the leader: node $leader at $addr)"
    # shellcheck disable=SC2086 # BENCH_ARGS is a list of arguments
    target/release/berth-load --addr "$addr" --credentials-file "$credentials" \
      --clients "$clients" --duration "$seconds" --warmup 2 --server-pid "$server" ${BENCH_ARGS:-}
    kill "$group"; wait "$group" || true
    rm -rf "$dir"
    continue
  fi
  # berth-load registers container instances with no agent behind them: keep them connected.
  "$server_bin" server --listen 127.0.0.1:0 --data-dir "$dir/data" --agent-heartbeat-timeout 3600 \
    "${tls[@]}" >"$dir/ready" 2>"$dir/server.log" &
  server=$!
  # The server writes its admin credential (and with --tls ca.pem) before the ready line.
  for _ in $(seq 1 100); do [ -s "$dir/ready" ] && break; sleep 0.1; done
  addr=$(sed -n 's|.*listening on https\?://||p' "$dir/ready")
  if [ -z "$addr" ]; then
    echo "the server did not start" >&2; cat "$dir/server.log" >&2; kill "$server" 2>/dev/null; exit 1
  fi
  access=(--credentials-file "$dir/data/admin.credentials")
  if [ ! -s "$dir/data/admin.credentials" ]; then
    printf '[default]\naws_access_key_id = BKIAUNVERIFIED\naws_secret_access_key = unverified\n' \
      >"$dir/unverified.credentials"
    access=(--credentials-file "$dir/unverified.credentials")
    echo "(this server wrote no credential: it verifies no signature)"
  fi
  [ -n "${BENCH_TLS:-}" ] && access+=(--ca-file "$dir/data/ca.pem")
  echo "run $run/$runs (server $(head -1 "$dir/ready" | sed 's/.* on //'), data $dir/data)"
  # shellcheck disable=SC2086 # BENCH_ARGS is a list of arguments
  target/release/berth-load --addr "$addr" "${access[@]}" --clients "$clients" \
    --duration "$seconds" --warmup 2 --server-pid "$server" ${BENCH_ARGS:-}
  kill "$server"; wait "$server" || true
  rm -rf "$dir"
done
