"""The everyday ECS flow through stock boto3: clusters, task definitions, container instances,
tasks (with a simulated agent), tags, paginators, waiters and modeled exceptions."""

from __future__ import annotations

import re
import threading
import time

import pytest

ARN = "arn:aws:ecs:us-east-1:000000000000"
HEX32 = re.compile(r"^[0-9a-f]{32}$")

INSTANCE_CPU = 1024
INSTANCE_MEMORY = 2048
RESERVED_PORTS = ["22", "2375", "2376", "51678", "51679", "51680"]
TASK_CPU = 256
TASK_MEMORY = 512


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def total_resources(cpu: int = INSTANCE_CPU, memory: int = INSTANCE_MEMORY) -> list[dict]:
    """What the ECS agent sends as totalResources."""
    return [
        {"name": "CPU", "type": "INTEGER", "integerValue": cpu},
        {"name": "MEMORY", "type": "INTEGER", "integerValue": memory},
        {"name": "PORTS", "type": "STRINGSET", "stringSetValue": list(RESERVED_PORTS)},
        {"name": "PORTS_UDP", "type": "STRINGSET", "stringSetValue": []},
    ]


def resource(resources: list[dict], name: str):
    """The value of one resource in registeredResources/remainingResources."""
    (r,) = [r for r in resources if r["name"] == name]
    if r["type"] == "STRINGSET":
        return sorted(r.get("stringSetValue", []), key=int)
    return r["integerValue"]


def container_definitions(image: str = "nginx:1.27") -> list[dict]:
    return [
        {
            "name": "app",
            "image": image,
            "cpu": TASK_CPU,
            "memory": TASK_MEMORY,
            "essential": True,
            "command": ["sleep", "3600"],
        }
    ]


def register_web(ecs, image: str = "nginx:1.27") -> dict:
    return ecs.register_task_definition(
        family="web", containerDefinitions=container_definitions(image)
    )["taskDefinition"]


def register_instance(ecs, cluster: str, attributes=None, **kwargs) -> dict:
    return ecs.register_container_instance(
        cluster=cluster,
        totalResources=total_resources(),
        attributes=attributes or [],
        versionInfo={"agentVersion": "1.87.0", "agentHash": "e2e", "dockerVersion": "25.0.0"},
        **kwargs,
    )["containerInstance"]


def setup_cluster(ecs, name: str = "e2e", instances: int = 2) -> dict:
    """A cluster with the `web` family at revisions 1 and 2 and `instances` registered hosts."""
    cluster = ecs.create_cluster(clusterName=name)["cluster"]
    register_web(ecs, "nginx:1.26")
    register_web(ecs, "nginx:1.27")
    arns = [
        register_instance(ecs, name, [{"name": "stack", "value": "prod"}])["containerInstanceArn"]
        for _ in range(instances)
    ]
    return {"name": name, "arn": cluster["clusterArn"], "instances": arns}


def report(ecs, cluster: str, task_arn: str, status: str, exit_code: int | None = None, **kw):
    """What the ECS agent sends when a task changes state."""
    container = {"containerName": "app", "status": status}
    if exit_code is not None:
        container["exitCode"] = exit_code
    r = ecs.submit_task_state_change(
        cluster=cluster, task=task_arn, status=status, containers=[container], **kw
    )
    assert r["acknowledgment"] == "ACK"


def describe_task(ecs, cluster: str, task_arn: str) -> dict:
    r = ecs.describe_tasks(cluster=cluster, tasks=[task_arn])
    assert r["failures"] == []
    (task,) = r["tasks"]
    return task


def instances_by_arn(ecs, cluster: str, arns: list[str]) -> dict[str, dict]:
    r = ecs.describe_container_instances(cluster=cluster, containerInstances=arns)
    assert r["failures"] == []
    return {i["containerInstanceArn"]: i for i in r["containerInstances"]}


def expect_error(ecs, code: str, call, **kwargs):
    """Calls `call(**kwargs)`; it must raise botocore's modeled exception class for `code`."""
    cls = getattr(ecs.exceptions, code)
    with pytest.raises(cls) as info:
        call(**kwargs)
    e = info.value
    assert type(e) is cls, f"expected {code}, botocore raised {type(e).__name__}: {e}"
    assert e.response["Error"]["Code"] == code
    assert e.response["Error"]["Message"], "the error must say what went wrong"
    assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    return e


