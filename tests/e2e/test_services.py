"""ECS services end to end on a real Docker Engine, through stock boto3 and aws-cli.

Every test starts its own `berth dev` (a server with the `default` cluster and an in-process
agent that runs tasks as Docker containers of `berth-test/busybox:latest`, built by
`scripts/test-image.sh` without a registry) and drives a 3-replica web service: busybox
`httpd` on container port 8080, published on a dynamic host port (bridge mode, hostPort 0),
serving the value of its `REV` environment variable, so an HTTP answer says which revision a
task runs.

Covered: reaching a steady state (`aws ecs wait services-stable`, counts, deployments, events,
groups and startedBy, HTTP on the host ports DescribeTasks reports); a container killed behind
berth's back being replaced; rolling updates sampled every ~150 ms against
minimumHealthyPercent / maximumPercent (50/100 without a health check, 100/200 with one); the
deployment circuit breaker rolling back from an image that does not exist; DeleteService
(force) draining to INACTIVE (`aws ecs wait services-inactive`); a task that fits nowhere
explained in the service's events. The rollout bounds are checked twice: on what the ECS API
showed every ~150 ms, and exactly, at every committed state, by replaying the tasks' versions
from berth's history (`GET /v1/history/{arn}`).

What Docker really did is checked with the `docker` CLI, independently of the agent's code.
Every test removes the containers of its own agent (label `com.berth.instance-arn`) when it
ends, even when it fails. Without a Docker Engine the tests are skipped with a message, except
under CI (`CI=true`), where they fail.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pytest
from conftest import BerthApi

REPO_ROOT = Path(__file__).resolve().parents[2]
ARN = "arn:aws:ecs:us-east-1:000000000000"
CLUSTER = "default"
IMAGE = "berth-test/busybox:latest"
MISSING_IMAGE = "berth-test/does-not-exist:1"
DESIRED = 3

ENDPOINT_LINE = re.compile(r"^\s*ECS endpoint:\s+(http://127\.0\.0\.1:\d+)\s*$")
WELCOME_END = "Press Ctrl-C to stop."

LABEL_INSTANCE = "com.berth.instance-arn"

# How long any one awaited change may take (2 cores, a debug build, others building).
PATIENCE = 60.0
# How often a wait looks again.
TICK = 0.15
DEPLOYMENT_ID = re.compile(r"^ecs-svc/\d{16,20}$")

# PID 1 is sh: it writes the page, serves it with httpd, and exits 0 on SIGTERM at once (a
# service task is stopped with docker stop; without the trap PID 1 would ignore SIGTERM and
# wait for the SIGKILL).
WEB_SCRIPT = (
    'echo "$REV" > /www/index.html; trap "exit 0" TERM; httpd -f -p 8080 -h /www & wait'
)
HEALTH_CHECK = {
    "command": ["CMD-SHELL", "wget -q -O /dev/null http://127.0.0.1:8080/ || exit 1"],
    "interval": 5,
    "timeout": 2,
    "retries": 2,
    "startPeriod": 0,
}


# --------------------------------------------------------------------------------------------
# Docker
# --------------------------------------------------------------------------------------------


def docker(*args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
    p = subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )
    if check and p.returncode != 0:
        pytest.fail(
            f"docker {' '.join(args)} exited with {p.returncode}: {p.stderr.strip()}",
            pytrace=False,
        )
    return p


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


@pytest.fixture(scope="module")
def docker_engine() -> None:
    """A reachable Docker Engine with the test image; skips (fails under CI=true) without."""
    why = docker_unavailable()
    if why:
        if os.environ.get("CI") == "true":
            pytest.fail(
                f"Docker is unavailable: {why} (CI runs the service tests on Docker and needs it)",
                pytrace=False,
            )
        pytest.skip(
            f"Docker is unavailable: {why}. The service tests run their tasks as Docker "
            "containers and need a Docker Engine."
        )
    p = subprocess.run(
        [str(REPO_ROOT / "scripts" / "test-image.sh")], capture_output=True, text=True, timeout=300
    )
    if p.returncode != 0:
        pytest.fail(
            f"scripts/test-image.sh failed ({p.returncode}):\n{p.stdout}\n{p.stderr}",
            pytrace=False,
        )


def containers_of_instance(instance_arn: str, all_states: bool = True) -> list[str]:
    args = ["ps", "-q", "--no-trunc", "--filter", f"label={LABEL_INSTANCE}={instance_arn}"]
    if all_states:
        args.insert(1, "-a")
    return docker(*args, check=False).stdout.split()


def remove_containers(instance_arn: str) -> None:
    """Removes every container of one agent; never fails (it runs during teardown)."""
    try:
        ids = containers_of_instance(instance_arn)
        if ids:
            docker("rm", "-f", "-v", *ids, check=False)
    except Exception as e:  # noqa: BLE001 - cleanup must not hide the test's own result
        print(f"cleanup of the containers of {instance_arn} failed: {e}")


def container_running(container_id: str) -> bool | None:
    """Whether a container runs; None when Docker does not know it."""
    p = docker("inspect", "--format", "{{.State.Running}}", container_id, check=False)
    if p.returncode != 0:
        return None
    return p.stdout.strip() == "true"


# --------------------------------------------------------------------------------------------
# berth dev
# --------------------------------------------------------------------------------------------


@dataclass
class Dev:
    endpoint: str
    ecs: Any
    instance_arn: str
    api: BerthApi  # the native API (/v1/...), signed with the admin credential
    cli: Callable[..., Any]  # cli("ecs", ...) -> CliResult


@pytest.fixture
def dev(docker_engine, start_berth, ecs_at, aws_at):
    """`berth dev` with its agent on Docker; its containers are removed at the end."""
    p = start_berth("dev")
    lines = p.read_until(lambda line: line.strip() == WELCOME_END)
    welcome = "\n".join(lines)
    endpoints = [m.group(1) for m in map(ENDPOINT_LINE.match, lines) if m]
    assert len(endpoints) == 1, f"no ECS endpoint in the welcome text:\n{welcome}"
    p.endpoint = endpoints[0]
    ecs = ecs_at(p.endpoint)
    (instance_arn,) = ecs.list_container_instances(cluster=CLUSTER)["containerInstanceArns"]
    try:
        assert "tasks run as Docker containers" in welcome, (
            f"berth dev's agent must run tasks on Docker here:\n{welcome}"
        )
        yield Dev(
            endpoint=p.endpoint,
            ecs=ecs,
            instance_arn=instance_arn,
            api=p.api(),
            cli=lambda *args, timeout=120: aws_at(p.endpoint, *args, timeout=timeout),
        )
    finally:
        # Stop berth first (so nothing starts a container any more), then clean up. A crash
        # during the test is reported here, since start_berth ignores processes stopped by us.
        crashed = p.proc.poll() is not None and p.proc.returncode != 0
        p.stop()
        remove_containers(instance_arn)
        if crashed:
            pytest.fail(
                f"berth dev died during the test with exit code {p.proc.returncode}\n"
                f"{p.stderr_tail()}",
                pytrace=False,
            )


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def td_arn(family: str, revision: int) -> str:
    return f"{ARN}:task-definition/{family}:{revision}"


def register_web(
    ecs, family: str, rev: str, image: str = IMAGE, health_check: bool = False
) -> str:
    container = {
        "name": "web",
        "image": image,
        "cpu": 32,
        "memory": 32,
        "essential": True,
        "command": ["sh", "-c", WEB_SCRIPT],
        "environment": [{"name": "REV", "value": rev}],
        "portMappings": [{"containerPort": 8080, "hostPort": 0, "protocol": "tcp"}],
        "stopTimeout": 2,
    }
    if health_check:
        container["healthCheck"] = HEALTH_CHECK
    td = ecs.register_task_definition(
        family=family, networkMode="bridge", containerDefinitions=[container]
    )["taskDefinition"]
    return td["taskDefinitionArn"]


def create_service(ecs, name: str, task_definition: str, **config) -> dict:
    return ecs.create_service(
        cluster=CLUSTER,
        serviceName=name,
        taskDefinition=task_definition,
        desiredCount=DESIRED,
        deploymentConfiguration=config
        or {"minimumHealthyPercent": 100, "maximumPercent": 200},
    )["service"]


def describe_service(ecs, name: str) -> dict:
    out = ecs.describe_services(cluster=CLUSTER, services=[name])
    assert out["failures"] == [], out
    (service,) = out["services"]
    return service


def list_task_arns(ecs, name: str, desired: str = "RUNNING") -> list[str]:
    arns: list[str] = []
    for page in ecs.get_paginator("list_tasks").paginate(
        cluster=CLUSTER, serviceName=name, desiredStatus=desired
    ):
        arns.extend(page["taskArns"])
    return arns


def describe_tasks(ecs, arns) -> list[dict]:
    arns = list(arns)
    out: list[dict] = []
    for i in range(0, len(arns), 100):
        got = ecs.describe_tasks(cluster=CLUSTER, tasks=arns[i : i + 100])
        assert got["failures"] == [], got
        out.extend(got["tasks"])
    return out


def service_tasks(ecs, name: str, desired: str = "RUNNING") -> list[dict]:
    return describe_tasks(ecs, list_task_arns(ecs, name, desired))


def task_id(arn: str) -> str:
    return arn.rsplit("/", 1)[1]


def messages(service: dict) -> list[str]:
    """The service's event messages, newest first (as ECS returns them)."""
    return [e["message"] for e in service.get("events", [])]


