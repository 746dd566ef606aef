//! The service reconciler, driven through [`harness::Harness`] on a real state and virtual
//! time: scale-out and scale-in, replacement, rolling updates within minimumHealthyPercent and
//! maximumPercent, health checks and their grace period, the circuit breaker and rollback,
//! launch throttling, DAEMON placement, draining, unplaceable tasks, deletion, priorities
//! (what service tasks carry, which service's commit goes first), preemption (of standalone
//! and lower-priority service tasks, never protected ones; daemons first on a new instance),
//! and the reconciler's own
//! contract (idempotent, deterministic per seed).
//!
//! Every test asserts on the commands the reconciler produced and the state they made, the way
//! Nomad's scheduler tests assert on plans: nothing here looks inside the reconciler.

mod common;
#[path = "service/harness.rs"]
mod harness;

use std::collections::{BTreeMap, BTreeSet};

use berth_api::types as api;
use berth_model::command::{
    AgentConnectivity, DeregisterContainerInstance, PlaceTasks, Placed, UpdateTaskProtection,
    preempt,
};
use berth_model::entity::*;
use berth_model::priority::PRIORITY_TAG;
use berth_model::service::*;
use berth_model::{InstanceId, TaskId};
use berth_scheduler::service::{STOP_CODE, UNHEALTHY_REASON, commit_bands, events, priority_of};

use common::{CLUSTER, host, needs};
use harness::*;

const WEB: &str = "web";
const AZS: [&str; 3] = ["us-east-1a", "us-east-1b", "us-east-1c"];

/// A harness with `per_az` roomy instances in each of three zones.
fn cluster(per_az: usize) -> (Harness, Vec<InstanceId>) {
    let mut h = Harness::new();
    let mut ids = Vec::new();
    for az in AZS {
        for _ in 0..per_az {
            ids.push(h.add(host(4096, 8192).az(az)));
        }
    }
    (h, ids)
}

/// A settled REPLICA service `web` of a fresh [`GOOD`] revision at `desired`.
fn settled_replica(h: &mut Harness, desired: u32) -> u32 {
    let rev = h.register(def(GOOD));
    let s = h.replica(WEB, rev, desired);
    h.create(s);
    h.settle();
    rev
}

fn ids(tasks: &[std::sync::Arc<Task>]) -> BTreeSet<TaskId> {
    tasks.iter().map(|t| t.id).collect()
}

/// Live tasks of the service per zone.
fn per_zone(h: &Harness) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for t in h.running(WEB) {
        *m.entry(t.availability_zone.clone().unwrap_or_default())
            .or_default() += 1;
    }
    m
}

/// Live tasks of the service per instance.
fn per_instance(h: &Harness, name: &str) -> BTreeMap<InstanceId, usize> {
    let mut m = BTreeMap::new();
    for t in h.running(name) {
        *m.entry(t.instance.expect("placed")).or_default() += 1;
    }
    m
}

fn launches(h: &Harness, from: usize) -> usize {
    h.log[from..].iter().map(|(_, d)| d.launch.len()).sum()
}

fn steady(name: &str) -> String {
    events::steady(name)
}

// --- scale out, scale in, replacement --------------------------------------------------------

#[test]
fn scale_out_from_zero_starts_the_desired_count_spread_and_reaches_a_steady_state() {
    let (mut h, instances) = cluster(2);
    settled_replica(&mut h, 0);
    assert!(h.running(WEB).is_empty());
    assert_eq!(h.events(WEB)[0], steady(WEB), "an empty service is steady");

    h.scale(WEB, 6);
    let first = h.step();
    assert_eq!(first[0].launch.len(), 6, "all six start in one round");
    h.settle();

    let running = h.running(WEB);
    assert_eq!(running.len(), 6);
    assert!(running.iter().all(|t| t.last_status == TaskStatus::Running));
    assert!(
        running
            .iter()
            .all(|t| t.started_by.as_deref() == Some(h.service(WEB).deployments[0].id.as_str()))
    );
    // Spread over zones, then over instances: two per zone, one per instance.
    assert_eq!(
        per_zone(&h).values().copied().collect::<Vec<_>>(),
        [2, 2, 2]
    );
    assert_eq!(per_instance(&h, WEB).len(), instances.len());
    let s = h.service(WEB);
    assert!(s.steady);
    assert_eq!(h.events(WEB)[0], steady(WEB));
    assert_eq!(
        h.count_events(WEB, "(service web) has started 6 tasks: (task "),
        1
    );
    assert_eq!(
        h.count_events(WEB, &steady(WEB)),
        2,
        "once empty, once at six"
    );
}

#[test]
fn scale_in_stops_by_the_reversed_placement_chain_keeping_zones_balanced() {
    let (mut h, _) = cluster(2);
    settled_replica(&mut h, 6);
    assert_eq!(
        per_zone(&h).values().copied().collect::<Vec<_>>(),
        [2, 2, 2]
    );

    h.scale(WEB, 3);
    let d = h.step();
    assert_eq!(d[0].stop.len(), 3);
    assert!(d[0].launch.is_empty());
    assert!(
        d[0].stop.iter().all(|s| s
            .reason
            .starts_with("Scaling activity initiated by (deployment ecs-svc/")),
        "{:?}",
        d[0].stop
    );
    // The zone spread is kept: one stop from each zone.
    assert_eq!(
        per_zone(&h).values().copied().collect::<Vec<_>>(),
        [1, 1, 1]
    );
    assert_eq!(
        h.count_events(WEB, "(service web) has stopped 3 running tasks: (task "),
        1
    );
    h.settle();
    assert_eq!(h.running(WEB).len(), 3);
    assert_eq!(
        per_zone(&h).values().copied().collect::<Vec<_>>(),
        [1, 1, 1]
    );
    for t in h.tasks(WEB).iter().filter(|t| !t.is_live()) {
        assert_eq!(t.stop_code.as_deref(), Some(STOP_CODE));
    }
    assert_eq!(h.events(WEB)[0], steady(WEB));
}

#[test]
fn scale_in_evens_out_a_lopsided_spread() {
    // Zones b and c have room for two tasks each, so twelve tasks land 8/2/2; scaling in to
    // six must take all six from zone a (a random choice would do so 3% of the time), and
    // within zone a, evenly from its two instances.
    let mut h = Harness::new();
    let a1 = h.add(host(4096, 8192).az(AZS[0]));
    let a2 = h.add(host(4096, 8192).az(AZS[0]));
    h.add(host(4096, 512).az(AZS[1]));
    h.add(host(4096, 512).az(AZS[2]));
    settled_replica(&mut h, 12);
    assert_eq!(
        per_zone(&h).values().copied().collect::<Vec<_>>(),
        [8, 2, 2]
    );

    h.scale(WEB, 6);
    h.settle();
    assert_eq!(
        per_zone(&h).values().copied().collect::<Vec<_>>(),
        [2, 2, 2]
    );
    let placement = per_instance(&h, WEB);
    assert_eq!((placement[&a1], placement[&a2]), (1, 1));
}

#[test]
fn a_scale_in_is_steady_only_once_its_tasks_have_stopped() {
    let (mut h, _) = cluster(1);
    settled_replica(&mut h, 3);
    h.scale(WEB, 1);
    assert_eq!(h.step()[0].stop.len(), 2);
    // The two are told to stop but still RUNNING: not steady yet, however often we look.
    assert!(h.step()[0].is_empty());
    assert!(!h.service(WEB).steady);
    assert_ne!(h.events(WEB)[0], steady(WEB));
    h.agents();
    h.step();
    assert!(h.service(WEB).steady);
    assert_eq!(h.events(WEB)[0], steady(WEB));
}

#[test]
fn scale_in_stops_tasks_that_are_not_healthy_yet_first() {
    let (mut h, _) = cluster(1);
    settled_replica(&mut h, 3);
    let healthy = ids(&h.running(WEB));

    h.scale(WEB, 5);
    let d = h.step();
    let pending: BTreeSet<TaskId> = d[0].launch.iter().map(|t| t.id).collect();
    assert_eq!(pending.len(), 2);
    // Before any agent starts them, the count goes back down.
    h.scale(WEB, 3);
    let d = h.step();
    let stopped: BTreeSet<TaskId> = d[0].stop.iter().map(|s| s.task).collect();
    assert_eq!(
        stopped, pending,
        "the PENDING tasks go, the healthy ones stay"
    );
    h.settle();
    assert_eq!(ids(&h.running(WEB)), healthy);
}