# --------------------------------------------------------------------------------------------
# Clusters and task definitions
# --------------------------------------------------------------------------------------------


def test_create_describe_list_clusters(ecs):
    created = ecs.create_cluster(clusterName="e2e")["cluster"]
    assert created["clusterArn"] == f"{ARN}:cluster/e2e"
    assert created["clusterName"] == "e2e"
    assert created["status"] == "ACTIVE"
    assert created["registeredContainerInstancesCount"] == 0
    assert created["runningTasksCount"] == 0
    assert created["pendingTasksCount"] == 0

    # Creating an existing cluster answers with that cluster.
    again = ecs.create_cluster(clusterName="e2e")["cluster"]
    assert again["clusterArn"] == created["clusterArn"]

    arns = ecs.list_clusters()["clusterArns"]
    assert f"{ARN}:cluster/e2e" in arns

    # By name, by ARN, and a missing one reported in failures (not raised).
    r = ecs.describe_clusters(clusters=["e2e", f"{ARN}:cluster/e2e", "nope"])
    assert [c["clusterArn"] for c in r["clusters"]] == [f"{ARN}:cluster/e2e"] * 2
    assert r["failures"] == [{"arn": f"{ARN}:cluster/nope", "reason": "MISSING"}]


def test_task_definition_family_with_two_revisions(ecs):
    first = register_web(ecs, "nginx:1.26")
    second = register_web(ecs, "nginx:1.27")
    assert first["taskDefinitionArn"] == f"{ARN}:task-definition/web:1"
    assert second["taskDefinitionArn"] == f"{ARN}:task-definition/web:2"
    assert (first["revision"], second["revision"]) == (1, 2)
    assert first["status"] == second["status"] == "ACTIVE"
    (c,) = second["containerDefinitions"]
    assert (c["name"], c["image"], c["cpu"], c["memory"], c["essential"]) == (
        "app",
        "nginx:1.27",
        TASK_CPU,
        TASK_MEMORY,
        True,
    )

    # A bare family means its newest ACTIVE revision.
    latest = ecs.describe_task_definition(taskDefinition="web")["taskDefinition"]
    assert latest["revision"] == 2
    assert latest["containerDefinitions"][0]["image"] == "nginx:1.27"
    old = ecs.describe_task_definition(taskDefinition="web:1")["taskDefinition"]
    assert old["containerDefinitions"][0]["image"] == "nginx:1.26"
    by_arn = ecs.describe_task_definition(taskDefinition=f"{ARN}:task-definition/web:1")
    assert by_arn["taskDefinition"]["revision"] == 1

    assert ecs.list_task_definitions(familyPrefix="web")["taskDefinitionArns"] == [
        f"{ARN}:task-definition/web:1",
        f"{ARN}:task-definition/web:2",
    ]
    assert ecs.list_task_definition_families()["families"] == ["web"]

    # Deregistering revision 1 leaves revision 2 listed as ACTIVE.
    gone = ecs.deregister_task_definition(taskDefinition="web:1")["taskDefinition"]
    assert gone["status"] == "INACTIVE"
    assert ecs.list_task_definitions(familyPrefix="web")["taskDefinitionArns"] == [
        f"{ARN}:task-definition/web:2"
    ]
    assert ecs.list_task_definitions(familyPrefix="web", status="INACTIVE")[
        "taskDefinitionArns"
    ] == [f"{ARN}:task-definition/web:1"]


# --------------------------------------------------------------------------------------------
# Container instances and attributes
# --------------------------------------------------------------------------------------------


