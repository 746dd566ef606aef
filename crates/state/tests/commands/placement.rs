//! PlaceTasks: the commit-time re-check of each planned task, with the ECS failure reason of
//! each refusal, and what a committed task holds.

use berth_model::command::FailureReason;
use berth_model::entity::{ContainerInstance, InstanceStatus, Reservation, TaskStatus};
use berth_model::{InstanceId, TaskId};
use berth_state::{TaskFilter, Usage, fits};

use crate::common::*;

/// Places `planned` on a cluster with instance 1 (1024 CPU, 2048 MiB, default reserved
/// ports, UDP 5353 reserved) that already runs `existing`, and returns the rejection reason.
fn reason(existing: Vec<TaskBuilder>, planned: TaskBuilder) -> Option<FailureReason> {
    let mut w = World::with_cluster("prod");
    w.ok(instance("prod", 1).udp_ports(&[5353]).build());
    if !existing.is_empty() {
        let (_, rejected) = w.place(place("prod", existing));
        assert!(rejected.is_empty(), "{rejected:?}");
    }
    let (placed, rejected) = w.place(place("prod", vec![planned]));
    assert_eq!(placed.len() + rejected.len(), 1);
    rejected.first().map(|r| r.reason)
}

#[test]
fn a_committed_task_is_stored_indexed_and_holds_its_reservation() {
    let mut w = World::with_cluster("prod");
    w.ok(instance("prod", 1).build());
    let (placed, rejected) = w.place(place(
        "prod",
        vec![
            task("prod", 10, 1)
                .cpu(256)
                .memory(512)
                .tcp(&[80, 443])
                .udp(&[53])
                .group("service:web")
                .started_by("ecs-svc/1"),
        ],
    ));
    assert!(rejected.is_empty());
    let t = &placed[0];
    assert_eq!(t.version, w.index);
    assert_eq!(w.state.task(TaskId(10)), Some(t));
    assert_eq!(t.last_status, TaskStatus::Pending);
    assert_eq!(
        w.state.usage(InstanceId(1)),
        Some(&Usage {
            cpu: 256,
            memory: 512,
            tcp: [80, 443].into(),
            udp: [53].into(),
            dynamic_tcp: Default::default(),
            dynamic_udp: Default::default(),
            running: 0,
            pending: 1,
            offers: 0,
        })
    );
    assert_eq!(w.state.counts("prod").pending_tasks, 1);
    let filter = TaskFilter {
        started_by: Some("ecs-svc/1".into()),
        ..Default::default()
    };
    assert_eq!(w.state.tasks_after("prod", &filter, None).count(), 1);
    let filter = TaskFilter {
        group: Some("service:web".into()),
        ..Default::default()
    };
    assert_eq!(w.state.tasks_after("prod", &filter, None).count(), 1);
    assert_eq!(w.state.tasks_after("other", &filter, None).count(), 0);
}

#[test]
fn cpu_and_memory_must_fit_exactly_up_to_what_was_registered() {
    let full = || task("prod", 10, 1).cpu(1000).memory(2000);
    assert_eq!(
        reason(vec![full()], task("prod", 11, 1).cpu(24).memory(48)),
        None
    );
    assert_eq!(
        reason(vec![full()], task("prod", 11, 1).cpu(25).memory(1)),
        Some(FailureReason::ResourceCpu)
    );
    assert_eq!(
        reason(vec![full()], task("prod", 11, 1).cpu(1).memory(49)),
        Some(FailureReason::ResourceMemory)
    );
    assert_eq!(
        reason(
            vec![],
            task("prod", 11, 1).cpu(2000).memory(9999).tcp(&[22])
        ),
        Some(FailureReason::ResourceCpu),
        "CPU is checked first"
    );
    assert_eq!(
        reason(vec![], task("prod", 11, 1).memory(9999).tcp(&[22])),
        Some(FailureReason::ResourceMemory),
        "then memory"
    );
}