#[test]
fn a_task_whose_essential_container_exits_is_replaced() {
    let (mut h, _) = cluster(1);
    settled_replica(&mut h, 3);
    let victim = h.running(WEB)[0].id;

    h.exit(victim);
    assert_eq!(
        h.task(victim).stop_code.as_deref(),
        Some("EssentialContainerExited")
    );
    let d = h.step();
    assert_eq!(d[0].launch.len(), 1, "one replacement in the next round");
    assert!(d[0].stop.is_empty());
    h.settle();
    let running = h.running(WEB);
    assert_eq!(running.len(), 3);
    assert!(!ids(&running).contains(&victim));
    let s = h.service(WEB);
    assert_eq!(s.deployments[0].failed_tasks, 1);
    assert_eq!(h.events(WEB)[0], steady(WEB));
}

#[test]
fn tasks_of_a_lost_agent_are_replaced_on_other_instances() {
    let mut h = Harness::new();
    let a = h.add(host(4096, 8192));
    let b = h.add(host(4096, 8192));
    let c = h.add(host(4096, 8192));
    settled_replica(&mut h, 3);
    assert_eq!(per_instance(&h, WEB).len(), 3);
    let on_a: Vec<TaskId> = h
        .running(WEB)
        .iter()
        .filter(|t| t.instance == Some(a))
        .map(|t| t.id)
        .collect();
    assert_eq!(on_a.len(), 1);

    // A silent agent is not a lost one yet: its tasks still count.
    h.disconnect(a);
    assert!(h.step().iter().all(|d| d.is_empty()));

    h.lose_agent(a);
    let lost = h.task(on_a[0]);
    assert_eq!(lost.last_status, TaskStatus::Stopped);
    let d = h.step();
    assert_eq!(d[0].launch.len(), 1);
    assert_ne!(d[0].launch[0].instance, Some(a), "not on the lost instance");
    h.settle();
    let placement = per_instance(&h, WEB);
    assert_eq!(placement.values().sum::<usize>(), 3);
    assert!(!placement.contains_key(&a));
    assert!(placement.contains_key(&b) && placement.contains_key(&c));
    assert_eq!(
        h.service(WEB).deployments[0].failed_tasks,
        0,
        "a lost agent is not a failed task"
    );
}

/// Tasks still PENDING on an agent that is lost never got to run, but the host went away, not
/// the task: they are replaced and count neither towards the circuit breaker nor throttling.
#[test]
fn pending_tasks_of_a_lost_agent_are_not_failed_launches() {
    let mut h = Harness::new();
    let a = h.add(host(4096, 8192));
    h.add(host(4096, 8192));
    let v1 = h.register(def(GOOD));
    let mut s = h.replica(WEB, v1, 6);
    s.deployment_configuration.circuit_breaker.enable = true;
    h.create(s);
    // Placed, but the agents never report: every task stays PENDING.
    h.step();
    let on_a: Vec<TaskId> = h
        .tasks(WEB)
        .iter()
        .filter(|t| t.instance == Some(a))
        .map(|t| t.id)
        .collect();
    assert_eq!(on_a.len(), 3, "spread over the two instances");
    h.disconnect(a);
    h.lose_agent(a);
    for id in &on_a {
        let t = h.task(*id);
        assert_eq!(t.last_status, TaskStatus::Stopped);
        assert_eq!(t.stop_code.as_deref(), Some("TerminationNotice"));
    }
    h.settle();
    let s = h.service(WEB);
    assert_eq!(s.deployments[0].failed_tasks, 0);
    assert_eq!(s.deployments[0].rollout_state, RolloutState::Completed);
    assert_eq!(h.running(WEB).len(), 6);
    assert_eq!(
        h.count_events(WEB, "unable to consistently start tasks"),
        0,
        "no throttling"
    );
}

// --- rolling updates --------------------------------------------------------------------------

/// Deploys a new revision of an N-task service under `min`/`max` and checks, at every
/// half-round, that healthy tasks stay at or above ceil(N·min/100) and pending plus running
/// tasks at or below floor(N·max/100); that the rollout uses the whole of that room (the
/// arithmetic, not only the bounds); and that it ends COMPLETED with ECS's events.
fn rolling_update(n: u32, min: u32, max: u32) {
    let (mut h, _) = cluster(2);
    let v1 = h.register(def(GOOD));
    let v2 = h.register(def(BETTER));
    let mut s = h.replica(WEB, v1, n);
    s.deployment_configuration.minimum_healthy_percent = min;
    s.deployment_configuration.maximum_percent = max;
    h.create(s);
    h.settle();
    let old = ids(&h.running(WEB));
    assert_eq!(old.len(), n as usize);

    let lo = (n * min).div_ceil(100) as usize;
    let hi = (n * max / 100) as usize;
    h.bound(
        WEB,
        Bounds {
            min_healthy: lo,
            max_live: hi,
        },
    );
    let from = h.log.len();
    let id = h.deploy(WEB, v2);
    h.settle();

    let samples = &h.samples[WEB];
    let trough = samples.iter().map(|s| s.healthy).min().unwrap();
    let peak = samples.iter().map(|s| s.live).max().unwrap();
    assert_eq!(
        trough, lo,
        "({min},{max}) N={n}: the rollout goes down to the minimum"
    );
    assert_eq!(
        peak, hi,
        "({min},{max}) N={n}: the rollout goes up to the maximum"
    );
    assert_eq!(
        launches(&h, from),
        n as usize,
        "exactly N new tasks, none wasted"
    );

    let s = h.service(WEB);
    assert_eq!(s.deployments.len(), 1, "{:?}", s.deployments);
    let p = &s.deployments[0];
    assert_eq!(p.id, id);
    assert_eq!(p.status, DeploymentStatus::Primary);
    assert_eq!(p.revision, v2);
    assert_eq!(p.rollout_state, RolloutState::Completed);
    let running = h.running(WEB);
    assert_eq!(running.len(), n as usize);
    assert!(running.iter().all(|t| t.revision == v2 && h.is_healthy(t)));
    assert!(ids(&running).is_disjoint(&old));
    let events = h.events(WEB);
    assert_eq!(events[0], steady(WEB));
    assert_eq!(
        events[1],
        format!("(service web) (deployment {id}) deployment completed.")
    );
}

#[test]
fn rolling_update_100_200_n4() {
    rolling_update(4, 100, 200);
}

#[test]
fn rolling_update_100_200_n3() {
    rolling_update(3, 100, 200);
}

#[test]
fn rolling_update_50_100_n4() {
    rolling_update(4, 50, 100);
}

#[test]
fn rolling_update_50_100_n3() {
    rolling_update(3, 50, 100);
}

#[test]
fn rolling_update_0_100_n4() {
    rolling_update(4, 0, 100);
}

#[test]
fn rolling_update_0_100_n3() {
    rolling_update(3, 0, 100);
}

#[test]
fn rolling_update_50_150_n4() {
    rolling_update(4, 50, 150);
}

#[test]
fn rolling_update_50_150_n3() {
    rolling_update(3, 50, 150);
}

#[test]
fn rolling_update_75_125_n4() {
    rolling_update(4, 75, 125);
}

#[test]
fn both_percentages_at_100_is_stuck_and_says_so_once() {
    let (mut h, _) = cluster(1);
    let v1 = h.register(def(GOOD));
    let v2 = h.register(def(BETTER));
    let mut s = h.replica(WEB, v1, 2);
    s.deployment_configuration.minimum_healthy_percent = 100;
    s.deployment_configuration.maximum_percent = 100;
    h.create(s);
    h.settle();
    let old = ids(&h.running(WEB));

    h.deploy(WEB, v2);
    h.settle();
    h.step();
    assert_eq!(ids(&h.running(WEB)), old, "nothing was stopped or started");
    let s = h.service(WEB);
    assert_eq!(s.deployments.len(), 2);
    assert_eq!(s.deployments[0].rollout_state, RolloutState::InProgress);
    assert_eq!(
        h.count_events(WEB, &events::stuck(WEB, 2, 100, 100, 2, 2)),
        1
    );
    assert!(h.events(WEB)[0].starts_with(
        "(service web) is unable to deploy: minimumHealthyPercent 100 keeps 2 of 2 tasks running"
    ));
}

#[test]
fn a_rollout_that_rounding_leaves_no_room_for_is_stuck_and_says_so() {
    // One task under 50/150: at least ceil(0.5) = 1 must stay healthy and at most
    // floor(1.5) = 1 may run, so nothing can move, although neither percentage is 100.
    let (mut h, _) = cluster(1);
    let v1 = h.register(def(GOOD));
    let v2 = h.register(def(BETTER));
    let mut s = h.replica(WEB, v1, 1);
    s.deployment_configuration.minimum_healthy_percent = 50;
    s.deployment_configuration.maximum_percent = 150;
    h.create(s);
    h.settle();
    h.deploy(WEB, v2);
    h.settle();
    assert_eq!(h.running(WEB)[0].revision, v1);
    assert_eq!(
        h.count_events(WEB, &events::stuck(WEB, 1, 50, 150, 1, 1)),
        1,
        "{:?}",
        h.events(WEB)
    );
    assert!(h.events(WEB)[0].contains("minimumHealthyPercent 50 keeps 1 of 1 tasks"));

    // Raising maximumPercent is the way out.
    h.update(WEB, |s| s.deployment_configuration.maximum_percent = 200);
    h.settle();
    assert_eq!(h.running(WEB)[0].revision, v2);
    assert_eq!(h.service(WEB).deployments.len(), 1);
}

