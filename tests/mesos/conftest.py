"""Fixtures for the Mesos framework tests: real, unmodified pymesos frameworks against berth.

Every test gets its own `berth dev` (server + in-process agent, the `default` cluster) on a
free port with its own data directory, and runs pymesos frameworks in this process: a
`pymesos.MesosSchedulerDriver` with a `Scheduler` subclass that only records its callbacks,
its master being the address `berth dev` prints. The test drives the framework from the main
thread (launch, kill, decline, revive, reconcile, stop) and waits on what the callbacks
recorded, each wait with a deadline and, when it fails, everything the framework saw and the
tail of berth's log.

berth authenticates every request. A framework authenticates as Mesos frameworks do, with a
principal and a secret (pymesos sends them as HTTP Basic): an access key id and its secret.
By default that is a `framework`-role credential made with `berth credential create` (as an
operator would make one per framework); boto3 signs with the admin credential `berth dev`
wrote to `<data-dir>/admin.credentials`, and the authentication tests use other principals
too.

pymesos is installed as its notes say (shared/notes/mesos-http-api.md), by scripts/test.sh:

    /usr/bin/python3 -m venv --system-site-packages .venv-mesos   # Debian's python3-http-parser
    .venv-mesos/bin/pip install --no-deps -r tests/mesos/requirements.txt
    cargo build -p berth
    BERTH_BIN=target/debug/berth .venv-mesos/bin/python -m pytest tests/mesos -q

Two things about pymesos shape this harness. Its callbacks run on its I/O thread, the one
reading the event stream, so the scheduler here only appends to a list under a lock and never
blocks. And when that thread dies (say, a SUBSCRIBE answered with an HTTP error), pymesos
re-raises the error in the main thread through SIGINT (`thread.interrupt_main`): a test then
fails with pymesos's own exception, wherever it was waiting.

Tasks outlive `berth dev` by design (process tasks belong to `berth process-shim`, containers
to Docker), so teardown kills what the test's agent started: the process groups recorded in
its data directory, and the containers labelled with its instance ARN.
"""

from __future__ import annotations

import base64
import configparser
import json
import os
import queue
import re
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import boto3
import pytest
from botocore.config import Config
from pymesos import MesosSchedulerDriver, Scheduler

REPO_ROOT = Path(__file__).resolve().parents[2]
REGION = "us-east-1"
CLUSTER = "default"
IMAGE = "berth-test/busybox:latest"
LABEL_INSTANCE = "com.berth.instance-arn"

READY_TIMEOUT = 30.0
# How long one awaited event may take (2 cores, a debug build, others building).
PATIENCE = 30.0
ENDPOINT_LINE = re.compile(r"^\s*ECS endpoint:\s+(http://127\.0\.0\.1:\d+)\s*$")
WELCOME_END = "Press Ctrl-C to stop."

TERMINAL_STATES = {
    "TASK_FINISHED",
    "TASK_FAILED",
    "TASK_KILLED",
    "TASK_ERROR",
    "TASK_LOST",
    "TASK_DROPPED",
    "TASK_GONE",
}


# --------------------------------------------------------------------------------------------
# Isolation from the user's AWS configuration (boto3 reads the environment and ~/.aws)
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="session", autouse=True)
def _isolate_from_user_aws_config(tmp_path_factory):
    d = tmp_path_factory.mktemp("aws-config")
    (d / "config").write_text("")
    (d / "credentials").write_text("")
    with pytest.MonkeyPatch.context() as mp:
        for k in list(os.environ):
            if k.startswith("AWS_"):
                mp.delenv(k)
        mp.setenv("AWS_CONFIG_FILE", str(d / "config"))
        mp.setenv("AWS_SHARED_CREDENTIALS_FILE", str(d / "credentials"))
        mp.setenv("AWS_EC2_METADATA_DISABLED", "true")
        yield


@dataclass(frozen=True)
class Credentials:
    """An access key: its id and secret (a framework's principal and secret), and the AWS
    shared credentials file holding it, if any."""

    access_key_id: str
    secret_access_key: str
    file: Path | None = None

    @classmethod
    def from_file(cls, path: Path) -> "Credentials":
        """The [default] profile of an AWS shared credentials file (what berth writes)."""
        parser = configparser.ConfigParser()
        if not parser.read(path) or not parser.has_section("default"):
            pytest.fail(f"no [default] profile in a credentials file at {path}", pytrace=False)
        section = parser["default"]
        return cls(section["aws_access_key_id"], section["aws_secret_access_key"], path)

    def basic(self) -> str:
        """The Authorization header pymesos sends for principal=id, secret=secret."""
        raw = f"{self.access_key_id}:{self.secret_access_key}".encode()
        return "Basic " + base64.b64encode(raw).decode()


