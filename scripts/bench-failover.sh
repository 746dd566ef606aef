#!/usr/bin/env bash
# Failover benchmark: `berth-failover` starts SERVERS release `berth server`s as one Raft group
# on loopback, keeps a steady CreateCluster load on every server, SIGKILLs the leader KILLS
# times (restarting it each time) and reports kill → first acknowledged write through a
# survivor, per kill and as p50/p90/max, then checks that every acknowledged write is on every
# server (exits non-zero if one is missing).
#
#   scripts/bench-failover.sh [KILLS] [SERVERS]
#
# FAILOVER_ARGS adds arguments to berth-failover (e.g. "--writers 4 --interval-ms 0 --keep");
# SERVER_ARGS adds arguments to every `berth server` (e.g. "--raft-election-timeout-ms 150").
# The servers log to <root>/node{N}.log, openraft's elections included (RUST_LOG overrides the
# harness's info,openraft=info; the report reads the elections from these logs); --keep keeps
# them, as does a failed run.
set -euo pipefail
cd "$(dirname "$0")/.."
kills=${1:-20}
servers=${2:-3}

cargo build --release --locked -p berth -p berth-load >/dev/null
# shellcheck disable=SC2086 # FAILOVER_ARGS and SERVER_ARGS are lists of arguments
target/release/berth-failover --berth target/release/berth --servers "$servers" \
  --kills "$kills" ${FAILOVER_ARGS:-} -- ${SERVER_ARGS:-}
