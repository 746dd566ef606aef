"""The everyday ECS flow through `aws ecs ...` (aws-cli v1 from this venv) against berth."""

from __future__ import annotations

import json
import re
import subprocess
import time

ARN = "arn:aws:ecs:us-east-1:000000000000"
HEX32 = re.compile(r"^[0-9a-f]{32}$")

TOTAL_RESOURCES = json.dumps(
    [
        {"name": "CPU", "type": "INTEGER", "integerValue": 2048},
        {"name": "MEMORY", "type": "INTEGER", "integerValue": 4096},
        {"name": "PORTS", "type": "STRINGSET", "stringSetValue": ["22", "2375", "2376", "51678"]},
        {"name": "PORTS_UDP", "type": "STRINGSET", "stringSetValue": []},
    ]
)

TASK_DEFINITION = {
    "family": "worker",
    "containerDefinitions": [
        {
            "name": "main",
            "image": "busybox:1.36",
            "cpu": 512,
            "memory": 1024,
            "essential": True,
            "command": ["sh", "-c", "sleep 600"],
            "portMappings": [{"containerPort": 8080, "hostPort": 8080, "protocol": "tcp"}],
        }
    ],
}


def resource(resources: list[dict], name: str):
    (r,) = [r for r in resources if r["name"] == name]
    return r.get("integerValue") if r["type"] != "STRINGSET" else r.get("stringSetValue", [])


def agent_reports(aws, task_arn: str, status: str, exit_code: int | None = None) -> None:
    container = {"containerName": "main", "status": status}
    if exit_code is not None:
        container["exitCode"] = exit_code
    out = aws(
        "ecs",
        "submit-task-state-change",
        "--cluster",
        "cli",
        "--task",
        task_arn,
        "--status",
        status,
        "--containers",
        json.dumps([container]),
    )
    assert out == {"acknowledgment": "ACK"}


