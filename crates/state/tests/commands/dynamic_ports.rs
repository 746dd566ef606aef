//! Dynamic host ports: chosen by the scheduler for bridge-mode mappings with no host port,
//! carried in the plan, and held at commit exactly like static ports — against the host's
//! reserved ports, every port a live task holds (static or dynamic), and the task's own other
//! ports.

use berth_model::Command;
use berth_model::command::{FailureReason, PlaceTasks, Rejection};
use berth_model::entity::{ContainerInstance, Protocol, Reservation, TaskStatus};
use berth_model::{InstanceId, TaskId};
use berth_state::{Usage, fits};

use crate::common::*;

/// Cluster `prod` with instance 1 (the default reserved TCP ports, UDP 49160 reserved) and
/// instance 2 (no UDP reserved).
fn world() -> World {
    let mut w = World::with_cluster("prod");
    w.ok(instance("prod", 1).udp_ports(&[49160]).build());
    w.ok(instance("prod", 2).build());
    w
}

/// Places `existing` on `world()`, then `planned`, and returns the rejection of `planned`.
fn rejection(existing: Vec<TaskBuilder>, planned: TaskBuilder) -> Option<Rejection> {
    let mut w = world();
    if !existing.is_empty() {
        let (_, rejected) = w.place(place("prod", existing));
        assert!(rejected.is_empty(), "{rejected:?}");
    }
    let (placed, mut rejected) = w.place(place("prod", vec![planned]));
    assert_eq!(placed.len() + rejected.len(), 1);
    rejected.pop()
}

fn reason(existing: Vec<TaskBuilder>, planned: TaskBuilder) -> Option<FailureReason> {
    rejection(existing, planned).map(|r| r.reason)
}

#[test]
fn a_committed_task_holds_its_dynamic_ports_until_it_is_stopped() {
    let mut w = world();
    let (placed, rejected) = w.place(place(
        "prod",
        vec![
            task("prod", 10, 1)
                .tcp(&[80])
                .dynamic_tcp(&[49153, 49200])
                .dynamic_udp(&[49153]),
        ],
    ));
    assert!(rejected.is_empty());
    let t = &placed[0];
    assert_eq!(t.reservation.dynamic_tcp, [49153, 49200]);
    let bound: Vec<(Protocol, u16)> = t.ports.iter().map(|p| (p.protocol, p.host_port)).collect();
    assert_eq!(
        bound,
        [
            (Protocol::Tcp, 80),
            (Protocol::Tcp, 49153),
            (Protocol::Tcp, 49200),
            (Protocol::Udp, 49153)
        ],
        "the resolved bindings are stored as planned"
    );
    assert_eq!(
        w.state.usage(InstanceId(1)),
        Some(&Usage {
            cpu: 128,
            memory: 128,
            tcp: [80].into(),
            udp: Default::default(),
            dynamic_tcp: [49153, 49200].into(),
            dynamic_udp: [49153].into(),
            running: 0,
            pending: 1,
            offers: 0,
        })
    );
    let usage = w.state.usage(InstanceId(1)).unwrap();
    assert!(usage.holds(Protocol::Tcp, 80));
    assert!(usage.holds(Protocol::Tcp, 49200));
    assert!(usage.holds(Protocol::Udp, 49153));
    assert!(!usage.holds(Protocol::Udp, 49200));
    assert!(!usage.holds(Protocol::Udp, 80));

    // Through RUNNING and a stop request the ports stay held; STOPPED releases them.
    w.ok(report("prod", 10, Some(TaskStatus::Running)).build());
    w.ok(stop_task("prod", 10));
    let (_, rejected) = w.place(place(
        "prod",
        vec![task("prod", 11, 1).dynamic_tcp(&[49200])],
    ));
    assert_eq!(rejected[0].reason, FailureReason::ResourcePorts);
    w.ok(report("prod", 10, Some(TaskStatus::Stopped)).build());
    assert_eq!(w.state.usage(InstanceId(1)), None);
    let (placed, _) = w.place(place(
        "prod",
        vec![
            task("prod", 11, 1)
                .dynamic_tcp(&[49153, 49200])
                .dynamic_udp(&[49153])
                .tcp(&[80]),
        ],
    ));
    assert_eq!(placed.len(), 1);
}

