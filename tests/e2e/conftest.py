"""Fixtures for berth's end-to-end tests with the real AWS clients (boto3 and aws-cli v1).

Every test gets a fresh `berth server` on a free port with its own data directory. The clients
talk to it with dummy credentials in us-east-1, and never see the user's AWS configuration:
all AWS_* variables are scrubbed and the config/credentials files point at empty temp files.

Run from the repository root:

    cargo build -p berth
    python3 -m venv /tmp/e2e-venv && /tmp/e2e-venv/bin/pip install -r tests/e2e/requirements.txt
    BERTH_BIN=target/debug/berth /tmp/e2e-venv/bin/python -m pytest tests/e2e -q
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import boto3
import pytest
from botocore.config import Config

REPO_ROOT = Path(__file__).resolve().parents[2]
REGION = "us-east-1"
ACCOUNT = "000000000000"
ARN_PREFIX = f"arn:aws:ecs:{REGION}:{ACCOUNT}:"
ACCESS_KEY = "AKIDBERTHE2ETEST"
SECRET_KEY = "berth-e2e-secret"

READY_TIMEOUT = 20.0
SERVER_READY = re.compile(r"^berth server listening on (http://127\.0\.0\.1:\d+)$")


# --------------------------------------------------------------------------------------------
# Isolation from the user's AWS configuration
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def aws_config_files(tmp_path_factory) -> dict[str, str]:
    """Empty config and credentials files, so ~/.aws never leaks into a test."""
    d = tmp_path_factory.mktemp("aws-config")
    config = d / "config"
    credentials = d / "credentials"
    config.write_text("")
    credentials.write_text("")
    return {"AWS_CONFIG_FILE": str(config), "AWS_SHARED_CREDENTIALS_FILE": str(credentials)}


@pytest.fixture(scope="session")
def aws_env(aws_config_files) -> dict[str, str]:
    """The AWS_* variables every client in this suite runs with (and no others)."""
    return {
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_EC2_METADATA_DISABLED": "true",
        **aws_config_files,
    }


def scrubbed_environ() -> dict[str, str]:
    """os.environ without any AWS_* variable (profiles, endpoints, tokens, ...)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}


@pytest.fixture(scope="session", autouse=True)
def _isolate_from_user_aws_config(aws_env):
    """boto3 in this process reads the environment too: scrub it for the whole session."""
    with pytest.MonkeyPatch.context() as mp:
        for k in list(os.environ):
            if k.startswith("AWS_"):
                mp.delenv(k)
        for k, v in aws_env.items():
            mp.setenv(k, v)
        yield


# --------------------------------------------------------------------------------------------
# The berth binary and processes
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def berth_bin() -> Path:
    """The berth binary: $BERTH_BIN, else target/debug/berth under the repository root."""
    configured = os.environ.get("BERTH_BIN")
    path = Path(configured).expanduser() if configured else REPO_ROOT / "target" / "debug" / "berth"
    path = path.resolve()
    if not path.is_file() or not os.access(path, os.X_OK):
        pytest.fail(
            f"berth binary not found (or not executable) at {path}.\n"
            f"Build it first:  cd {REPO_ROOT} && cargo build -p berth\n"
            "or point BERTH_BIN at an existing binary.",
            pytrace=False,
        )
    return path


@dataclass
class BerthProcess:
    """A running berth process; stdout is collected line by line, stderr goes to a log file."""

    args: list[str]
    proc: subprocess.Popen
    log_path: Path
    data_dir: Path
    lines: "queue.Queue[str | None]" = field(default_factory=queue.Queue)
    stdout: list[str] = field(default_factory=list)
    endpoint: str = ""
    stopped: bool = False

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        with self.proc.stdout:
            for line in self.proc.stdout:
                self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def read_until(self, done: Callable[[str], bool], timeout: float = READY_TIMEOUT) -> list[str]:
        """Reads stdout lines until one satisfies `done`; fails on exit or timeout."""
        deadline = time.monotonic() + timeout
        got: list[str] = []
        while True:
            left = deadline - time.monotonic()
            try:
                line = self.lines.get(timeout=max(left, 0.01))
            except queue.Empty:
                self.stop()
                pytest.fail(
                    f"berth did not get ready within {timeout}s: {' '.join(self.args)}\n"
                    f"stdout so far: {got!r}\n{self.stderr_tail()}",
                    pytrace=False,
                )
            if line is None:
                code = self.proc.wait(timeout=5)
                pytest.fail(
                    f"berth exited with code {code} before getting ready: {' '.join(self.args)}\n"
                    f"stdout: {got!r}\n{self.stderr_tail()}",
                    pytrace=False,
                )
            got.append(line)
            self.stdout.append(line)
            if done(line):
                return got

    def stderr_tail(self, n: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no stderr log)"
        return f"--- last {min(n, len(text))} stderr lines ({self.log_path}) ---\n" + "\n".join(
            text[-n:]
        )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        self.stopped = True
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


