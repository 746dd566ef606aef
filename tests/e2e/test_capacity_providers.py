"""Capacity providers with stock aws-cli: providers created, described with their tags and
attached to a cluster; instances join a provider by the ecs.capacity-provider attribute; a
RunTask strategy (A base 2 weight 1, B weight 3) splits ten tasks 4 + 6; ECS's answers to
deleting a provider in use or one that does not exist."""

from __future__ import annotations

import json
from collections import Counter

TOTAL_RESOURCES = json.dumps(
    [
        {"name": "CPU", "type": "INTEGER", "integerValue": 4096},
        {"name": "MEMORY", "type": "INTEGER", "integerValue": 8192},
    ]
)


def test_capacity_providers_with_aws_cli(aws, aws_run):
    for name in ("pool-a", "pool-b"):
        created = aws(
            "ecs",
            "create-capacity-provider",
            "--name",
            name,
            "--auto-scaling-group-provider",
            f"autoScalingGroupArn=asg-{name},managedScaling={{status=ENABLED,targetCapacity=90}}",
            "--tags",
            "key=team,value=web",
        )["capacityProvider"]
        assert created["status"] == "ACTIVE"
        assert created["autoScalingGroupProvider"]["managedScaling"]["targetCapacity"] == 90

    described = aws(
        "ecs", "describe-capacity-providers", "--capacity-providers", "pool-a", "nope",
        "--include", "TAGS",
    )
    assert [p["name"] for p in described["capacityProviders"]] == ["pool-a"]
    assert described["capacityProviders"][0]["tags"] == [{"key": "team", "value": "web"}]
    assert described["failures"][0]["reason"] == "MISSING"
    assert described["failures"][0]["arn"].endswith(":capacity-provider/nope")

    cluster = aws(
        "ecs", "create-cluster", "--cluster-name", "cap",
        "--capacity-providers", "pool-a", "pool-b",
        "--default-capacity-provider-strategy", "capacityProvider=pool-b,weight=1",
    )["cluster"]
    assert cluster["capacityProviders"] == ["pool-a", "pool-b"]

    instances = {}
    for name in ("pool-a", "pool-b"):
        out = aws(
            "ecs", "register-container-instance", "--cluster", "cap",
            "--total-resources", TOTAL_RESOURCES,
            "--attributes", f"name=ecs.capacity-provider,value={name}",
        )["containerInstance"]
        assert out["capacityProviderName"] == name
        instances[out["containerInstanceArn"]] = name

    aws(
        "ecs", "register-task-definition", "--family", "app",
        "--container-definitions", json.dumps([{"name": "app", "image": "app:1", "cpu": 10,
                                                "memory": 32}]),
    )
    run = aws(
        "ecs", "run-task", "--cluster", "cap", "--task-definition", "app", "--count", "10",
        "--capacity-provider-strategy",
        "capacityProvider=pool-a,base=2,weight=1", "capacityProvider=pool-b,weight=3",
    )
    assert run["failures"] == []
    split = Counter(t["capacityProviderName"] for t in run["tasks"])
    assert split == {"pool-a": 4, "pool-b": 6}
    assert all(instances[t["containerInstanceArn"]] == t["capacityProviderName"]
               for t in run["tasks"])

    # As ECS answers it: the provider a cluster has stays ACTIVE, its deletion DELETE_FAILED.
    attached = aws("ecs", "delete-capacity-provider", "--capacity-provider", "pool-a")
    assert attached["capacityProvider"]["status"] == "ACTIVE"
    assert attached["capacityProvider"]["updateStatus"] == "DELETE_FAILED"
    assert "associated with cluster: cap" in attached["capacityProvider"]["updateStatusReason"]
    missing = aws_run("ecs", "delete-capacity-provider", "--capacity-provider", "never")
    assert missing.returncode != 0
    assert "ClientException" in missing.stderr
    assert "The specified capacity provider does not exist" in missing.stderr
    in_use = aws_run(
        "ecs", "put-cluster-capacity-providers", "--cluster", "cap",
        "--capacity-providers", "pool-b", "--default-capacity-provider-strategy", "[]",
    )
    assert in_use.returncode != 0
    assert "ResourceInUseException" in in_use.stderr
