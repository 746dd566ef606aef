#!/usr/bin/env bash
# Runs berth's whole test suite on a fresh machine: Rust unit, property and integration tests
# (against a real `berth` process with the official AWS SDK; the fault suite runs clusters of
# real servers through crashes, pauses, partitions, full disks and clock jumps), then the
# Python end-to-end tests (boto3 and aws-cli, unmodified; the web UI in headless Chromium,
# whose screenshots are kept in target/artifacts/ui), then the Mesos framework tests
# (pymesos, unmodified).
# Installs what the tests need into .venv-test and .venv-mesos first.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n==> %s\n' "$*"; }

log "Python test environment (.venv-test: boto3, awscli, pytest from PyPI)"
if [ ! -x .venv-test/bin/python ]; then
  python3 -m venv .venv-test
fi
.venv-test/bin/python -m pip install --quiet --disable-pip-version-check -r tests/e2e/requirements.txt

log "Mesos framework test environment (.venv-mesos: pymesos on Debian's http-parser)"
# pymesos needs http-parser, whose PyPI sdist does not build on Python 3.11; Debian's
# python3-http-parser (with python3-six) does the job, so the venv is made from the system
# Python with its site-packages visible, and pip installs the rest with --no-deps.
mesos_tests=true
mesos_system_ready() { /usr/bin/python3 -c 'import http_parser, six, ensurepip' >/dev/null 2>&1; }
if ! mesos_system_ready; then
  if command -v apt-get >/dev/null 2>&1; then
    sudo=()
    [ "$(id -u)" -eq 0 ] || sudo=(sudo)
    # python3-venv brings ensurepip, which `python3 -m venv` needs on Debian. apt's chatter
    # (debconf notices included) is shown only if it fails.
    if ! apt_out=$(
      "${sudo[@]}" apt-get update -qq 2>&1 &&
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
          --no-install-recommends python3 python3-venv python3-http-parser python3-six 2>&1
    ); then
      printf '%s\n' "$apt_out" >&2
      exit 1
    fi
  elif [ "${CI:-}" = true ]; then
    echo "apt-get is unavailable, and CI must run the Mesos framework tests" >&2
    exit 1
  else
    echo "apt-get is unavailable (no Debian python3-http-parser): the Mesos tests will be skipped"
    mesos_tests=false
  fi
fi
if [ "$mesos_tests" = true ]; then
  # Recreate a venv that cannot see the system's http_parser (made some other way).
  if ! .venv-mesos/bin/python -c 'import http_parser' >/dev/null 2>&1; then
    rm -rf .venv-mesos
    /usr/bin/python3 -m venv --system-site-packages .venv-mesos
  fi
  .venv-mesos/bin/python -m pip install --quiet --disable-pip-version-check --no-deps \
    -r tests/mesos/requirements.txt
fi

log "Fault-suite tools (Debian's iproute2, nftables and libfaketime)"
# The fault suite (crates/cli/tests/faults.rs) partitions servers in network namespaces with
# nftables and gives one server its own wall clock with libfaketime; both need root.
fault_tools_ready() {
  command -v ip >/dev/null 2>&1 && command -v nft >/dev/null 2>&1 &&
    [ -e /usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1 ]
}
if ! fault_tools_ready; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ]; then
    if ! apt_out=$(
      apt-get update -qq 2>&1 &&
        env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
          iproute2 nftables libfaketime 2>&1
    ); then
      printf '%s\n' "$apt_out" >&2
      exit 1
    fi
  elif [ "${CI:-}" = true ]; then
    echo "CI must run the fault suite: it needs root with apt-get (iproute2, nftables, libfaketime)" >&2
    exit 1
  else
    echo "no root or apt-get: the fault tests that need them will say so and skip"
    export BERTH_FAULTS_MINIMAL=1
  fi
fi

log "Browser for the web UI tests (Debian's chromium and chromium-driver)"
if ! { command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; }; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ]; then
    if ! apt_out=$(
      apt-get update -qq 2>&1 &&
        env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
          chromium chromium-driver 2>&1
    ); then
      printf '%s\n' "$apt_out" >&2
      exit 1
    fi
  elif [ "${CI:-}" = true ]; then
    echo "CI must run the browser tests: they need root with apt-get (chromium, chromium-driver)" >&2
    exit 1
  else
    echo "no root or apt-get: the browser tests will say so and skip"
  fi
fi

log "Test image (berth-test/busybox, built from Debian's busybox-static; no registry needed)"
if docker info >/dev/null 2>&1; then
  scripts/test-image.sh
elif [ "${CI:-}" = true ]; then
  echo "Docker is unavailable, and CI must run the Docker tests" >&2
  exit 1
else
  echo "Docker is unavailable: the Docker tests will say so and skip"
fi

log "Build"
cargo build --workspace --all-targets --locked

log "Rust tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast
else
  cargo test --workspace --locked --no-fail-fast
fi
# Doc tests are not run by nextest.
cargo test --workspace --locked --doc --quiet

log "Python end-to-end tests (boto3, aws-cli)"
target_dir=$(cargo metadata --format-version 1 --no-deps --locked |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
BERTH_BIN="$target_dir/debug/berth" BERTH_ARTIFACTS="$target_dir/artifacts" \
  .venv-test/bin/python -m pytest tests/e2e -q

log "Mesos framework tests (real, unmodified pymesos frameworks against berth dev)"
if [ "$mesos_tests" = true ]; then
  BERTH_BIN="$target_dir/debug/berth" .venv-mesos/bin/python -m pytest tests/mesos -q
else
  echo "skipped: no Debian python3-http-parser for pymesos (see above)"
fi

log "All tests passed"
