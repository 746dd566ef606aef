"""Fixtures for berth's end-to-end tests with the real AWS clients (boto3 and aws-cli v1).

Every test gets a fresh `berth server` on a free port with its own data directory. Every
request but `GET /v1/health` must be signed, so the clients sign with the admin credential
of the berth they talk to: the `[default]` profile of `<data-dir>/admin.credentials`, which
berth writes at its first start before answering anything. boto3 gets that key explicitly;
aws-cli reads the file through AWS_SHARED_CREDENTIALS_FILE, as a user would. Which file goes
with which endpoint is known from the processes the test started (`start_berth`): a client
never signs with a key the server does not know, unless a test means it to.

The clients never see the user's AWS configuration: all AWS_* variables are scrubbed, the
config file points at an empty temp file, and so does the credentials file for anything not
pointed at a berth's own. Raw HTTP calls to berth's native API (`/v1/...`) are signed with
botocore's own SigV4 signer (`BerthApi`), never by hand.

Run from the repository root:

    cargo build -p berth
    python3 -m venv /tmp/e2e-venv && /tmp/e2e-venv/bin/pip install -r tests/e2e/requirements.txt
    BERTH_BIN=target/debug/berth /tmp/e2e-venv/bin/python -m pytest tests/e2e -q
"""

from __future__ import annotations

import configparser
import json
import os
import queue
import re
import signal
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import boto3
import botocore.credentials
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config

REPO_ROOT = Path(__file__).resolve().parents[2]
REGION = "us-east-1"
ACCOUNT = "000000000000"
ARN_PREFIX = f"arn:aws:ecs:{REGION}:{ACCOUNT}:"
ADMIN_CREDENTIALS_FILE = "admin.credentials"

READY_TIMEOUT = 20.0
SERVER_READY = re.compile(r"^berth server listening on (https?://127\.0\.0\.1:\d+)$")
SERVER_ADMIN = re.compile(r"^admin credentials: (.+)$")
SERVER_CA = re.compile(r"^CA certificate: (.+)$")


