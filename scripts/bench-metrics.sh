#!/usr/bin/env bash
# /metrics benchmark (issue 15): a release `berth server`, `berth-fleet` (INSTANCES hollow agents
# in one process) and TASKS tasks run on them with RunTask (10 per call), then SCRAPES scrapes of
# `/metrics` with curl: unauthenticated on --metrics-listen, and SigV4-signed on the API port.
# Prints the median and p90 of each (curl's time_total: connect, request, whole body).
#
#   scripts/bench-metrics.sh [INSTANCES TASKS SCRAPES]      (default 1000 10000 101)
#
# Server, agents and curl share this machine's cores, with the agents polling and reporting
# while the scrapes run, as a busy cluster would.
set -euo pipefail
cd "$(dirname "$0")/.."
instances=${1:-1000}
tasks=${2:-10000}
scrapes=${3:-101}

cargo build --release --locked -p berth -p berth-load >/dev/null
dir=$(mktemp -d "${TMPDIR:-/tmp}/berth-bench-metrics.XXXXXX")
cleanup() {
  kill "${fleet:-}" "${server:-}" 2>/dev/null || true
  wait 2>/dev/null || true
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

metrics=127.0.0.1:$((20000 + RANDOM % 20000))
target/release/berth server --listen 127.0.0.1:0 --data-dir "$dir/data" \
  --agent-heartbeat-timeout 3600 --metrics-listen "$metrics" >"$dir/ready" 2>"$dir/server.log" &
server=$!
for _ in $(seq 1 100); do [ -s "$dir/ready" ] && break; sleep 0.1; done
addr=$(sed -n 's|.*listening on http://||p' "$dir/ready")
[ -n "$addr" ] || fail "the server did not start"
creds="$dir/data/admin.credentials"
key() { sed -n "s/^$1 *= *//p" "$creds"; }
user="$(key aws_access_key_id):$(key aws_secret_access_key)"
ecs() {
  curl -sf --aws-sigv4 aws:amz:us-east-1:ecs --user "$user" -X POST "http://$addr/" \
    -H 'content-type: application/x-amz-json-1.1' \
    -H "x-amz-target: AmazonEC2ContainerServiceV20141113.$1" -d "$2"
}
ecs CreateCluster '{"clusterName":"bench"}' >/dev/null || fail "CreateCluster failed"
ecs RegisterTaskDefinition '{"family":"bench","containerDefinitions":[{"name":"app","image":"busybox","cpu":1,"memory":6}]}' \
  >/dev/null || fail "RegisterTaskDefinition failed"

target/release/berth-fleet --server "http://$addr" --credentials-file "$creds" \
  --cluster bench --count "$instances" --data-dir "$dir/fleet" >"$dir/fleet.out" 2>"$dir/fleet.log" &
fleet=$!
for _ in $(seq 1 1200); do
  grep -q '^fleet ready' "$dir/fleet.out" 2>/dev/null && break
  kill -0 "$fleet" 2>/dev/null || fail "berth-fleet exited"
  sleep 0.1
done
grep -q '^fleet ready' "$dir/fleet.out" || fail "the fleet did not register in 120 s"

for _ in $(seq 1 $((tasks / 10))); do
  ecs RunTask '{"cluster":"bench","taskDefinition":"bench","count":10}' >/dev/null || fail "RunTask failed"
done
# Let the agents report their tasks RUNNING.
for _ in $(seq 1 600); do
  running=$(curl -sf "http://$metrics/metrics" |
    sed -n 's/^berth_tasks{cluster="bench",status="RUNNING"} //p')
  [ "${running:-0}" -ge "$tasks" ] && break
  sleep 0.1
done
echo "$(curl -sf "http://$metrics/metrics" | grep -c '^berth') samples per scrape;" \
  "$(curl -sf "http://$metrics/metrics" | wc -c) bytes; RUNNING tasks: ${running:-0}"
echo "server, $instances agents and curl share $(nproc) cores"

# Median and p90 of SCRAPES timings (seconds, one per line on stdin), in milliseconds.
summary() {
  sort -n | awk '{ v[NR] = $1 } END {
    printf "median %.2f ms, p90 %.2f ms (n=%d)\n", v[int((NR + 1) / 2)] * 1000, v[int(NR * 0.9 + 0.5)] * 1000, NR }'
}
printf 'unauthenticated (--metrics-listen): '
for _ in $(seq 1 "$scrapes"); do
  curl -sf -o /dev/null -w '%{time_total}\n' "http://$metrics/metrics"
done | summary
printf 'signed (API port, berth:GetMetrics): '
for _ in $(seq 1 "$scrapes"); do
  curl -sf -o /dev/null -w '%{time_total}\n' --aws-sigv4 aws:amz:us-east-1:berth --user "$user" \
    "http://$addr/metrics"
done | summary
