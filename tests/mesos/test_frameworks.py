"""Real, unmodified pymesos frameworks scheduling on berth through the Mesos v1 scheduler API.

Each test starts its own `berth dev` (one agent, the `default` cluster) and points a
`pymesos.MesosSchedulerDriver` at the address it prints. What is checked is what a Mesos
framework sees through pymesos's callbacks (registered, resourceOffers, statusUpdate, ...),
and what anyone sees through the ECS API: a Mesos-launched task is an ordinary berth task in
group `mesos:<framework name>`.

Covered: SUBSCRIBE and the first offer (cpus, mem, ports and attributes of the dev agent, as
ECS reports them); a command task (`sh -c`) running and finishing, and one failing with its
exit status, both visible with DescribeTasks; a launch larger than its offer (TASK_ERROR);
KILL of a long-running task; DECLINE with refuse_seconds (no offer for that agent until it
passes, then one again) and REVIVE bringing an offer back at once; SUPPRESS, with HEARTBEATs
still coming; explicit and implicit RECONCILE; failover (the framework stops without
tearing down, its tasks keep running, a new driver re-subscribes with the same framework id
and gets the update it missed); TEARDOWN killing the framework's tasks; a `container.docker`
task on Docker (skipped without a Docker Engine, except under CI); an update the framework
does not acknowledge sent again with the same uuid, and no more once acknowledged.

Authentication: every framework here authenticates with a principal and secret (pymesos's
`principal`/`secret`, sent as HTTP Basic): an access key id and its secret (the admin's, or
one made with `berth credential create --role framework`). A framework without credentials,
with a wrong secret or an unknown principal is refused (401); a principal without the
`mesos:*` permissions is refused (403); a second principal can neither SUBSCRIBE with the
first framework's id nor call for it, while the first framework keeps running undisturbed;
and a `framework`-role principal runs containers, but not on the host's network (admin only).

Where berth reports a task gone, the process runtime's own pid records are checked too: the
command must really be dead (and, across a failover, really still alive).
"""

from __future__ import annotations

import base64
import re
import subprocess
import time

import pytest
from conftest import (
    IMAGE,
    LABEL_INSTANCE,
    PATIENCE,
    TERMINAL_STATES,
    Credentials,
    command_task,
    new_task_id,
    resource,
    scheduler_call,
    version,
)


def attribute_values(offer: dict) -> dict:
    """An offer's attributes as name -> value (text, scalar, ranges or set)."""
    out = {}
    for a in offer.get("attributes", []):
        kind = a["type"]
        if kind == "TEXT":
            out[a["name"]] = a["text"]["value"]
        elif kind == "SCALAR":
            out[a["name"]] = a["scalar"]["value"]
        elif kind == "RANGES":
            out[a["name"]] = a["ranges"]
        elif kind == "SET":
            out[a["name"]] = a["set"]
    return out


def ecs_resource(instance: dict, name: str) -> dict:
    (r,) = [r for r in instance["remainingResources"] if r["name"] == name]
    return r


def check_update(status: dict, offer: dict) -> None:
    """What pymesos needs of an UPDATE that carries a uuid: the agent id too (it
    acknowledges with both), and a uuid that is base64 of 16 bytes."""
    if "uuid" in status:
        assert status.get("agent_id") == offer["agent_id"], status
        assert len(base64.b64decode(status["uuid"])) == 16, status


# --------------------------------------------------------------------------------------------
# Subscribe and offers
# --------------------------------------------------------------------------------------------