# --------------------------------------------------------------------------------------------
# Credentials
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Credentials:
    """An access key: its id, its secret, and the AWS shared credentials file holding it
    (profile `default`), if there is one."""

    access_key_id: str
    secret_access_key: str
    file: Path | None = None

    @classmethod
    def from_file(cls, path: Path, profile: str = "default") -> "Credentials":
        """Reads a profile of an AWS shared credentials file (what berth writes)."""
        parser = configparser.ConfigParser()
        try:
            read = parser.read(path)
        except configparser.Error as e:
            pytest.fail(f"{path} is not an AWS shared credentials file: {e}", pytrace=False)
        if not read:
            pytest.fail(f"no credentials file at {path}", pytrace=False)
        if not parser.has_section(profile):
            pytest.fail(f"{path} has no [{profile}] profile: {path.read_text()!r}", pytrace=False)
        section = parser[profile]
        for key in ("aws_access_key_id", "aws_secret_access_key"):
            if not section.get(key):
                pytest.fail(f"{path} [{profile}] has no {key}", pytrace=False)
        return cls(section["aws_access_key_id"], section["aws_secret_access_key"], path)

    def write(self, path: Path) -> "Credentials":
        """These credentials as an AWS shared credentials file at `path` ([default])."""
        path.write_text(
            "[default]\n"
            f"aws_access_key_id = {self.access_key_id}\n"
            f"aws_secret_access_key = {self.secret_access_key}\n"
        )
        path.chmod(0o600)
        return Credentials(self.access_key_id, self.secret_access_key, path)

    def botocore(self) -> botocore.credentials.Credentials:
        return botocore.credentials.Credentials(self.access_key_id, self.secret_access_key)


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
    """The AWS_* variables every client in this suite runs with (and no others). No access
    key: each client is given the one of the berth it calls (see `cli_env_for`)."""
    return {
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


# --------------------------------------------------------------------------------------------
# Docker
# --------------------------------------------------------------------------------------------

# A Docker endpoint that does not exist (DOCKER_HOST): berth then runs tasks as host processes.
DOCKER_NOWHERE = "unix:///nonexistent/berth-test-docker.sock"


def docker_unavailable() -> str | None:
    """Why no Docker Engine answers the `docker` CLI here, if none does. A test that needs
    Docker skips with this, except under CI (CI=true), where Docker is present: it fails."""
    try:
        p = subprocess.run(
            ["docker", "version", "--format", "{{.Server.Version}}"],
            capture_output=True,
            text=True,
            timeout=30,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"cannot run the docker CLI: {e}"
    if p.returncode != 0:
        return f"`docker version` failed ({p.returncode}): {p.stderr.strip()}"
    return None


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
    # The CA certificate to trust for an https:// endpoint (`berth server --tls`).
    ca_bundle: Path | None = None
    stopped: bool = False

    @property
    def admin_credentials_file(self) -> Path:
        """Where berth writes its admin credential (before it answers any request)."""
        return self.data_dir / ADMIN_CREDENTIALS_FILE

    @property
    def admin(self) -> Credentials:
        """The admin credential berth made at its first start, read from its data dir."""
        return Credentials.from_file(self.admin_credentials_file)

    def api(self, credentials: Credentials | None = None) -> "BerthApi":
        """berth's native API (`/v1/...`), signed with `credentials` (default: admin)."""
        assert self.endpoint, "the test has not learned this berth's endpoint yet"
        return BerthApi(self.endpoint, credentials or self.admin, ca_bundle=self.ca_bundle)

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
def berth_processes() -> list[BerthProcess]:
    """Every berth the test started (by `start_berth`), in order: how a client finds the
    admin credential of the endpoint it is pointed at."""
    return []


def process_at(processes: list[BerthProcess], endpoint: str) -> BerthProcess:
    """The berth the test started that serves `endpoint` (the last one, after a restart)."""
    for p in reversed(processes):
        if p.endpoint == endpoint:
            return p
    known = [p.endpoint for p in processes if p.endpoint]
    pytest.fail(
        f"no berth started by this test serves {endpoint} (known endpoints: {known}); set "
        "`.endpoint` on the process start_berth returned before making clients for it",
        pytrace=False,
    )


@pytest.fixture
def start_berth(berth_bin, tmp_path, berth_processes):
    """Factory: start_berth("server" | "dev", *extra_args, data_dir=None, env=None,
    defaults=False) -> BerthProcess.

    The caller reads its stdout (`read_until`) and sets `.endpoint`. Without `data_dir` each
    start gets a new one. With `defaults=True` berth gets no `--listen`/`--data-dir` at all
    and runs in a fresh empty working directory, as a newcomer runs it (its state then lands
    in `./berth-data` there; it listens on the default port).

    Every process started here is checked at teardown: one that died during the test (a
    crash) fails the test with its stderr; all are stopped.
    """
    started = berth_processes

    def start(
        mode: str,
        *extra: str,
        listen: str = "127.0.0.1:0",
        data_dir: Path | None = None,
        env: dict[str, str] | None = None,
        defaults: bool = False,
    ) -> BerthProcess:
        n = len(started)
        log_path = tmp_path / f"berth-{mode}-{n}.stderr.log"
        cwd = tmp_path
        if defaults:
            cwd = tmp_path / f"fresh-{n}"
            cwd.mkdir()
            data_dir = cwd / "berth-data"
            args = [str(berth_bin), mode, *extra]
        else:
            data_dir = data_dir or tmp_path / f"berth-{mode}-{n}"
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
                cwd=cwd,
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


def wait_server_ready(p: BerthProcess, tls: bool = False) -> BerthProcess:
    """Reads what `berth server` prints when ready: `berth server listening on URL`, then
    `admin credentials: PATH` (and `CA certificate: PATH` with --tls). Sets `.endpoint` (and
    `.ca_bundle`); checks the files are where berth says, in its data directory."""
    first = p.read_until(lambda line: True)
    m = SERVER_READY.match(first[0])
    assert m, f"unexpected first stdout line from berth server: {first[0]!r}"
    endpoint = m.group(1)
    assert endpoint.startswith("https://" if tls else "http://"), endpoint
    (admin_line,) = p.read_until(lambda line: True)
    m = SERVER_ADMIN.match(admin_line)
    assert m, f"berth server should say where the admin credential is, got {admin_line!r}"
    assert Path(m.group(1)).resolve() == p.admin_credentials_file.resolve(), admin_line
    if tls:
        (ca_line,) = p.read_until(lambda line: True)
        m = SERVER_CA.match(ca_line)
        assert m, f"berth server --tls should say where its CA certificate is, got {ca_line!r}"
        p.ca_bundle = Path(m.group(1)).resolve()
        assert p.ca_bundle == (p.data_dir / "ca.pem").resolve(), ca_line
        assert p.ca_bundle.read_text().startswith("-----BEGIN CERTIFICATE-----")
    # Written (0600) before the ready lines: a client can use it at once.
    assert p.admin_credentials_file.stat().st_mode & 0o077 == 0, "admin.credentials is not 0600"
    p.admin  # parses, or fails the test saying why
    p.endpoint = endpoint
    return p


@pytest.fixture
def start_server(start_berth) -> Callable[..., BerthProcess]:
    """Factory: start_server(*extra_args, tls=False, **start_berth_kwargs) -> a ready
    `berth server` (`.endpoint` set, and `.ca_bundle` with tls)."""

    def start(*extra: str, tls: bool = False, **kwargs) -> BerthProcess:
        args = ("--tls", *extra) if tls else extra
        return wait_server_ready(start_berth("server", *args, **kwargs), tls=tls)

    return start


@pytest.fixture
def berth_server(start_server) -> BerthProcess:
    """A fresh `berth server` on a free port; `.endpoint` is its http:// URL."""
    return start_server()


@pytest.fixture
def endpoint(berth_server) -> str:
    return berth_server.endpoint


@pytest.fixture
def admin(berth_server) -> Credentials:
    """The admin credential of the test's `berth server`."""
    return berth_server.admin


# --------------------------------------------------------------------------------------------
# berth's native API, signed with botocore
# --------------------------------------------------------------------------------------------


@dataclass
class HttpAnswer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body) if self.body.strip() else None

    @property
    def error_type(self) -> str | None:
        """The `__type` of an error answer (AWS JSON protocol), if any."""
        try:
            value = self.json()
        except ValueError:
            return None
        return value.get("__type") if isinstance(value, dict) else None


def sign(
    method: str,
    url: str,
    credentials: Credentials,
    service: str = "berth",
    region: str = REGION,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
):
    """A request signed by botocore's own SigV4 signer (what every AWS client does): a
    prepared request whose url, headers and body are to be sent exactly as they are."""
    request = AWSRequest(method=method, url=url, data=body, headers=dict(headers or {}))
    SigV4Auth(credentials.botocore(), service, region).add_auth(request)
    return request.prepare()


def send(
    method: str,
    url: str,
    headers: dict[str, str],
    body: bytes = b"",
    ca_bundle: Path | None = None,
    timeout: float = 30,
) -> HttpAnswer:
    """Sends one HTTP request with urllib; an error status is an answer, not an exception."""
    request = urllib.request.Request(url, data=body or None, headers=headers, method=method)
    context = ssl.create_default_context(cafile=str(ca_bundle)) if ca_bundle else None
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as r:
            return HttpAnswer(r.status, dict(r.headers.items()), r.read())
    except urllib.error.HTTPError as e:
        with e:
            return HttpAnswer(e.code, dict(e.headers.items()), e.read())


@dataclass
class BerthApi:
    """berth's native API at `endpoint`, every request signed with `credentials` for the
    signing name `berth` (`service`) by botocore."""

    endpoint: str
    credentials: Credentials
    region: str = REGION
    service: str = "berth"
    ca_bundle: Path | None = None

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
        timeout: float = 30,
    ) -> HttpAnswer:
        data = b"" if body is None else json.dumps(body).encode()
        headers = dict(headers or {})
        if body is not None:
            headers.setdefault("Content-Type", "application/json")
        prepared = sign(
            method,
            f"{self.endpoint}{path}",
            self.credentials,
            self.service,
            self.region,
            data,
            headers,
        )
        return send(
            method,
            prepared.url,
            dict(prepared.headers.items()),
            prepared.body or b"",
            self.ca_bundle,
            timeout,
        )

    def ok(self, method: str, path: str, body: Any = None, timeout: float = 30) -> HttpAnswer:
        """request(), failing the test unless the answer is 2xx."""
        r = self.request(method, path, body, timeout=timeout)
        if not 200 <= r.status < 300:
            pytest.fail(
                f"{method} {path} answered {r.status}: {r.body[:2000]!r}", pytrace=False
            )
        return r

    def get_json(self, path: str, timeout: float = 30) -> Any:
        return self.ok("GET", path, timeout=timeout).json()


