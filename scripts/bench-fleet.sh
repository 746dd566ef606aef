#!/usr/bin/env bash
# Fleet benchmark (issue 18): how fast COUNT simulated hosts register, and what they cost. A
# release `berth server` and one `berth-fleet` of COUNT hollow agents (each its own container
# instance, joining and signing with its own credential); reports the registration time, the
# fleet's resident set and open files once registered, and again after a minute of polling.
#
#   scripts/bench-fleet.sh [COUNT [RUNS]]      (default 10000 1)
#
# BIN=DIR runs the binaries in DIR rather than building them; FLEET_ARGS adds berth-fleet flags;
# SETTLE=SECONDS sets how long the fleet polls before the second reading (default 60);
# PERF=SECONDS records CPU profiles (perf, 250 Hz, call graphs; PERF_ARGS replaces those
# options, e.g. `--call-graph dwarf -F 99` for whole Rust stacks) of the server and the fleet
# for that long from the fleet's start, and prints their top symbols; BENCH_LOGS=DIR keeps the
# logs and the profiles. Each run also reports, once registered, the server's and the fleet's
# CPU seconds and the load average (the machine is shared, and the figures mean little without
# them), the fleet's threads, and the Raft entries and fsyncs the registrations took.
set -euo pipefail
cd "$(dirname "$0")/.."
count=${1:-10000}
runs=${2:-1}
cluster=fleet-bench
bin=${BIN:-target/release}
[ -n "${BIN:-}" ] || cargo build --release --locked -p berth -p berth-load >/dev/null

fds() { find "/proc/$1/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }
rss_mib() { awk '/^VmRSS/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }
threads() { awk '/^Threads/ { print $2 }' "/proc/$1/status"; }
# User + system CPU seconds of a process so far (fields 14 and 15 of its stat, after the name).
cpu_s() { sed 's/.*) //' "/proc/$1/stat" | awk -v hz="$(getconf CLK_TCK)" '{ printf "%.1f", ($12 + $13) / hz }'; }
top_symbols() {
  perf report -i "$1" --stdio --no-children --sort symbol -g none 2>/dev/null |
    grep -v "^#" | grep -v "^$" | sed 's/  *$//' | head -"${2:-25}" || true
}

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
  if [ -n "${PERF:-}" ]; then
    # shellcheck disable=SC2086 # PERF_ARGS is a list of arguments
    perf record -q ${PERF_ARGS:--g -F 250} -p "$server" -o "$dir/server.perf" -- sleep "$PERF" 2>/dev/null &
    profilers=$!
    # shellcheck disable=SC2086
    perf record -q ${PERF_ARGS:--g -F 250} -p "$fleet" -o "$dir/fleet.perf" -- sleep "$PERF" 2>/dev/null &
    profilers="$profilers $!"
  fi
  # The fleet prints `fleet ready` on stdout, then the `registered` line on stderr: wait for
  # the second, which the readings below need.
  for _ in $(seq 1 3000); do
    grep -q '^registered' "$dir/fleet.log" 2>/dev/null && break
    kill -0 "$fleet" 2>/dev/null || break
    sleep 0.1
  done
  echo "run $run: $(grep '^registered' "$dir/fleet.log" || echo "the fleet did not register: $(tail -3 "$dir/fleet.log")")"
  echo "run $run: fleet RSS $(rss_mib "$fleet") MiB, $(fds "$fleet") open files, $(threads "$fleet") threads; server RSS $(rss_mib "$server") MiB, $(fds "$server") open files"
  echo "run $run: CPU s so far: fleet $(cpu_s "$fleet"), server $(cpu_s "$server"); load average $(cut -d' ' -f1-3 /proc/loadavg)"
  # How the server grouped the writes: Raft entries, commands per entry, fsyncs (the log
  # writer's transactions). Counted from its start, so CreateCluster and the join token too.
  curl -sf --aws-sigv4 aws:amz:us-east-1:berth --user "$(key aws_access_key_id):$(key aws_secret_access_key)" \
    "http://$addr/metrics" | awk -v run="$run" '
      /^berth_raft_entry_commands_count/ { entries = $2 } /^berth_raft_entry_commands_sum/ { commands = $2 }
      /^berth_raft_log_write_entries_count/ { writes = $2 }
      END { if (entries) printf "run %s: Raft: %d commands in %d entries (%.1f per entry), %d log writes (fsyncs)\n", run, commands, entries, commands / entries, writes }' || true
  if [ -n "${PERF:-}" ]; then
    # shellcheck disable=SC2086 # two process ids
    wait $profilers 2>/dev/null || true
    for who in server fleet; do
      echo "--- run $run: $who CPU profile, first $PERF s (perf report, self time, top symbols)"
      top_symbols "$dir/$who.perf"
    done
  fi
  sleep "${SETTLE:-60}"
  echo "run $run: after ${SETTLE:-60} s of polling: fleet RSS $(rss_mib "$fleet") MiB, $(fds "$fleet") open files; server RSS $(rss_mib "$server") MiB"
  kill "$fleet" "$server" 2>/dev/null || true
  wait 2>/dev/null || true
  if [ -n "${BENCH_LOGS:-}" ]; then
    mkdir -p "$BENCH_LOGS/run-$run"
    cp "$dir"/*.log "$dir"/*.perf "$BENCH_LOGS/run-$run"/ 2>/dev/null || true
  fi
  rm -rf "$dir"
done
echo "server, $count agents share $(nproc) cores"