#[test]
fn dynamic_ports_conflict_with_dynamic_ports_per_protocol_and_instance() {
    let held = || {
        task("prod", 10, 1)
            .dynamic_tcp(&[49153])
            .dynamic_udp(&[49154])
    };
    let r = rejection(vec![held()], task("prod", 11, 1).dynamic_tcp(&[49153])).unwrap();
    assert_eq!(
        (r.task, r.instance, r.reason),
        (
            TaskId(11),
            Some(InstanceId(1)),
            FailureReason::ResourcePorts
        )
    );
    assert!(r.detail.contains("49153"), "{}", r.detail);
    assert_eq!(
        reason(vec![held()], task("prod", 11, 1).dynamic_udp(&[49154])),
        Some(FailureReason::ResourcePortsUdp)
    );
    assert_eq!(
        reason(
            vec![held()],
            task("prod", 11, 1)
                .dynamic_tcp(&[49154])
                .dynamic_udp(&[49153])
        ),
        None,
        "a TCP and a UDP port of the same number are different ports"
    );
    assert_eq!(
        reason(
            vec![held()],
            task("prod", 11, 2)
                .dynamic_tcp(&[49153])
                .dynamic_udp(&[49154])
        ),
        None,
        "ports are per instance"
    );
    assert_eq!(
        reason(
            vec![held()],
            task("prod", 11, 1).dynamic_tcp(&[49155, 49153])
        ),
        Some(FailureReason::ResourcePorts),
        "any one of the task's dynamic ports"
    );
}

#[test]
fn a_dynamic_port_collides_with_a_static_one_and_vice_versa() {
    let fixed = || task("prod", 10, 1).tcp(&[50000]).udp(&[50001]);
    let dynamic = || {
        task("prod", 10, 1)
            .dynamic_tcp(&[50000])
            .dynamic_udp(&[50001])
    };
    assert_eq!(
        reason(vec![fixed()], task("prod", 11, 1).dynamic_tcp(&[50000])),
        Some(FailureReason::ResourcePorts),
        "dynamic over static TCP"
    );
    assert_eq!(
        reason(vec![fixed()], task("prod", 11, 1).dynamic_udp(&[50001])),
        Some(FailureReason::ResourcePortsUdp),
        "dynamic over static UDP"
    );
    assert_eq!(
        reason(vec![dynamic()], task("prod", 11, 1).tcp(&[50000])),
        Some(FailureReason::ResourcePorts),
        "static over dynamic TCP"
    );
    assert_eq!(
        reason(vec![dynamic()], task("prod", 11, 1).udp(&[50001])),
        Some(FailureReason::ResourcePortsUdp),
        "static over dynamic UDP"
    );
    assert_eq!(
        reason(
            vec![dynamic()],
            task("prod", 11, 1).tcp(&[50001]).dynamic_udp(&[50000])
        ),
        None
    );
}

#[test]
fn a_dynamic_port_the_host_reserves_is_refused() {
    assert_eq!(
        reason(vec![], task("prod", 11, 1).dynamic_tcp(&[51678])),
        Some(FailureReason::ResourcePorts),
        "the agent's reserved TCP port"
    );
    assert_eq!(
        reason(vec![], task("prod", 11, 1).dynamic_udp(&[49160])),
        Some(FailureReason::ResourcePortsUdp),
        "a reserved UDP port"
    );
    assert_eq!(
        reason(vec![], task("prod", 11, 2).dynamic_udp(&[49160])),
        None,
        "reserved on instance 1 only"
    );
}

#[test]
fn a_task_cannot_bind_one_host_port_twice() {
    for (planned, expected) in [
        (
            task("prod", 11, 1).tcp(&[49153]).dynamic_tcp(&[49153]),
            FailureReason::ResourcePorts,
        ),
        (
            task("prod", 11, 1).dynamic_tcp(&[49153, 49153]),
            FailureReason::ResourcePorts,
        ),
        (
            task("prod", 11, 1).udp(&[49153]).dynamic_udp(&[49153]),
            FailureReason::ResourcePortsUdp,
        ),
    ] {
        let r = rejection(vec![], planned).expect("refused");
        assert_eq!(r.reason, expected);
        assert!(r.detail.contains("twice"), "{}", r.detail);
    }
    assert_eq!(
        reason(
            vec![],
            task("prod", 11, 1).tcp(&[49153]).dynamic_udp(&[49153])
        ),
        None
    );
}

