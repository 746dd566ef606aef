//! Mesos frameworks and offers: an offer holds its resources in the accounting every commit
//! check reads, so no other scheduler can take them; accepting swaps the hold for the launched
//! tasks, all or nothing; declining, disconnecting or tearing down releases it.

use std::sync::Arc;

use berth_model::command::{
    AcceptOffers, FailureReason, FrameworkDisconnected, MakeOffers, OffersMade, Placed,
    RemoveFramework, RemoveOffers, SubscribeFramework,
};
use berth_model::entity::{DesiredStatus, Reservation};
use berth_model::mesos::{Framework, Offer};
use berth_model::{Error, Millis, OfferId};

use crate::common::*;

const FW: &str = "fw-1";

fn framework(id: &str, cluster: &str) -> Framework {
    Framework {
        id: id.into(),
        cluster: cluster.into(),
        name: format!("{id}-name"),
        user: "root".into(),
        roles: vec!["*".into()],
        hostname: None,
        principal: None,
        webui_url: None,
        capabilities: Vec::new(),
        checkpoint: false,
        failover_timeout: 60.0,
        connected: true,
        disconnected_at: None,
        registered_at: Millis(0),
        version: 0,
        owner: None,
    }
}

fn subscribe(f: Framework) -> SubscribeFramework {
    SubscribeFramework {
        framework: Arc::new(f),
    }
}

fn hold(cpu: i64, memory: i64, tcp: &[u16]) -> Reservation {
    Reservation {
        cpu,
        memory,
        tcp: tcp.to_vec(),
        ..Default::default()
    }
}

fn offer(id: u128, framework: &str, instance: u128, hold: Reservation) -> Offer {
    Offer {
        id: OfferId(id),
        framework: framework.into(),
        cluster: "prod".into(),
        instance: berth_model::InstanceId(instance),
        hold,
        created_at: Millis(0),
        version: 0,
    }
}

fn make(offers: Vec<Offer>) -> MakeOffers {
    MakeOffers { offers }
}

fn made(OffersMade { made, rejected }: OffersMade) -> (Vec<OfferId>, Vec<(OfferId, String)>) {
    (made.iter().map(|o| o.id).collect(), rejected)
}

fn accept(framework: &str, offers: &[u128], tasks: Vec<TaskBuilder>) -> AcceptOffers {
    AcceptOffers {
        framework: framework.into(),
        offers: offers.iter().map(|o| OfferId(*o)).collect(),
        tasks: tasks
            .into_iter()
            .map(|t| t.started_by(FW).group("mesos:fw").build())
            .collect(),
    }
}

/// Cluster `prod` with instance 1 (1024 CPU, 2048 MiB) and framework [`FW`] subscribed.
fn world() -> World {
    let mut w = World::with_cluster("prod");
    w.ok(instance("prod", 1).build());
    w.ok(subscribe(framework(FW, "prod")));
    w
}

#[test]
fn frameworks_subscribe_and_resubscribe() {
    let mut w = World::with_cluster("prod");
    let first = w.ok(subscribe(framework(FW, "prod")));
    assert!(first.connected);
    assert_eq!(first.registered_at, w.now);
    w.ok(FrameworkDisconnected { id: FW.into() });
    let gone = w.state.framework(FW).unwrap().clone();
    assert!(!gone.connected);
    assert_eq!(gone.disconnected_at, Some(w.now));
    // Re-subscribing (failover) keeps its registration time and connects it again.
    let mut again = framework(FW, "prod");
    again.name = "renamed".into();
    let back = w.ok(subscribe(again));
    assert!(back.connected && back.disconnected_at.is_none());
    assert_eq!(back.registered_at, first.registered_at);
    assert_eq!(back.name, "renamed");
    // Not into another cluster, nor into one that does not exist.
    w.ok(create_cluster("other"));
    assert!(matches!(
        w.refused(subscribe(framework(FW, "other"))),
        Error::InvalidParameter(m) if m.contains("prod")
    ));
    assert_eq!(
        w.refused(subscribe(framework("fw-2", "nope"))),
        Error::ClusterNotFound("nope".into())
    );
    assert!(matches!(
        w.refused(FrameworkDisconnected { id: "fw-9".into() }),
        Error::Client(_)
    ));
}