def wait_for(what: str, probe: Callable[[], tuple[bool, Any]], timeout: float = PATIENCE) -> Any:
    """Polls probe() -> (done, value) until done; fails with the last value on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        done, value = probe()
        if done:
            return value
        if time.monotonic() > deadline:
            pytest.fail(
                f"timed out after {timeout:.0f}s waiting for {what}; last seen:\n"
                f"{json.dumps(value, indent=1, default=str)[:6000]}",
                pytrace=False,
            )
        time.sleep(TICK)


def wait_stable(ecs, name: str) -> None:
    """boto3's ServicesStable waiter, polling every second (aws-cli's polls every 15 s)."""
    ecs.get_waiter("services_stable").wait(
        cluster=CLUSTER,
        services=[name],
        WaiterConfig={"Delay": 1, "MaxAttempts": int(PATIENCE)},
    )


def steady_service(ecs, name: str, revision: str) -> dict:
    """Waits until the service runs DESIRED tasks of `revision` with one COMPLETED deployment
    and says it reached a steady state; returns the service."""

    def probe():
        s = describe_service(ecs, name)
        deployments = s.get("deployments", [])
        done = (
            s["runningCount"] == DESIRED
            and s["pendingCount"] == 0
            and len(deployments) == 1
            and deployments[0]["taskDefinition"] == revision
            and deployments[0].get("rolloutState") == "COMPLETED"
            and f"(service {name}) has reached a steady state." in messages(s)[:1]
        )
        return done, s

    return wait_for(f"service {name} steady on {revision}", probe)


def service_history(api: BerthApi, arn: str) -> list[dict]:
    """The retained versions of an entity, oldest first (berth's `GET /v1/history/{arn}`,
    signed)."""
    return api.get_json(f"/v1/history/{arn}")["versions"]


def http_get(port: int, timeout: float = 10) -> str:
    """GET / on a host port; retries while the server inside is not listening yet."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as r:
                return r.read().decode()
        except (urllib.error.URLError, ConnectionError, OSError) as e:
            if time.monotonic() > deadline:
                pytest.fail(f"nothing answers HTTP on host port {port}: {e}", pytrace=False)
            time.sleep(0.2)