// --- health checks ----------------------------------------------------------------------------

#[test]
fn an_unhealthy_task_is_replaced_only_after_the_grace_period() {
    let (mut h, _) = cluster(1);
    let rev = h.register(def(GOOD).health_check());
    let mut s = h.replica(WEB, rev, 2);
    s.health_check_grace_period_seconds = Some(60);
    h.create(s);
    h.settle();
    let running = h.running(WEB);
    assert!(
        running
            .iter()
            .all(|t| t.health_status == HealthStatus::Healthy)
    );
    let victim = running[0].id;
    let started = h.task(victim).started_at.unwrap();

    h.advance(10_000);
    h.set_health(victim, HealthStatus::Unhealthy);
    let d = h.step();
    assert!(
        d[0].stop.is_empty() && d[0].launch.is_empty(),
        "in its grace period"
    );
    assert_eq!(d[0].wake_at, Some(started.saturating_add_ms(60_000)));

    h.now = started.saturating_add_ms(59_999);
    let d = h.step();
    assert!(
        d[0].stop.is_empty(),
        "one millisecond before the grace period ends"
    );

    h.advance(1);
    let d = h.step();
    assert_eq!(d[0].stop.len(), 1);
    assert_eq!(d[0].stop[0].task, victim);
    assert_eq!(d[0].stop[0].reason, UNHEALTHY_REASON);
    assert_eq!(d[0].launch.len(), 1, "replaced in the same round");
    assert_eq!(
        h.count_events(
            WEB,
            &format!("(service web) (task {victim}) failed container health checks.")
        ),
        1
    );
    h.settle();
    assert_eq!(h.running(WEB).len(), 2);
    assert!(h.running(WEB).iter().all(|t| h.is_healthy(t)));
    assert_eq!(
        h.task(victim).stopped_reason.as_deref(),
        Some(UNHEALTHY_REASON)
    );
}

#[test]
fn a_task_that_is_not_healthy_yet_does_not_count_towards_the_minimum() {
    // A revision that never passes its health check, under 100/200: the old tasks must stay
    // (they are the only healthy ones), whatever the new ones do.
    let (mut h, _) = cluster(1);
    let v1 = h.register(def(GOOD).health_check());
    let v2 = h.register(def(SICK).health_check());
    let mut s = h.replica(WEB, v1, 2);
    s.health_check_grace_period_seconds = Some(600);
    h.create(s);
    h.settle();
    let old = ids(&h.running(WEB));
    h.bound(
        WEB,
        Bounds {
            min_healthy: 2,
            max_live: 4,
        },
    );
    h.deploy(WEB, v2);
    h.settle();
    let running = h.running(WEB);
    assert!(old.is_subset(&ids(&running)), "the healthy old tasks stay");
    assert_eq!(running.len(), 4);
    assert_eq!(
        h.service(WEB).deployments[0].rollout_state,
        RolloutState::InProgress
    );
}

// --- the circuit breaker ----------------------------------------------------------------------

fn with_breaker(h: &mut Harness, n: u32, rollback: bool, min: u32, max: u32) -> (u32, u32) {
    let v1 = h.register(def(GOOD));
    let v2 = h.register(def(BROKEN));
    let mut s = h.replica(WEB, v1, n);
    s.deployment_configuration = DeploymentConfig {
        minimum_healthy_percent: min,
        maximum_percent: max,
        circuit_breaker: CircuitBreaker {
            enable: true,
            rollback,
        },
    };
    h.create(s);
    h.settle();
    (v1, v2)
}

#[test]
fn the_circuit_breaker_trips_at_the_failure_threshold() {
    // 8 tasks: threshold 4. Under 100/125 the rollout starts two at a time.
    let (mut h, _) = cluster(2);
    let (_, v2) = with_breaker(&mut h, 8, false, 100, 125);
    assert_eq!(failure_threshold(8), 4);
    let id = h.deploy(WEB, v2);

    assert_eq!(h.step()[0].launch.len(), 2);
    h.agents();
    let d = h.step();
    let p = &h.service(WEB).deployments[0];
    assert_eq!(
        (p.failed_tasks, p.rollout_state),
        (2, RolloutState::InProgress)
    );
    assert_eq!(
        d[0].launch.len(),
        2,
        "below the threshold, the rollout goes on"
    );
    h.agents();
    let d = h.step();
    assert!(d[0].launch.is_empty());
    let s = h.service(WEB);
    let p = &s.deployments[0];
    assert_eq!(p.id, id);
    assert_eq!(p.failed_tasks, 4);
    assert_eq!(p.rollout_state, RolloutState::Failed);
    assert_eq!(
        p.rollout_state_reason.as_deref(),
        Some("ECS deployment circuit breaker: tasks failed to start.")
    );
    assert_eq!(
        h.count_events(
            WEB,
            &format!("(service web) (deployment {id}) deployment failed: tasks failed to start.")
        ),
        1
    );
}

#[test]
fn the_circuit_breaker_counts_tasks_that_fail_their_health_checks() {
    // Tasks that run but never pass their health checks are failures too (ECS's second
    // stage); they are stopped once their (here zero) grace period is over.
    let (mut h, _) = cluster(2);
    let v1 = h.register(def(GOOD).health_check());
    let v2 = h.register(def(SICK).health_check());
    let mut s = h.replica(WEB, v1, 4);
    s.deployment_configuration.circuit_breaker = CircuitBreaker {
        enable: true,
        rollback: true,
    };
    h.create(s);
    h.settle();
    let failed = h.deploy(WEB, v2);
    h.bound(
        WEB,
        Bounds {
            min_healthy: 4,
            max_live: 8,
        },
    );
    h.settle();

    let sick: Vec<_> = h
        .tasks(WEB)
        .into_iter()
        .filter(|t| t.revision == v2)
        .collect();
    assert_eq!(sick.len(), 4, "one batch, then the breaker");
    assert!(
        sick.iter().all(
            |t| t.started_at.is_some() && t.stopped_reason.as_deref() == Some(UNHEALTHY_REASON)
        )
    );
    assert_eq!(h.count_events(WEB, "failed container health checks."), 4);
    assert_eq!(h.count_events(WEB, &events::failed(WEB, &failed)), 1);
    let s = h.service(WEB);
    assert_eq!(s.deployments.len(), 1);
    assert_eq!(s.deployments[0].revision, v1);
    assert_eq!(s.deployments[0].rollout_state, RolloutState::Completed);
    assert!(h.running(WEB).iter().all(|t| h.is_healthy(t)));
}

#[test]
fn a_failed_deployment_without_rollback_starts_no_new_tasks() {
    let (mut h, _) = cluster(2);
    let (v1, v2) = with_breaker(&mut h, 4, false, 100, 200);
    let old = ids(&h.running(WEB));
    h.deploy(WEB, v2);
    h.settle();
    let s = h.service(WEB);
    assert_eq!(s.deployments[0].rollout_state, RolloutState::Failed);
    let started = h.tasks(WEB).iter().filter(|t| t.revision == v2).count();
    assert_eq!(started, 4, "one batch, then nothing");
    assert_eq!(ids(&h.running(WEB)), old, "the old tasks keep serving");
    assert!(h.running(WEB).iter().all(|t| t.revision == v1));

    // Time passes, throttles end, retries come due: still nothing new.
    for _ in 0..5 {
        h.advance(600_000);
        h.settle();
    }
    assert_eq!(h.tasks(WEB).iter().filter(|t| t.revision == v2).count(), 4);
    assert_eq!(
        h.count_events(WEB, "is unable to consistently start tasks"),
        0
    );
    assert!(!h.service(WEB).steady);
}