def test_register_container_instances_with_resources_and_attributes(ecs):
    ecs.create_cluster(clusterName="e2e")
    one = register_instance(ecs, "e2e", [{"name": "stack", "value": "prod"}])
    two = register_instance(ecs, "e2e", [{"name": "stack", "value": "staging"}])
    for i in (one, two):
        arn = i["containerInstanceArn"]
        assert arn.startswith(f"{ARN}:container-instance/e2e/")
        assert HEX32.match(arn.rsplit("/", 1)[1]), arn
        assert i["status"] == "ACTIVE"
        assert i["agentConnected"] is True
        assert i["runningTasksCount"] == 0 and i["pendingTasksCount"] == 0
        for kind in ("registeredResources", "remainingResources"):
            assert resource(i[kind], "CPU") == INSTANCE_CPU
            assert resource(i[kind], "MEMORY") == INSTANCE_MEMORY
            assert resource(i[kind], "PORTS") == RESERVED_PORTS
    assert one["containerInstanceArn"] != two["containerInstanceArn"]
    attrs = {a["name"]: a.get("value") for a in one["attributes"]}
    assert attrs["stack"] == "prod"

    listed = ecs.list_container_instances(cluster="e2e")["containerInstanceArns"]
    assert sorted(listed) == sorted([one["containerInstanceArn"], two["containerInstanceArn"]])
    cluster = ecs.describe_clusters(clusters=["e2e"])["clusters"][0]
    assert cluster["registeredContainerInstancesCount"] == 2

    # Describe by short id as well as by ARN; an unknown id is a MISSING failure.
    short = one["containerInstanceArn"].rsplit("/", 1)[1]
    missing = "0" * 32
    r = ecs.describe_container_instances(
        cluster="e2e", containerInstances=[short, two["containerInstanceArn"], missing]
    )
    assert [i["containerInstanceArn"] for i in r["containerInstances"]] == [
        one["containerInstanceArn"],
        two["containerInstanceArn"],
    ]
    assert r["failures"] == [
        {"arn": f"{ARN}:container-instance/e2e/{missing}", "reason": "MISSING"}
    ]

    # PutAttributes / ListAttributes.
    put = ecs.put_attributes(
        cluster="e2e",
        attributes=[
            {"name": "zone", "value": "rack-1", "targetId": one["containerInstanceArn"]},
            {"name": "gpu", "targetId": two["containerInstanceArn"]},
        ],
    )["attributes"]
    assert {(a["name"], a.get("value"), a["targetId"]) for a in put} == {
        ("zone", "rack-1", one["containerInstanceArn"]),
        ("gpu", None, two["containerInstanceArn"]),
    }
    zone = ecs.list_attributes(
        cluster="e2e", targetType="container-instance", attributeName="zone"
    )["attributes"]
    assert [(a["name"], a["value"], a["targetId"], a["targetType"]) for a in zone] == [
        ("zone", "rack-1", one["containerInstanceArn"], "container-instance")
    ]
    prod = ecs.list_attributes(
        cluster="e2e", targetType="container-instance", attributeName="stack", attributeValue="prod"
    )["attributes"]
    assert [a["targetId"] for a in prod] == [one["containerInstanceArn"]]
    everything = ecs.list_attributes(cluster="e2e", targetType="container-instance")["attributes"]
    names = {(a["targetId"], a["name"]) for a in everything}
    assert (one["containerInstanceArn"], "zone") in names
    assert (two["containerInstanceArn"], "gpu") in names
    assert (two["containerInstanceArn"], "stack") in names

    described = instances_by_arn(ecs, "e2e", [one["containerInstanceArn"]])
    attrs = {
        a["name"]: a.get("value") for a in described[one["containerInstanceArn"]]["attributes"]
    }
    assert attrs["zone"] == "rack-1" and attrs["stack"] == "prod"


# --------------------------------------------------------------------------------------------
# Tasks
# --------------------------------------------------------------------------------------------