#[test]
fn static_ports_are_held_once_per_protocol() {
    let web = || task("prod", 10, 1).tcp(&[80]).udp(&[53]);
    assert_eq!(
        reason(vec![web()], task("prod", 11, 1).tcp(&[8080, 80])),
        Some(FailureReason::ResourcePorts)
    );
    assert_eq!(
        reason(vec![web()], task("prod", 11, 1).udp(&[53])),
        Some(FailureReason::ResourcePortsUdp)
    );
    assert_eq!(
        reason(vec![web()], task("prod", 11, 1).tcp(&[53]).udp(&[80])),
        None,
        "a TCP port and the UDP port of the same number are different ports"
    );
    assert_eq!(
        reason(vec![], task("prod", 11, 1).tcp(&[22])),
        Some(FailureReason::ResourcePorts),
        "reserved TCP port"
    );
    assert_eq!(
        reason(vec![], task("prod", 11, 1).tcp(&[51679])),
        Some(FailureReason::ResourcePorts),
        "reserved TCP port"
    );
    assert_eq!(
        reason(vec![], task("prod", 11, 1).udp(&[5353])),
        Some(FailureReason::ResourcePortsUdp),
        "reserved UDP port"
    );
    assert_eq!(
        reason(vec![], task("prod", 11, 1).tcp(&[5353]).udp(&[22])),
        None
    );
}

#[test]
fn resources_are_free_again_once_the_task_is_stopped() {
    let mut w = World::with_cluster("prod");
    w.ok(instance("prod", 1).build());
    w.place(place(
        "prod",
        vec![task("prod", 10, 1).cpu(1024).tcp(&[80])],
    ));
    w.ok(stop_task("prod", 10));
    let (_, rejected) = w.place(place("prod", vec![task("prod", 11, 1).tcp(&[80])]));
    assert_eq!(
        rejected[0].reason,
        FailureReason::ResourceCpu,
        "a task being stopped still holds its reservation"
    );
    w.ok(report("prod", 10, Some(TaskStatus::Stopped)).build());
    assert_eq!(w.state.usage(InstanceId(1)), None);
    let (placed, _) = w.place(place(
        "prod",
        vec![task("prod", 11, 1).cpu(1024).tcp(&[80])],
    ));
    assert_eq!(placed.len(), 1);
}

#[test]
fn each_task_of_a_plan_is_checked_against_the_ones_before_it() {
    let mut w = World::with_cluster("prod");
    w.ok(instance("prod", 1).build());
    w.ok(instance("prod", 2).build());
    let (placed, rejected) = w.place(place(
        "prod",
        vec![
            task("prod", 10, 1).cpu(600),
            task("prod", 11, 1).cpu(600),
            task("prod", 12, 2).cpu(600).tcp(&[80]),
            task("prod", 13, 2).cpu(100).tcp(&[80]),
            task("prod", 14, 2).cpu(100).tcp(&[81]),
        ],
    ));
    let ids: Vec<u128> = placed.iter().map(|t| t.id.0).collect();
    assert_eq!(ids, [10, 12, 14]);
    let got: Vec<_> = rejected
        .iter()
        .map(|r| (r.task.0, r.instance.map(|i| i.0), r.reason))
        .collect();
    assert_eq!(
        got,
        [
            (11, Some(1), FailureReason::ResourceCpu),
            (13, Some(2), FailureReason::ResourcePorts)
        ]
    );
    assert!(rejected.iter().all(|r| !r.detail.is_empty()));
    assert!(w.state.task(TaskId(11)).is_none());
    assert_eq!(w.state.usage(InstanceId(2)).unwrap().cpu, 700);
}

#[test]
fn only_active_instances_take_tasks() {
    let mut w = World::with_cluster("prod");
    w.ok(instance("prod", 1).build());
    w.ok(instance("prod", 2).build());
    w.ok(set_instances_state("prod", &[1], InstanceStatus::Draining));
    w.ok(deregister_instance("prod", 2, false));
    let (placed, rejected) = w.place(place(
        "prod",
        vec![task("prod", 10, 1), task("prod", 11, 2)],
    ));
    assert!(placed.is_empty());
    assert!(rejected.iter().all(|r| r.reason == FailureReason::Inactive));
    w.ok(set_instances_state("prod", &[1], InstanceStatus::Active));
    let (placed, _) = w.place(place("prod", vec![task("prod", 10, 1)]));
    assert_eq!(placed.len(), 1);
}

#[test]
fn a_disconnected_agent_takes_no_tasks() {
    let mut w = World::with_cluster("prod");
    w.ok(instance("prod", 1).build());
    // No command disconnects an agent yet; the flag comes from a snapshot.
    w.edit_snapshot(|s| s["instances"][0]["agent_connected"] = false.into());
    let (placed, rejected) = w.place(place("prod", vec![task("prod", 10, 1)]));
    assert!(placed.is_empty());
    assert_eq!(rejected[0].reason, FailureReason::Agent);
    // Re-registering reconnects it.
    w.ok(instance("prod", 1).reregister().build());
    let (placed, _) = w.place(place("prod", vec![task("prod", 10, 1)]));
    assert_eq!(placed.len(), 1);
}

