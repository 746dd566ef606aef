#!/usr/bin/env bash
# Fleet benchmark (issue 18): how fast COUNT simulated hosts register, and what they cost. A
# release `berth server` and one `berth-fleet` of COUNT hollow agents (each its own container
# instance, joining and signing with its own credential); reports the registration time, the
# fleet's resident set and open files once registered, and again after a minute of polling.
#
#   scripts/bench-fleet.sh [COUNT [RUNS]]      (default 10000 1)
#
# BIN=DIR runs the binaries in DIR rather than building them; FLEET_ARGS adds berth-fleet flags;
# SETTLE=SECONDS sets how long the fleet polls before the second reading (default 60).
set -euo pipefail
cd "$(dirname "$0")/.."
count=${1:-10000}
runs=${2:-1}
cluster=fleet-bench
bin=${BIN:-target/release}
[ -n "${BIN:-}" ] || cargo build --release --locked -p berth -p berth-load >/dev/null

fds() { find "/proc/$1/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }
rss_mib() { awk '/^VmRSS/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }

for run in $(seq 1 "$runs"); do
  dir=$(mktemp -d "${TMPDIR:-/tmp}/berth-bench-fleet.XXXXXX")
  "$bin"/berth server --listen 127.0.0.1:0 --data-dir "$dir/data" \
    --agent-heartbeat-timeout 3600 >"$dir/ready" 2>"$dir/server.log" &
  server=$!
  for _ in $(seq 1 100); do [ -s "$dir/ready" ] && break; sleep 0.1; done
  addr=$(sed -n 's|.*listening on http://||p' "$dir/ready")
  creds="$dir/data/admin.credentials"
  key() { sed -n "s/^$1 *= *//p" "$creds"; }
  curl -sf --aws-sigv4 aws:amz:us-east-1:ecs --user "$(key aws_access_key_id):$(key aws_secret_access_key)" \
    -X POST "http://$addr/" -H 'content-type: application/x-amz-json-1.1' \
    -H 'x-amz-target: AmazonEC2ContainerServiceV20141113.CreateCluster' \
    -d "{\"clusterName\":\"$cluster\"}" >/dev/null
  # shellcheck disable=SC2086 # FLEET_ARGS is a list of arguments
  "$bin"/berth-fleet --server "http://$addr" --credentials-file "$creds" --cluster "$cluster" \
    --count "$count" --data-dir "$dir/fleet" ${FLEET_ARGS:-} >"$dir/fleet.out" 2>"$dir/fleet.log" &
  fleet=$!
  for _ in $(seq 1 3000); do
    grep -q '^fleet ready' "$dir/fleet.out" 2>/dev/null && break
    kill -0 "$fleet" 2>/dev/null || break
    sleep 0.1
  done
  echo "run $run: $(grep '^registered' "$dir/fleet.log" || echo "the fleet did not register: $(tail -3 "$dir/fleet.log")")"
  echo "run $run: fleet RSS $(rss_mib "$fleet") MiB, $(fds "$fleet") open files; server RSS $(rss_mib "$server") MiB, $(fds "$server") open files"
  sleep "${SETTLE:-60}"
  echo "run $run: after ${SETTLE:-60} s of polling: fleet RSS $(rss_mib "$fleet") MiB, $(fds "$fleet") open files; server RSS $(rss_mib "$server") MiB"
  kill "$fleet" "$server" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$dir"
done
echo "server, $count agents share $(nproc) cores"