#[test]
fn the_circuit_breaker_rolls_back_to_the_last_completed_deployment() {
    let (mut h, _) = cluster(2);
    let (v1, v2) = with_breaker(&mut h, 4, true, 100, 200);
    let completed = h.service(WEB).deployments[0].id.clone();
    let old = ids(&h.running(WEB));
    h.bound(
        WEB,
        Bounds {
            min_healthy: 4,
            max_live: 8,
        },
    );
    let failed = h.deploy(WEB, v2);

    h.step();
    h.agents(); // all four fail to start
    h.step();
    let s = h.service(WEB);
    let shown: Vec<_> = s
        .deployments
        .iter()
        .map(|d| (d.status, d.revision, d.rollout_state))
        .collect();
    assert_eq!(
        shown,
        [
            (DeploymentStatus::Primary, v1, RolloutState::InProgress),
            (DeploymentStatus::Active, v2, RolloutState::Failed),
            (DeploymentStatus::Active, v1, RolloutState::Completed),
        ],
        "the failed deployment stays visible while the rollback runs"
    );
    let rollback = s.deployments[0].id.clone();
    assert_ne!(rollback, completed, "a new deployment of the old revision");
    assert_eq!(
        s.deployments[0].rollout_state_reason.as_deref(),
        Some(
            format!("ECS deployment circuit breaker: rolling back to deploymentId {completed}.")
                .as_str()
        )
    );
    assert_eq!(
        h.count_events(WEB, &events::rolling_back(WEB, &failed, &completed)),
        1
    );

    h.settle();
    let s = h.service(WEB);
    assert_eq!(s.deployments.len(), 1, "{:?}", s.deployments);
    assert_eq!(s.deployments[0].id, rollback);
    assert_eq!(s.deployments[0].revision, v1);
    assert_eq!(s.deployments[0].rollout_state, RolloutState::Completed);
    let running = h.running(WEB);
    assert_eq!(running.len(), 4);
    assert!(
        running
            .iter()
            .all(|t| t.revision == v1 && t.started_by.as_deref() == Some(rollback.as_str()))
    );
    assert!(ids(&running).is_disjoint(&old));
    assert_eq!(h.events(WEB)[0], steady(WEB));
    assert_eq!(h.events(WEB)[1], events::completed(WEB, &rollback));
    assert_eq!(
        h.count_events(WEB, "is unable to consistently start tasks"),
        0
    );
    // The history keeps both drained deployments, newest first: the failed one points at
    // the rollback that replaced it (ROLLBACK_SUCCESSFUL now that it completed).
    let past: Vec<_> = s
        .past_deployments
        .iter()
        .map(|d| (d.id.clone(), d.rollout_state, d.rolled_back_by.clone()))
        .collect();
    assert_eq!(
        past,
        [
            (failed.clone(), RolloutState::Failed, Some(rollback.clone())),
            (completed.clone(), RolloutState::Completed, None),
        ]
    );
    let f = s.deployment(&failed).expect("in the history");
    assert!(f.finished_at.is_some());
    assert_eq!(
        f.history_status(s.deployment(&rollback), false),
        "ROLLBACK_SUCCESSFUL"
    );
    assert_eq!(
        s.deployments[0].sources,
        [failed.clone(), completed.clone()]
    );
}

#[test]
fn a_service_keeps_its_newest_finished_deployments() {
    let (mut h, _) = cluster(1);
    let rev = settled_replica(&mut h, 1);
    let mut ids = Vec::new();
    for _ in 0..MAX_PAST_DEPLOYMENTS + 3 {
        ids.push(h.deploy(WEB, rev));
        h.settle();
    }
    let s = h.service(WEB);
    assert_eq!(s.past_deployments.len(), MAX_PAST_DEPLOYMENTS);
    // Newest first: the one before the current PRIMARY leads.
    assert_eq!(s.past_deployments[0].id, ids[ids.len() - 2]);
    assert!(
        s.past_deployments
            .iter()
            .all(|d| d.rollout_state == RolloutState::Completed && d.finished_at.is_some())
    );
}

#[test]
fn a_rollback_that_fails_too_is_not_rolled_back_again() {
    // ECS: the deployment a rollback restores is not eligible for another rollback until it
    // completes. Here the old image breaks too while the rollback is under way.
    let (mut h, _) = cluster(2);
    let (v1, v2) = with_breaker(&mut h, 4, true, 100, 200);
    let old = ids(&h.running(WEB));
    let completed = h.service(WEB).deployments[0].id.clone();
    h.deploy(WEB, v2);
    h.step();
    h.agents(); // v2 fails to start
    assert_eq!(h.step()[0].launch.len(), 4, "the rollback starts");
    let rollback = h.service(WEB).deployments[0].id.clone();
    h.script(GOOD, Image::FailsToStart);
    h.settle();
    for _ in 0..3 {
        h.advance(600_000);
        h.settle();
    }

    let s = h.service(WEB);
    assert_eq!(s.deployments[0].id, rollback);
    assert_eq!(s.deployments[0].rollout_state, RolloutState::Failed);
    assert_eq!(
        s.deployments
            .iter()
            .map(|d| d.id.as_str())
            .collect::<Vec<_>>(),
        [rollback.as_str(), completed.as_str()],
        "no third deployment"
    );
    assert_eq!(h.tasks(WEB).iter().filter(|t| t.revision == v2).count(), 4);
    assert_eq!(h.tasks(WEB).iter().filter(|t| t.revision == v1).count(), 8);
    assert_eq!(
        ids(&h.running(WEB)),
        old,
        "the first deployment's tasks keep serving"
    );
}

#[test]
fn without_a_completed_deployment_a_tripped_breaker_stalls() {
    let (mut h, _) = cluster(1);
    let rev = h.register(def(BROKEN));
    let mut s = h.replica(WEB, rev, 2);
    s.deployment_configuration.circuit_breaker = CircuitBreaker {
        enable: true,
        rollback: true,
    };
    h.create(s);
    h.settle();
    h.advance(3_600_000);
    h.settle();
    let s = h.service(WEB);
    assert_eq!(s.deployments.len(), 1);
    assert_eq!(s.deployments[0].rollout_state, RolloutState::Failed);
    assert!(h.running(WEB).is_empty());
    // Threshold 3 for two tasks: two rounds of two launches, then it stops.
    assert_eq!(h.tasks(WEB).len(), 4);
}

// --- throttling -------------------------------------------------------------------------------

#[test]
fn repeated_launch_failures_are_throttled_on_virtual_time() {
    let (mut h, _) = cluster(1);
    let rev = h.register(def(BROKEN));
    let s = h.replica(WEB, rev, 2);
    h.create(s);
    let after = h.settings.backoff_after;
    let base = h.settings.backoff_base_ms;
    let t0 = h.now;
    h.settle();

    // Two rounds of two failures, then a pause: the fourth failure is one past the limit.
    let failed = h.tasks(WEB).len() as u32;
    assert_eq!(failed, 4);
    let until = t0.saturating_add_ms(base << (failed - after));
    let last = h.log.last().unwrap().1.clone();
    assert!(last.launch.is_empty());
    assert_eq!(last.wake_at, Some(until));
    assert_eq!(
        h.count_events(
            WEB,
            "(service web) is unable to consistently start tasks successfully."
        ),
        1
    );

    h.now = until.saturating_sub_ms(1);
    let d = h.step();
    assert!(d[0].launch.is_empty(), "not before the computed time");
    assert_eq!(d[0].wake_at, Some(until));
    h.now = until;
    let d = h.step();
    assert_eq!(d[0].launch.len(), 2, "at the computed time");
    h.agents();
    // Six failures now, the last at `until`: the next pause is twice as long again, twice.
    let d = h.step();
    assert!(d[0].launch.is_empty());
    assert_eq!(
        d[0].wake_at,
        Some(until.saturating_add_ms(base << (6 - after)))
    );
    assert_eq!(
        h.count_events(WEB, "is unable to consistently start tasks successfully"),
        2,
        "said again for the new pause"
    );
}

#[test]
fn the_throttle_is_capped() {
    // Four tasks fail per launch: pauses of 5 s · 2^(failures - 3), at most 12 s here.
    let (mut h, _) = cluster(1);
    h.settings.backoff_max_ms = 12_000;
    let rev = h.register(def(BROKEN));
    let s = h.replica(WEB, rev, 4);
    h.create(s);
    let mut pauses = Vec::new();
    for _ in 0..5 {
        h.settle();
        let last_failure = h
            .tasks(WEB)
            .iter()
            .filter_map(|t| t.stopped_at)
            .max()
            .unwrap();
        let wake = h.log.last().unwrap().1.wake_at.expect("throttled");
        pauses.push(wake.0 - last_failure.0);
        h.now = wake;
    }
    assert_eq!(pauses, [10_000, 12_000, 12_000, 12_000, 12_000]);
    assert_eq!(
        h.tasks(WEB).len(),
        20,
        "four launches per pause, never more"
    );
}