#[test]
fn cpu_and_memory_are_checked_before_ports_and_tcp_before_udp() {
    let held = || {
        task("prod", 10, 1)
            .dynamic_tcp(&[49153])
            .dynamic_udp(&[49153])
    };
    assert_eq!(
        reason(
            vec![held()],
            task("prod", 11, 1).memory(9999).dynamic_tcp(&[49153])
        ),
        Some(FailureReason::ResourceMemory)
    );
    assert_eq!(
        reason(
            vec![held()],
            task("prod", 11, 1)
                .dynamic_tcp(&[49153])
                .dynamic_udp(&[49153])
        ),
        Some(FailureReason::ResourcePorts)
    );
}

#[test]
fn each_task_of_a_plan_is_checked_against_the_dynamic_ports_before_it() {
    let mut w = world();
    let (placed, rejected) = w.place(place(
        "prod",
        vec![
            task("prod", 10, 1).dynamic_tcp(&[49153]),
            task("prod", 11, 1).dynamic_tcp(&[49153]),
            task("prod", 12, 2).dynamic_tcp(&[49153]),
            task("prod", 13, 1).tcp(&[49153]),
            task("prod", 14, 1).dynamic_udp(&[49153]),
            task("prod", 15, 1).udp(&[49153]),
        ],
    ));
    let ids: Vec<u128> = placed.iter().map(|t| t.id.0).collect();
    assert_eq!(ids, [10, 12, 14]);
    let got: Vec<_> = rejected.iter().map(|r| (r.task.0, r.reason)).collect();
    assert_eq!(
        got,
        [
            (11, FailureReason::ResourcePorts),
            (13, FailureReason::ResourcePorts),
            (15, FailureReason::ResourcePortsUdp),
        ]
    );
    let usage = w.state.usage(InstanceId(1)).unwrap();
    assert_eq!(usage.dynamic_tcp, [49153].into());
    assert_eq!(usage.dynamic_udp, [49153].into());
    assert!(usage.tcp.is_empty() && usage.udp.is_empty());
}

#[test]
fn fits_sees_dynamic_ports_on_both_sides() {
    let w = world();
    let i: ContainerInstance = (*w.instance(1)).clone();
    let used = Usage {
        tcp: [80].into(),
        dynamic_tcp: [49153].into(),
        dynamic_udp: [49154].into(),
        ..Default::default()
    };
    let need = |tcp: &[u16], dynamic_tcp: &[u16], dynamic_udp: &[u16]| Reservation {
        tcp: tcp.to_vec(),
        dynamic_tcp: dynamic_tcp.to_vec(),
        dynamic_udp: dynamic_udp.to_vec(),
        ..Default::default()
    };
    let reason = |r: &Reservation| fits(&i, Some(&used), r).map_err(|m| m.reason).err();
    assert_eq!(reason(&need(&[], &[49155], &[49155])), None);
    assert_eq!(
        reason(&need(&[], &[80], &[])),
        Some(FailureReason::ResourcePorts)
    );
    assert_eq!(
        reason(&need(&[49153], &[], &[])),
        Some(FailureReason::ResourcePorts)
    );
    assert_eq!(
        reason(&need(&[], &[], &[49154])),
        Some(FailureReason::ResourcePortsUdp)
    );
    assert_eq!(
        reason(&need(&[], &[51680], &[])),
        Some(FailureReason::ResourcePorts)
    );
    assert_eq!(
        fits(&i, None, &need(&[], &[49153], &[49154])),
        Ok(()),
        "no usage holds nothing"
    );
}

#[test]
fn log_entries_written_before_dynamic_ports_still_decode() {
    let command = Command::from(place(
        "prod",
        vec![task("prod", 10, 1).tcp(&[80]).dynamic_tcp(&[49153])],
    ));
    let mut json = serde_json::to_value(&command).unwrap();
    let body = json["PlaceTasks"].as_object_mut().unwrap();
    assert_eq!(body.remove("distinct_instance"), Some(false.into()));
    let t = body["tasks"][0].as_object_mut().unwrap();
    t.remove("ports");
    let r = t["reservation"].as_object_mut().unwrap();
    r.remove("dynamic_tcp");
    r.remove("dynamic_udp");
    let old: Command = serde_json::from_value(json).unwrap();
    let Command::PlaceTasks(PlaceTasks {
        tasks,
        distinct_instance,
        ..
    }) = old
    else {
        panic!("{old:?}")
    };
    assert!(!distinct_instance);
    assert!(tasks[0].ports.is_empty());
    assert_eq!(tasks[0].reservation.tcp, [80]);
    assert!(tasks[0].reservation.dynamic_tcp.is_empty());
    assert!(tasks[0].reservation.dynamic_udp.is_empty());
}
