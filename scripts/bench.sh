#!/usr/bin/env bash
# Control-plane benchmark: a release `berth server` (single node, durable, fresh data dir on
# local disk) and `berth-load` with 64 concurrent clients on loopback, RunTask(count=1) then
# DescribeTasks. Repeats the whole run (fresh server each time) and prints every run's table.
#
#   scripts/bench.sh [RUNS] [SECONDS] [CLIENTS]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
seconds=${2:-10}
clients=${3:-64}

cargo build --release --locked -p berth -p berth-load >/dev/null
for run in $(seq 1 "$runs"); do
  dir=$(mktemp -d "${TMPDIR:-/tmp}/berth-bench.XXXXXX")
  # berth-load registers container instances with no agent behind them: keep them connected.
  target/release/berth server --listen 127.0.0.1:0 --data-dir "$dir/data" --agent-heartbeat-timeout 3600 >"$dir/ready" 2>"$dir/server.log" &
  server=$!
  for _ in $(seq 1 100); do [ -s "$dir/ready" ] && break; sleep 0.1; done
  addr=$(sed -n 's|.*http://||p' "$dir/ready")
  echo "run $run/$runs (server $addr, data $dir/data)"
  target/release/berth-load --addr "$addr" --clients "$clients" --duration "$seconds" --warmup 2
  kill "$server"; wait "$server" || true
  rm -rf "$dir"
done