#[test]
fn a_new_task_definition_lifts_the_throttle() {
    let (mut h, _) = cluster(1);
    let broken = h.register(def(BROKEN));
    let good = h.register(def(GOOD));
    let s = h.replica(WEB, broken, 2);
    h.create(s);
    h.settle();
    assert_eq!(
        h.count_events(WEB, "is unable to consistently start tasks"),
        1
    );
    assert!(h.log.last().unwrap().1.wake_at > Some(h.now));

    // ECS: "If you update your service to use a new task definition, your service returns to
    // a normal, non-throttled state immediately."
    let id = h.deploy(WEB, good);
    let d = h.step();
    assert_eq!(
        d[0].launch.len(),
        2,
        "no waiting out the old revision's pause"
    );
    h.settle();
    let s = h.service(WEB);
    assert_eq!(s.deployments.len(), 1);
    assert_eq!(s.deployments[0].id, id);
    assert_eq!(s.deployments[0].rollout_state, RolloutState::Completed);
    assert_eq!(h.running(WEB).len(), 2);
}

#[test]
fn a_throttled_service_recovers_once_its_image_starts_again() {
    // The image disappears from the registry while the service runs: replacements fail to
    // start and are throttled; once the image is back, the next launch after the pause
    // brings the service back to a steady state.
    let (mut h, _) = cluster(1);
    settled_replica(&mut h, 2);
    h.advance(60_000);
    h.script(GOOD, Image::FailsToStart);
    let victim = h.running(WEB)[0].id;
    h.exit(victim);
    h.settle();
    assert_eq!(
        h.count_events(WEB, "is unable to consistently start tasks"),
        1
    );
    assert_eq!(h.running(WEB).len(), 1);
    let wake = h.log.last().unwrap().1.wake_at.expect("throttled");

    h.script(GOOD, Image::Starts);
    h.settle();
    assert_eq!(h.running(WEB).len(), 1, "still paused");
    h.now = wake;
    h.settle();
    assert_eq!(h.running(WEB).len(), 2);
    assert_eq!(h.events(WEB)[0], steady(WEB));
    assert!(h.log.last().unwrap().1.wake_at.is_none());
}

#[test]
fn tasks_that_stop_after_running_are_not_throttled() {
    // ECS: tasks that stop after reaching RUNNING do not start the throttle logic.
    let (mut h, _) = cluster(1);
    settled_replica(&mut h, 4);
    h.advance(10_000);
    let victims: Vec<TaskId> = h.running(WEB).iter().take(3).map(|t| t.id).collect();
    for v in &victims {
        h.exit(*v);
    }
    let d = h.step();
    assert_eq!(d[0].launch.len(), 3, "all replaced at once");
    h.settle();
    assert_eq!(h.running(WEB).len(), 4);
    assert_eq!(
        h.count_events(WEB, "is unable to consistently start tasks"),
        0
    );
}

// --- DAEMON -----------------------------------------------------------------------------------

#[test]
fn a_daemon_runs_one_task_per_active_instance_as_instances_come_and_go() {
    let mut h = Harness::new();
    let a = h.add(host(2048, 4096));
    let b = h.add(host(2048, 4096));
    let c = h.add(host(2048, 4096));
    let rev = h.register(def(GOOD));
    let s = h.daemon("agentd", rev);
    h.create(s);
    h.settle();
    let on = |h: &Harness| per_instance(h, "agentd").into_keys().collect::<Vec<_>>();
    assert_eq!(on(&h), [a, b, c]);
    assert_eq!(h.service("agentd").desired_count, 3);
    assert_eq!(h.events("agentd")[0], steady("agentd"));

    let d = h.add(host(2048, 4096));
    let decisions = h.step();
    assert_eq!(decisions[0].launch.len(), 1);
    assert_eq!(decisions[0].launch[0].instance, Some(d));
    h.settle();
    assert_eq!(on(&h), [a, b, c, d]);
    assert_eq!(h.service("agentd").desired_count, 4);

    h.drain(b);
    let decisions = h.step();
    assert_eq!(decisions[0].stop.len(), 1);
    assert_eq!(h.task(decisions[0].stop[0].task).instance, Some(b));
    assert_eq!(
        decisions[0].stop[0].reason,
        "Container instance is draining"
    );
    h.settle();
    assert_eq!(on(&h), [a, c, d]);
    assert_eq!(h.service("agentd").desired_count, 3);
    assert_eq!(h.events("agentd")[0], steady("agentd"));

    h.set_instance_status(b, InstanceStatus::Active);
    h.settle();
    assert_eq!(on(&h), [a, b, c, d]);

    h.ok(DeregisterContainerInstance {
        cluster: CLUSTER.into(),
        id: c,
        force: true,
    });
    h.settle();
    assert_eq!(on(&h), [a, b, d]);
    assert_eq!(h.service("agentd").desired_count, 3);
}

#[test]
fn a_daemon_waits_for_a_lost_agent_and_says_why_once() {
    let mut h = Harness::new();
    let a = h.add(host(2048, 4096));
    let b = h.add(host(2048, 4096));
    let rev = h.register(def(GOOD));
    let s = h.daemon("agentd", rev);
    h.create(s);
    h.settle();

    h.lose_agent(b);
    h.settle();
    let on = |h: &Harness| per_instance(h, "agentd").into_keys().collect::<Vec<_>>();
    assert_eq!(on(&h), [a]);
    let why = format!(
        "(service agentd) was unable to place a task because no container instance met all of its requirements. The closest matching (container-instance {b}) encountered error \"AGENT\""
    );
    assert_eq!(h.count_events("agentd", &why), 1);
    h.advance(h.settings.retry_unplaced_ms);
    h.settle();
    assert_eq!(h.count_events("agentd", &why), 1, "said once");

    h.ok(AgentConnectivity {
        cluster: CLUSTER.into(),
        ids: vec![b],
        connected: true,
    });
    h.settle();
    assert_eq!(on(&h), [a, b]);
    assert_eq!(h.events("agentd")[0], steady("agentd"));
}

#[test]
fn a_daemon_keeps_to_its_member_of_constraint() {
    let mut h = Harness::new();
    let a = h.add(host(2048, 4096).attr("role", "web"));
    let b = h.add(host(2048, 4096).attr("role", "web"));
    let c = h.add(host(2048, 4096).attr("role", "db"));
    let rev = h.register(def(GOOD));
    let mut s = h.daemon("agentd", rev);
    s.placement_constraints = vec![api::PlacementConstraint {
        r#type: Some("memberOf".into()),
        expression: Some("attribute:role == web".into()),
    }];
    h.create(s);
    h.settle();
    let on = |h: &Harness| per_instance(h, "agentd").into_keys().collect::<Vec<_>>();
    assert_eq!(on(&h), [a, b]);
    assert_eq!(h.service("agentd").desired_count, 2);

    h.put_attribute(c, "role", Some("web"));
    h.settle();
    assert_eq!(on(&h), [a, b, c]);

    h.delete_attribute(a, "role");
    let d = h.step();
    assert_eq!(d[0].stop.len(), 1);
    assert_eq!(h.task(d[0].stop[0].task).instance, Some(a));
    assert_eq!(
        d[0].stop[0].reason,
        "Container instance no longer meets the service's placement constraints"
    );
    h.settle();
    assert_eq!(
        on(&h),
        [b, c],
        "an instance that no longer qualifies loses its task"
    );
    assert_eq!(h.service("agentd").desired_count, 2);
}

#[test]
fn a_daemon_rolls_out_a_new_revision_within_minimum_healthy_percent() {
    let mut h = Harness::new();
    for _ in 0..4 {
        h.add(host(2048, 4096));
    }
    let v1 = h.register(def(GOOD));
    let v2 = h.register(def(BETTER));
    let mut s = h.daemon("agentd", v1);
    s.deployment_configuration.minimum_healthy_percent = 50;
    h.create(s);
    h.settle();
    let old = ids(&h.running("agentd"));
    assert_eq!(old.len(), 4);

    h.bound(
        "agentd",
        Bounds {
            min_healthy: 2,
            max_live: 4,
        },
    );
    let id = h.deploy("agentd", v2);
    h.settle();
    let samples = &h.samples["agentd"];
    assert_eq!(samples.iter().map(|s| s.healthy).min(), Some(2));
    let running = h.running("agentd");
    assert_eq!(running.len(), 4);
    assert!(running.iter().all(|t| t.revision == v2));
    assert!(ids(&running).is_disjoint(&old));
    let s = h.service("agentd");
    assert_eq!(s.deployments.len(), 1);
    assert_eq!(s.deployments[0].id, id);
    assert_eq!(s.deployments[0].rollout_state, RolloutState::Completed);
    assert_eq!(h.events("agentd")[1], events::completed("agentd", &id));
}

// --- draining ---------------------------------------------------------------------------------