def test_subscribe_and_offer_from_the_dev_agent(dev, framework):
    # pymesos reads /version first and converts each dotted part with int().
    v = version(dev.endpoint, dev.admin)["version"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", v), v
    assert tuple(int(n) for n in v.split(".")) >= (1, 0, 0), v

    fw = framework("offers")
    framework_id = fw.registered()
    assert framework_id, "SUBSCRIBED must carry a framework id"
    assert fw.driver.framework_id == framework_id

    offer = fw.offer()
    assert offer["id"]["value"], offer
    assert offer["framework_id"]["value"] == framework_id, offer
    assert offer["agent_id"]["value"], offer
    assert offer["hostname"], offer

    # The resources are the dev agent's, as ECS reported them free before anything was
    # offered (dev.instance): CPU units / 1024, memory in MiB.
    before = dev.instance
    cpus, mem, ports = resource(offer, "cpus"), resource(offer, "mem"), resource(offer, "ports")
    assert cpus and cpus["type"] == "SCALAR", offer
    assert cpus["scalar"]["value"] == pytest.approx(
        ecs_resource(before, "CPU")["integerValue"] / 1024
    )
    assert mem and mem["type"] == "SCALAR", offer
    assert mem["scalar"]["value"] == pytest.approx(ecs_resource(before, "MEMORY")["integerValue"])
    # While outstanding, the offer holds what it offers: ECS shows it taken.
    inst = dev.ecs.describe_container_instances(
        cluster="default", containerInstances=[before["containerInstanceArn"]]
    )["containerInstances"][0]
    assert ecs_resource(inst, "CPU")["integerValue"] == 0, inst["remainingResources"]
    assert ecs_resource(inst, "MEMORY")["integerValue"] == 0, inst["remainingResources"]
    assert ports and ports["type"] == "RANGES", offer
    ranges = ports["ranges"]["range"]
    assert ranges, offer
    # None of the instance's reserved ports (nor any in use) is offered, and the offered
    # ones are held too: ECS lists them among the ports in use.
    reserved = {int(p) for p in ecs_resource(before, "PORTS").get("stringSetValue", [])}
    in_use = {int(p) for p in ecs_resource(inst, "PORTS").get("stringSetValue", [])}
    for r in ranges:
        assert 1 <= r["begin"] <= r["end"] <= 65535, r
        assert not any(r["begin"] <= p <= r["end"] for p in reserved), (r, reserved)
        assert set(range(r["begin"], r["end"] + 1)) <= in_use, (r, sorted(in_use))
    for r in offer["resources"]:
        assert r.get("role", "*") == "*", r

    # Attributes come from the instance's attributes.
    attrs = attribute_values(offer)
    assert attrs.get("ecs.os-type") == "linux", offer["attributes"]

    # One offer per agent: nothing else is offered while this one is outstanding.
    fw.assert_none("offers", for_seconds=2)


# --------------------------------------------------------------------------------------------
# Command tasks
# --------------------------------------------------------------------------------------------


def test_command_task_runs_finishes_and_is_an_ecs_task(dev, framework):
    fw = framework("hello")
    fw.registered()
    offer = fw.offer()
    task = command_task(offer, "echo hello; exit 0", task_id=new_task_id("hello"))
    task_id = task["task_id"]["value"]
    fw.driver.launchTasks(offer["id"], [task])

    running = fw.status(task_id, "TASK_RUNNING")
    finished = fw.status(task_id, "TASK_FINISHED")
    check_update(running, offer)
    check_update(finished, offer)
    assert "uuid" in running and "uuid" in finished, (running, finished)
    # In order, and nothing but STAGING/STARTING before RUNNING.
    states = [s["state"] for s in fw.statuses(task_id)]
    assert states.index("TASK_RUNNING") < states.index("TASK_FINISHED"), states
    before = states[: states.index("TASK_RUNNING")]
    assert set(before) <= {"TASK_STAGING", "TASK_STARTING"}, states
    assert not (set(states) & TERMINAL_STATES - {"TASK_FINISHED"}), states

    # An ordinary berth task: DescribeTasks shows it in group mesos:<framework name>, with
    # the command's exit code.
    (ecs_task,) = dev.wait_ecs(
        "the finished task STOPPED",
        lambda ts: [t for t in ts if t["lastStatus"] == "STOPPED"],
        fw.group,
    )
    assert ecs_task["group"] == "mesos:hello", ecs_task
    assert ecs_task["containerInstanceArn"] == dev.instance["containerInstanceArn"], ecs_task
    assert [c.get("exitCode") for c in ecs_task["containers"]] == [0], ecs_task


def test_failing_command_task_reports_task_failed_with_its_exit_status(dev, framework):
    fw = framework("failing")
    fw.registered()
    offer = fw.offer()
    task = command_task(offer, "echo about to fail >&2; exit 3", task_id=new_task_id("fails"))
    task_id = task["task_id"]["value"]
    fw.driver.launchTasks(offer["id"], [task])

    failed = fw.status(task_id, "TASK_FAILED")
    check_update(failed, offer)
    assert failed.get("message"), f"TASK_FAILED should say why: {failed}"
    assert "3" in failed["message"], f"TASK_FAILED should give the exit status 3: {failed}"
    assert "TASK_FINISHED" not in [s["state"] for s in fw.statuses(task_id)]

    (ecs_task,) = dev.wait_ecs(
        "the failed task STOPPED",
        lambda ts: [t for t in ts if t["lastStatus"] == "STOPPED"],
        fw.group,
    )
    assert [c.get("exitCode") for c in ecs_task["containers"]] == [3], ecs_task


def test_launch_larger_than_its_offer_is_task_error(dev, framework):
    fw = framework("greedy")
    fw.registered()
    offer = fw.offer()
    mem = resource(offer, "mem")["scalar"]["value"]
    task = command_task(offer, "sleep 600", task_id=new_task_id("greedy"), mem=mem + 1024)
    task_id = task["task_id"]["value"]
    fw.driver.launchTasks(offer["id"], [task])

    error = fw.status(task_id, ["TASK_ERROR", "TASK_DROPPED"])
    assert error["state"] == "TASK_ERROR", error
    assert error.get("source") == "SOURCE_MASTER", error
    assert error.get("reason") == "REASON_TASK_INVALID", error
    assert error.get("message"), error
    assert "TASK_RUNNING" not in [s["state"] for s in fw.statuses(task_id)]
    assert dev.ecs_tasks(fw.group) == [], "an invalid launch must not make a berth task"


def test_kill_a_long_running_task(dev, framework):
    fw = framework("killer")
    fw.registered()
    offer = fw.offer()
    task = command_task(offer, "sleep 600", task_id=new_task_id("sleeper"))
    task_id = task["task_id"]["value"]
    fw.driver.launchTasks(offer["id"], [task])
    fw.status(task_id, "TASK_RUNNING")
    dev.wait_ecs(
        "the task RUNNING", lambda ts: [t for t in ts if t["lastStatus"] == "RUNNING"], fw.group
    )

    assert len(dev.running_commands()) == 1, "the process runtime should run `sleep 600`"

    fw.driver.killTask({"value": task_id})
    killed = fw.status(task_id, "TASK_KILLED")
    check_update(killed, offer)
    dev.wait_ecs(
        "the killed task STOPPED",
        lambda ts: ts and all(t["lastStatus"] == "STOPPED" for t in ts),
        fw.group,
    )
    assert dev.running_commands() == [], "`sleep 600` still runs after TASK_KILLED"

    # KILL of a task berth never heard of: TASK_LOST, without a uuid (nothing to acknowledge).
    unknown = new_task_id("unknown")
    fw.driver.killTask({"value": unknown})
    lost = fw.status(unknown, "TASK_LOST")
    assert "uuid" not in lost, lost


# --------------------------------------------------------------------------------------------
# Offer control: DECLINE + refuse_seconds, REVIVE, SUPPRESS; HEARTBEAT
# --------------------------------------------------------------------------------------------


def test_decline_with_refuse_seconds_then_revive(dev, framework):
    fw = framework("decliner")
    fw.registered()
    offer = fw.offer()
    agent = offer["agent_id"]["value"]

    def on_agent(offers: list[dict]) -> bool:
        return any(o["agent_id"]["value"] == agent for o in offers)

    fw.driver.declineOffer(offer["id"], filters={"refuse_seconds": 3600})
    fw.assert_none("offers", on_agent, for_seconds=4)

    # REVIVE clears the filter: the agent is offered again promptly.
    t0 = time.monotonic()
    fw.driver.reviveOffers()
    again = fw.offer(timeout=5)
    assert again["agent_id"]["value"] == agent
    assert again["id"] != offer["id"], "every offer has a fresh id"
    assert time.monotonic() - t0 < 5


def test_declined_agent_is_offered_again_once_refuse_seconds_pass(dev, framework):
    fw = framework("patient")
    fw.registered()
    offer = fw.offer()
    declined_at = time.monotonic()
    fw.driver.declineOffer(offer["id"], filters={"refuse_seconds": 3})
    fw.assert_none("offers", for_seconds=2.5)
    again = fw.offer(timeout=15)
    assert time.monotonic() - declined_at >= 3, "offered again before refuse_seconds passed"
    assert again["agent_id"] == offer["agent_id"]
    assert again["id"] != offer["id"]


def test_suppress_stops_offers_heartbeats_go_on_and_revive_resumes(dev, framework):
    fw = framework("quiet")
    fw.registered()
    subscribed_at = time.monotonic()
    offer = fw.offer()
    fw.driver.suppressOffers()
    # No filter of its own (refuse_seconds 0): only SUPPRESS keeps the agent from coming back.
    fw.driver.declineOffer(offer["id"], filters={"refuse_seconds": 0})

    # Heartbeats every 15 s keep coming on the stream while no offer does.
    fw.wait("heartbeat", timeout=max(1.0, 20 - (time.monotonic() - subscribed_at)))
    # (assert_none also sees any offer that came while waiting for the heartbeat)
    fw.assert_none("offers", for_seconds=1)

    fw.driver.reviveOffers()
    again = fw.offer(timeout=5)
    assert again["agent_id"] == offer["agent_id"]


# --------------------------------------------------------------------------------------------
# Reconciliation
# --------------------------------------------------------------------------------------------


def test_reconcile_answers_the_latest_state_of_each_task(dev, framework):
    fw = framework("reconciler")
    fw.registered()
    offer = fw.offer()
    long = command_task(offer, "sleep 600", task_id=new_task_id("long"))
    short = command_task(offer, "exit 0", task_id=new_task_id("short"))
    long_id, short_id = long["task_id"]["value"], short["task_id"]["value"]
    fw.driver.launchTasks(offer["id"], [long, short])
    fw.status(long_id, "TASK_RUNNING")
    fw.status(short_id, "TASK_FINISHED")

    def reconciled(st: dict) -> bool:
        return st.get("reason") == "REASON_RECONCILIATION"

    # Explicit: each named task's latest state, no uuid (nothing to acknowledge), agent id.
    unknown = new_task_id("never-launched")
    fw.driver.reconcileTasks([{"task_id": {"value": t}} for t in (long_id, short_id, unknown)])
    r_long = fw.status(long_id, "TASK_RUNNING", match=reconciled)
    r_short = fw.status(short_id, TERMINAL_STATES, match=reconciled)
    assert r_short["state"] == "TASK_FINISHED", r_short
    for st in (r_long, r_short):
        assert "uuid" not in st, st
        assert st.get("agent_id") == offer["agent_id"], st
    # A task the master does not know is reported lost (pymesos is not partition-aware).
    r_unknown = fw.status(unknown, ["TASK_LOST", "TASK_UNKNOWN", "TASK_GONE"], match=reconciled)
    assert r_unknown["state"] == "TASK_LOST", r_unknown
    assert "uuid" not in r_unknown, r_unknown

    # Implicit (no tasks named): every task the framework has that is not terminal.
    fw.driver.reconcileTasks([])
    r_all = fw.status(long_id, "TASK_RUNNING", match=reconciled)
    assert "uuid" not in r_all, r_all


# --------------------------------------------------------------------------------------------
# Failover and teardown
# --------------------------------------------------------------------------------------------


def test_failover_resubscribes_with_the_framework_id_and_tasks_keep_running(dev, framework):
    first = framework("failover", failover_timeout=120)
    framework_id = first.registered()
    offer = first.offer()
    long = command_task(offer, "sleep 600", task_id=new_task_id("long"))
    # Finishes while the framework is away: its update must wait for the new subscription.
    brief = command_task(offer, "sleep 4; exit 0", task_id=new_task_id("brief"))
    long_id, brief_id = long["task_id"]["value"], brief["task_id"]["value"]
    first.driver.launchTasks(offer["id"], [long, brief])
    first.status(long_id, "TASK_RUNNING")
    first.status(brief_id, "TASK_RUNNING")

    # The framework process "dies": its driver stops without TEARDOWN.
    first.stop(failover=True)
    first.wait("disconnected", timeout=5)
    assert "TASK_FINISHED" not in [s["state"] for s in first.statuses(brief_id)], (
        "the brief task finished before the framework went away: make it longer"
    )

    # Nothing was killed: berth still runs the long task, and the brief one ends on its own.
    def states(ts):
        by_status = sorted(t["lastStatus"] for t in ts)
        return by_status == ["RUNNING", "STOPPED"] and by_status

    dev.wait_ecs("one task RUNNING and the brief one STOPPED", states, first.group)
    (running_before,) = [t for t in dev.ecs_tasks(first.group) if t["lastStatus"] == "RUNNING"]

    # A new framework process re-subscribes with the same framework id.
    second = framework("failover", framework_id=framework_id, failover_timeout=120)
    second.wait("reregistered")
    assert second.sched.all("registered") == [], "a re-subscription is reregistered"
    assert second.driver.framework_id == framework_id

    # The update it missed (the brief task's TASK_FINISHED, never acknowledged) is resent.
    finished = second.status(brief_id, "TASK_FINISHED")
    assert "uuid" in finished, finished
    check_update(finished, offer)

    # The long task is still the same running task, and the new driver controls it.
    second.driver.reconcileTasks([{"task_id": {"value": long_id}}])
    second.status(long_id, "TASK_RUNNING")
    (running_after,) = [t for t in dev.ecs_tasks(second.group) if t["lastStatus"] == "RUNNING"]
    assert running_after["taskArn"] == running_before["taskArn"]
    assert len(dev.running_commands()) == 1, "the long task's process should have survived"
    second.driver.killTask({"value": long_id})
    second.status(long_id, "TASK_KILLED")


def test_teardown_kills_the_frameworks_tasks(dev, framework):
    fw = framework("short-lived")
    fw.registered()
    offer = fw.offer()
    tasks = [command_task(offer, "sleep 600", task_id=new_task_id("t")) for _ in range(2)]
    fw.driver.launchTasks(offer["id"], tasks)
    for t in tasks:
        fw.status(t["task_id"]["value"], "TASK_RUNNING")
    dev.wait_ecs(
        "both tasks RUNNING",
        lambda ts: len(ts) == 2 and all(t["lastStatus"] == "RUNNING" for t in ts),
        fw.group,
    )

    # driver.stop() without failover: pymesos sends TEARDOWN, then closes its stream.
    fw.stop(failover=False)
    dev.wait_ecs(
        "both tasks STOPPED",
        lambda ts: len(ts) == 2 and all(t["lastStatus"] == "STOPPED" for t in ts),
        fw.group,
    )
    assert dev.running_commands() == [], "the framework's commands still run after TEARDOWN"


# --------------------------------------------------------------------------------------------
# Docker
# --------------------------------------------------------------------------------------------


def test_docker_task_runs_in_a_container(dev, framework, docker_engine):
    fw = framework("docker")
    fw.registered()
    offer = fw.offer()
    task = command_task(
        offer,
        "echo hello from docker; exit 0",
        task_id=new_task_id("docker"),
        container={"type": "DOCKER", "docker": {"image": IMAGE, "network": "BRIDGE"}},
    )
    task_id = task["task_id"]["value"]
    fw.driver.launchTasks(offer["id"], [task])
    check_update(fw.status(task_id, "TASK_RUNNING"), offer)
    check_update(fw.status(task_id, "TASK_FINISHED"), offer)

    (ecs_task,) = dev.wait_ecs(
        "the Docker task STOPPED",
        lambda ts: [t for t in ts if t["lastStatus"] == "STOPPED"],
        fw.group,
    )
    assert [c.get("exitCode") for c in ecs_task["containers"]] == [0], ecs_task
    assert [c.get("image") for c in ecs_task["containers"]] == [IMAGE], ecs_task

    # Docker itself ran it: a container of this agent, from the test image.
    p = subprocess.run(
        [
            "docker",
            "ps",
            "-a",
            "--format",
            "{{.Image}}",
            "--filter",
            f"label={LABEL_INSTANCE}={dev.instance['containerInstanceArn']}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert IMAGE in p.stdout.split(), p.stdout


# --------------------------------------------------------------------------------------------
# Acknowledgements
# --------------------------------------------------------------------------------------------


def test_updates_are_resent_until_acknowledged(dev, framework):
    # A framework acknowledging by itself (pymesos's implicit_acknowledgements=False).
    fw = framework("acker", implicit_acknowledgements=False)
    fw.registered()
    offer = fw.offer()
    task = command_task(offer, "sleep 600", task_id=new_task_id("acked"))
    task_id = task["task_id"]["value"]
    fw.driver.launchTasks(offer["id"], [task])
    running = fw.status(task_id, "TASK_RUNNING")
    assert "uuid" in running, running

    # Not acknowledged: the same update (same uuid) comes again (Mesos retries after 10 s).
    again = fw.status(task_id, "TASK_RUNNING", timeout=25)
    assert again["uuid"] == running["uuid"], (running, again)

    # Acknowledged: no more of it.
    fw.driver.acknowledgeStatusUpdate(again)
    fw.assert_none("status", lambda st: st["task_id"]["value"] == task_id, for_seconds=12)


# --------------------------------------------------------------------------------------------
# Sharing the cluster with ECS
# --------------------------------------------------------------------------------------------


def test_a_framework_and_run_task_compete_without_over_commit(dev, framework):
    """A pymesos framework launching on every offer and boto3 RunTask calls compete for the
    dev agent. Offers hold what they promise, so every launch that fits its offer starts (no
    TASK_ERROR, DROPPED or LOST: RunTask never took what was offered), RunTask only ever fails
    for lack of resources, the instance is never over-committed, and ECS shows both sides'
    tasks.

    RunTask starts once the framework has its first offer, which holds the whole instance: a
    RunTask loop started at SUBSCRIBE would race the first offer itself, and whether the
    framework then got any room would depend on which commit came first, not on the offer
    cycle. From then on, each side gets what the other leaves."""
    import threading

    dev.ecs.register_task_definition(
        family="ecs-side",
        containerDefinitions=[
            {
                "name": "main",
                "image": "berth/none",
                "cpu": 256,
                "memory": 32,
                "command": ["sleep", "600"],
                "dockerLabels": {"berth.runtime": "process"},
            }
        ],
    )
    registered = int(
        next(r for r in dev.instance["registeredResources"] if r["name"] == "CPU")["integerValue"]
    )
    fw = framework("sharing")
    fw.registered()
    ecs_placed: list[str] = []
    ecs_failures: list[dict] = []
    stop = threading.Event()

    def run_tasks() -> None:
        while not stop.is_set():
            r = dev.ecs.run_task(cluster="default", taskDefinition="ecs-side")
            ecs_placed.extend(t["taskArn"] for t in r["tasks"])
            ecs_failures.extend(r["failures"])
            time.sleep(0.1)

    launched: list[str] = []

    def launch_on(offers: list[dict]) -> None:
        for offer in offers:
            cpus = next(r for r in offer["resources"] if r["name"] == "cpus")["scalar"]["value"]
            n = min(2, int(cpus / 0.25))
            tasks = [command_task(offer, "sleep 600", task_id=new_task_id("mixed")) for _ in range(n)]
            launched.extend(t["task_id"]["value"] for t in tasks)
            fw.driver.launchTasks(offer["id"], tasks)

    first = fw.offers()
    runner = threading.Thread(target=run_tasks, daemon=True)
    runner.start()
    deadline = time.monotonic() + 8
    try:
        launch_on(first)
        while time.monotonic() < deadline:
            try:
                offers = fw.offers(timeout=2)
            except pytest.fail.Exception:
                continue
            launch_on(offers)
    finally:
        stop.set()
        runner.join(10)

    assert launched, "the framework got no offer with room"
    assert ecs_placed, "RunTask never got room"
    for task_id in launched:
        fw.status(task_id, "TASK_RUNNING")
    bad = [
        st
        for st in fw.sched.all("status")
        if st["state"] in ("TASK_ERROR", "TASK_DROPPED", "TASK_LOST", "TASK_FAILED")
    ]
    assert not bad, bad
    assert ecs_failures, "the cluster never filled up: the test did not compete"
    assert all(f["reason"] in ("RESOURCE:CPU", "RESOURCE:MEMORY") for f in ecs_failures), ecs_failures

    instance = dev.ecs.describe_container_instances(
        cluster="default", containerInstances=[dev.instance["containerInstanceArn"]]
    )["containerInstances"][0]
    remaining = int(ecs_resource(instance, "CPU")["integerValue"])
    assert remaining >= 0, instance
    live = [t for t in dev.ecs_tasks() if t["lastStatus"] != "STOPPED"]
    held = sum(int(t["containers"][0].get("cpu", "0")) for t in live)
    assert held <= registered, (held, registered)
    assert {t["group"] for t in live} >= {"mesos:sharing", "family:ecs-side"}
    assert len([t for t in live if t["group"] == "mesos:sharing"]) == len(launched)
    assert len([t for t in live if t["group"] == "family:ecs-side"]) == len(ecs_placed)


# --------------------------------------------------------------------------------------------
# Authentication
# --------------------------------------------------------------------------------------------


def expect_refused(fw, status: int) -> str:
    """Starts `fw` (made with start=False), whose SUBSCRIBE berth must refuse with HTTP
    `status`. pymesos's I/O thread then dies with RuntimeError("Failed with HTTP <status>:
    <body>") and re-raises it in the main thread (via SIGINT): it is caught here. Answers the
    error's text."""
    with pytest.raises(RuntimeError) as info:
        fw.start()
        deadline = time.monotonic() + PATIENCE
        while time.monotonic() < deadline:
            time.sleep(0.05)
    message = str(info.value)
    assert f"Failed with HTTP {status}" in message, message
    fw.thread.join(PATIENCE)
    assert not fw.thread.is_alive(), "pymesos should have stopped after the refusal"
    assert fw.sched.all("registered") == [], fw.sched.summary()
    assert fw.sched.all("offers") == [], fw.sched.summary()
    fw.stopped = True
    return message


def test_a_framework_without_credentials_is_refused(dev, framework):
    message = expect_refused(framework("anonymous", credentials=None, start=False), 401)
    assert "Missing Authentication Token" in message, message

    # The answer a Mesos master gives: 401 with a Basic challenge.
    status, body = scheduler_call(
        dev.endpoint,
        None,
        {"type": "SUBSCRIBE", "subscribe": {"framework_info": {"user": "root", "name": "x"}}},
    )
    assert status == 401, body

    # The same framework with a framework principal's credentials subscribes.
    fw = framework("anonymous", credentials=dev.create_credential("framework"))
    assert fw.registered()
    assert fw.offer()


def test_a_framework_with_a_wrong_secret_is_refused(dev, framework):
    good = dev.create_credential("framework")
    wrong = Credentials(good.access_key_id, good.secret_access_key + "x")
    message = expect_refused(framework("forger", credentials=wrong, start=False), 401)
    assert "principal or secret is not valid" in message, message

    # An unknown principal is refused alike.
    stranger = Credentials("AKIDNOSUCHPRINCIPAL0", good.secret_access_key)
    expect_refused(framework("stranger", credentials=stranger, start=False), 401)


def test_a_principal_without_mesos_permissions_is_refused(dev, framework):
    reader = dev.create_credential("auditor", role="read-only")
    message = expect_refused(framework("reader", credentials=reader, start=False), 403)
    assert "mesos:Subscribe" in message, message


def test_another_principal_cannot_take_over_a_framework(dev, framework):
    # Another framework principal, and another admin (a principal of its own too).
    intruders = [dev.create_credential("intruder"), dev.create_credential("other-admin", "admin")]
    owner = framework("owned", failover_timeout=120)
    framework_id = owner.registered()
    offer = owner.offer()
    task = command_task(offer, "sleep 600", task_id=new_task_id("owned"))
    task_id = task["task_id"]["value"]
    owner.driver.launchTasks(offer["id"], [task])
    owner.status(task_id, "TASK_RUNNING")
    stream_id = owner.driver.stream_id
    assert stream_id, "pymesos should hold the stream id of its subscription"

    # Each subscribing with the owner's framework id: refused, before anything is touched.
    for who in intruders:
        thief = framework("owned", framework_id=framework_id, credentials=who, start=False)
        message = expect_refused(thief, 403)
        assert f"Framework {framework_id} is registered by another principal" in message, message
        assert thief.sched.all("reregistered") == [], thief.sched.summary()

        # Nor may it call for the framework on the owner's stream (here KILL of its task).
        status, body = scheduler_call(
            dev.endpoint,
            who,
            {
                "type": "KILL",
                "framework_id": {"value": framework_id},
                "kill": {"task_id": {"value": task_id}},
            },
            stream_id=stream_id,
        )
        assert status == 403, (status, body)

    # The owner noticed nothing: still subscribed on the same stream, its task running.
    owner.assert_none("disconnected", for_seconds=1)
    assert owner.sched.all("reregistered") == [], owner.sched.summary()
    assert owner.driver.stream_id == stream_id
    assert [s["state"] for s in owner.statuses(task_id)].count("TASK_KILLED") == 0
    (running,) = dev.wait_ecs(
        "the owner's task RUNNING",
        lambda ts: [t for t in ts if t["lastStatus"] == "RUNNING"],
        owner.group,
    )
    assert len(dev.running_commands()) == 1, "the owner's `sleep 600` should still run"

    # And it still controls its framework: its KILL goes through.
    owner.driver.killTask({"value": task_id})
    owner.status(task_id, "TASK_KILLED")
    dev.wait_ecs(
        "the killed task STOPPED",
        lambda ts: ts and all(t["lastStatus"] == "STOPPED" for t in ts),
        owner.group,
    )
    assert running["taskArn"] in [t["taskArn"] for t in dev.ecs_tasks(owner.group)]


def test_a_framework_role_principal_runs_containers_without_host_privileges(
    dev, framework, docker_engine
):
    fw = framework("role-docker", credentials=dev.create_credential("framework"))
    fw.registered()
    offer = fw.offer()
    docker = command_task(
        offer,
        "echo hello from docker; exit 0",
        task_id=new_task_id("bridge"),
        container={"type": "DOCKER", "docker": {"image": IMAGE, "network": "BRIDGE"}},
    )
    # The host's network is a host privilege: only admin has it.
    host = command_task(
        offer,
        "exit 0",
        task_id=new_task_id("host"),
        container={"type": "DOCKER", "docker": {"image": IMAGE, "network": "HOST"}},
    )
    fw.driver.launchTasks(offer["id"], [docker, host])
    fw.status(docker["task_id"]["value"], "TASK_FINISHED")
    error = fw.status(host["task_id"]["value"], ["TASK_ERROR", "TASK_DROPPED"])
    assert error["state"] == "TASK_ERROR", error
    assert "berth:UseHostNamespaces" in error.get("message", ""), error
    assert [s["state"] for s in fw.statuses(host["task_id"]["value"])] == ["TASK_ERROR"]


def test_a_framework_role_principal_runs_command_tasks(dev, framework):
    fw = framework("role", credentials=dev.create_credential("framework"))
    fw.registered()
    offer = fw.offer()
    task = command_task(offer, "echo hello; exit 0", task_id=new_task_id("role"))
    task_id = task["task_id"]["value"]
    fw.driver.launchTasks(offer["id"], [task])
    fw.status(task_id, "TASK_RUNNING")
    fw.status(task_id, "TASK_FINISHED")


def test_pymesos_reads_the_version_without_credentials(dev, framework):
    fw = framework("versioned")
    fw.registered()
    assert fw.driver.version, "pymesos could not read /version"
    assert version(dev.endpoint, None)["version"] == fw.driver.version