def host_port(task: dict) -> int:
    (container,) = task["containers"]
    bindings = [b for b in container.get("networkBindings", []) if b["containerPort"] == 8080]
    assert len(bindings) == 1, f"task {task['taskArn']} has no binding for 8080: {container}"
    assert bindings[0].get("protocol", "tcp") == "tcp", bindings
    return bindings[0]["hostPort"]


def check_serving(tasks: list[dict], rev: str) -> None:
    """Every task answers HTTP with its revision on the host port DescribeTasks reports."""
    ports = [host_port(t) for t in tasks]
    assert len(set(ports)) == len(ports), f"host ports must differ: {ports}"
    for port in ports:
        assert 0 < port < 65536
        assert http_get(port) == f"{rev}\n", f"host port {port}"


def started_ids(service: dict, name: str) -> set[str]:
    """Task ids named in the service's "has started N tasks" events."""
    out: set[str] = set()
    pattern = re.compile(rf"^\(service {re.escape(name)}\) has started (\d+) tasks: (.*)\.$")
    for message in messages(service):
        m = pattern.match(message)
        if m:
            ids = re.findall(r"\(task ([0-9a-f]{32})\)", m.group(2))
            assert len(ids) == int(m.group(1)), f"count and task list disagree: {message!r}"
            out.update(ids)
    return out


# --------------------------------------------------------------------------------------------
# Sampling a rollout
# --------------------------------------------------------------------------------------------


@dataclass
class Sample:
    at: float
    service: dict
    tasks: list[dict]  # every task of the service not yet STOPPED


@dataclass
class Sampler:
    """Takes consistent pictures of a service's tasks: every task that is not STOPPED yet
    (whatever its desiredStatus), from one DescribeTasks. The task lists are read before and
    after it; a picture in which a task appeared meanwhile is taken again."""

    ecs: Any
    name: str
    stopped: set[str] = field(default_factory=set)
    samples: list[Sample] = field(default_factory=list)

    def _listed(self) -> set[str]:
        # RUNNING first: a task whose desiredStatus changes in between is in one list or both.
        arns = set(list_task_arns(self.ecs, self.name, "RUNNING"))
        arns |= set(list_task_arns(self.ecs, self.name, "STOPPED"))
        return arns - self.stopped

    def take(self) -> Sample:
        for _ in range(20):
            before = self._listed()
            t0 = time.monotonic()
            tasks = describe_tasks(self.ecs, before) if before else []
            service = describe_service(self.ecs, self.name)
            if self._listed() - before:
                continue
            live = []
            for t in tasks:
                if t["lastStatus"] == "STOPPED":
                    self.stopped.add(t["taskArn"])
                else:
                    live.append(t)
            sample = Sample(at=t0, service=service, tasks=live)
            self.samples.append(sample)
            return sample
        pytest.fail("could not take a consistent picture of the service's tasks", pytrace=False)


def healthy(task: dict, health_checked: bool) -> bool:
    """ECS's "healthy" for a service without a load balancer: RUNNING (and HEALTHY when the
    definition has a health check), and not being stopped."""
    return (
        task["desiredStatus"] == "RUNNING"
        and task["lastStatus"] == "RUNNING"
        and (not health_checked or task.get("healthStatus") == "HEALTHY")
    )