def test_run_tasks_reserves_resources_and_lists_them(ecs):
    c = setup_cluster(ecs)
    r = ecs.run_task(
        cluster="e2e", taskDefinition="web", count=3, group="batch", startedBy="e2e-runner"
    )
    assert r["failures"] == []
    tasks = r["tasks"]
    assert len(tasks) == 3
    for t in tasks:
        assert t["taskArn"].startswith(f"{ARN}:task/e2e/")
        assert HEX32.match(t["taskArn"].rsplit("/", 1)[1]), t["taskArn"]
        assert t["clusterArn"] == c["arn"]
        assert t["taskDefinitionArn"] == f"{ARN}:task-definition/web:2"
        assert t["containerInstanceArn"] in c["instances"]
        assert t["lastStatus"] == "PENDING"
        assert t["desiredStatus"] == "RUNNING"
        assert t["group"] == "batch"
        assert t["startedBy"] == "e2e-runner"
        assert t["launchType"] == "EC2"
        (container,) = t["containers"]
        assert container["name"] == "app" and container["image"] == "nginx:1.27"
        assert container["taskArn"] == t["taskArn"]
    task_arns = [t["taskArn"] for t in tasks]
    assert len(set(task_arns)) == 3

    # Remaining resources drop by exactly what the tasks on each instance reserve.
    per_instance = {arn: 0 for arn in c["instances"]}
    for t in tasks:
        per_instance[t["containerInstanceArn"]] += 1
    described = instances_by_arn(ecs, "e2e", c["instances"])
    for arn, n in per_instance.items():
        i = described[arn]
        assert resource(i["registeredResources"], "CPU") == INSTANCE_CPU
        assert resource(i["remainingResources"], "CPU") == INSTANCE_CPU - n * TASK_CPU
        assert resource(i["remainingResources"], "MEMORY") == INSTANCE_MEMORY - n * TASK_MEMORY
        assert i["pendingTasksCount"] == n
        assert i["runningTasksCount"] == 0
    total_cpu = sum(resource(i["remainingResources"], "CPU") for i in described.values())
    assert total_cpu == 2 * INSTANCE_CPU - 3 * TASK_CPU

    cluster = ecs.describe_clusters(clusters=["e2e"])["clusters"][0]
    assert cluster["pendingTasksCount"] == 3
    assert cluster["runningTasksCount"] == 0

    # A task without a group gets `family:<family>`; an explicit revision is honoured.
    (single,) = ecs.run_task(cluster="e2e", taskDefinition="web:1")["tasks"]
    assert single["group"] == "family:web"
    assert single["taskDefinitionArn"] == f"{ARN}:task-definition/web:1"
    assert "startedBy" not in single

    # ListTasks and its filters.
    everything = ecs.list_tasks(cluster="e2e")["taskArns"]
    assert sorted(everything) == sorted(task_arns + [single["taskArn"]])
    assert sorted(ecs.list_tasks(cluster="e2e", startedBy="e2e-runner")["taskArns"]) == sorted(
        task_arns
    )
    assert len(ecs.list_tasks(cluster="e2e", family="web")["taskArns"]) == 4
    assert ecs.list_tasks(cluster="e2e", family="other")["taskArns"] == []
    for arn in per_instance:
        on_it = ecs.list_tasks(cluster="e2e", containerInstance=arn)["taskArns"]
        expected = {t["taskArn"] for t in tasks if t["containerInstanceArn"] == arn}
        if single["containerInstanceArn"] == arn:
            expected.add(single["taskArn"])
        assert set(on_it) == expected

    # DescribeTasks by ARN and by id; unknown ids are MISSING failures.
    ids = [a.rsplit("/", 1)[1] for a in task_arns]
    missing = "f" * 32
    d = ecs.describe_tasks(cluster="e2e", tasks=[task_arns[0], ids[1], missing])
    assert [t["taskArn"] for t in d["tasks"]] == task_arns[:2]
    assert d["failures"] == [{"arn": f"{ARN}:task/e2e/{missing}", "reason": "MISSING"}]
    assert d["tasks"][0]["group"] == "batch"


def test_agent_reports_running_then_stopped(ecs):
    c = setup_cluster(ecs, instances=1)
    (instance,) = c["instances"]
    (task,) = ecs.run_task(cluster="e2e", taskDefinition="web")["tasks"]
    arn = task["taskArn"]

    report(ecs, "e2e", arn, "RUNNING", pullStartedAt=time.time() - 2, pullStoppedAt=time.time() - 1)
    t = describe_task(ecs, "e2e", arn)
    assert t["lastStatus"] == "RUNNING"
    assert t["desiredStatus"] == "RUNNING"
    assert t["containers"][0]["lastStatus"] == "RUNNING"
    assert "startedAt" in t and "pullStartedAt" in t and "pullStoppedAt" in t
    assert "stoppedAt" not in t
    i = instances_by_arn(ecs, "e2e", [instance])[instance]
    assert (i["runningTasksCount"], i["pendingTasksCount"]) == (1, 0)
    cluster = ecs.describe_clusters(clusters=["e2e"])["clusters"][0]
    assert (cluster["runningTasksCount"], cluster["pendingTasksCount"]) == (1, 0)

    # The essential container exits on its own: ECS says why.
    report(ecs, "e2e", arn, "STOPPED", exit_code=1)
    t = describe_task(ecs, "e2e", arn)
    assert t["lastStatus"] == "STOPPED"
    assert t["desiredStatus"] == "STOPPED"
    assert t["stopCode"] == "EssentialContainerExited"
    assert t["stoppedReason"] == "Essential container in task exited"
    assert t["containers"][0]["lastStatus"] == "STOPPED"
    assert t["containers"][0]["exitCode"] == 1
    assert t["stoppedAt"] >= t["startedAt"]

    # Its reservation is released.
    i = instances_by_arn(ecs, "e2e", [instance])[instance]
    assert resource(i["remainingResources"], "CPU") == INSTANCE_CPU
    assert resource(i["remainingResources"], "MEMORY") == INSTANCE_MEMORY
    assert (i["runningTasksCount"], i["pendingTasksCount"]) == (0, 0)
    assert ecs.list_tasks(cluster="e2e")["taskArns"] == []
    assert ecs.list_tasks(cluster="e2e", desiredStatus="STOPPED")["taskArns"] == [arn]