#[test]
fn tasks_on_a_draining_instance_are_replaced_within_the_bounds_and_standalone_tasks_stay() {
    let mut h = Harness::new();
    let i1 = h.add(host(4096, 8192).az(AZS[0]));
    h.add(host(4096, 8192).az(AZS[0]));
    h.add(host(4096, 8192).az(AZS[1]));
    h.add(host(4096, 8192).az(AZS[1]));
    settled_replica(&mut h, 4);
    assert_eq!(per_instance(&h, WEB).len(), 4);
    let standalone = TaskId(0xfeed);
    let t = common::task(standalone, CLUSTER, i1, "family:web", needs(128, 256));
    h.ok(PlaceTasks {
        cluster: CLUSTER.into(),
        tasks: vec![t],
        client_token: None,
        distinct_instance: false,
    });
    h.agents();
    let on_i1 = h
        .running(WEB)
        .iter()
        .find(|t| t.instance == Some(i1))
        .unwrap()
        .id;

    h.bound(
        WEB,
        Bounds {
            min_healthy: 4,
            max_live: 8,
        },
    );
    h.drain(i1);
    let d = h.step();
    assert!(
        d[0].stop.is_empty(),
        "the task on the draining instance waits for its replacement"
    );
    assert_eq!(d[0].launch.len(), 1);
    assert_ne!(d[0].launch[0].instance, Some(i1));
    h.settle();

    assert!(!per_instance(&h, WEB).contains_key(&i1));
    assert_eq!(h.running(WEB).len(), 4);
    assert_eq!(h.task(on_i1).last_status, TaskStatus::Stopped);
    let st = h.task(standalone);
    assert_eq!(
        (st.last_status, st.desired_status),
        (TaskStatus::Running, DesiredStatus::Running),
        "tasks that are not the service's are not the service's to move"
    );
    assert_eq!(h.events(WEB)[0], steady(WEB));
}

#[test]
fn pending_tasks_on_a_draining_instance_are_stopped_at_once() {
    let mut h = Harness::new();
    let i1 = h.add(host(4096, 8192));
    h.add(host(4096, 8192));
    settled_replica(&mut h, 2);
    h.scale(WEB, 4);
    let d = h.step();
    let pending_on_i1: Vec<TaskId> = d[0]
        .launch
        .iter()
        .filter(|t| t.instance == Some(i1))
        .map(|t| t.id)
        .collect();
    assert_eq!(pending_on_i1.len(), 1);
    let running_on_i1 = h
        .running(WEB)
        .iter()
        .find(|t| t.instance == Some(i1) && t.last_status == TaskStatus::Running)
        .unwrap()
        .id;

    h.drain(i1);
    let d = h.step();
    let stopped: Vec<TaskId> = d[0].stop.iter().map(|s| s.task).collect();
    assert_eq!(
        stopped, pending_on_i1,
        "the PENDING one goes now, the RUNNING one waits"
    );
    // Replacements for both start elsewhere: 2 kept + 1 old + 1 stopping + 2 new is within
    // the 8 that maximumPercent 200 allows.
    assert_eq!(d[0].launch.len(), 2);
    assert!(d[0].launch.iter().all(|t| t.instance != Some(i1)));
    assert_eq!(h.task(running_on_i1).desired_status, DesiredStatus::Running);
    h.settle();
    assert_eq!(h.running(WEB).len(), 4);
    assert!(!per_instance(&h, WEB).contains_key(&i1));
}

// --- what cannot be placed, deletion ------------------------------------------------------------

#[test]
fn an_unplaceable_task_names_the_closest_instance_once() {
    let mut h = Harness::new();
    let small = h.add(host(2048, 512));
    let rev = h.register(def(GOOD).memory(1024));
    let s = h.replica(WEB, rev, 1);
    h.create(s);
    h.settle();
    let expected = format!(
        "(service web) was unable to place a task because no container instance met all of its requirements. The closest matching (container-instance {small}) has insufficient memory available"
    );
    assert_eq!(h.count_events(WEB, &expected), 1, "{:?}", h.events(WEB));
    let last = h.log.last().unwrap().1.clone();
    assert_eq!(
        last.wake_at,
        Some(h.now.saturating_add_ms(h.settings.retry_unplaced_ms))
    );

    for _ in 0..3 {
        h.advance(h.settings.retry_unplaced_ms);
        h.settle();
    }
    assert_eq!(
        h.count_events(WEB, &expected),
        1,
        "said once, not every round"
    );
    assert!(h.tasks(WEB).is_empty());

    let big = h.add(host(2048, 4096));
    h.settle();
    let running = h.running(WEB);
    assert_eq!(running.len(), 1);
    assert_eq!(running[0].instance, Some(big));
    assert_eq!(h.events(WEB)[0], steady(WEB));
}

#[test]
fn a_deleted_service_stops_its_tasks_and_becomes_inactive() {
    let (mut h, _) = cluster(1);
    settled_replica(&mut h, 3);
    h.delete(WEB);
    let d = h.step();
    assert_eq!(d[0].stop.len(), 3);
    h.settle();
    let s = h.service(WEB);
    assert_eq!(s.status, ServiceStatus::Inactive);
    assert!(
        s.deployments
            .iter()
            .all(|d| d.status == DeploymentStatus::Inactive)
    );
    assert!(h.tasks(WEB).iter().all(|t| !t.is_live()));
    assert!(h.state.live_services().next().is_none());
    assert!(h.step().is_empty(), "an INACTIVE service is not reconciled");
}

// --- the reconciler's contract ----------------------------------------------------------------

#[test]
fn reconcile_decides_nothing_new_on_the_state_its_decision_produced() {
    // Through a scale-out, a rolling update, a drain and a scale-in: after every commit,
    // before any agent moves, a second reconcile at the same moment decides nothing.
    let (mut h, instances) = cluster(2);
    let v1 = h.register(def(GOOD));
    let v2 = h.register(def(BETTER));
    let mut s = h.replica(WEB, v1, 4);
    s.deployment_configuration.minimum_healthy_percent = 50;
    s.deployment_configuration.maximum_percent = 150;
    h.create(s);
    let mut rounds = 0;
    for phase in 0..4 {
        match phase {
            0 => {}
            1 => {
                h.deploy(WEB, v2);
            }
            2 => h.drain(instances[0]),
            _ => h.scale(WEB, 2),
        }
        for _ in 0..20 {
            let first = h.step();
            let again = h.decide(WEB, 99);
            assert!(
                again.is_empty(),
                "round {rounds}: decided again: stop {:?}, launch {}, service changed {}",
                again.stop,
                again.launch.len(),
                again.service.is_some()
            );
            let moved = h.agents();
            rounds += 1;
            if first.iter().all(|d| d.is_empty()) && !moved {
                break;
            }
        }
        let settled = h.decide(WEB, 7);
        assert!(settled.is_empty());
    }
    assert_eq!(h.running(WEB).len(), 2);
    assert!(rounds > 8);
}

#[test]
fn reconcile_is_deterministic_per_seed() {
    let build = || {
        let (mut h, _) = cluster(2);
        let v1 = h.register(def(GOOD));
        let v2 = h.register(def(BETTER));
        let s = h.replica(WEB, v1, 5);
        h.create(s);
        h.settle();
        h.deploy(WEB, v2);
        h
    };
    let h = build();
    let a = h.decide(WEB, 42);
    assert_eq!(a.launch.len(), 5);
    assert_eq!(
        a,
        h.decide(WEB, 42),
        "same state, time and seed: same decision"
    );
    let b = h.decide(WEB, 43);
    let ids =
        |d: &berth_scheduler::service::Decision| d.launch.iter().map(|t| t.id).collect::<Vec<_>>();
    assert_ne!(ids(&a), ids(&b), "the seed is what varies");

    // Two clusters driven by the same script end up identical, event ids and task ids too.
    let mut one = build();
    let mut two = build();
    one.settle();
    two.settle();
    assert_eq!(one.service(WEB), two.service(WEB));
    assert_eq!(ids_of(&one), ids_of(&two));
}

fn ids_of(h: &Harness) -> Vec<(TaskId, Option<InstanceId>, TaskStatus)> {
    h.tasks(WEB)
        .iter()
        .map(|t| (t.id, t.instance, t.last_status))
        .collect()
}

#[test]
fn every_event_of_a_busy_service_has_its_own_id() {
    // Rounds that stop and start in one decision post two events from one seed.
    let (mut h, _) = cluster(2);
    let v1 = h.register(def(GOOD));
    let v2 = h.register(def(BETTER));
    let mut s = h.replica(WEB, v1, 4);
    s.deployment_configuration.minimum_healthy_percent = 50;
    s.deployment_configuration.maximum_percent = 150;
    h.create(s);
    h.settle();
    h.deploy(WEB, v2);
    h.settle(); // `check` asserts the ids are unique after every half-round
    let s = h.service(WEB);
    let mixed = h
        .log
        .iter()
        .any(|(_, d)| !d.stop.is_empty() && !d.launch.is_empty());
    assert!(mixed, "some round both stopped and started tasks");
    let unique: BTreeSet<&str> = s.events.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(unique.len(), s.events.len());
}