def describe_sample(sample: Sample, t0: float) -> str:
    rows = [
        f"  {task_id(t['taskArn'])[:8]} {t['taskDefinitionArn'].rsplit('/', 1)[1]:<10} "
        f"last={t['lastStatus']:<12} desired={t['desiredStatus']:<8} "
        f"health={t.get('healthStatus', '-')}"
        for t in sorted(sample.tasks, key=lambda t: t["createdAt"])
    ]
    s = sample.service
    deployments = [
        (d["status"], d["taskDefinition"].rsplit("/", 1)[1], d.get("rolloutState"))
        for d in s["deployments"]
    ]
    return (
        f"at +{sample.at - t0:.2f}s: service running={s['runningCount']} "
        f"pending={s['pendingCount']} deployments={deployments}\n" + "\n".join(rows)
    )


def check_bounds(
    samples: list[Sample], min_percent: int, max_percent: int, health_checked: bool, t0: float
) -> dict:
    """Asserts ECS's bounds on every sample; returns what was observed."""
    low = math.ceil(DESIRED * min_percent / 100)
    high = math.floor(DESIRED * max_percent / 100)
    too_few = [s for s in samples if sum(healthy(t, health_checked) for t in s.tasks) < low]
    # RUNNING or PENDING: every task whose containers may still exist counts, including one
    # that is being stopped (desiredStatus STOPPED, lastStatus still RUNNING).
    too_many = [s for s in samples if len(s.tasks) > high]
    # The service's own counts (tasks whose desiredStatus is RUNNING).
    counted = [s for s in samples if s.service["runningCount"] + s.service["pendingCount"] > high]
    problems = []
    if too_few:
        problems.append(
            f"{len(too_few)} of {len(samples)} samples had fewer than {low} healthy tasks "
            f"(minimumHealthyPercent {min_percent}); first:\n{describe_sample(too_few[0], t0)}"
        )
    if too_many:
        problems.append(
            f"{len(too_many)} of {len(samples)} samples had more than {high} tasks RUNNING or "
            f"PENDING (maximumPercent {max_percent}); first:\n{describe_sample(too_many[0], t0)}"
        )
    if counted:
        problems.append(
            f"{len(counted)} samples had runningCount + pendingCount > {high}; first:\n"
            f"{describe_sample(counted[0], t0)}"
        )
    assert not problems, "\n\n".join(problems)
    return {
        "samples": len(samples),
        "min_healthy_seen": min(sum(healthy(t, health_checked) for t in s.tasks) for s in samples),
        "max_live_seen": max(len(s.tasks) for s in samples),
    }


def replay_bounds(
    api: BerthApi,
    ecs,
    name: str,
    since_revision: str,
    min_percent: int,
    max_percent: int,
    health_checked: bool,
) -> dict:
    """Checks the bounds at every committed state since the service was first given
    `since_revision`, exactly: berth's history (`GET /v1/history/{arn}`) holds every version
    of every task of the service with the Raft log index that wrote it, so the tasks' states
    can be replayed index by index (sampling can miss a short excursion; this cannot)."""
    service_arn = describe_service(ecs, name)["serviceArn"]
    starts = [
        v["index"]
        for v in service_history(api, service_arn)
        if v.get("value") and v["value"]["deployments"]
        and v["value"]["deployments"][0]["taskDefinition"] == since_revision
    ]
    assert starts, f"no version of the service deploys {since_revision}"
    start = starts[0]
    arns = set(list_task_arns(ecs, name, "RUNNING")) | set(list_task_arns(ecs, name, "STOPPED"))
    versions = sorted(
        ((v["index"], arn, v.get("value")) for arn in arns for v in service_history(api, arn)),
        key=lambda v: v[0],
    )
    low = math.ceil(DESIRED * min_percent / 100)
    high = math.floor(DESIRED * max_percent / 100)
    current: dict[str, dict] = {}
    worst = {"min_healthy": None, "max_live": 0, "states": 0}
    problems: list[str] = []

    def check(index: int) -> None:
        live = [t for t in current.values() if t["lastStatus"] != "STOPPED"]
        n_healthy = sum(healthy(t, health_checked) for t in live)
        worst["states"] += 1
        worst["max_live"] = max(worst["max_live"], len(live))
        if worst["min_healthy"] is None or n_healthy < worst["min_healthy"]:
            worst["min_healthy"] = n_healthy
        if n_healthy < low or len(live) > high:
            rows = ", ".join(
                f"{task_id(t['taskArn'])[:8]} {t['taskDefinitionArn'].rsplit('/', 1)[1]} "
                f"{t['lastStatus']}/{t['desiredStatus']}/{t.get('healthStatus', '-')}"
                for t in sorted(live, key=lambda t: t["createdAt"])
            )
            problems.append(
                f"log index {index}: {n_healthy} healthy (min {low}), {len(live)} RUNNING or "
                f"PENDING (max {high}): {rows}"
            )

    i = 0
    while i < len(versions) and versions[i][0] <= start:
        index, arn, value = versions[i]
        if value is None:
            current.pop(arn, None)
        else:
            current[arn] = value
        i += 1
    check(start)
    while i < len(versions):
        index = versions[i][0]
        while i < len(versions) and versions[i][0] == index:
            _, arn, value = versions[i]
            if value is None:
                current.pop(arn, None)
            else:
                current[arn] = value
            i += 1
        check(index)
    assert not problems, (
        f"minimumHealthyPercent {min_percent} / maximumPercent {max_percent} broken at "
        f"{len(problems)} of {worst['states']} committed states:\n" + "\n".join(problems[:10])
    )
    return worst