# --------------------------------------------------------------------------------------------
# Clients
# --------------------------------------------------------------------------------------------


def make_ecs_client(
    endpoint: str,
    credentials: Credentials | None,
    region: str = REGION,
    config: Config | None = None,
    verify: str | bool | None = None,
):
    """A stock boto3 ECS client against berth, signing with `credentials` (None: unsigned),
    no retries."""
    base = Config(retries={"total_max_attempts": 1}, connect_timeout=5, read_timeout=30)
    if credentials is None:
        session = boto3.session.Session(region_name=region)
        base = base.merge(Config(signature_version=botocore.UNSIGNED))
    else:
        session = boto3.session.Session(
            aws_access_key_id=credentials.access_key_id,
            aws_secret_access_key=credentials.secret_access_key,
            region_name=region,
        )
    return session.client(
        "ecs",
        endpoint_url=endpoint,
        config=base.merge(config) if config else base,
        verify=verify,
    )


@pytest.fixture
def ecs(berth_server):
    """boto3 ECS client for the test's berth server, signed with its admin credential."""
    return make_ecs_client(berth_server.endpoint, berth_server.admin)


@pytest.fixture
def ecs_at(berth_processes):
    """ecs_at(endpoint, region="us-east-1", credentials=None) -> a boto3 ECS client for a
    berth the test started, signed with `credentials` (default: that berth's admin)."""

    def make(endpoint: str, region: str = REGION, credentials: Credentials | None = None):
        p = process_at(berth_processes, endpoint)
        verify = str(p.ca_bundle) if p.ca_bundle else None
        return make_ecs_client(endpoint, credentials or p.admin, region, verify=verify)

    return make


