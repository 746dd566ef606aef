"""Preemption with stock `aws ecs` commands on a real server and hollow agents: batch tasks
(priority 100) fill the cluster, a priority-900 service displaces them and reaches a steady
state, the displaced tasks' stop code and reason name the task that took their place; then a
DAEMON service's task lands on a new instance that queued batch work was waiting for."""

from __future__ import annotations

import json
import time

from conftest import start_hollow_agent

CLUSTER = "preempt"


def definition(family: str) -> str:
    return json.dumps([{"name": family, "image": f"{family}:1", "cpu": 64, "memory": 512}])


def wait_for(what: str, check, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"not within {timeout}s: {what}"
        time.sleep(0.2)


def test_a_high_priority_service_preempts_batch_and_a_daemon_lands_first(
        aws, berth_server, start_berth):
    aws("ecs", "create-cluster", "--cluster-name", CLUSTER)
    start_hollow_agent(start_berth, berth_server, CLUSTER)
    for family in ("batch", "web", "agentd"):
        aws("ecs", "register-task-definition", "--family", family,
            "--container-definitions", definition(family))

    # Full: four 512 MiB batch tasks on one 2048 MiB instance.
    batch = aws("ecs", "run-task", "--cluster", CLUSTER, "--task-definition", "batch",
                "--count", "4")["tasks"]
    batch_arns = [t["taskArn"] for t in batch]

    def described(arns: list[str]) -> list[dict]:
        return aws("ecs", "describe-tasks", "--cluster", CLUSTER, "--tasks", *arns)["tasks"]

    wait_for("batch running", lambda: all(t["lastStatus"] == "RUNNING" for t in described(batch_arns)))

    aws("ecs", "create-service", "--cluster", CLUSTER, "--service-name", "web",
        "--task-definition", "web", "--desired-count", "2",
        "--tags", "key=berth:priority,value=900")

    def service(name: str) -> dict:
        return aws("ecs", "describe-services", "--cluster", CLUSTER, "--services", name)["services"][0]

    def steady(name: str, count: int) -> bool:
        s = service(name)
        return s["runningCount"] == count and bool(s["events"]) \
            and s["events"][0]["message"] == f"(service {name}) has reached a steady state."

    wait_for("web steady", lambda: steady("web", 2))
    web_ids = {a.rsplit("/", 1)[1] for a in aws(
        "ecs", "list-tasks", "--cluster", CLUSTER, "--service-name", "web")["taskArns"]}
    stopped = [t for t in described(batch_arns) if t["lastStatus"] == "STOPPED"]
    assert len(stopped) == 2, "one 512 MiB batch task per web task"
    for t in stopped:
        assert t["stopCode"] == "SpotInterruption"
        assert any(t["stoppedReason"].startswith(f"Preempted by (task {w}) of priority 900")
                   for w in web_ids), t["stoppedReason"]

    # A daemon, and batch work queued for the next instance's room.
    aws("ecs", "create-service", "--cluster", CLUSTER, "--service-name", "agentd",
        "--task-definition", "agentd", "--scheduling-strategy", "DAEMON")
    wait_for("agentd on the first instance", lambda: steady("agentd", 1))
    queued = aws("ecs", "run-task", "--cluster", CLUSTER, "--task-definition", "batch",
                 "--count", "4", "--tags", "key=berth:queue-timeout,value=600")["tasks"]
    assert all(t["lastStatus"] == "PROVISIONING" for t in queued)

    second = start_hollow_agent(start_berth, berth_server, CLUSTER)
    wait_for("agentd on both instances", lambda: steady("agentd", 2))
    daemons = described(aws("ecs", "list-tasks", "--cluster", CLUSTER,
                            "--service-name", "agentd")["taskArns"])
    assert any(t["containerInstanceArn"].endswith(second) for t in daemons
               if t["lastStatus"] == "RUNNING")
    on_second = aws("ecs", "list-tasks", "--cluster", CLUSTER,
                    "--container-instance", second)["taskArns"]
    assert len(on_second) <= 4, "the daemon and at most three batch tasks fit"