def test_stop_task_then_agent_confirms(ecs):
    c = setup_cluster(ecs, instances=1)
    (instance,) = c["instances"]
    tasks = ecs.run_task(cluster="e2e", taskDefinition="web", count=2)["tasks"]
    victim, survivor = (t["taskArn"] for t in tasks)
    for arn in (victim, survivor):
        report(ecs, "e2e", arn, "RUNNING")

    stopped = ecs.stop_task(cluster="e2e", task=victim, reason="rolling back release 42")["task"]
    assert stopped["taskArn"] == victim
    assert stopped["desiredStatus"] == "STOPPED"
    assert stopped["lastStatus"] == "RUNNING"  # until the agent has stopped it
    assert stopped["stoppedReason"] == "rolling back release 42"
    assert stopped["stopCode"] == "UserInitiated"

    # ListTasks defaults to desiredStatus RUNNING.
    assert ecs.list_tasks(cluster="e2e")["taskArns"] == [survivor]
    assert ecs.list_tasks(cluster="e2e", desiredStatus="STOPPED")["taskArns"] == [victim]
    assert ecs.list_tasks(cluster="e2e", desiredStatus="RUNNING")["taskArns"] == [survivor]
    # PENDING is a valid filter that ECS documents as never matching.
    assert ecs.list_tasks(cluster="e2e", desiredStatus="PENDING")["taskArns"] == []

    # Stopping again (cluster by ARN, task by id) is harmless and keeps the first reason.
    again = ecs.stop_task(cluster=c["arn"], task=victim.rsplit("/", 1)[1], reason="second reason")[
        "task"
    ]
    assert again["taskArn"] == victim
    assert again["stoppedReason"] == "rolling back release 42"
    assert ecs.list_tasks(cluster=c["arn"], desiredStatus="STOPPED")["taskArns"] == [victim]

    # Still reserved until the agent reports STOPPED.
    i = instances_by_arn(ecs, "e2e", [instance])[instance]
    assert resource(i["remainingResources"], "CPU") == INSTANCE_CPU - 2 * TASK_CPU

    report(ecs, "e2e", victim, "STOPPED", exit_code=143)
    t = describe_task(ecs, "e2e", victim)
    assert t["lastStatus"] == "STOPPED"
    assert t["stopCode"] == "UserInitiated"
    assert t["stoppedReason"] == "rolling back release 42"
    assert t["containers"][0]["exitCode"] == 143
    i = instances_by_arn(ecs, "e2e", [instance])[instance]
    assert resource(i["remainingResources"], "CPU") == INSTANCE_CPU - TASK_CPU
    assert resource(i["remainingResources"], "MEMORY") == INSTANCE_MEMORY - TASK_MEMORY
    assert i["runningTasksCount"] == 1
    assert describe_task(ecs, "e2e", survivor)["lastStatus"] == "RUNNING"