# --------------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------------


def test_service_reaches_steady_state_and_serves_http(dev):
    ecs, cli = dev.ecs, dev.cli
    rev1 = register_web(ecs, "web", "rev-1")

    r = cli(
        "ecs", "create-service", "--cluster", CLUSTER, "--service-name", "web",
        "--task-definition", "web:1", "--desired-count", str(DESIRED),
        "--deployment-configuration", "minimumHealthyPercent=100,maximumPercent=200",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    created = r.json()["service"]
    assert created["serviceArn"] == f"{ARN}:service/{CLUSTER}/web"
    assert created["status"] == "ACTIVE"
    assert created["desiredCount"] == DESIRED
    assert created["taskDefinition"] == rev1
    (deployment,) = created["deployments"]
    assert deployment["status"] == "PRIMARY"
    assert DEPLOYMENT_ID.match(deployment["id"]), deployment
    assert deployment["taskDefinition"] == rev1

    # aws-cli's waiter, as users run it, on a service that is still starting.
    t0 = time.monotonic()
    r = cli("ecs", "wait", "services-stable", "--cluster", CLUSTER, "--services", "web")
    assert r.returncode == 0, f"aws ecs wait services-stable failed:\n{r.stderr}\n{r.stdout}"
    print(f"services-stable returned after {time.monotonic() - t0:.1f}s")

    service = steady_service(ecs, "web", rev1)
    assert service["status"] == "ACTIVE"
    assert (service["desiredCount"], service["runningCount"], service["pendingCount"]) == (3, 3, 0)
    (d,) = service["deployments"]
    assert d["id"] == deployment["id"], "the first deployment should be the one that completed"
    assert (d["status"], d["rolloutState"]) == ("PRIMARY", "COMPLETED"), d
    assert (d["desiredCount"], d["runningCount"], d["pendingCount"]) == (3, 3, 0), d
    failures = [
        f"{task_id(t['taskArn'])}: {t.get('stopCode')}: {t.get('stoppedReason')}"
        for t in service_tasks(ecs, "web", "STOPPED")
    ]
    assert d.get("failedTasks", 0) == 0 and not failures, (
        "tasks failed on the way to the steady state:\n" + "\n".join(failures)
    )

    # aws-cli reads the same service.
    r = cli("ecs", "describe-services", "--cluster", CLUSTER, "--services", "web")
    assert r.returncode == 0, r.stderr
    (via_cli,) = r.json()["services"]
    assert via_cli["runningCount"] == 3
    assert via_cli["deployments"][0]["rolloutState"] == "COMPLETED"

    events = messages(service)
    assert events[0] == "(service web) has reached a steady state.", events
    assert f"(service web) (deployment {d['id']}) deployment completed." in events, events
    created_at = [e["createdAt"] for e in service["events"]]
    assert created_at == sorted(created_at, reverse=True), "events are newest first"

    tasks = service_tasks(ecs, "web")
    assert len(tasks) == 3, tasks
    for t in tasks:
        assert t["lastStatus"] == "RUNNING", t
        assert t["desiredStatus"] == "RUNNING", t
        assert t["group"] == "service:web", t
        assert t["startedBy"] == d["id"], t
        assert t["taskDefinitionArn"] == rev1, t
        assert t["containerInstanceArn"] == dev.instance_arn, t
        (c,) = t["containers"]
        assert c["lastStatus"] == "RUNNING" and c.get("runtimeId"), c
        assert container_running(c["runtimeId"]) is True, c
    assert {task_id(t["taskArn"]) for t in tasks} <= started_ids(service, "web"), events
    check_serving(tasks, "rev-1")

    # The other ways of listing the same tasks agree.
    by_deployment = ecs.list_tasks(cluster=CLUSTER, startedBy=d["id"])["taskArns"]
    assert sorted(by_deployment) == sorted(t["taskArn"] for t in tasks)
    r = cli("ecs", "list-services", "--cluster", CLUSTER)
    assert r.returncode == 0, r.stderr
    assert r.json()["serviceArns"] == [f"{ARN}:service/{CLUSTER}/web"]


def test_killed_container_is_replaced(dev):
    ecs = dev.ecs
    rev1 = register_web(ecs, "web", "rev-1")
    create_service(ecs, "web", "web:1")
    wait_stable(ecs, "web")
    service = steady_service(ecs, "web", rev1)
    deployment = service["deployments"][0]["id"]
    before = service_tasks(ecs, "web")
    assert len(before) == 3

    victim = before[0]
    (container,) = victim["containers"]
    docker("kill", container["runtimeId"])

    def victim_stopped():
        (t,) = describe_tasks(ecs, [victim["taskArn"]])
        return t["lastStatus"] == "STOPPED", t

    stopped = wait_for("the killed task to be STOPPED", victim_stopped)
    assert stopped["desiredStatus"] == "STOPPED", stopped
    assert stopped["stopCode"] == "EssentialContainerExited", stopped
    assert stopped["containers"][0]["exitCode"] == 137, stopped

    def replaced():
        s = describe_service(ecs, "web")
        tasks = service_tasks(ecs, "web")
        running = [t for t in tasks if t["lastStatus"] == "RUNNING"]
        done = (
            s["runningCount"] == 3
            and len(running) == 3
            and victim["taskArn"] not in {t["taskArn"] for t in tasks}
        )
        return done, {"service": s, "tasks": tasks}

    got = wait_for("a replacement task", replaced)
    tasks = got["tasks"]
    old = {t["taskArn"] for t in before}
    (new,) = [t for t in tasks if t["taskArn"] not in old]
    assert {t["taskArn"] for t in tasks} == (old - {victim["taskArn"]}) | {new["taskArn"]}
    assert new["group"] == "service:web", new
    assert new["startedBy"] == deployment, new
    assert new["taskDefinitionArn"] == rev1, new
    assert container_running(new["containers"][0]["runtimeId"]) is True
    check_serving(tasks, "rev-1")

    service = steady_service(ecs, "web", rev1)
    assert service["deployments"][0]["id"] == deployment, "a replacement is not a new deployment"
    assert f"(service web) has started 1 tasks: (task {task_id(new['taskArn'])})." in messages(
        service
    ), messages(service)
    # Back to a steady state: aws-cli's waiter agrees at once.
    r = dev.cli("ecs", "wait", "services-stable", "--cluster", CLUSTER, "--services", "web")
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize(
    ("min_percent", "max_percent", "health_checked"),
    [(50, 100, False), (100, 200, True)],
    ids=["min50-max100", "min100-max200-healthcheck"],
)
def test_rolling_update_stays_within_bounds(dev, min_percent, max_percent, health_checked):
    ecs = dev.ecs
    rev1 = register_web(ecs, "web", "rev-1", health_check=health_checked)
    rev2 = register_web(ecs, "web", "rev-2", health_check=health_checked)
    create_service(
        ecs, "web", "web:1", minimumHealthyPercent=min_percent, maximumPercent=max_percent
    )
    wait_stable(ecs, "web")
    service = steady_service(ecs, "web", rev1)
    first = service["deployments"][0]["id"]
    if health_checked:
        assert all(t["healthStatus"] == "HEALTHY" for t in service_tasks(ecs, "web"))
    old_arns = set(list_task_arns(ecs, "web"))

    sampler = Sampler(ecs, "web")
    sampler.take()
    t0 = time.monotonic()
    updated = ecs.update_service(cluster=CLUSTER, service="web", taskDefinition="web:2")[
        "service"
    ]
    assert updated["taskDefinition"] == rev2
    primary = updated["deployments"][0]
    assert primary["status"] == "PRIMARY" and primary["taskDefinition"] == rev2, updated
    assert primary["id"] != first
    assert [d["id"] for d in updated["deployments"][1:]] == [first], updated["deployments"]

    deadline = t0 + PATIENCE
    while True:
        sample = sampler.take()
        s = sample.service
        if (
            len(s["deployments"]) == 1
            and s["deployments"][0]["id"] == primary["id"]
            and s["deployments"][0].get("rolloutState") == "COMPLETED"
            and s["runningCount"] == DESIRED
        ):
            break
        assert time.monotonic() < deadline, (
            f"the rollout did not complete within {PATIENCE:.0f}s:\n{describe_sample(sample, t0)}"
        )
        time.sleep(0.1)
    took = time.monotonic() - t0
    seen = check_bounds(sampler.samples, min_percent, max_percent, health_checked, t0)
    exact = replay_bounds(
        dev.api, ecs, "web", rev2, min_percent, max_percent, health_checked
    )
    mixed = [
        s for s in sampler.samples if len({t["taskDefinitionArn"] for t in s.tasks}) == 2
    ]
    print(
        f"rollout {min_percent}/{max_percent} took {took:.1f}s; sampled {seen}; "
        f"mixed={len(mixed)}; replayed {exact}"
    )
    assert mixed, "no sample saw both revisions: the sampling proved nothing"

    service = steady_service(ecs, "web", rev2)
    (d,) = service["deployments"]
    assert (d["id"], d["status"], d["rolloutState"]) == (primary["id"], "PRIMARY", "COMPLETED")
    assert f"(service web) (deployment {primary['id']}) deployment completed." in messages(
        service
    ), messages(service)
    tasks = service_tasks(ecs, "web")
    assert len(tasks) == 3
    assert not old_arns & {t["taskArn"] for t in tasks}
    for t in tasks:
        assert (t["taskDefinitionArn"], t["startedBy"], t["lastStatus"]) == (
            rev2,
            primary["id"],
            "RUNNING",
        ), t
        if health_checked:
            assert t["healthStatus"] == "HEALTHY", t
    check_serving(tasks, "rev-2")
    # The old tasks were stopped by the scheduler, and their containers no longer run.
    for t in describe_tasks(ecs, old_arns):
        assert t["lastStatus"] == "STOPPED", t
        assert t["stopCode"] == "ServiceSchedulerInitiated", t
        assert container_running(t["containers"][0]["runtimeId"]) is not True, t
    r = dev.cli("ecs", "wait", "services-stable", "--cluster", CLUSTER, "--services", "web")
    assert r.returncode == 0, r.stderr


def test_circuit_breaker_rolls_back_a_broken_image(dev):
    ecs = dev.ecs
    rev1 = register_web(ecs, "web", "rev-1")
    broken = register_web(ecs, "web", "rev-2", image=MISSING_IMAGE)
    create_service(
        ecs,
        "web",
        "web:1",
        minimumHealthyPercent=100,
        maximumPercent=200,
        deploymentCircuitBreaker={"enable": True, "rollback": True},
    )
    wait_stable(ecs, "web")
    service = steady_service(ecs, "web", rev1)
    first = service["deployments"][0]["id"]
    assert service["deploymentConfiguration"]["deploymentCircuitBreaker"] == {
        "enable": True,
        "rollback": True,
    }
    old_arns = set(list_task_arns(ecs, "web"))

    sampler = Sampler(ecs, "web")
    t0 = time.monotonic()
    updated = ecs.update_service(cluster=CLUSTER, service="web", taskDefinition="web:2")[
        "service"
    ]
    failing = updated["deployments"][0]
    assert (failing["status"], failing["taskDefinition"]) == ("PRIMARY", broken), failing

    # Sample until the rollback completed: a rollback deployment of revision 1 must become
    # PRIMARY and complete, within minimumHealthyPercent 100 all along.
    seen_failed: dict | None = None
    seen_rollback: dict | None = None
    history: list[dict] = []
    deadline = t0 + PATIENCE
    while True:
        sample = sampler.take()
        deployments = sample.service["deployments"]
        for d in deployments:
            if d["id"] == failing["id"] and d.get("rolloutState") == "FAILED":
                seen_failed = seen_failed or {**d, "_deployments": deployments}
        head = deployments[0]
        if head["id"] not in (first, failing["id"]):
            assert head["status"] == "PRIMARY" and head["taskDefinition"] == rev1, deployments
            if seen_rollback is None:
                seen_rollback = head
                # The service's versions so far, read at once (berth keeps the last 32).
                history = service_history(dev.api, sample.service["serviceArn"])
        if (
            seen_rollback
            and len(deployments) == 1
            and head["id"] == seen_rollback["id"]
            and head.get("rolloutState") == "COMPLETED"
            and sample.service["runningCount"] == DESIRED
        ):
            break
        assert time.monotonic() < deadline, (
            f"no completed rollback within {PATIENCE:.0f}s:\n{describe_sample(sample, t0)}\n"
            f"events: {messages(sample.service)[:8]}"
        )
        time.sleep(0.1)
    print(
        f"rollback completed after {time.monotonic() - t0:.1f}s; the FAILED deployment was "
        f"{'seen' if seen_failed else 'never seen'} by DescribeServices in "
        f"{len(sampler.samples)} samples"
    )
    assert seen_rollback is not None
    assert f"rolling back to deploymentId {first}" in seen_rollback.get(
        "rolloutStateReason", ""
    ), seen_rollback
    # minimumHealthyPercent 100: the three tasks of revision 1 served throughout.
    check_bounds(sampler.samples, 100, 200, False, t0)
    replay_bounds(dev.api, ecs, "web", broken, 100, 200, False)

    # The broken deployment went FAILED (the version of the service that tripped the breaker):
    # the rollback deployment PRIMARY, the failed one ACTIVE, FAILED, with its failures.
    tripped = [
        v["value"]
        for v in history
        if v.get("value")
        and any(
            d["id"] == failing["id"] and d.get("rolloutState") == "FAILED"
            for d in v["value"].get("deployments", [])
        )
    ]
    assert tripped, "no version of the service has the broken deployment FAILED:\n" + "\n".join(
        json.dumps(v.get("value", {}).get("deployments"), default=str) for v in history
    )
    deployments = tripped[0]["deployments"]
    (failed,) = [d for d in deployments if d["id"] == failing["id"]]
    assert failed["status"] == "ACTIVE", deployments
    assert failed["failedTasks"] >= 3, failed
    assert "circuit breaker" in failed.get("rolloutStateReason", ""), failed
    assert deployments[0]["id"] == seen_rollback["id"], deployments
    assert (deployments[0]["status"], deployments[0]["taskDefinition"]) == ("PRIMARY", rev1)
    if seen_failed is not None:
        assert seen_failed["failedTasks"] >= 3, seen_failed

    service = steady_service(ecs, "web", rev1)
    assert service["taskDefinition"] == rev1, "the service is back on revision 1"
    (d,) = service["deployments"]
    assert d["id"] == seen_rollback["id"]
    events = messages(service)
    assert (
        f"(service web) (deployment {failing['id']}) deployment failed: tasks failed to start."
        in events
    ), events
    assert f"(service web) (deployment {d['id']}) deployment completed." in events, events

    # The broken deployment's tasks failed to start, saying why.
    failed_tasks = describe_tasks(
        ecs, ecs.list_tasks(cluster=CLUSTER, startedBy=failing["id"], desiredStatus="STOPPED")[
            "taskArns"
        ]
    )
    assert all(t["taskDefinitionArn"] == broken for t in failed_tasks), failed_tasks
    could_not_start = [t for t in failed_tasks if t["stopCode"] == "TaskFailedToStart"]
    assert len(could_not_start) >= 3, failed_tasks
    for t in could_not_start:
        reasons = t.get("stoppedReason", "") + " ".join(
            c.get("reason", "") for c in t["containers"]
        )
        assert "CannotPullContainerError" in reasons, t
    # Any other was still starting when the breaker tripped, and the scheduler stopped it.
    for t in failed_tasks:
        assert t["stopCode"] in ("TaskFailedToStart", "ServiceSchedulerInitiated"), t

    tasks = service_tasks(ecs, "web")
    assert len(tasks) == 3
    for t in tasks:
        assert (t["taskDefinitionArn"], t["lastStatus"]) == (rev1, "RUNNING"), t
        assert t["startedBy"] == d["id"], t
    check_serving(tasks, "rev-1")
    # The original tasks were replaced by the rollback deployment's (ECS rolls back by
    # deploying the old revision anew), so they are stopped.
    assert not old_arns & {t["taskArn"] for t in tasks}
    r = dev.cli("ecs", "wait", "services-stable", "--cluster", CLUSTER, "--services", "web")
    assert r.returncode == 0, r.stderr


def test_delete_service_force_drains_to_inactive(dev):
    ecs, cli = dev.ecs, dev.cli
    rev1 = register_web(ecs, "web", "rev-1")
    create_service(ecs, "web", "web:1")
    wait_stable(ecs, "web")
    steady_service(ecs, "web", rev1)
    tasks = service_tasks(ecs, "web")
    assert len(tasks) == 3
    containers = [t["containers"][0]["runtimeId"] for t in tasks]
    assert all(container_running(c) for c in containers)

    r = cli("ecs", "delete-service", "--cluster", CLUSTER, "--service", "web", "--force")
    assert r.returncode == 0, r.stderr
    deleted = r.json()["service"]
    assert deleted["status"] == "DRAINING", deleted
    assert deleted["desiredCount"] == 0, deleted

    # boto3's waiter, polling every second; then aws-cli's agrees at once.
    ecs.get_waiter("services_inactive").wait(
        cluster=CLUSTER,
        services=["web"],
        WaiterConfig={"Delay": 1, "MaxAttempts": int(PATIENCE)},
    )
    r = cli("ecs", "wait", "services-inactive", "--cluster", CLUSTER, "--services", "web")
    assert r.returncode == 0, f"aws ecs wait services-inactive failed:\n{r.stderr}"

    out = ecs.describe_services(cluster=CLUSTER, services=["web"])
    (service,) = out["services"]
    assert service["status"] == "INACTIVE", service
    assert service["runningCount"] == 0 and service["pendingCount"] == 0, service

    for t in describe_tasks(ecs, [t["taskArn"] for t in tasks]):
        assert (t["lastStatus"], t["desiredStatus"]) == ("STOPPED", "STOPPED"), t
        assert t["stopCode"] == "ServiceSchedulerInitiated", t
    assert list_task_arns(ecs, "web") == []
    # The containers no longer run (the dev agent removes exited containers after its
    # cleanup wait, 10 minutes, so they may still be listed by `docker ps -a`).
    for c in containers:
        assert container_running(c) is not True, c
    assert containers_of_instance(dev.instance_arn, all_states=False) == []

    # An INACTIVE service is not listed, and the ServicesStable waiter fails on it.
    assert ecs.list_services(cluster=CLUSTER)["serviceArns"] == []
    r = cli("ecs", "wait", "services-stable", "--cluster", CLUSTER, "--services", "web")
    assert r.returncode != 0, "services-stable must fail on an INACTIVE service"


def test_unplaceable_service_says_why_and_recovers_on_update(dev):
    ecs = dev.ecs
    ecs.register_task_definition(
        family="web",
        networkMode="bridge",
        containerDefinitions=[
            {"name": "web", "image": IMAGE, "memory": 4_000_000, "command": ["sleep", "60"]}
        ],
    )
    create_service(ecs, "web", "web:1")
    instance_id = task_id(dev.instance_arn)

    def said_why():
        s = describe_service(ecs, "web")
        return any(
            m.startswith(
                "(service web) was unable to place a task because no container instance met "
                f"all of its requirements. The closest matching (container-instance "
                f"{instance_id}) has insufficient memory available"
            )
            for m in messages(s)
        ), s

    service = wait_for("the unplaceable event", said_why, timeout=15)
    assert (service["runningCount"], service["pendingCount"]) == (0, 0), service
    assert list_task_arns(ecs, "web") == []
    r = dev.cli("ecs", "describe-services", "--cluster", CLUSTER, "--services", "web")
    assert r.returncode == 0, r.stderr
    assert any("insufficient memory" in e["message"] for e in r.json()["services"][0]["events"])

    # A revision that fits is placed at once, and the service becomes stable.
    rev2 = register_web(ecs, "web", "rev-2")
    ecs.update_service(cluster=CLUSTER, service="web", taskDefinition="web:2")
    wait_stable(ecs, "web")
    steady_service(ecs, "web", rev2)
    check_serving(service_tasks(ecs, "web"), "rev-2")
