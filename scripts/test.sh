#!/usr/bin/env bash
# Runs berth's whole test suite on a fresh machine: Rust unit, property and integration tests
# (against a real `berth` process with the official AWS SDK), then the Python end-to-end tests
# (boto3 and aws-cli, unmodified). Installs what the tests need into .venv-test first.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n==> %s\n' "$*"; }

log "Python test environment (.venv-test: boto3, awscli, pytest from PyPI)"
if [ ! -x .venv-test/bin/python ]; then
  python3 -m venv .venv-test
fi
.venv-test/bin/python -m pip install --quiet --disable-pip-version-check -r tests/e2e/requirements.txt

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
BERTH_BIN="$target_dir/debug/berth" .venv-test/bin/python -m pytest tests/e2e -q

log "All tests passed"
