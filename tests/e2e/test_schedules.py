"""Schedules with stock `aws scheduler` commands and boto3's `scheduler` client on a real
server and a hollow agent: a one-time schedule's task starts at its due time (within the
stated tolerance), the schedule is read back, listed, updated and deleted, and bad input gets
the Scheduler's own exceptions."""

from __future__ import annotations

import datetime as dt
import json
import time

import boto3
import botocore.exceptions
import pytest

from conftest import REGION, start_hollow_agent, wait_for

CLUSTER = "scheduled"
ROLE = "arn:aws:iam::000000000000:role/scheduler"
# The runner looks at least every second; the rest is slack for a loaded machine.
TOLERANCE_S = 10.0


def target(count: int = 1) -> str:
    return json.dumps({
        "Arn": f"arn:aws:ecs:{REGION}:000000000000:cluster/{CLUSTER}",
        "RoleArn": ROLE,
        "EcsParameters": {"TaskDefinitionArn": "report", "TaskCount": count,
                          "Tags": [{"team": "data"}]},
        "Input": json.dumps({"containerOverrides": [
            {"name": "report", "environment": [{"name": "MODE", "value": "nightly"}]}]}),
    })


def test_aws_scheduler_runs_a_task_when_due(aws, aws_run, berth_server, start_berth):
    aws("ecs", "create-cluster", "--cluster-name", CLUSTER)
    start_hollow_agent(start_berth, berth_server, CLUSTER)
    aws("ecs", "register-task-definition", "--family", "report", "--container-definitions",
        json.dumps([{"name": "report", "image": "report:1", "memory": 64}]))

    due = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) + dt.timedelta(seconds=4)
    created = aws("scheduler", "create-schedule", "--name", "report-once",
                  "--schedule-expression", f"at({due.strftime('%Y-%m-%dT%H:%M:%S')})",
                  "--flexible-time-window", "Mode=OFF", "--target", target())
    assert created["ScheduleArn"].endswith(":schedule/default/report-once")

    got = aws("scheduler", "get-schedule", "--name", "report-once")
    assert got["State"] == "ENABLED"
    assert got["Target"]["EcsParameters"]["TaskDefinitionArn"] == "report"
    assert got["Target"]["EcsParameters"]["Tags"] == [{"team": "data"}]

    def started():
        arns = aws("ecs", "list-tasks", "--cluster", CLUSTER,
                   "--started-by", "schedule/default/report-once")["taskArns"]
        return arns or None

    arns = wait_for("the scheduled task", started)
    assert len(arns) == 1
    task = aws("ecs", "describe-tasks", "--cluster", CLUSTER, "--tasks", *arns,
               "--include", "TAGS")["tasks"][0]
    created_at = dt.datetime.fromtimestamp(float(task["createdAt"]), dt.timezone.utc)
    late = (created_at - due).total_seconds()
    assert 0 <= late < TOLERANCE_S, f"started {late:.3f} s after its due time"
    assert {"key": "team", "value": "data"} in task["tags"]
    env = task["overrides"]["containerOverrides"][0]["environment"]
    assert env == [{"name": "MODE", "value": "nightly"}]

    # Listed, updated (disabled), deleted.
    listed = aws("scheduler", "list-schedules")["Schedules"]
    assert [s["Name"] for s in listed] == ["report-once"]
    aws("scheduler", "update-schedule", "--name", "report-once",
        "--schedule-expression", "rate(1 day)", "--state", "DISABLED",
        "--flexible-time-window", "Mode=FLEXIBLE,MaximumWindowInMinutes=15",
        "--target", target())
    got = aws("scheduler", "get-schedule", "--name", "report-once")
    assert got["State"] == "DISABLED"
    assert got["FlexibleTimeWindow"] == {"Mode": "FLEXIBLE", "MaximumWindowInMinutes": 15}
    aws("scheduler", "delete-schedule", "--name", "report-once")
    r = aws_run("scheduler", "get-schedule", "--name", "report-once")
    assert r.returncode != 0 and "ResourceNotFoundException" in r.stderr, r.stderr


def test_boto3_scheduler_gets_the_schedulers_exceptions(berth_server):
    scheduler = boto3.session.Session(
        aws_access_key_id=berth_server.admin.access_key_id,
        aws_secret_access_key=berth_server.admin.secret_access_key,
        region_name=REGION,
    ).client("scheduler", endpoint_url=berth_server.endpoint)
    with pytest.raises(scheduler.exceptions.ResourceNotFoundException):
        scheduler.get_schedule(Name="nope")
    with pytest.raises(scheduler.exceptions.ValidationException) as bad:
        scheduler.create_schedule(
            Name="bad", ScheduleExpression="cron(0 12 * * * *)",
            FlexibleTimeWindow={"Mode": "OFF"},
            Target={"Arn": f"arn:aws:ecs:{REGION}:000000000000:cluster/{CLUSTER}",
                    "RoleArn": ROLE, "EcsParameters": {"TaskDefinitionArn": "report"}})
    assert "Invalid Schedule Expression" in str(bad.value)
    ok = dict(Name="weekly", ScheduleExpression="cron(0 9 ? * MON *)",
              ScheduleExpressionTimezone="Europe/Paris",
              FlexibleTimeWindow={"Mode": "OFF"},
              Target={"Arn": f"arn:aws:ecs:{REGION}:000000000000:cluster/{CLUSTER}",
                      "RoleArn": ROLE, "EcsParameters": {"TaskDefinitionArn": "report"}})
    scheduler.create_schedule(**ok)
    with pytest.raises(scheduler.exceptions.ConflictException):
        scheduler.create_schedule(**ok)
    got = scheduler.get_schedule(Name="weekly")
    assert got["ScheduleExpressionTimezone"] == "Europe/Paris"
    assert isinstance(got["CreationDate"], dt.datetime)
    wrong = boto3.session.Session(
        aws_access_key_id=berth_server.admin.access_key_id,
        aws_secret_access_key="not-the-secret",
        region_name=REGION,
    ).client("scheduler", endpoint_url=berth_server.endpoint)
    with pytest.raises(botocore.exceptions.ClientError) as denied:
        wrong.list_schedules()
    assert denied.value.response["Error"]["Code"] == "InvalidSignatureException"