@pytest.fixture
def ecs_factory(berth_server):
    """make(region) -> a boto3 ECS client for the test's server in another region."""
    return lambda region=REGION: make_ecs_client(berth_server.endpoint, berth_server.admin, region)


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
    """The environment aws-cli subprocesses run with: the user's minus AWS_*, plus ours. It
    holds no credentials (the credentials file is empty): see `cli_env_for`."""
    env = scrubbed_environ()
    env.update(aws_env)
    env["AWS_PAGER"] = ""
    return env


@pytest.fixture
def cli_env_for(cli_env) -> Callable[[Path], dict[str, str]]:
    """cli_env_for(credentials_file) -> aws-cli's environment signing with the [default]
    profile of that AWS shared credentials file (as a user pointed at berth's would)."""

    def env(credentials_file: Path) -> dict[str, str]:
        return {**cli_env, "AWS_SHARED_CREDENTIALS_FILE": str(credentials_file)}

    return env


@pytest.fixture
def server_cli_env(berth_server, cli_env_for) -> dict[str, str]:
    """aws-cli's environment for the test's berth server: its admin credentials file."""
    return cli_env_for(berth_server.admin_credentials_file)


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
    """aws_argv("ecs", "wait", ...) -> argv, for running the CLI in the background (Popen,
    with `server_cli_env`)."""
    return lambda *args: aws_command(endpoint, args)