#[test]
fn an_offer_holds_its_resources_against_every_other_scheduler() {
    let mut w = world();
    let (ok, rejected) = made(w.ok(make(vec![offer(1, FW, 1, hold(1024, 1024, &[31000]))])));
    assert_eq!(ok, vec![OfferId(1)]);
    assert!(rejected.is_empty());
    let usage = w.state.usage(berth_model::InstanceId(1)).unwrap().clone();
    assert_eq!((usage.cpu, usage.memory, usage.offers), (1024, 1024, 1));

    // RunTask, services, StartTask: any PlaceTasks finds the CPU and the port taken.
    let (_, rejected) = w.place(place("prod", vec![task("prod", 10, 1)]));
    assert_eq!(rejected[0].reason, FailureReason::ResourceCpu);
    let (_, rejected) = w.place(place(
        "prod",
        vec![task("prod", 11, 1).cpu(0).tcp(&[31000])],
    ));
    assert_eq!(rejected[0].reason, FailureReason::ResourcePorts);
    // Another offer cannot promise the same resources either.
    w.ok(subscribe(framework("fw-2", "prod")));
    let (ok, rejected) = made(w.ok(make(vec![
        offer(2, "fw-2", 1, hold(1, 0, &[])),
        offer(3, "fw-2", 1, hold(0, 0, &[31000])),
        offer(4, "fw-2", 1, hold(0, 512, &[31001])),
    ])));
    assert_eq!(ok, vec![OfferId(4)]);
    assert_eq!(rejected.len(), 2);
    assert!(rejected[0].1.contains("CPU"), "{rejected:?}");
    assert!(rejected[1].1.contains("31000"), "{rejected:?}");

    // Declined: the resources are back.
    w.ok(RemoveOffers {
        ids: vec![OfferId(1), OfferId(77)],
    });
    assert!(w.state.offer(OfferId(1)).is_none());
    let (placed, rejected) = w.place(place("prod", vec![task("prod", 12, 1).tcp(&[31000])]));
    assert!(rejected.is_empty(), "{rejected:?}");
    assert_eq!(placed.len(), 1);
}

#[test]
fn offers_are_refused_for_disconnected_frameworks_and_unknown_places() {
    let mut w = world();
    w.ok(create_cluster("other"));
    w.ok(instance("other", 2).build());
    let mut elsewhere = offer(2, FW, 2, hold(1, 1, &[]));
    elsewhere.cluster = "other".into();
    let (ok, rejected) = made(w.ok(make(vec![
        offer(1, FW, 9, hold(1, 1, &[])),
        elsewhere,
        offer(3, FW, 1, hold(1, 1, &[])),
        offer(3, FW, 1, hold(1, 1, &[])),
    ])));
    assert_eq!(ok, vec![OfferId(3)]);
    assert_eq!(
        rejected.iter().map(|r| r.0).collect::<Vec<_>>(),
        vec![OfferId(1), OfferId(2), OfferId(3)]
    );
    // A disconnected framework's offers are released, and it gets no new ones.
    w.ok(FrameworkDisconnected { id: FW.into() });
    assert!(w.state.offer(OfferId(3)).is_none());
    assert!(w.state.usage(berth_model::InstanceId(1)).is_none());
    let (ok, _) = made(w.ok(make(vec![offer(4, FW, 1, hold(1, 1, &[]))])));
    assert!(ok.is_empty());
    assert!(matches!(
        w.refused(make(vec![offer(5, "fw-9", 1, hold(1, 1, &[]))])),
        Error::Client(_)
    ));
}

#[test]
fn accepting_swaps_the_hold_for_the_tasks_and_releases_the_rest() {
    let mut w = world();
    made(w.ok(make(vec![
        offer(1, FW, 1, hold(512, 1024, &[31000, 31001])),
        offer(2, FW, 1, hold(256, 256, &[31002])),
    ])));
    let Placed { tasks, rejected } = w.ok(accept(
        FW,
        &[1, 2],
        vec![
            task("prod", 10, 1).cpu(512).memory(512).tcp(&[31000]),
            task("prod", 11, 1).cpu(256).memory(256).tcp(&[31002]),
        ],
    ));
    assert_eq!(tasks.len(), 2);
    assert!(rejected.is_empty());
    assert!(w.state.offers().next().is_none(), "both offers consumed");
    // Only the tasks hold anything now: 31001 and the spare memory went back.
    let usage = w.state.usage(berth_model::InstanceId(1)).unwrap();
    assert_eq!((usage.cpu, usage.memory, usage.offers), (768, 768, 0));
    assert!(!usage.tcp.contains(&31001));
    assert_eq!(
        w.state
            .task(berth_model::TaskId(10))
            .unwrap()
            .started_by
            .as_deref(),
        Some(FW)
    );
}