@pytest.fixture
def start_berth(berth_bin, tmp_path):
    """Factory: start_berth("server" | "dev", *extra_args, data_dir=None, env=None) -> BerthProcess.

    The caller reads its stdout (`read_until`). Without `data_dir` each start gets a new one.

    Every process started here is checked at teardown: one that died during the test (a
    crash) fails the test with its stderr; all are stopped.
    """
    started: list[BerthProcess] = []

    def start(
        mode: str,
        *extra: str,
        listen: str = "127.0.0.1:0",
        data_dir: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> BerthProcess:
        n = len(started)
        data_dir = data_dir or tmp_path / f"berth-{mode}-{n}"
        log_path = tmp_path / f"berth-{mode}-{n}.stderr.log"
        args = [str(berth_bin), mode, "--listen", listen, "--data-dir", str(data_dir), *extra]
        env = {**scrubbed_environ(), **(env or {})}
        env.setdefault("RUST_LOG", "info,openraft=warn")
        env.setdefault("RUST_BACKTRACE", "1")
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                cwd=tmp_path,
                env=env,
            )
        p = BerthProcess(args=args, proc=proc, log_path=log_path, data_dir=data_dir)
        threading.Thread(target=p._pump, daemon=True).start()
        started.append(p)
        return p

    yield start

    crashed = [
        p for p in started if not p.stopped and p.proc.poll() is not None and p.proc.returncode != 0
    ]
    for p in started:
        p.stop()
    if crashed:
        p = crashed[0]
        pytest.fail(
            f"berth died during the test with exit code {p.proc.returncode}: {' '.join(p.args)}\n"
            f"{p.stderr_tail()}",
            pytrace=False,
        )


@pytest.fixture
def berth_server(start_berth) -> BerthProcess:
    """A fresh `berth server` on a free port; `.endpoint` is its http:// URL."""
    p = start_berth("server")
    first = p.read_until(lambda line: True)
    assert len(first) == 1
    m = SERVER_READY.match(first[0])
    assert m, f"unexpected first stdout line from berth server: {first[0]!r}"
    p.endpoint = m.group(1)
    return p


@pytest.fixture
def endpoint(berth_server) -> str:
    return berth_server.endpoint


# --------------------------------------------------------------------------------------------
# Clients
# --------------------------------------------------------------------------------------------


def make_ecs_client(endpoint: str, region: str = REGION):
    """A stock boto3 ECS client against berth: dummy credentials, no retries."""
    session = boto3.session.Session(
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        region_name=region,
    )
    return session.client(
        "ecs",
        endpoint_url=endpoint,
        config=Config(
            retries={"total_max_attempts": 1},
            connect_timeout=5,
            read_timeout=30,
        ),
    )


@pytest.fixture
def ecs(endpoint):
    """boto3 ECS client for the test's berth server."""
    return make_ecs_client(endpoint)


@pytest.fixture
def ecs_at():
    """ecs_at(endpoint, region="us-east-1") -> a boto3 ECS client for a berth the test started."""
    return make_ecs_client


@pytest.fixture
def ecs_factory(endpoint):
    """make(region) -> a boto3 ECS client for the test's server in another region."""
    return lambda region=REGION: make_ecs_client(endpoint, region)


AWS_CLI = Path(sys.executable).parent / "aws"


@dataclass
class CliResult:
    args: list[str]
    returncode: int
    stdout: str
    stderr: str

    def json(self):
        return json.loads(self.stdout) if self.stdout.strip() else None


def aws_cli_path() -> Path:
    if not AWS_CLI.is_file():
        pytest.fail(
            f"aws-cli not found at {AWS_CLI} (next to {sys.executable}). Install the pinned "
            "clients into this interpreter's venv: pip install -r tests/e2e/requirements.txt",
            pytrace=False,
        )
    return AWS_CLI


@pytest.fixture(scope="session")
def cli_env(aws_env) -> dict[str, str]:
    """The environment aws-cli subprocesses run with: the user's minus AWS_*, plus ours."""
    env = scrubbed_environ()
    env.update(aws_env)
    env["AWS_PAGER"] = ""
    return env


def aws_command(endpoint: str, args: tuple[str, ...]) -> list[str]:
    """argv running this venv's aws-cli against `endpoint` with JSON output."""
    return [
        sys.executable,
        str(aws_cli_path()),
        *args,
        "--endpoint-url",
        endpoint,
        "--output",
        "json",
    ]


def run_aws(
    endpoint: str, env: dict[str, str], args: tuple[str, ...], timeout: float = 60
) -> CliResult:
    p = subprocess.run(
        aws_command(endpoint, args),
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    return CliResult(args=list(args), returncode=p.returncode, stdout=p.stdout, stderr=p.stderr)


@pytest.fixture
def aws_argv(endpoint) -> Callable[..., list[str]]:
    """aws_argv("ecs", "wait", ...) -> argv, for running the CLI in the background (Popen)."""
    return lambda *args: aws_command(endpoint, args)


@pytest.fixture
def aws_at(cli_env) -> Callable[..., CliResult]:
    """aws_at(endpoint, "ecs", "list-clusters") -> CliResult, for a berth started by the test."""
    return lambda endpoint, *args, timeout=60: run_aws(endpoint, cli_env, args, timeout)


@pytest.fixture
def aws_run(endpoint, cli_env) -> Callable[..., CliResult]:
    """aws_run("ecs", "list-clusters") -> CliResult(returncode, stdout, stderr): for errors."""
    return lambda *args, timeout=60: run_aws(endpoint, cli_env, args, timeout)


@pytest.fixture
def aws(aws_run):
    """aws("ecs", "create-cluster", "--cluster-name", "x") -> parsed JSON; fails on exit != 0."""

    def call(*args: str, timeout: float = 60):
        r = aws_run(*args, timeout=timeout)
        if r.returncode != 0:
            pytest.fail(
                f"aws {' '.join(args)} exited with {r.returncode}\nstderr:\n{r.stderr}\n"
                f"stdout:\n{r.stdout}",
                pytrace=False,
            )
        return r.json()

    return call
