"""`berth dev`: the newcomer's first five minutes, exactly as its welcome text tells them."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

ARN = "arn:aws:ecs:us-east-1:000000000000"
ENDPOINT_LINE = re.compile(r"^\s*ECS endpoint:\s+(http://127\.0\.0\.1:\d+)\s*$")
WELCOME_END = "Press Ctrl-C to stop."
# A Docker endpoint that does not exist: berth dev then runs tasks as host processes.
DOCKER_NOWHERE = "unix:///nonexistent/berth-test-docker.sock"


def start_dev(
    start_berth,
    data_dir: Path | None = None,
    env: dict[str, str] | None = None,
    defaults: bool = False,
):
    p = start_berth("dev", data_dir=data_dir, env=env, defaults=defaults)
    lines = p.read_until(lambda line: line.strip() == WELCOME_END)
    endpoints = [m.group(1) for m in map(ENDPOINT_LINE.match, lines) if m]
    assert len(endpoints) == 1, "the welcome text must show the ECS endpoint once:\n" + "\n".join(
        lines
    )
    p.endpoint = endpoints[0]
    return p, "\n".join(lines)


def example_commands(welcome: str) -> list[str]:
    """The shell lines of the welcome text's example: `export ...` and `aws ...` commands,
    with their backslash-continued lines, exactly as printed."""
    commands: list[str] = []
    lines = welcome.splitlines()
    i = 0
    while i < len(lines):
        stripped = lines[i].strip()
        if stripped.startswith(("export AWS_", "aws ")):
            command = [lines[i]]
            while command[-1].rstrip().endswith("\\") and i + 1 < len(lines):
                i += 1
                command.append(lines[i])
            commands.append("\n".join(command))
        i += 1
    return commands


def run_as_printed(command: str, export: str, cli_env: dict[str, str]):
    """Runs one printed command in bash after the printed `export` line, with this venv's
    `aws` first on PATH. Credentials and region come only from the printed `export`; the
    user's AWS configuration stays out (an empty config file)."""
    env = {
        k: v
        for k, v in cli_env.items()
        if k
        not in (
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_DEFAULT_REGION",
            "AWS_SHARED_CREDENTIALS_FILE",
        )
    }
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return subprocess.run(
        ["bash", "-c", f"set -e\n{export}\n{command}\n"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_dev_prints_its_endpoint_and_has_the_default_cluster(start_berth, aws_at):
    dev, welcome = start_dev(start_berth)
    assert str(dev.data_dir) in welcome, "the welcome text should say where the state lives"

    r = aws_at(dev.endpoint, "ecs", "list-clusters")
    assert r.returncode == 0, r.stderr
    assert r.json()["clusterArns"] == [f"{ARN}:cluster/default"]
    described = aws_at(dev.endpoint, "ecs", "describe-clusters").json()
    (default,) = described["clusters"]
    assert default["clusterName"] == "default" and default["status"] == "ACTIVE"


def run_welcome_example(dev, welcome: str, cli_env, ecs_at):
    """Runs every command of the welcome text's example exactly as printed and checks what
    each answers, down to the task's output."""
    commands = example_commands(welcome)
    exports = [c for c in commands if c.strip().startswith("export ")]
    awss = [c for c in commands if c.strip().startswith("aws ")]
    assert len(exports) == 1, f"expected one export line in the welcome text:\n{welcome}"
    # The export names the admin credential berth wrote, by its absolute path, so the
    # example works from any directory; and the region.
    (export,) = exports
    assert f"AWS_SHARED_CREDENTIALS_FILE={dev.admin_credentials_file.resolve()}" in export, export
    assert "AWS_DEFAULT_REGION=us-east-1" in export, export
    (register,) = [c for c in awss if "register-task-definition" in c]
    # The printed commands already name the real endpoint: nothing to substitute.
    assert f"--endpoint-url {dev.endpoint}" in register

    run_arns = []
    for command in awss:
        r = run_as_printed(command, exports[0], cli_env)
        assert r.returncode == 0, f"printed command failed:\n{command}\n{r.stderr}"
        out = json.loads(r.stdout)
        if "list-clusters" in command:
            assert f"{ARN}:cluster/default" in out["clusterArns"]
        if "register-task-definition" in command:
            td = out["taskDefinition"]
            assert td["taskDefinitionArn"] == f"{ARN}:task-definition/hello:1"
            assert td["status"] == "ACTIVE"
            (c,) = td["containerDefinitions"]
            assert (c["name"], c["image"], c["memory"], c["command"]) == (
                "hello",
                "busybox",
                64,
                ["echo", "hi"],
            )
        if "run-task" in command:
            assert out["failures"] == [], out
            run_arns.append(out["tasks"][0]["taskArn"])

    # The registration is really there for any client.
    ecs = ecs_at(dev.endpoint)
    assert ecs.list_task_definitions()["taskDefinitionArns"] == [f"{ARN}:task-definition/hello:1"]

    # The printed run-task ran `echo hi` on dev's own agent, and its logs say so.
    assert len(run_arns) == 1, "the welcome text should run the task it registers"
    task = wait_stopped(ecs, run_arns[0])
    assert task["containers"][0]["exitCode"] == 0, task
    assert task["stopCode"] == "EssentialContainerExited", task
    assert logs(dev, run_arns[0]) == "hi\n"


def test_dev_welcome_example_works_as_printed(start_berth, cli_env, ecs_at):
    dev, welcome = start_dev(start_berth)
    run_welcome_example(dev, welcome, cli_env, ecs_at)


@pytest.mark.parametrize("docker", ["with Docker", "without Docker"])
def test_the_readme_quick_start_works_verbatim_from_a_fresh_directory(
    start_berth, cli_env, ecs_at, docker
):
    """`berth dev` with no flags at all, in an empty working directory (its state in the
    relative default `./berth-data`), then the welcome example as printed: the README's
    quick start, with a Docker Engine and without one."""
    env = {} if docker == "with Docker" else {"DOCKER_HOST": DOCKER_NOWHERE}
    dev, welcome = start_dev(start_berth, env=env, defaults=True)
    assert dev.endpoint == "http://127.0.0.1:8642", welcome
    assert ("Docker is unavailable" in welcome) == (docker == "without Docker"), welcome
    run_welcome_example(dev, welcome, cli_env, ecs_at)
    dev.stop()


def wait_stopped(ecs, arn: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        (task,) = ecs.describe_tasks(tasks=[arn])["tasks"]
        if task["lastStatus"] == "STOPPED":
            return task
        assert time.monotonic() < deadline, f"task not STOPPED within {timeout}s: {task}"
        time.sleep(0.2)


def logs(dev, arn: str) -> str:
    """The task's container output, from berth's native API (signed, as admin)."""
    task_id = arn.rsplit("/", 1)[1]
    return dev.api().ok("GET", f"/v1/tasks/{task_id}/logs").body.decode()


def test_dev_without_docker_says_so_and_runs_process_tasks(start_berth, ecs_at):
    dev, welcome = start_dev(
        start_berth, env={"DOCKER_HOST": DOCKER_NOWHERE}
    )
    assert "Docker is unavailable" in welcome, welcome
    ecs = ecs_at(dev.endpoint)
    (instance,) = ecs.describe_container_instances(
        containerInstances=ecs.list_container_instances()["containerInstanceArns"]
    )["containerInstances"]
    assert instance["agentConnected"] is True
    names = {a["name"]: a.get("value") for a in instance["attributes"]}
    assert names["berth.default-runtime"] == "process", names
    assert "berth.runtime.docker" not in names, names

    # No runtime label: the agent's default, host processes, runs it.
    ecs.register_task_definition(
        family="plain",
        containerDefinitions=[
            {
                "name": "main",
                "image": "busybox",
                "memory": 32,
                "command": ["sh", "-c", "echo from-process; exit 4"],
            }
        ],
    )
    (arn,) = [t["taskArn"] for t in ecs.run_task(taskDefinition="plain")["tasks"]]
    task = wait_stopped(ecs, arn)
    assert task["containers"][0]["exitCode"] == 4, task
    assert task["stopCode"] == "EssentialContainerExited", task
    assert "from-process" in logs(dev, arn)


def test_dev_keeps_its_state_across_restarts(start_berth, aws_at, ecs_at):
    first, _ = start_dev(start_berth)
    ecs = ecs_at(first.endpoint)
    ecs.create_cluster(clusterName="mine")
    ecs.register_task_definition(
        family="hello", containerDefinitions=[{"name": "hello", "image": "busybox", "memory": 64}]
    )
    first.stop()
    assert first.proc.returncode is not None

    second, _ = start_dev(start_berth, data_dir=first.data_dir)
    r = aws_at(second.endpoint, "ecs", "list-clusters")
    assert r.returncode == 0, r.stderr
    assert sorted(r.json()["clusterArns"]) == [f"{ARN}:cluster/default", f"{ARN}:cluster/mine"]
    r = aws_at(second.endpoint, "ecs", "list-task-definitions")
    assert r.json()["taskDefinitionArns"] == [f"{ARN}:task-definition/hello:1"]


def test_dev_keeps_its_own_and_ecs_reserved_ports_off_limits(start_berth, ecs_at):
    """The dev agent registers the ports ECS's agent reserves (22, 2375, 2376, 51678, 51679)
    and the server's own port, so a task asking for one of them is not placed there (it would
    fail to start on a port already taken)."""
    dev, _ = start_dev(start_berth)
    own_port = int(dev.endpoint.rsplit(":", 1)[1])
    ecs = ecs_at(dev.endpoint)
    (instance,) = ecs.describe_container_instances(
        containerInstances=ecs.list_container_instances()["containerInstanceArns"]
    )["containerInstances"]
    (ports,) = [r for r in instance["registeredResources"] if r["name"] == "PORTS"]
    reserved = {int(p) for p in ports["stringSetValue"]}
    assert {22, 2375, 2376, 51678, 51679, own_port} <= reserved, reserved

    ecs.register_task_definition(
        family="squatter",
        containerDefinitions=[
            {
                "name": "web",
                "image": "busybox",
                "memory": 32,
                "command": ["sleep", "60"],
                "portMappings": [{"containerPort": 80, "hostPort": own_port}],
                "dockerLabels": {"berth.runtime": "process"},
            }
        ],
    )
    out = ecs.run_task(taskDefinition="squatter")
    assert out["tasks"] == [], out
    (failure,) = out["failures"]
    assert failure["reason"] == "RESOURCE:PORTS", failure


def test_logs_carry_no_colour_codes_when_not_on_a_terminal(start_berth):
    """stderr redirected to a file (as every service manager does) gets plain text: here the
    loud warning of a server serving plain HTTP on all interfaces."""
    server = start_berth("server", "--insecure", listen="0.0.0.0:0")
    server.read_until(lambda line: "listening on" in line)
    deadline = time.monotonic() + 10
    while "INSECURE" not in server.log_path.read_text(errors="replace"):
        assert time.monotonic() < deadline, "no INSECURE warning in the server's stderr"
        time.sleep(0.05)
    text = server.log_path.read_text(errors="replace")
    assert "\x1b[" not in text, "ANSI colour codes in a redirected log:\n" + text[-2000:]