def test_tags_on_cluster_and_task(ecs):
    ecs.create_cluster(clusterName="e2e", tags=[{"key": "team", "value": "platform"}])
    cluster_arn = f"{ARN}:cluster/e2e"
    assert ecs.list_tags_for_resource(resourceArn=cluster_arn)["tags"] == [
        {"key": "team", "value": "platform"}
    ]
    ecs.tag_resource(
        resourceArn=cluster_arn,
        tags=[{"key": "env", "value": "test"}, {"key": "team", "value": "infra"}],
    )
    tags = ecs.list_tags_for_resource(resourceArn=cluster_arn)["tags"]
    assert sorted((t["key"], t["value"]) for t in tags) == [("env", "test"), ("team", "infra")]
    ecs.untag_resource(resourceArn=cluster_arn, tagKeys=["team"])
    assert ecs.list_tags_for_resource(resourceArn=cluster_arn)["tags"] == [
        {"key": "env", "value": "test"}
    ]
    described = ecs.describe_clusters(clusters=["e2e"], include=["TAGS"])["clusters"][0]
    assert described["tags"] == [{"key": "env", "value": "test"}]

    register_web(ecs)
    register_instance(ecs, "e2e")
    (task,) = ecs.run_task(
        cluster="e2e", taskDefinition="web", tags=[{"key": "job", "value": "nightly"}]
    )["tasks"]
    arn = task["taskArn"]
    assert ecs.list_tags_for_resource(resourceArn=arn)["tags"] == [
        {"key": "job", "value": "nightly"}
    ]
    ecs.tag_resource(resourceArn=arn, tags=[{"key": "owner", "value": "alice"}])
    tags = ecs.list_tags_for_resource(resourceArn=arn)["tags"]
    assert sorted((t["key"], t["value"]) for t in tags) == [("job", "nightly"), ("owner", "alice")]
    ecs.untag_resource(resourceArn=arn, tagKeys=["job", "not-there"])
    assert ecs.list_tags_for_resource(resourceArn=arn)["tags"] == [
        {"key": "owner", "value": "alice"}
    ]
    with_tags = ecs.describe_tasks(cluster="e2e", tasks=[arn], include=["TAGS"])["tasks"][0]
    assert with_tags["tags"] == [{"key": "owner", "value": "alice"}]


# --------------------------------------------------------------------------------------------
# Paginators and waiters
# --------------------------------------------------------------------------------------------


def walk(ecs, operation: str, result_key: str, page_size: int, **params) -> list[list[str]]:
    """Every page of a boto3 paginator, checking the token chain as it goes."""
    pages = list(
        ecs.get_paginator(operation).paginate(**params, PaginationConfig={"PageSize": page_size})
    )
    for p in pages[:-1]:
        assert len(p[result_key]) == page_size
        assert p.get("nextToken"), "every page but the last must carry a nextToken"
    assert "nextToken" not in pages[-1]
    return [p[result_key] for p in pages]


def test_paginators_walk_several_pages(ecs):
    c = setup_cluster(ecs, instances=5)
    for family, revisions in (("api", 3), ("db", 2)):
        for _ in range(revisions):
            ecs.register_task_definition(
                family=family, containerDefinitions=container_definitions()
            )
    # 7 task definitions in pages of 2: 2 + 2 + 2 + 1.
    pages = walk(ecs, "list_task_definitions", "taskDefinitionArns", 2)
    assert [len(p) for p in pages] == [2, 2, 2, 1]
    flat = [a for p in pages for a in p]
    assert flat == ecs.list_task_definitions()["taskDefinitionArns"]
    assert flat == [
        f"{ARN}:task-definition/{f}:{r}"
        for f, r in [
            ("api", 1),
            ("api", 2),
            ("api", 3),
            ("db", 1),
            ("db", 2),
            ("web", 1),
            ("web", 2),
        ]
    ]

    # 5 container instances in pages of 2.
    pages = walk(ecs, "list_container_instances", "containerInstanceArns", 2, cluster="e2e")
    assert [len(p) for p in pages] == [2, 2, 1]
    assert sorted(a for p in pages for a in p) == sorted(c["instances"])

    # 7 tasks in pages of 3.
    tasks = ecs.run_task(cluster="e2e", taskDefinition="web", count=7)["tasks"]
    assert len(tasks) == 7
    pages = walk(ecs, "list_tasks", "taskArns", 3, cluster="e2e")
    assert [len(p) for p in pages] == [3, 3, 1]
    assert sorted(a for p in pages for a in p) == sorted(t["taskArn"] for t in tasks)

    # MaxItems stops early and hands back a token that resumes where it stopped.
    paginator = ecs.get_paginator("list_tasks")
    first = paginator.paginate(
        cluster="e2e", PaginationConfig={"PageSize": 2, "MaxItems": 3}
    ).build_full_result()
    assert len(first["taskArns"]) == 3 and first["NextToken"]
    rest = paginator.paginate(
        cluster="e2e", PaginationConfig={"PageSize": 2, "StartingToken": first["NextToken"]}
    ).build_full_result()
    assert len(rest["taskArns"]) == 4
    assert sorted(first["taskArns"] + rest["taskArns"]) == sorted(t["taskArn"] for t in tasks)

    # A token from another operation is refused, not misread.
    token = ecs.list_tasks(cluster="e2e", maxResults=1)["nextToken"]
    expect_error(
        ecs,
        "InvalidParameterException",
        ecs.list_container_instances,
        cluster="e2e",
        nextToken=token,
    )