#[test]
fn an_accept_that_does_not_fit_its_offers_changes_nothing() {
    let mut w = world();
    w.ok(instance("prod", 2).build());
    w.ok(subscribe(framework("fw-2", "prod")));
    made(w.ok(make(vec![
        offer(1, FW, 1, hold(256, 256, &[31000])),
        offer(2, FW, 2, hold(256, 256, &[])),
        offer(3, "fw-2", 1, hold(256, 256, &[])),
    ])));
    let refusals = [
        accept(FW, &[1], vec![task("prod", 10, 1).cpu(512)]),
        accept(FW, &[1], vec![task("prod", 10, 1).cpu(0).memory(512)]),
        accept(
            FW,
            &[1],
            vec![task("prod", 10, 1).cpu(0).memory(0).tcp(&[31001])],
        ),
        accept(
            FW,
            &[1],
            vec![
                task("prod", 10, 1).cpu(0).memory(0).tcp(&[31000]),
                task("prod", 11, 1).cpu(0).memory(0).tcp(&[31000]),
            ],
        ),
        accept(FW, &[1, 2], vec![task("prod", 10, 1).cpu(1).memory(1)]),
        accept(FW, &[3], vec![task("prod", 10, 1).cpu(1).memory(1)]),
        accept(FW, &[1], vec![task("prod", 10, 2).cpu(1).memory(1)]),
        accept(FW, &[9], vec![task("prod", 10, 1).cpu(1).memory(1)]),
        accept(FW, &[1, 1], vec![task("prod", 10, 1).cpu(1).memory(1)]),
        accept(
            FW,
            &[1],
            vec![
                task("prod", 10, 1).cpu(1).memory(1),
                task("prod", 10, 1).cpu(1).memory(1),
            ],
        ),
        accept(FW, &[], vec![]),
        accept("fw-9", &[1], vec![]),
    ];
    for command in refusals {
        // `refused` also checks that nothing changed.
        w.refused(command);
    }
    assert_eq!(w.state.offers().count(), 3);
}

#[test]
fn tearing_down_stops_the_frameworks_tasks_and_releases_its_offers() {
    let mut w = world();
    made(w.ok(make(vec![offer(1, FW, 1, hold(512, 512, &[]))])));
    w.ok(accept(
        FW,
        &[1],
        vec![task("prod", 10, 1).cpu(256).memory(256)],
    ));
    made(w.ok(make(vec![offer(2, FW, 1, hold(256, 256, &[]))])));
    // A standalone task is not the framework's.
    w.place(place("prod", vec![task("prod", 20, 1)]));
    w.ok(RemoveFramework {
        id: FW.into(),
        reason: "Framework torn down".into(),
    });
    assert!(w.state.framework(FW).is_none());
    assert!(w.state.offer(OfferId(2)).is_none());
    let t = w.task(10);
    assert_eq!(t.desired_status, DesiredStatus::Stopped);
    assert_eq!(t.stopped_reason.as_deref(), Some("Framework torn down"));
    assert_eq!(w.task(20).desired_status, DesiredStatus::Running);
}

#[test]
fn offers_and_frameworks_survive_a_snapshot() {
    let mut w = world();
    made(w.ok(make(vec![offer(1, FW, 1, hold(512, 512, &[31000]))])));
    let restored = berth_state::State::restore(w.state.persist(), w.state.config().clone());
    assert_eq!(restored.offer(OfferId(1)), w.state.offer(OfferId(1)));
    assert_eq!(restored.framework(FW), w.state.framework(FW));
    assert_eq!(
        restored.usage(berth_model::InstanceId(1)),
        w.state.usage(berth_model::InstanceId(1))
    );
}
