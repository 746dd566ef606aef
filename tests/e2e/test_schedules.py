"""Schedules with stock `aws scheduler` commands and boto3's `scheduler` client on a real
server and a hollow agent: a one-time schedule's task starts at its due time (within the
stated tolerance), the schedule is read back, listed, updated and deleted; `rate(1 minute)`
and cron schedules (in a time zone) start their tasks at the times their expressions give
(within the same tolerance); and bad input gets the Scheduler's own exceptions."""

from __future__ import annotations

import datetime as dt
import json
import time
from zoneinfo import ZoneInfo

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


def next_minute(at_ms: int) -> int:
    """The first whole minute at or after `at_ms` (ms since the epoch), in ms."""
    return -(-at_ms // 60_000) * 60_000


def test_aws_scheduler_rate_and_cron_schedules_run_on_time(aws, berth_server, start_berth):
    """`rate(1 minute)` without a start date is due when created and every minute after;
    `cron(* * * * ? *)` in Europe/Berlin at every whole minute; a cron pinned to the current
    Berlin hour (`cron(* H * * ? *)`) only fires if the time zone is honoured (UTC's hour is
    another). All three run together, so the test lasts about one minute."""
    berlin = ZoneInfo("Europe/Berlin")
    aws("ecs", "create-cluster", "--cluster-name", CLUSTER)
    start_hollow_agent(start_berth, berth_server, CLUSTER)
    aws("ecs", "register-task-definition", "--family", "report", "--container-definitions",
        json.dumps([{"name": "report", "image": "report:1", "memory": 64}]))

    # The Berlin hour of the whole minute after the schedules will have been created (they
    # take a few seconds): that minute is the pinned cron's first due time.
    soon = next_minute(int(time.time() * 1000) + 5_000)
    hour = dt.datetime.fromtimestamp(soon / 1000, berlin).hour
    expressions = {
        "every-minute": "rate(1 minute)",
        "cron-berlin": "cron(* * * * ? *)",
        "cron-berlin-hour": f"cron(* {hour} * * ? *)",
    }
    for name, expression in expressions.items():
        zone = () if expression.startswith("rate") else (
            "--schedule-expression-timezone", "Europe/Berlin")
        aws("scheduler", "create-schedule", "--name", name, "--schedule-expression", expression,
            *zone, "--flexible-time-window", "Mode=OFF", "--target", target())
    created = {s["Name"]: round(float(s["CreationDate"]) * 1000)
               for s in aws("scheduler", "list-schedules")["Schedules"]}
    assert set(created) == set(expressions), created
    assert aws("scheduler", "get-schedule", "--name", "cron-berlin")[
        "ScheduleExpressionTimezone"] == "Europe/Berlin"

    # When each is due, from its expression and its creation time (ms).
    pinned = next_minute(created["cron-berlin-hour"])
    while dt.datetime.fromtimestamp(pinned / 1000, berlin).hour != hour:
        pinned += 60_000
    due = {
        "every-minute": [created["every-minute"], created["every-minute"] + 60_000],
        "cron-berlin": [next_minute(created["cron-berlin"])],
        "cron-berlin-hour": [pinned],
    }
    assert pinned <= created["cron-berlin-hour"] + 70_000, (hour, created, pinned)

    # Every task the schedules start (startedBy names the schedule), as they come. The rate
    # schedule's first task is stopped at once: with the default concurrency policy (skip
    # while the previous run still runs) its second due time would otherwise be skipped.
    tasks: dict[str, dict] = {}
    stopped: set[str] = set()

    def all_started():
        arns = aws("ecs", "list-tasks", "--cluster", CLUSTER)["taskArns"]
        new = [a for a in arns if a not in tasks]
        if new:
            for t in aws("ecs", "describe-tasks", "--cluster", CLUSTER, "--tasks", *new)["tasks"]:
                tasks[t["taskArn"]] = t
        for arn, t in tasks.items():
            if t["startedBy"] == "schedule/default/every-minute" and arn not in stopped:
                aws("ecs", "stop-task", "--cluster", CLUSTER, "--task", arn)
                stopped.add(arn)
        counts = {n: sum(t["startedBy"] == f"schedule/default/{n}" for t in tasks.values())
                  for n in due}
        return all(counts[n] >= len(due[n]) for n in due)

    last = max(d for ds in due.values() for d in ds) / 1000
    wait_for("every schedule's runs", all_started, timeout=last - time.time() + 2 * TOLERANCE_S)

    for name, dues in due.items():
        started = sorted(float(t["createdAt"]) for t in tasks.values()
                         if t["startedBy"] == f"schedule/default/{name}")
        assert started, name
        # The first runs at the due times, one each; a cron may have run once more since.
        for at, expected in zip(started, dues):
            late = at - expected / 1000
            assert 0 <= late < TOLERANCE_S, (
                f"{name} ({expressions[name]}) started a task {late:.3f} s after "
                f"{dt.datetime.fromtimestamp(expected / 1000, dt.timezone.utc)}")
        if name == "every-minute":
            assert len(started) == 2, started
        else:
            assert len(started) <= 2, started
            # Every run of `* * * * ?` is on a whole minute, none in between.
            for at in started:
                assert at % 60 < TOLERANCE_S, f"{name} ran at {at}"


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