def make_ecs_client(endpoint: str, credentials: Credentials):
    """A stock boto3 ECS client against berth, signing with `credentials`, no retries."""
    session = boto3.session.Session(
        aws_access_key_id=credentials.access_key_id,
        aws_secret_access_key=credentials.secret_access_key,
        region_name=REGION,
    )
    return session.client(
        "ecs",
        endpoint_url=endpoint,
        config=Config(retries={"total_max_attempts": 1}, connect_timeout=5, read_timeout=30),
    )


# --------------------------------------------------------------------------------------------
# berth dev
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
class Dev:
    """A running `berth dev`: its ECS endpoint, the Mesos master address (host:port), a boto3
    client (signed as admin), and its single container instance."""

    args: list[str]
    proc: subprocess.Popen
    log_path: Path
    data_dir: Path
    berth_bin: Path
    lines: "queue.Queue[str | None]" = field(default_factory=queue.Queue)
    endpoint: str = ""
    stopped: bool = False
    ecs: Any = None
    instance: dict = field(default_factory=dict)
    _framework_principal: "Credentials | None" = None

    @property
    def master(self) -> str:
        """What pymesos takes as its master: the dev server's host:port."""
        return self.endpoint.removeprefix("http://")

    @property
    def admin_credentials_file(self) -> Path:
        return self.data_dir / "admin.credentials"

    @property
    def admin(self) -> Credentials:
        """The admin credential `berth dev` wrote at its first start."""
        return Credentials.from_file(self.admin_credentials_file)

    @property
    def framework_principal(self) -> Credentials:
        """The principal frameworks authenticate as by default: one `framework`-role
        credential, made the first time it is asked for."""
        if self._framework_principal is None:
            self._framework_principal = self.create_credential("frameworks")
        return self._framework_principal

    def create_credential(self, name: str, role: str = "framework") -> Credentials:
        """`berth credential create --name NAME --role ROLE --output FILE`, as an operator
        makes a framework's principal and secret (signed with the admin credential)."""
        out = self.data_dir.parent / f"{name}.credentials"
        args = [
            str(self.berth_bin),
            "credential",
            "create",
            "--name",
            name,
            "--role",
            role,
            "--output",
            str(out),
            "--endpoint",
            self.endpoint,
            "--credentials-file",
            str(self.admin_credentials_file),
        ]
        p = subprocess.run(
            args,
            env={k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
        assert p.returncode == 0, f"{' '.join(args)} failed ({p.returncode}):\n{p.stderr}"
        created = json.loads(p.stdout)
        credentials = Credentials.from_file(out)
        assert (credentials.access_key_id, credentials.secret_access_key) == (
            created["accessKeyId"],
            created["secretAccessKey"],
        ), created
        assert created["role"] == role, created
        return credentials

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        with self.proc.stdout:
            for line in self.proc.stdout:
                self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def wait_ready(self) -> list[str]:
        deadline = time.monotonic() + READY_TIMEOUT
        got: list[str] = []
        while True:
            try:
                line = self.lines.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                self.stop()
                pytest.fail(
                    f"berth dev did not get ready within {READY_TIMEOUT}s\nstdout: {got!r}\n"
                    f"{self.stderr_tail()}",
                    pytrace=False,
                )
            if line is None:
                code = self.proc.wait(timeout=5)
                pytest.fail(
                    f"berth dev exited with code {code} before getting ready\nstdout: {got!r}\n"
                    f"{self.stderr_tail()}",
                    pytrace=False,
                )
            got.append(line)
            if line.strip() == WELCOME_END:
                return got

    def stderr_tail(self, n: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no berth log)"
        if not text:
            return f"(berth logged nothing on stderr: {self.log_path})"
        return f"--- last {min(n, len(text))} berth log lines ({self.log_path}) ---\n" + "\n".join(
            text[-n:]
        )

    def stop(self) -> None:
        self.stopped = True
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def running_commands(self) -> list[int]:
        """Pids of the process-runtime commands of this dev's agent that are still alive:
        what really runs, whatever berth reports."""
        return [p for p, start in process_records(self.data_dir, "child.pid") if _alive(p, start)]

    # ECS views of Mesos-launched tasks --------------------------------------------------------

    def ecs_tasks(self, group: str | None = None) -> list[dict]:
        """Every task of the default cluster (running and stopped), optionally of one group."""
        arns: list[str] = []
        for status in ("RUNNING", "STOPPED"):
            for page in self.ecs.get_paginator("list_tasks").paginate(
                cluster=CLUSTER, desiredStatus=status
            ):
                arns += page["taskArns"]
        tasks: list[dict] = []
        for i in range(0, len(arns), 100):
            tasks += self.ecs.describe_tasks(cluster=CLUSTER, tasks=arns[i : i + 100])["tasks"]
        return [t for t in tasks if group is None or t.get("group") == group]

    def wait_ecs(
        self, what: str, check: Callable[[list[dict]], Any], group: str, timeout: float = PATIENCE
    ) -> Any:
        """Polls the group's ECS tasks until `check` returns something truthy."""
        deadline = time.monotonic() + timeout
        while True:
            tasks = self.ecs_tasks(group)
            got = check(tasks)
            if got:
                return got
            if time.monotonic() > deadline:
                pytest.fail(
                    f"ECS never showed {what} within {timeout}s; tasks of group {group!r}:\n"
                    + json.dumps(tasks, indent=1, default=str)[:6000]
                    + f"\n{self.stderr_tail()}",
                    pytrace=False,
                )
            time.sleep(0.25)


def docker_unavailable() -> str | None:
    """Why Docker cannot be used, if it cannot."""
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


def _alive(pid: int, start: str) -> bool:
    """Whether `pid` is still the process that started at `start` (not a recycled pid), and
    not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # After the parenthesised command name: field 3 (state) ... field 22 (starttime).
    fields = stat.rsplit(")", 1)[1].split()
    return fields[19] == start and fields[0] not in ("Z", "X")


def process_records(data_dir: Path, name: str) -> list[tuple[int, str]]:
    """The `<pid> <start time>` records the process runtime keeps in its sandboxes:
    `child.pid` for each command (the leader of its process group), `shim.pid` for its shim."""
    out = []
    for rec in data_dir.rglob(name):
        try:
            pid_s, start = rec.read_text().split()[:2]
            out.append((int(pid_s), start))
        except (OSError, ValueError):
            continue
    return out


def kill_process_tasks(data_dir: Path) -> None:
    """Kills what the dev agent's process runtime left running; only a process whose start
    time still matches its record is signalled, never a recycled pid."""
    for name in ("child.pid", "shim.pid"):
        for pid, start in process_records(data_dir, name):
            if not _alive(pid, start):
                continue
            try:
                if name == "child.pid":
                    os.killpg(pid, signal.SIGKILL)
                else:
                    os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


def remove_containers(instance_arn: str) -> None:
    p = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label={LABEL_INSTANCE}={instance_arn}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    ids = p.stdout.split()
    if ids:
        subprocess.run(["docker", "rm", "-f", *ids], capture_output=True, timeout=120)


@pytest.fixture
def dev(berth_bin, tmp_path) -> Iterable[Dev]:
    """A fresh `berth dev`; torn down with everything its agent started. A berth that died
    during the test fails it with its log."""
    data_dir = tmp_path / "berth-dev"
    log_path = tmp_path / "berth-dev.stderr.log"
    args = [str(berth_bin), "dev", "--listen", "127.0.0.1:0", "--data-dir", str(data_dir)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
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
    d = Dev(args=args, proc=proc, log_path=log_path, data_dir=data_dir, berth_bin=berth_bin)
    threading.Thread(target=d._pump, daemon=True).start()
    try:
        lines = d.wait_ready()
        endpoints = [m.group(1) for m in map(ENDPOINT_LINE.match, lines) if m]
        assert len(endpoints) == 1, "no ECS endpoint in the welcome text:\n" + "\n".join(lines)
        d.endpoint = endpoints[0]
        d.ecs = make_ecs_client(d.endpoint, d.admin)
        # The dev agent registers itself; wait until it is there and connected.
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            arns = d.ecs.list_container_instances(cluster=CLUSTER)["containerInstanceArns"]
            if arns:
                (inst,) = d.ecs.describe_container_instances(
                    cluster=CLUSTER, containerInstances=arns
                )["containerInstances"]
                if inst.get("agentConnected") and inst["status"] == "ACTIVE":
                    d.instance = inst
                    break
            assert time.monotonic() < deadline, "the dev agent never registered and connected"
            time.sleep(0.2)
        yield d
    finally:
        crashed = proc.poll() is not None and proc.returncode != 0 and not d.stopped
        d.stop()
        kill_process_tasks(data_dir)
        if d.instance and docker_unavailable() is None:
            remove_containers(d.instance["containerInstanceArn"])
        if crashed:
            pytest.fail(
                f"berth dev died during the test with exit code {proc.returncode}\n"
                f"{d.stderr_tail()}",
                pytrace=False,
            )


@pytest.fixture(scope="session")
def docker_engine() -> None:
    """A reachable Docker Engine with the test image; skips (fails under CI=true) without."""
    why = docker_unavailable()
    if why:
        if os.environ.get("CI") == "true":
            pytest.fail(f"Docker is unavailable: {why} (CI runs the Docker tests)", pytrace=False)
        pytest.skip(f"Docker is unavailable: {why}. The Docker task test needs a Docker Engine.")
    p = subprocess.run(
        [str(REPO_ROOT / "scripts" / "test-image.sh")], capture_output=True, text=True, timeout=300
    )
    if p.returncode != 0:
        pytest.fail(
            f"scripts/test-image.sh failed ({p.returncode}):\n{p.stdout}\n{p.stderr}",
            pytrace=False,
        )


# --------------------------------------------------------------------------------------------
# A pymesos framework that records its callbacks
# --------------------------------------------------------------------------------------------


@dataclass
class Event:
    kind: str  # registered, reregistered, disconnected, offers, rescinded, status, heartbeat,
    #            error, message, slave_lost, executor_lost
    data: Any
    at: float


class Recorder(Scheduler):
    """A pymesos Scheduler that only records: callbacks run on pymesos's I/O thread, which
    must never block. The test thread waits on the records."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.events: list[Event] = []
        self.consumed: set[int] = set()

    def _add(self, kind: str, data: Any = None) -> None:
        with self.cond:
            self.events.append(Event(kind, data, time.monotonic()))
            self.cond.notify_all()

    # pymesos Scheduler callbacks (the driver argument is the MesosSchedulerDriver)
    def registered(self, driver, framework_id, master_info):
        self._add("registered", {"framework_id": framework_id, "master_info": master_info})

    def reregistered(self, driver, master_info):
        self._add("reregistered", {"master_info": master_info})

    def disconnected(self, driver):
        self._add("disconnected")

    def resourceOffers(self, driver, offers):
        self._add("offers", offers)

    def offerRescinded(self, driver, offer_id):
        self._add("rescinded", offer_id)

    def statusUpdate(self, driver, status):
        self._add("status", status)

    def frameworkMessage(self, driver, executor_id, agent_id, message):
        self._add("message", message)

    def slaveLost(self, driver, agent_id):
        self._add("slave_lost", agent_id)

    def executorLost(self, driver, executor_id, agent_id, status):
        self._add("executor_lost", status)

    def error(self, driver, message):
        self._add("error", message)

    def processHeartBeat(self, driver):
        self._add("heartbeat")

    # Waiting ----------------------------------------------------------------------------------

    def all(self, kind: str) -> list[Any]:
        with self.cond:
            return [e.data for e in self.events if e.kind == kind]

    def summary(self, last: int = 40) -> str:
        with self.cond:
            events = list(self.events)
        t0 = events[0].at if events else 0.0
        lines = []
        for e in events[-last:]:
            data = "" if e.data is None else json.dumps(e.data, default=str)
            lines.append(f"  +{e.at - t0:6.2f}s {e.kind} {data[:600]}")
        return f"the framework saw {len(events)} events (last {last}):\n" + "\n".join(lines)


# The default of Framework's `credentials`: a framework-role credential of the dev's.
DEV_FRAMEWORK = object()


class Framework:
    """One pymesos framework: MesosSchedulerDriver + Recorder, run in a thread of its own
    (`driver.run()`, as a framework's main would). It authenticates with `credentials` as its
    principal and secret (default: a framework-role credential of the dev's; None: none)."""

    def __init__(
        self,
        dev: Dev,
        name: str,
        framework_id: str | None = None,
        failover_timeout: float = 60.0,
        implicit_acknowledgements: bool = True,
        credentials: Any = DEV_FRAMEWORK,
    ) -> None:
        self.dev = dev
        self.name = name
        self.sched = Recorder()
        info: dict[str, Any] = {
            "user": "root",
            "name": name,
            "hostname": "localhost",
            "failover_timeout": failover_timeout,
        }
        if framework_id:
            info["id"] = {"value": framework_id}
        if credentials is DEV_FRAMEWORK:
            credentials = dev.framework_principal
        self.credentials: Credentials | None = credentials
        self.driver = MesosSchedulerDriver(
            self.sched,
            info,
            dev.master,
            use_addict=False,
            implicit_acknowledgements=implicit_acknowledgements,
            principal=credentials.access_key_id if credentials else None,
            secret=credentials.secret_access_key if credentials else None,
        )
        self.thread: threading.Thread | None = None
        self.stopped = False

    @property
    def group(self) -> str:
        return f"mesos:{self.name}"

    def start(self) -> "Framework":
        self.thread = threading.Thread(
            target=self.driver.run, name=f"pymesos {self.name}", daemon=True
        )
        self.thread.start()
        return self

    def stop(self, failover: bool = False, timeout: float = PATIENCE) -> None:
        """driver.stop(failover): without failover pymesos sends TEARDOWN before closing."""
        if self.stopped:
            return
        self.stopped = True
        self.driver.stop(failover=failover)
        if self.thread is not None:
            self.thread.join(timeout)
            if self.thread.is_alive():
                pytest.fail(
                    f"pymesos did not stop within {timeout}s\n{self.sched.summary()}\n"
                    f"{self.dev.stderr_tail()}",
                    pytrace=False,
                )

    # Waiting on callbacks -----------------------------------------------------------------------

    def _fail(self, what: str, timeout: float) -> None:
        pytest.fail(
            f"{what} within {timeout}s\n{self.sched.summary()}\n{self.dev.stderr_tail()}",
            pytrace=False,
        )

    def wait(
        self,
        kind: str,
        match: Callable[[Any], bool] = lambda _: True,
        timeout: float = PATIENCE,
        what: str | None = None,
        hopeless: Callable[[Event], bool] | None = None,
    ) -> Any:
        """The first not yet taken event of `kind` that matches; takes it. Fails at the
        deadline, or as soon as an event arrives (before a match) that `hopeless` says makes
        a match impossible."""
        s = self.sched
        deadline = time.monotonic() + timeout
        with s.cond:
            while True:
                for i, e in enumerate(s.events):
                    if i not in s.consumed and e.kind == kind and match(e.data):
                        s.consumed.add(i)
                        return e.data
                    if hopeless is not None and hopeless(e):
                        pytest.fail(
                            f"no {what or kind} callback, and there will be none after "
                            f"{e.kind} {json.dumps(e.data, default=str)}\n{s.summary()}\n"
                            f"{self.dev.stderr_tail()}",
                            pytrace=False,
                        )
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                s.cond.wait(left)
        self._fail(f"no {what or kind} callback", timeout)

    def assert_none(
        self, kind: str, match: Callable[[Any], bool] = lambda _: True, for_seconds: float = 3.0
    ) -> None:
        """No event of `kind` that matches arrives (or is pending) for `for_seconds`."""
        s = self.sched
        deadline = time.monotonic() + for_seconds
        with s.cond:
            while True:
                for i, e in enumerate(s.events):
                    if i not in s.consumed and e.kind == kind and match(e.data):
                        pytest.fail(
                            f"unexpected {kind} callback: {json.dumps(e.data, default=str)}\n"
                            f"{s.summary()}",
                            pytrace=False,
                        )
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                s.cond.wait(left)

    def registered(self, timeout: float = PATIENCE) -> str:
        """Waits for `registered` and answers the framework id it carried."""
        got = self.wait("registered", timeout=timeout)
        return got["framework_id"]["value"]

    def offers(self, timeout: float = PATIENCE, what: str = "resourceOffers") -> list[dict]:
        return self.wait("offers", timeout=timeout, what=what)

    def offer(self, timeout: float = PATIENCE) -> dict:
        """The next resourceOffers callback, which must hold exactly one offer: dev has one
        agent, and berth makes one offer per agent."""
        offers = self.offers(timeout)
        assert len(offers) == 1, f"expected one offer (one dev agent), got {offers}"
        return offers[0]

    def take_offers(self) -> list[dict]:
        """Takes every offer received so far (to decline or ignore them)."""
        taken: list[dict] = []
        s = self.sched
        with s.cond:
            for i, e in enumerate(s.events):
                if i not in s.consumed and e.kind == "offers":
                    s.consumed.add(i)
                    taken += e.data
        return taken

    def statuses(self, task_id: str) -> list[dict]:
        return [st for st in self.sched.all("status") if st["task_id"]["value"] == task_id]

    def status(
        self,
        task_id: str,
        states: str | Iterable[str],
        timeout: float = PATIENCE,
        match: Callable[[dict], bool] = lambda _: True,
    ) -> dict:
        """The first not yet taken statusUpdate of `task_id` in one of `states`; takes it."""
        wanted = {states} if isinstance(states, str) else set(states)
        # Waiting for a non-terminal state is hopeless once the task's end was reported.
        hopeless = None
        if not wanted & TERMINAL_STATES:

            def hopeless(e: Event) -> bool:
                return (
                    e.kind == "status"
                    and e.data["task_id"]["value"] == task_id
                    and e.data["state"] in TERMINAL_STATES
                )

        return self.wait(
            "status",
            lambda st: st["task_id"]["value"] == task_id and st["state"] in wanted and match(st),
            timeout=timeout,
            what=f"statusUpdate {sorted(wanted)} for task {task_id}",
            hopeless=hopeless,
        )


@pytest.fixture
def framework(dev) -> Iterable[Callable[..., Framework]]:
    """Factory: framework(name=None, framework_id=None, credentials=..., start=True, ...) -> a
    started pymesos framework (not yet started with start=False). Frameworks still running
    when the test ends are stopped without failover (TEARDOWN)."""
    made: list[Framework] = []

    def make(name: str | None = None, start: bool = True, **kwargs) -> Framework:
        fw = Framework(dev, name or f"fw-{uuid.uuid4().hex[:8]}", **kwargs)
        made.append(fw)
        return fw.start() if start else fw

    yield make
    for fw in made:
        if not fw.stopped:
            fw.stopped = True
            fw.driver.stop(failover=False)
            if fw.thread is not None:
                fw.thread.join(10)


# --------------------------------------------------------------------------------------------
# Building Mesos messages (plain dicts, as a pymesos framework does)
# --------------------------------------------------------------------------------------------


def new_task_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def scalar(name: str, value: float) -> dict:
    return {"name": name, "type": "SCALAR", "scalar": {"value": value}}


def resource(offer: dict, name: str) -> dict | None:
    found = [r for r in offer.get("resources", []) if r["name"] == name]
    assert len(found) <= 1, f"resource {name} listed twice in {offer}"
    return found[0] if found else None


def command_task(
    offer: dict,
    command: str,
    task_id: str | None = None,
    cpus: float = 0.25,
    mem: float = 32,
    **extra: Any,
) -> dict:
    """A TaskInfo running `command` with `sh -c` (CommandInfo.shell true) on the offer's agent."""
    task_id = task_id or new_task_id("task")
    return {
        "name": task_id,
        "task_id": {"value": task_id},
        "agent_id": offer["agent_id"],
        "resources": [scalar("cpus", cpus), scalar("mem", mem)],
        "command": {"value": command, "shell": True},
        **extra,
    }


def version(endpoint: str, credentials: Credentials | None) -> dict:
    """GET /version, as a framework's principal (HTTP Basic, as pymesos authenticates)."""
    headers = {"Authorization": credentials.basic()} if credentials else {}
    request = urllib.request.Request(f"{endpoint}/version", headers=headers)
    with urllib.request.urlopen(request, timeout=10) as r:
        return json.loads(r.read())


def scheduler_call(
    endpoint: str, credentials: Credentials | None, call: dict, stream_id: str | None = None
) -> tuple[int, str]:
    """One POST /api/v1/scheduler call outside pymesos (HTTP Basic as pymesos sends it):
    answers the status and body."""
    headers = {"Content-Type": "application/json"}
    if credentials:
        headers["Authorization"] = credentials.basic()
    if stream_id:
        headers["Mesos-Stream-Id"] = stream_id
    request = urllib.request.Request(
        f"{endpoint}/api/v1/scheduler",
        data=json.dumps(call).encode(),
        headers=headers,
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, r.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        with e:
            return e.code, e.read().decode(errors="replace")