#[test]
fn fits_checks_in_ecs_order() {
    let w = {
        let mut w = World::with_cluster("prod");
        w.ok(instance("prod", 1).build());
        w
    };
    let active: ContainerInstance = (*w.instance(1)).clone();
    let need = |cpu, memory, tcp: &[u16], udp: &[u16]| Reservation {
        cpu,
        memory,
        tcp: tcp.to_vec(),
        udp: udp.to_vec(),
        ..Default::default()
    };
    let used = Usage {
        cpu: 1000,
        memory: 1000,
        tcp: [80].into(),
        udp: [53].into(),
        running: 1,
        pending: 0,
        ..Default::default()
    };
    let reason = |i: &ContainerInstance, u: Option<&Usage>, r: &Reservation| {
        fits(i, u, r).map_err(|m| m.reason).err()
    };
    assert_eq!(reason(&active, None, &need(1024, 2048, &[80], &[53])), None);
    assert_eq!(
        reason(&active, Some(&used), &need(25, 0, &[], &[])),
        Some(FailureReason::ResourceCpu)
    );
    assert_eq!(
        reason(&active, Some(&used), &need(24, 1049, &[], &[])),
        Some(FailureReason::ResourceMemory)
    );
    assert_eq!(
        reason(&active, Some(&used), &need(0, 0, &[80], &[])),
        Some(FailureReason::ResourcePorts)
    );
    assert_eq!(
        reason(&active, Some(&used), &need(0, 0, &[], &[53])),
        Some(FailureReason::ResourcePortsUdp)
    );
    let disconnected = ContainerInstance {
        agent_connected: false,
        ..active.clone()
    };
    assert_eq!(
        reason(&disconnected, None, &need(9999, 0, &[], &[])),
        Some(FailureReason::Agent),
        "the agent before resources"
    );
    let draining = ContainerInstance {
        status: InstanceStatus::Draining,
        agent_connected: false,
        ..active
    };
    assert_eq!(
        reason(&draining, None, &need(0, 0, &[], &[])),
        Some(FailureReason::Inactive),
        "the status before the agent"
    );
}

#[test]
fn unknown_foreign_or_duplicate_placements_are_missing() {
    let mut w = World::with_cluster("prod");
    w.ok(create_cluster("test"));
    w.ok(instance("prod", 1).build());
    w.ok(instance("test", 2).build());
    w.place(place("prod", vec![task("prod", 10, 1)]));
    let mut no_instance = task("prod", 15, 1).build();
    no_instance.instance = None;
    let mut cmd = place(
        "prod",
        vec![
            task("prod", 10, 1),                 // already placed
            task("prod", 11, 9),                 // unknown instance
            task("prod", 12, 2),                 // instance of another cluster
            task("test", 13, 1),                 // task of another cluster
            task("prod", 14, 1).family("db", 1), // unknown task definition
            task("prod", 16, 1),
            task("prod", 16, 1), // the same id twice in one plan
        ],
    );
    cmd.tasks.push(no_instance);
    let (placed, rejected) = w.place(cmd);
    assert_eq!(placed.iter().map(|t| t.id.0).collect::<Vec<_>>(), [16]);
    assert_eq!(
        rejected.iter().map(|r| r.task.0).collect::<Vec<_>>(),
        [10, 11, 12, 13, 14, 16, 15]
    );
    assert!(rejected.iter().all(|r| r.reason == FailureReason::Missing));
    assert_eq!(w.state.usage(InstanceId(1)).unwrap().cpu, 256);
    assert_eq!(w.state.tasks_on(InstanceId(2)).count(), 0);

    // A task id stays taken by a stopped task until it is expired.
    w.ok(report("prod", 10, Some(TaskStatus::Stopped)).build());
    let (_, rejected) = w.place(place("prod", vec![task("prod", 10, 1)]));
    assert_eq!(rejected[0].reason, FailureReason::Missing);
    w.ok(w.expire_everything());
    let (placed, _) = w.place(place("prod", vec![task("prod", 10, 1)]));
    assert_eq!(placed.len(), 1);
}

#[test]
fn placing_on_a_missing_cluster_is_refused() {
    let mut w = World::default();
    assert_eq!(
        w.refused(place("nope", vec![task("nope", 10, 1)])),
        berth_model::Error::ClusterNotFound("nope".into())
    );
}
