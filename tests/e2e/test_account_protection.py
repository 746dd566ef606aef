"""Account settings and task scale-in protection through stock boto3 and aws-cli, and the
answer to an operation berth refuses (its reason, in ECS's error shape)."""

from __future__ import annotations

import pytest

ROOT = "arn:aws:iam::000000000000:root"


def test_account_settings_with_boto3(ecs):
    own = ecs.put_account_setting(name="containerInsights", value="enhanced")["setting"]
    assert own["value"] == "enhanced"
    assert own["type"] == "user"
    assert own["principalArn"].startswith("arn:aws:iam::000000000000:user/")

    default = ecs.put_account_setting_default(name="awsvpcTrunking", value="enabled")["setting"]
    assert default["principalArn"] == ROOT

    # boto3's paginator walks every page of the effective settings.
    pages = ecs.get_paginator("list_account_settings").paginate(
        effectiveSettings=True, PaginationConfig={"PageSize": 3}
    )
    settings = {s["name"]: s for page in pages for s in page["settings"]}
    assert len(settings) == 11
    assert settings["containerInsights"]["value"] == "enhanced"
    assert settings["awsvpcTrunking"]["principalArn"] == ROOT
    assert settings["serviceLongArnFormat"]["value"] == "enabled"

    assert ecs.list_account_settings()["settings"] == [own]
    removed = ecs.delete_account_setting(name="containerInsights")["setting"]
    assert removed == own
    assert ecs.list_account_settings()["settings"] == []

    with pytest.raises(ecs.exceptions.InvalidParameterException):
        ecs.put_account_setting(name="containerInsights", value="on")
    with pytest.raises(ecs.exceptions.InvalidParameterException):
        ecs.list_account_settings(value="enabled")


def test_task_protection_and_refusals_with_boto3(ecs):
    ecs.create_cluster(clusterName="guard")
    task = "0" * 31 + "1"
    r = ecs.update_task_protection(
        cluster="guard", tasks=[task], protectionEnabled=True, expiresInMinutes=30
    )
    assert r["protectedTasks"] == []
    assert r["failures"] == [
        {"arn": f"arn:aws:ecs:us-east-1:000000000000:task/guard/{task}", "reason": "MISSING"}
    ]
    with pytest.raises(ecs.exceptions.InvalidParameterException):
        ecs.update_task_protection(
            cluster="guard", tasks=[task], protectionEnabled=True, expiresInMinutes=2881
        )
    with pytest.raises(ecs.exceptions.ClusterNotFoundException):
        ecs.get_task_protection(cluster="nowhere", tasks=[task])

    with pytest.raises(ecs.exceptions.ClientError) as info:
        ecs.execute_command(
            cluster="guard", task=task, command="sh", interactive=True
        )
    error = info.value.response["Error"]
    assert error["Code"] == "UnsupportedFeatureException"
    assert "Systems Manager" in error["Message"]


def test_account_settings_with_the_aws_cli(aws, aws_run):
    out = aws("ecs", "put-account-setting", "--name", "containerInsights", "--value", "enabled")
    assert out["setting"]["value"] == "enabled"
    out = aws("ecs", "list-account-settings", "--effective-settings", "--name", "containerInsights")
    assert [s["value"] for s in out["settings"]] == ["enabled"]
    r = aws_run("ecs", "update-container-agent", "--cluster", "x", "--container-instance", "y")
    assert r.returncode == 255
    assert "(UnsupportedFeatureException)" in r.stderr
    assert "not supported by berth:" in r.stderr
