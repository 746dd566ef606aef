#!/usr/bin/env bash
# Agent benchmark: a release `berth server` and `berth agent` on this host's Docker Engine, then
# `berth-agent-bench`: RunTask → RUNNING versus a plain `docker run -d` of the same image
# (interleaved, medians), and the agent's RSS with 50 tasks running.
#
#   scripts/bench-agent.sh [SAMPLES]
set -euo pipefail
cd "$(dirname "$0")/.."
samples=${1:-20}

scripts/test-image.sh
cargo build --release --locked -p berth -p berth-load >/dev/null
dir=$(mktemp -d "${TMPDIR:-/tmp}/berth-bench-agent.XXXXXX")
cleanup() {
  kill "${agent:-}" "${server:-}" 2>/dev/null || true
  wait 2>/dev/null || true
  docker ps -aq --filter label=com.berth.cluster=agent-bench | xargs -r docker rm -f >/dev/null
  rm -rf "$dir"
}
trap cleanup EXIT
target/release/berth server --listen 127.0.0.1:0 --data-dir "$dir/data" >"$dir/ready" 2>"$dir/server.log" &
server=$!
for _ in $(seq 1 100); do [ -s "$dir/ready" ] && break; sleep 0.1; done
addr=$(sed -n 's|.*http://||p' "$dir/ready")
aws_create() {
  curl -sf -X POST "http://$addr/" -H 'content-type: application/x-amz-json-1.1' \
    -H 'x-amz-target: AmazonEC2ContainerServiceV20141113.CreateCluster' -d '{"clusterName":"agent-bench"}' >/dev/null
}
aws_create
target/release/berth agent --server "http://$addr" --cluster agent-bench --listen 127.0.0.1:0 \
  --data-dir "$dir/agent" --cleanup-wait 1 >"$dir/agent-ready" 2>"$dir/agent.log" &
agent=$!
for _ in $(seq 1 100); do [ -s "$dir/agent-ready" ] && break; sleep 0.1; done
cat "$dir/agent-ready"
target/release/berth-agent-bench --addr "$addr" --cluster agent-bench --samples "$samples" --agent-pid "$agent"