def test_tasks_stopped_waiter(ecs):
    setup_cluster(ecs)
    tasks = ecs.run_task(cluster="e2e", taskDefinition="web", count=2)["tasks"]
    arns = [t["taskArn"] for t in tasks]
    for arn in arns:
        report(ecs, "e2e", arn, "RUNNING")

    waiter = ecs.get_waiter("tasks_stopped")
    outcome: dict = {}

    def wait():
        try:
            waiter.wait(cluster="e2e", tasks=arns, WaiterConfig={"Delay": 1, "MaxAttempts": 20})
            outcome["ok"] = time.monotonic()
        except Exception as e:  # reported below
            outcome["error"] = e

    t = threading.Thread(target=wait, daemon=True)
    t.start()
    t.join(timeout=1.5)
    assert t.is_alive(), f"the waiter must keep polling while tasks run: {outcome}"

    ecs.stop_task(cluster="e2e", task=arns[0], reason="waiter test")
    report(ecs, "e2e", arns[0], "STOPPED", exit_code=0)
    t.join(timeout=1.5)
    assert t.is_alive(), f"one task is still RUNNING, the waiter must not pass yet: {outcome}"

    reported = time.monotonic()
    report(ecs, "e2e", arns[1], "STOPPED", exit_code=0)
    t.join(timeout=10)
    assert not t.is_alive(), "the waiter did not pass after every task was STOPPED"
    assert "error" not in outcome, outcome.get("error")
    assert outcome["ok"] >= reported

    statuses = [x["lastStatus"] for x in ecs.describe_tasks(cluster="e2e", tasks=arns)["tasks"]]
    assert statuses == ["STOPPED", "STOPPED"]
    # Already stopped: passes on the first poll.
    started = time.monotonic()
    waiter.wait(cluster="e2e", tasks=arns, WaiterConfig={"Delay": 5, "MaxAttempts": 2})
    assert time.monotonic() - started < 2


def test_tasks_running_waiter(ecs):
    from botocore.exceptions import WaiterError

    setup_cluster(ecs, instances=1)
    ok, doomed = (
        t["taskArn"] for t in ecs.run_task(cluster="e2e", taskDefinition="web", count=2)["tasks"]
    )
    report(ecs, "e2e", ok, "RUNNING")
    ecs.get_waiter("tasks_running").wait(
        cluster="e2e", tasks=[ok], WaiterConfig={"Delay": 1, "MaxAttempts": 3}
    )
    # A task that stopped can never reach RUNNING: the waiter fails at once, it does not time out.
    report(ecs, "e2e", doomed, "STOPPED", exit_code=1)
    started = time.monotonic()
    with pytest.raises(WaiterError) as info:
        ecs.get_waiter("tasks_running").wait(
            cluster="e2e", tasks=[ok, doomed], WaiterConfig={"Delay": 1, "MaxAttempts": 5}
        )
    assert "failure" in str(info.value)
    assert time.monotonic() - started < 2


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