@pytest.fixture
def aws_at(berth_processes, cli_env_for) -> Callable[..., CliResult]:
    """aws_at(endpoint, "ecs", "list-clusters", credentials_file=None) -> CliResult, for a
    berth started by the test; signed with that berth's admin credentials file unless
    another file is given."""

    def run(endpoint: str, *args: str, timeout: float = 60, credentials_file: Path | None = None):
        p = process_at(berth_processes, endpoint)
        extra = ("--ca-bundle", str(p.ca_bundle)) if p.ca_bundle else ()
        env = cli_env_for(credentials_file or p.admin_credentials_file)
        return run_aws(endpoint, env, (*args, *extra), timeout)

    return run


@pytest.fixture
def aws_run(endpoint, server_cli_env) -> Callable[..., CliResult]:
    """aws_run("ecs", "list-clusters") -> CliResult(returncode, stdout, stderr): for errors."""
    return lambda *args, timeout=60: run_aws(endpoint, server_cli_env, args, timeout)


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


# --------------------------------------------------------------------------------------------
# berth's own CLI: credentials
# --------------------------------------------------------------------------------------------


@pytest.fixture
def berth_cli(berth_bin, tmp_path) -> Callable[..., subprocess.CompletedProcess]:
    """berth_cli("credential", "list", ...) -> CompletedProcess: the berth binary as an
    operator runs it, without any AWS_* variable of the user's."""

    def run(*args: str, env: dict[str, str] | None = None, timeout: float = 60):
        return subprocess.run(
            [str(berth_bin), *args],
            env={**scrubbed_environ(), **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            cwd=tmp_path,
        )

    return run


@pytest.fixture
def new_credential(berth_cli, tmp_path) -> Callable[..., Credentials]:
    """new_credential(berth, name, role) -> Credentials: `berth credential create --name NAME
    --role ROLE --output FILE`, signed with that berth's admin credentials file. The JSON it
    prints and the file it writes must agree."""

    def create(p: BerthProcess, name: str, role: str) -> Credentials:
        out = tmp_path / f"{name}.credentials"
        args = [
            "credential",
            "create",
            "--name",
            name,
            "--role",
            role,
            "--output",
            str(out),
            "--endpoint",
            p.endpoint,
            "--credentials-file",
            str(p.admin_credentials_file),
        ]
        if p.ca_bundle:
            args += ["--ca-bundle", str(p.ca_bundle)]
        r = berth_cli(*args)
        assert r.returncode == 0, f"berth {' '.join(args)} failed ({r.returncode}):\n{r.stderr}"
        created = json.loads(r.stdout)
        assert created["name"] == name, created
        assert created["role"] == role, created
        from_file = Credentials.from_file(out)
        assert (from_file.access_key_id, from_file.secret_access_key) == (
            created["accessKeyId"],
            created["secretAccessKey"],
        ), (created, out.read_text())
        assert out.stat().st_mode & 0o077 == 0, f"{out} should be readable by its owner only"
        return from_file

    return create


def start_hollow_agent(start_berth, server: BerthProcess, cluster: str, *extra: str) -> str:
    """A `berth agent` on the hollow runtime (it runs nothing, and every task it is given
    "runs"), joined to `cluster` with a fresh join token; returns its instance id."""
    token = server.api().ok("POST", "/v1/join-tokens", {"cluster": cluster}).json()["token"]
    agent = start_berth(
        "agent", "--server", server.endpoint, "--cluster", cluster, "--token", token,
        "--runtime", "hollow", "--cpu", "2048", "--memory", "2048", *extra,
    )
    (line,) = agent.read_until(lambda line: line.startswith("berth agent registered as "))
    return line.split()[4].rsplit("/", 1)[1]


def wait_for(what: str, check, timeout: float = 30.0):
    """check() until it returns something truthy (which is returned), every 0.2 s; fails
    naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"not within {timeout}s: {what}"
        time.sleep(0.2)