// --- task scale-in protection ----------------------------------------------------------------

const MINUTE: i64 = 60_000;

/// UpdateTaskProtection on `tasks` for `minutes` from now (`None` clears it).
fn protect(h: &mut Harness, tasks: &[TaskId], minutes: Option<i64>) {
    let until = minutes.map(|m| h.now.saturating_add_ms(m * MINUTE));
    let done = h.ok(UpdateTaskProtection {
        cluster: CLUSTER.into(),
        tasks: tasks.to_vec(),
        until,
    });
    assert!(done.failures.is_empty(), "{:?}", done.failures);
}

#[test]
fn scale_in_never_stops_protected_tasks_until_their_protection_lapses() {
    let (mut h, _) = cluster(1);
    settled_replica(&mut h, 4);
    let all: Vec<TaskId> = h.running(WEB).iter().map(|t| t.id).collect();
    let protected = &all[..3];
    protect(&mut h, protected, Some(10));

    // Down to one: only the unprotected task can go, and the service says why it stays above.
    h.scale(WEB, 1);
    let d = h.step();
    assert_eq!(
        d[0].stop.iter().map(|s| s.task).collect::<Vec<_>>(),
        [all[3]]
    );
    let until = h.now.saturating_add_ms(10 * MINUTE);
    assert_eq!(
        d[0].wake_at,
        Some(until),
        "looks again when protection lapses"
    );
    assert_eq!(
        h.count_events(WEB, "because they are protected from scale-in"),
        1
    );
    h.settle();
    assert_eq!(ids(&h.running(WEB)), protected.iter().copied().collect());
    assert!(
        !h.service(WEB).steady,
        "above its desired count: not steady"
    );

    // A minute before it lapses nothing changes; once it has, scale-in goes on.
    h.advance(9 * MINUTE);
    h.settle();
    assert_eq!(h.running(WEB).len(), 3);
    h.advance(MINUTE);
    h.settle();
    assert_eq!(h.running(WEB).len(), 1);
    assert!(h.service(WEB).steady);
}

#[test]
fn clearing_protection_lets_scale_in_take_the_task() {
    let (mut h, _) = cluster(1);
    settled_replica(&mut h, 2);
    let all: Vec<TaskId> = h.running(WEB).iter().map(|t| t.id).collect();
    protect(&mut h, &all, Some(120));
    h.scale(WEB, 1);
    h.settle();
    assert_eq!(h.running(WEB).len(), 2);

    protect(&mut h, &all[..1], None);
    h.settle();
    assert_eq!(ids(&h.running(WEB)), [all[1]].into_iter().collect());
}

#[test]
fn a_rolling_deployment_skips_protected_tasks_until_their_protection_expires() {
    let (mut h, _) = cluster(1);
    settled_replica(&mut h, 3);
    let old: Vec<TaskId> = h.running(WEB).iter().map(|t| t.id).collect();
    protect(&mut h, &old[..1], Some(5));

    let next = h.register(def(BETTER));
    h.deploy(WEB, next);
    h.settle();
    // Every old task but the protected one was replaced; the rollout waits for it.
    let running = h.running(WEB);
    assert!(
        running.iter().any(|t| t.id == old[0]),
        "the protected task runs on"
    );
    assert!(!running.iter().any(|t| old[1..].contains(&t.id)));
    assert_eq!(
        running.iter().filter(|t| t.revision == next).count(),
        3,
        "{running:?}"
    );
    let s = h.service(WEB);
    assert_eq!(s.deployments[0].rollout_state, RolloutState::InProgress);
    assert_eq!(s.deployments.len(), 2);

    h.advance(5 * MINUTE);
    h.settle();
    let running = h.running(WEB);
    assert_eq!(running.len(), 3);
    assert!(running.iter().all(|t| t.revision == next));
    let s = h.service(WEB);
    assert_eq!(s.deployments.len(), 1);
    assert_eq!(s.deployments[0].rollout_state, RolloutState::Completed);
    assert!(s.steady);
}

#[test]
fn only_live_service_tasks_can_be_protected() {
    let (mut h, _) = cluster(1);
    settled_replica(&mut h, 1);
    let task = h.running(WEB)[0].id;
    let missing = TaskId(42);
    let done = h.ok(UpdateTaskProtection {
        cluster: CLUSTER.into(),
        tasks: vec![task, missing, task],
        until: Some(h.now.saturating_add_ms(MINUTE)),
    });
    assert_eq!(done.done.len(), 1, "a task named twice is protected once");
    assert_eq!(
        done.done[0].protected_until,
        Some(h.now.saturating_add_ms(MINUTE))
    );
    assert_eq!(done.failures.len(), 1);
    assert_eq!(done.failures[0].reason, "MISSING");

    h.exit(task);
    h.agents();
    let done = h.ok(UpdateTaskProtection {
        cluster: CLUSTER.into(),
        tasks: vec![task],
        until: None,
    });
    assert_eq!(done.failures[0].reason, "TASK_NOT_VALID");
}

/// Live tasks of the service on capacity providers `a` and `b`, and on no provider.
fn per_provider(h: &Harness) -> [usize; 3] {
    let mut counts = [0; 3];
    for t in h.running(WEB) {
        let slot = match t.capacity_provider.as_deref() {
            Some("a") => 0,
            Some("b") => 1,
            _ => 2,
        };
        counts[slot] += 1;
    }
    counts
}

#[test]
fn a_capacity_provider_strategy_keeps_its_split_through_scaling() {
    use berth_model::capacity::{PROVIDER_ATTRIBUTE, StrategyItem};
    use berth_model::command::{CreateCapacityProvider, PutClusterCapacityProviders};
    use berth_scheduler::capacity::reservations;
    let mut h = Harness::new();
    for p in ["a", "b", "c"] {
        h.ok(CreateCapacityProvider {
            name: p.into(),
            auto_scaling_group: api::AutoScalingGroupProvider::default(),
            tags: Vec::new(),
        });
    }
    h.ok(PutClusterCapacityProviders {
        cluster: CLUSTER.into(),
        providers: vec!["a".into(), "b".into(), "c".into()],
        default_strategy: Vec::new(),
    });
    let a = h.add(host(4096, 8192).az(AZS[0]));
    let b = h.add(host(4096, 8192).az(AZS[1]));
    // An instance in no provider: a strategy never uses it.
    h.add(host(4096, 8192).az(AZS[2]));
    h.put_attribute(a, PROVIDER_ATTRIBUTE, Some("a"));
    h.put_attribute(b, PROVIDER_ATTRIBUTE, Some("b"));
    let rev = h.register(def(GOOD));
    let mut s = h.replica(WEB, rev, 10);
    let item = |provider: &str, base, weight| StrategyItem {
        provider: provider.into(),
        base,
        weight,
    };
    s.capacity_provider_strategy = vec![item("a", 2, 1), item("b", 0, 3)];
    h.create(s);
    h.settle();
    assert_eq!(per_provider(&h), [4, 6, 0]);
    // Scaling in stops only where a provider is above its share; scaling out tops each up.
    for (desired, expected) in [
        (6, [3, 3, 0]),
        (14, [5, 9, 0]),
        (1, [1, 0, 0]),
        (3, [2, 1, 0]),
    ] {
        h.scale(WEB, desired);
        h.settle();
        assert_eq!(per_provider(&h), expected, "at {desired}");
    }
    // Each busy provider needs the one instance it has: M = N = 1.
    let percent = |h: &Harness| -> Vec<(String, f64, u32)> {
        reservations(&h.state, CLUSTER)
            .into_iter()
            .map(|(p, r)| (p.to_string(), r.percent(), r.waiting_tasks))
            .collect()
    };
    assert_eq!(
        percent(&h),
        [
            ("a".into(), 100.0, 0),
            ("b".into(), 100.0, 0),
            ("c".into(), 100.0, 0)
        ]
    );
    // A provider without room: its share waits, the service says which provider it is, and
    // the provider's reservation asks for capacity (demand and no instance: 200).
    h.update(WEB, |s| {
        s.capacity_provider_strategy = vec![item("c", 0, 1)];
    });
    h.scale(WEB, 4);
    h.settle();
    assert!(
        h.count_events(WEB, "capacity provider c has no container instances") >= 1,
        "{:?}",
        h.events(WEB)
    );
    assert_eq!(percent(&h)[2], ("c".into(), 200.0, 4));
}

