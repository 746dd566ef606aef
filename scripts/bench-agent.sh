#!/usr/bin/env bash
# Agent benchmark: a release `berth server` and `berth agent` on this host's Docker Engine, then
# `berth-agent-bench`: RunTask → RUNNING versus a plain `docker run -d` of the same image
# (interleaved, medians), and the agent's RSS with 50 tasks running. Requests are signed with
# the admin credential the server writes; the agent joins with a join token.
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
# The server writes its admin credential before the ready line; everything below signs with it.
for _ in $(seq 1 100); do [ -s "$dir/ready" ] && break; sleep 0.1; done
addr=$(sed -n 's|.*listening on http://||p' "$dir/ready")
[ -n "$addr" ] || { echo "the server did not start" >&2; cat "$dir/server.log" >&2; exit 1; }
creds="$dir/data/admin.credentials"
key() { sed -n "s/^$1 *= *//p" "$creds"; }
curl -sf --aws-sigv4 aws:amz:us-east-1:ecs --user "$(key aws_access_key_id):$(key aws_secret_access_key)" \
  -X POST "http://$addr/" -H 'content-type: application/x-amz-json-1.1' \
  -H 'x-amz-target: AmazonEC2ContainerServiceV20141113.CreateCluster' -d '{"clusterName":"agent-bench"}' >/dev/null
# The agent joins with a join token; it then signs with its own credential.
BERTH_JOIN_TOKEN=$(target/release/berth join-token create --cluster agent-bench --ttl 600 \
  --endpoint "http://$addr" --credentials-file "$creds" | sed -n 's/^ *"token": *"\([^"]*\)".*/\1/p')
export BERTH_JOIN_TOKEN
target/release/berth agent --server "http://$addr" --cluster agent-bench --listen 127.0.0.1:0 \
  --data-dir "$dir/agent" --cleanup-wait 1 >"$dir/agent-ready" 2>"$dir/agent.log" &
agent=$!
for _ in $(seq 1 100); do [ -s "$dir/agent-ready" ] && break; sleep 0.1; done
cat "$dir/agent-ready"
target/release/berth-agent-bench --addr "$addr" --credentials-file "$creds" --cluster agent-bench \
  --samples "$samples" --agent-pid "$agent"