def test_errors_are_modeled_exceptions(ecs):
    # The plain `except client.exceptions.X` idiom works.
    try:
        ecs.list_tasks(cluster="nope")
        pytest.fail("ListTasks on a missing cluster must raise")
    except ecs.exceptions.ClusterNotFoundException as e:
        assert e.response["Error"]["Code"] == "ClusterNotFoundException"

    expect_error(
        ecs, "ClusterNotFoundException", ecs.run_task, cluster="nope", taskDefinition="web"
    )
    expect_error(
        ecs, "ClusterNotFoundException", ecs.describe_tasks, cluster="nope", tasks=["a" * 32]
    )
    expect_error(
        ecs,
        "ClusterNotFoundException",
        ecs.register_container_instance,
        cluster="nope",
        totalResources=total_resources(),
    )

    c = setup_cluster(ecs, instances=1)
    # A cluster without container instances cannot run anything.
    ecs.create_cluster(clusterName="empty")
    e = expect_error(
        ecs, "InvalidParameterException", ecs.run_task, cluster="empty", taskDefinition="web"
    )
    assert "No Container Instances" in e.response["Error"]["Message"]
    # Unknown task definition.
    expect_error(ecs, "ClientException", ecs.run_task, cluster="e2e", taskDefinition="nope")
    expect_error(ecs, "ClientException", ecs.describe_task_definition, taskDefinition="nope:1")
    # Invalid container definition: neither memory nor memoryReservation.
    expect_error(
        ecs,
        "ClientException",
        ecs.register_task_definition,
        family="bad",
        containerDefinitions=[{"name": "x", "image": "busybox"}],
    )
    # Out-of-range parameters.
    expect_error(
        ecs,
        "InvalidParameterException",
        ecs.run_task,
        cluster="e2e",
        taskDefinition="web",
        count=11,
    )
    expect_error(
        ecs, "InvalidParameterException", ecs.list_tasks, cluster="e2e", desiredStatus="DONE"
    )
    expect_error(ecs, "InvalidParameterException", ecs.stop_task, cluster="e2e", task="0" * 32)
    expect_error(
        ecs, "InvalidParameterException", ecs.list_tasks, cluster="e2e", nextToken="not-a-token"
    )
    # A cluster with registered instances cannot be deleted.
    expect_error(
        ecs, "ClusterContainsContainerInstancesException", ecs.delete_cluster, cluster="e2e"
    )
    assert ecs.describe_clusters(clusters=["e2e"])["clusters"][0]["status"] == "ACTIVE"
    assert ecs.list_container_instances(cluster="e2e")["containerInstanceArns"] == c["instances"]


def test_deregister_instances_and_delete_cluster(ecs):
    c = setup_cluster(ecs)
    tasks = ecs.run_task(cluster="e2e", taskDefinition="web", count=2)["tasks"]
    for t in tasks:
        report(ecs, "e2e", t["taskArn"], "RUNNING")
        ecs.stop_task(cluster="e2e", task=t["taskArn"])
        report(ecs, "e2e", t["taskArn"], "STOPPED", exit_code=0)

    for arn in c["instances"]:
        out = ecs.deregister_container_instance(cluster="e2e", containerInstance=arn)
        assert out["containerInstance"]["containerInstanceArn"] == arn
        assert out["containerInstance"]["status"] == "INACTIVE"
    # ListContainerInstances leaves INACTIVE instances out; DescribeContainerInstances shows them.
    assert ecs.list_container_instances(cluster="e2e")["containerInstanceArns"] == []
    described = instances_by_arn(ecs, "e2e", c["instances"])
    assert {i["status"] for i in described.values()} == {"INACTIVE"}
    assert (
        ecs.describe_clusters(clusters=["e2e"])["clusters"][0]["registeredContainerInstancesCount"]
        == 0
    )

    deleted = ecs.delete_cluster(cluster="e2e")["cluster"]
    assert deleted["clusterArn"] == c["arn"]
    assert deleted["status"] == "INACTIVE"
    assert c["arn"] not in ecs.list_clusters()["clusterArns"]
    assert ecs.describe_clusters(clusters=["e2e"])["clusters"][0]["status"] == "INACTIVE"
    expect_error(ecs, "ClusterNotFoundException", ecs.list_tasks, cluster="e2e")
    expect_error(ecs, "ClusterNotFoundException", ecs.run_task, cluster="e2e", taskDefinition="web")


def test_arns_follow_the_callers_region(ecs_factory):
    eu = ecs_factory("eu-west-1")
    created = eu.create_cluster(clusterName="regional")["cluster"]
    assert created["clusterArn"] == "arn:aws:ecs:eu-west-1:000000000000:cluster/regional"
    td = eu.register_task_definition(family="web", containerDefinitions=container_definitions())
    assert td["taskDefinition"]["taskDefinitionArn"] == (
        "arn:aws:ecs:eu-west-1:000000000000:task-definition/web:1"
    )