// ---- priorities ----

fn priority_tag(value: &str) -> Vec<Tag> {
    vec![Tag {
        key: PRIORITY_TAG.into(),
        value: value.into(),
    }]
}

#[test]
fn service_tasks_carry_their_priority_daemon_over_replica_and_the_service_tag_wins() {
    let (mut h, _) = cluster(1);
    let rev = h.register(def(GOOD));
    let web = h.replica(WEB, rev, 1);
    h.create(web);
    let agentd = h.daemon("agentd", rev);
    h.create(agentd);
    let mut batch = h.replica("batch", rev, 1);
    batch.tags = priority_tag("50");
    h.create(batch);
    h.settle();
    let priorities = |h: &Harness, name: &str| -> BTreeSet<u16> {
        h.tasks(name).iter().map(|t| t.priority().get()).collect()
    };
    assert_eq!(priorities(&h, WEB), BTreeSet::from([500]));
    assert_eq!(priorities(&h, "agentd"), BTreeSet::from([900]));
    assert_eq!(priorities(&h, "batch"), BTreeSet::from([50]));
    assert_eq!(priority_of(&h.state, &h.service("batch")).get(), 50);
    // A tag changed later is for the tasks launched afterwards.
    h.update(WEB, |s| s.tags = priority_tag("700"));
    assert_eq!(priority_of(&h.state, &h.service(WEB)).get(), 700);
    h.scale(WEB, 2);
    h.settle();
    assert_eq!(priorities(&h, WEB), BTreeSet::from([500, 700]));
}

#[test]
fn when_services_compete_for_the_same_room_the_higher_priority_one_commits_first() {
    let mut h = Harness::new();
    // Room for one 256 MiB task.
    h.add(host(1024, 256));
    let rev = h.register(def(GOOD));
    let mut batch = h.replica("batch", rev, 1);
    batch.tags = priority_tag("100");
    h.create(batch);
    let web = h.replica(WEB, rev, 1);
    h.create(web);
    // Both planned on one snapshot: each takes the only instance.
    let decisions = vec![h.decide("batch", 1), h.decide(WEB, 2)];
    assert!(decisions.iter().all(|d| d.launch.len() == 1));
    let bands = commit_bands(&h.state, decisions);
    let names: Vec<Vec<String>> = bands
        .iter()
        .map(|b| b.iter().map(|d| d.current.name.to_string()).collect())
        .collect();
    assert_eq!(names, vec![vec![WEB.to_owned()], vec!["batch".to_owned()]]);
    let mut placed = Vec::new();
    for band in bands {
        for d in band {
            let Placed { tasks, rejected } = h.ok(d.place_command().unwrap());
            placed.push((d.current.name.to_string(), tasks.len(), rejected.len()));
        }
    }
    assert_eq!(
        placed,
        vec![(WEB.to_owned(), 1, 0), ("batch".to_owned(), 0, 1)],
        "the lower-priority placement is refused at commit, to be planned again"
    );
}

// ---- preemption ----

/// Fills `instance` with `n` standalone tasks (priority 100) of `memory` MiB each, RUNNING.
fn fill(h: &mut Harness, instance: InstanceId, n: usize, memory: i64) -> Vec<TaskId> {
    let ids: Vec<TaskId> = (0..n)
        .map(|k| TaskId(0xba7c_0000 + u128::from(instance.0 as u64) * 100 + k as u128))
        .collect();
    let tasks = ids
        .iter()
        .map(|id| common::task(*id, CLUSTER, instance, "family:batch", needs(0, memory)))
        .collect();
    let Placed { tasks, rejected } = h.ok(PlaceTasks {
        cluster: CLUSTER.into(),
        tasks,
        client_token: None,
        distinct_instance: false,
    });
    assert!(rejected.is_empty() && tasks.len() == n, "{rejected:?}");
    h.agents();
    ids
}

fn preempted(h: &Harness, ids: &[TaskId]) -> Vec<TaskId> {
    ids.iter()
        .copied()
        .filter(|id| h.task(*id).stop_code.as_deref() == Some(preempt::STOP_CODE))
        .collect()
}

#[test]
fn a_service_preempts_standalone_tasks_on_a_full_cluster_and_reaches_a_steady_state() {
    let mut h = Harness::new();
    let a = h.add(host(1024, 512));
    let b = h.add(host(1024, 512));
    let rev = h.register(def(GOOD));
    let mut batch = fill(&mut h, a, 2, 256);
    batch.extend(fill(&mut h, b, 2, 256));
    let mut web = h.replica(WEB, rev, 2);
    web.tags = priority_tag("900");
    h.create(web);
    h.settle();
    let running = h.running(WEB);
    assert_eq!(running.len(), 2, "{:?}", h.events(WEB));
    let gone = preempted(&h, &batch);
    assert_eq!(
        gone.len(),
        2,
        "one 256 MiB batch task per web task, no more"
    );
    for id in &gone {
        let t = h.task(*id);
        assert_eq!(t.last_status, TaskStatus::Stopped);
        let reason = t.stopped_reason.as_deref().unwrap();
        assert!(
            running
                .iter()
                .any(|w| reason
                    .starts_with(&format!("Preempted by (task {}) of priority 900", w.id))),
            "{reason}"
        );
    }
    assert_eq!(h.events(WEB)[0], steady(WEB));
}

#[test]
fn a_preempted_service_task_says_why_in_its_service_and_is_replaced_where_there_is_room() {
    let mut h = Harness::new();
    h.add(host(1024, 256));
    let rev = h.register(def(GOOD));
    let mut batch = h.replica("batch", rev, 1);
    batch.tags = priority_tag("100");
    h.create(batch);
    h.settle();
    let victim = h.running("batch")[0].id;
    let web = h.replica(WEB, rev, 1);
    h.create(web);
    h.settle();
    let preemptor = h.running(WEB)[0].id;
    let t = h.task(victim);
    assert_eq!(t.stop_code.as_deref(), Some(preempt::STOP_CODE));
    let event = preempt::service_event(
        "batch",
        victim,
        preemptor,
        berth_model::priority::Priority::SERVICE,
        berth_model::priority::Priority::new(100).unwrap(),
    );
    let events = h.events("batch");
    assert!(events.contains(&event), "{events:#?}");
    assert!(
        events[0].contains("was unable to place a task"),
        "no room left for its replacement: {events:#?}"
    );
    // Room comes: the service replaces its task there, and the web task stays.
    h.add(host(1024, 256));
    h.settle();
    assert_eq!(h.running("batch").len(), 1);
    assert_eq!(h.running(WEB)[0].id, preemptor);
    assert_eq!(h.events("batch")[0], steady("batch"));
}

#[test]
fn protected_and_equal_priority_tasks_are_never_preempted_by_a_service() {
    let mut h = Harness::new();
    h.add(host(1024, 256));
    let rev = h.register(def(GOOD));
    let mut batch = h.replica("batch", rev, 1);
    batch.tags = priority_tag("100");
    h.create(batch);
    h.settle();
    let guarded = h.running("batch")[0].id;
    let until = berth_model::Millis(h.now.0 + 3_600_000);
    h.ok(UpdateTaskProtection {
        cluster: CLUSTER.into(),
        tasks: vec![guarded],
        until: Some(until),
    });
    let web = h.replica(WEB, rev, 1);
    h.create(web);
    let mut twin = h.replica("twin", rev, 1);
    twin.tags = priority_tag("100");
    h.create(twin);
    h.settle();
    assert!(h.task(guarded).is_live());
    assert!(h.running(WEB).is_empty() && h.running("twin").is_empty());
    assert!(h.events(WEB)[0].contains("was unable to place a task"));
    assert_eq!(
        h.decide(WEB, 7).preemption_misses,
        1,
        "the search that found no set is counted, once for the template"
    );
}

#[test]
fn a_daemon_lands_first_on_a_new_instance_preempting_what_got_there_before_it() {
    let mut h = Harness::new();
    h.add(host(1024, 512));
    let rev = h.register(def(GOOD));
    let agentd = h.daemon("agentd", rev);
    h.create(agentd);
    h.settle();
    assert_eq!(h.running("agentd").len(), 1);
    // A new instance, filled by batch work before the daemon's controller looked at it.
    let new = h.add(host(1024, 512));
    let batch = fill(&mut h, new, 2, 256);
    h.settle();
    let daemons: Vec<Option<InstanceId>> = h.running("agentd").iter().map(|t| t.instance).collect();
    assert!(
        daemons.contains(&Some(new)),
        "{daemons:?}: {:?}",
        h.events("agentd")
    );
    assert_eq!(preempted(&h, &batch).len(), 1, "one batch task made room");
    assert_eq!(h.events("agentd")[0], steady("agentd"));
}