def test_core_flow_with_the_aws_cli(aws, aws_run, aws_argv, server_cli_env, tmp_path):
    # create-cluster
    cluster = aws("ecs", "create-cluster", "--cluster-name", "cli")["cluster"]
    assert cluster["clusterArn"] == f"{ARN}:cluster/cli"
    assert cluster["status"] == "ACTIVE"
    assert f"{ARN}:cluster/cli" in aws("ecs", "list-clusters")["clusterArns"]

    # register-task-definition --cli-input-json, twice: revisions 1 and 2.
    spec = tmp_path / "worker.json"
    spec.write_text(json.dumps(TASK_DEFINITION))
    first = aws("ecs", "register-task-definition", "--cli-input-json", f"file://{spec}")
    assert first["taskDefinition"]["taskDefinitionArn"] == f"{ARN}:task-definition/worker:1"
    second = aws("ecs", "register-task-definition", "--cli-input-json", f"file://{spec}")
    assert second["taskDefinition"]["taskDefinitionArn"] == f"{ARN}:task-definition/worker:2"
    assert second["taskDefinition"]["status"] == "ACTIVE"
    assert (
        second["taskDefinition"]["containerDefinitions"][0]["portMappings"][0]["hostPort"] == 8080
    )
    listed = aws("ecs", "list-task-definitions", "--family-prefix", "worker")
    assert listed["taskDefinitionArns"] == [
        f"{ARN}:task-definition/worker:1",
        f"{ARN}:task-definition/worker:2",
    ]

    # register-container-instance, twice.
    instances = []
    for zone in ("a", "b"):
        out = aws(
            "ecs",
            "register-container-instance",
            "--cluster",
            "cli",
            "--total-resources",
            TOTAL_RESOURCES,
            "--attributes",
            f"name=zone,value={zone}",
        )["containerInstance"]
        assert out["containerInstanceArn"].startswith(f"{ARN}:container-instance/cli/")
        assert HEX32.match(out["containerInstanceArn"].rsplit("/", 1)[1])
        assert out["status"] == "ACTIVE"
        assert resource(out["registeredResources"], "CPU") == 2048
        instances.append(out["containerInstanceArn"])
    assert sorted(
        aws("ecs", "list-container-instances", "--cluster", "cli")["containerInstanceArns"]
    ) == sorted(instances)

    # run-task: the static host port 8080 allows one task per instance, so a third fails.
    run = aws(
        "ecs",
        "run-task",
        "--cluster",
        "cli",
        "--task-definition",
        "worker",
        "--count",
        "3",
        "--started-by",
        "cli-test",
    )
    tasks = run["tasks"]
    assert len(tasks) == 2
    # As in ECS, failures name each container instance that could not take the task, and why.
    assert run["failures"]
    assert {f["reason"] for f in run["failures"]} == {"RESOURCE:PORTS"}
    assert {f["arn"] for f in run["failures"]} <= set(instances)
    assert sorted(t["containerInstanceArn"] for t in tasks) == sorted(instances)
    for t in tasks:
        assert t["taskArn"].startswith(f"{ARN}:task/cli/")
        assert t["taskDefinitionArn"] == f"{ARN}:task-definition/worker:2"
        assert t["lastStatus"] == "PENDING" and t["desiredStatus"] == "RUNNING"
        assert t["startedBy"] == "cli-test"
        assert t["group"] == "family:worker"
    arns = [t["taskArn"] for t in tasks]

    # list-tasks / describe-tasks
    assert sorted(aws("ecs", "list-tasks", "--cluster", "cli")["taskArns"]) == sorted(arns)
    assert sorted(
        aws("ecs", "list-tasks", "--cluster", "cli", "--started-by", "cli-test")["taskArns"]
    ) == sorted(arns)
    described = aws("ecs", "describe-tasks", "--cluster", "cli", "--tasks", *arns)
    assert described["failures"] == []
    assert sorted(t["taskArn"] for t in described["tasks"]) == sorted(arns)

    # describe-container-instances: each instance lost one task's CPU, memory and port 8080.
    ci = aws(
        "ecs",
        "describe-container-instances",
        "--cluster",
        "cli",
        "--container-instances",
        *instances,
    )
    assert ci["failures"] == []
    for i in ci["containerInstances"]:
        assert resource(i["remainingResources"], "CPU") == 2048 - 512
        assert resource(i["remainingResources"], "MEMORY") == 4096 - 1024
        assert "8080" in resource(i["remainingResources"], "PORTS")
        assert "8080" not in resource(i["registeredResources"], "PORTS")
        assert i["pendingTasksCount"] == 1

    # The agent starts them.
    for arn in arns:
        agent_reports(aws, arn, "RUNNING")
    described = aws("ecs", "describe-tasks", "--cluster", "cli", "--tasks", *arns)
    assert [t["lastStatus"] for t in described["tasks"]] == ["RUNNING", "RUNNING"]

    # stop-task
    stopped = aws(
        "ecs", "stop-task", "--cluster", "cli", "--task", arns[0], "--reason", "scaling in"
    )["task"]
    assert stopped["desiredStatus"] == "STOPPED"
    assert stopped["stoppedReason"] == "scaling in"
    assert aws("ecs", "list-tasks", "--cluster", "cli", "--desired-status", "STOPPED")[
        "taskArns"
    ] == [arns[0]]
    aws("ecs", "stop-task", "--cluster", "cli", "--task", arns[1])

    # `aws ecs wait tasks-stopped` polls (every 6 s, per the model) until the agent reports.
    waiter = subprocess.Popen(
        aws_argv("ecs", "wait", "tasks-stopped", "--cluster", "cli", "--tasks", *arns),
        env=server_cli_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(1.0)
        assert waiter.poll() is None, "the waiter passed while tasks were still RUNNING"
        for arn in arns:
            agent_reports(aws, arn, "STOPPED", exit_code=0)
        _, err = waiter.communicate(timeout=20)
    finally:
        if waiter.poll() is None:
            waiter.kill()
            waiter.wait()
    assert waiter.returncode == 0, err
    # Already stopped: passes at once.
    started = time.monotonic()
    r = aws_run("ecs", "wait", "tasks-stopped", "--cluster", "cli", "--tasks", *arns)
    assert r.returncode == 0, r.stderr
    assert time.monotonic() - started < 5

    described = aws("ecs", "describe-tasks", "--cluster", "cli", "--tasks", *arns)
    assert [t["lastStatus"] for t in described["tasks"]] == ["STOPPED", "STOPPED"]
    assert described["tasks"][0]["stopCode"] == "UserInitiated"
    assert aws("ecs", "list-tasks", "--cluster", "cli")["taskArns"] == []

    # Resources are back.
    ci = aws(
        "ecs",
        "describe-container-instances",
        "--cluster",
        "cli",
        "--container-instances",
        *instances,
    )
    for i in ci["containerInstances"]:
        assert resource(i["remainingResources"], "CPU") == 2048
        assert "8080" not in resource(i["remainingResources"], "PORTS")

    # delete-cluster refuses while instances are registered, then succeeds.
    r = aws_run("ecs", "delete-cluster", "--cluster", "cli")
    assert r.returncode != 0
    assert "ClusterContainsContainerInstancesException" in r.stderr
    for arn in instances:
        out = aws(
            "ecs", "deregister-container-instance", "--cluster", "cli", "--container-instance", arn
        )
        assert out["containerInstance"]["status"] == "INACTIVE"
    deleted = aws("ecs", "delete-cluster", "--cluster", "cli")["cluster"]
    assert deleted["clusterArn"] == f"{ARN}:cluster/cli"
    assert deleted["status"] == "INACTIVE"
    assert f"{ARN}:cluster/cli" not in aws("ecs", "list-clusters")["clusterArns"]


def test_errors_exit_nonzero_and_name_the_exception(aws_run):
    # aws-cli v1 exits 255 on a service error and prints
    # "An error occurred (<Code>) when calling the <Operation> operation: <message>".
    r = aws_run("ecs", "list-tasks", "--cluster", "no-such-cluster")
    assert r.returncode == 255, (r.returncode, r.stderr)
    assert (
        "An error occurred (ClusterNotFoundException) when calling the ListTasks operation"
        in r.stderr
    )
    assert r.stdout.strip() == ""

    r = aws_run("ecs", "create-cluster", "--cluster-name", "errs")
    assert r.returncode == 0, r.stderr
    r = aws_run("ecs", "run-task", "--cluster", "errs", "--task-definition", "missing:7")
    assert r.returncode == 255
    assert "An error occurred (ClientException) when calling the RunTask operation" in r.stderr

    r = aws_run("ecs", "list-tasks", "--cluster", "errs", "--desired-status", "SOMETIMES")
    assert r.returncode == 255
    assert "(InvalidParameterException)" in r.stderr

    # A Describe call does not raise for unknown items: it lists them in failures.
    r = aws_run("ecs", "describe-clusters", "--clusters", "ghost")
    assert r.returncode == 0, r.stderr
    assert r.json()["failures"] == [{"arn": f"{ARN}:cluster/ghost", "reason": "MISSING"}]
