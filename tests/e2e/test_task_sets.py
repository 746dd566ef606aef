"""A blue/green switch by an external deployment controller, with stock `aws ecs` commands
only: an EXTERNAL service, a blue task set made PRIMARY, a green one created at 0 % and shifted
to 100 %, the primary swapped, blue scaled to 0 and deleted — on a real server with a hollow
agent, so the counts are real tasks reaching RUNNING."""

from __future__ import annotations

import json

from conftest import start_hollow_agent, wait_for

CLUSTER = "bg"
SERVICE = "web"


def definition(image: str) -> str:
    return json.dumps([{"name": "web", "image": image, "cpu": 64, "memory": 64}])


def test_blue_green_with_aws_ecs_commands(aws, aws_run, berth_server, start_berth):
    aws("ecs", "create-cluster", "--cluster-name", CLUSTER)
    start_hollow_agent(start_berth, berth_server, CLUSTER)
    blue_def, green_def = (
        aws("ecs", "register-task-definition", "--family", "web",
            "--container-definitions", definition(image))["taskDefinition"]["taskDefinitionArn"]
        for image in ("web:blue", "web:green")
    )
    service = aws(
        "ecs", "create-service", "--cluster", CLUSTER, "--service-name", SERVICE,
        "--desired-count", "3", "--deployment-controller", "type=EXTERNAL",
    )["service"]
    assert service["deploymentController"] == {"type": "EXTERNAL"}
    assert service["taskSets"] == []

    def task_set(*args: str) -> dict:
        return aws("ecs", *args, "--cluster", CLUSTER, "--service", SERVICE)["taskSet"]

    def described() -> dict[str, dict]:
        out = aws("ecs", "describe-task-sets", "--cluster", CLUSTER, "--service", SERVICE)
        return {t["id"]: t for t in out["taskSets"]}

    def steady(set_id: str, running: int) -> bool:
        t = described().get(set_id)
        return bool(t) and t["runningCount"] == running \
            and t["computedDesiredCount"] == running and t["stabilityStatus"] == "STEADY_STATE"

    blue = task_set("create-task-set", "--task-definition", blue_def, "--external-id", "blue",
                    "--scale", "value=100,unit=PERCENT")
    assert blue["status"] == "ACTIVE" and blue["externalId"] == "blue"
    task_set("update-service-primary-task-set", "--primary-task-set", blue["id"])
    wait_for("blue runs 3 tasks", lambda: steady(blue["id"], 3))

    green = task_set("create-task-set", "--task-definition", green_def,
                     "--scale", "value=0,unit=PERCENT")
    wait_for("green is steady at 0", lambda: steady(green["id"], 0))
    shifted = task_set("update-task-set", "--task-set", green["taskSetArn"],
                       "--scale", "value=100,unit=PERCENT")
    assert shifted["computedDesiredCount"] == 3
    wait_for("green runs 3 tasks", lambda: steady(green["id"], 3))
    assert described()[blue["id"]]["runningCount"] == 3, "blue keeps running until told"

    swapped = task_set("update-service-primary-task-set", "--primary-task-set", green["id"])
    assert swapped["status"] == "PRIMARY"
    assert described()[blue["id"]]["status"] == "ACTIVE"

    # Blue still has tasks: deleting it without force is refused, with ECS's exception.
    refused = aws_run("ecs", "delete-task-set", "--cluster", CLUSTER, "--service", SERVICE,
                      "--task-set", blue["id"])
    assert refused.returncode != 0
    assert "InvalidParameterException" in refused.stderr
    task_set("update-task-set", "--task-set", blue["id"], "--scale", "value=0,unit=PERCENT")
    deleted = task_set("delete-task-set", "--task-set", blue["id"])
    assert deleted["status"] == "DRAINING"
    wait_for("blue is gone", lambda: list(described()) == [green["id"]])

    svc = aws("ecs", "describe-services", "--cluster", CLUSTER, "--services", SERVICE)
    (svc,) = svc["services"]
    assert svc["taskDefinition"] == green_def
    assert [t["status"] for t in svc["taskSets"]] == ["PRIMARY"]
    tasks = aws("ecs", "list-tasks", "--cluster", CLUSTER, "--service-name", SERVICE)
    described_tasks = aws("ecs", "describe-tasks", "--cluster", CLUSTER,
                          "--tasks", *tasks["taskArns"])["tasks"]
    live = [t for t in described_tasks if t["desiredStatus"] == "RUNNING"]
    assert sorted(t["containers"][0]["image"] for t in live) == ["web:green"] * 3
    assert {t["startedBy"] for t in live} == {green["id"]}
