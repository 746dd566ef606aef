//! `place` on small, hand-built clusters: the documented behaviour of each strategy and
//! chain, each failure reason and its order, explain verdicts, StartTask and the constraints'
//! corner cases — one scenario per test, with the expected answer spelled out.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use berth_model::InstanceId;
use berth_model::command::FailureReason;
use berth_model::entity::{DYNAMIC_PORTS, Reservation, TaskStatus};
use berth_scheduler::{
    Constraint, PlacementRequest, SpreadField, Strategy, parse_constraint, parse_strategy, place,
};

use common::*;

fn member_of(expr: &str) -> Constraint {
    parse_constraint("memberOf", Some(expr)).unwrap()
}

fn spread_az() -> Strategy {
    parse_strategy("spread", Some("attribute:ecs.availability-zone")).unwrap()
}

fn binpack(field: &str) -> Strategy {
    parse_strategy("binpack", Some(field)).unwrap()
}

/// How often each instance was chosen for a one-task request over `seeds`.
fn picks(
    w: &World,
    req: &PlacementRequest,
    seeds: std::ops::Range<u64>,
) -> BTreeMap<InstanceId, usize> {
    let mut out = BTreeMap::new();
    for seed in seeds {
        let plan = place(&w.state, req, seed);
        *out.entry(plan.placements[0].instance).or_default() += 1;
    }
    out
}

// ---- strategies -------------------------------------------------------------------------------

#[test]
fn spread_by_zone_then_binpack_memory_takes_the_tightest_instance_of_the_emptiest_zone() {
    let mut w = World::new();
    let a_tight = w.add(host(4096, 1024).az("us-east-1a"));
    let a_roomy = w.add(host(4096, 8192).az("us-east-1a"));
    let b_roomy = w.add(host(4096, 6144).az("us-east-1b"));
    let b_tight = w.add(host(4096, 2048).az("us-east-1b"));
    let c_tight = w.add(host(4096, 1536).az("us-east-1c"));
    let c_roomy = w.add(host(4096, 4096).az("us-east-1c"));
    // The group: two tasks in 1a, one in 1c, none in 1b.
    w.run(a_roomy, "service:api", needs(0, 0));
    w.run(a_roomy, "service:api", needs(0, 0));
    w.run(c_roomy, "service:api", needs(0, 0));
    // Another group's tasks do not count for the spread (but do take memory).
    w.run(b_tight, "service:db", needs(0, 256));
    let mut req = request("service:api", needs(128, 512), 4);
    req.strategies = vec![spread_az(), binpack("memory")];
    for seed in 0..8 {
        let plan = place(&w.state, &req, seed);
        // 1b is emptiest: its tightest, b_tight (1792 free). Then 1b and 1c are even, and
        // b_tight is still the tightest of both zones (1280 free against c_tight's 1536).
        // Then 1c is emptiest: c_tight. Then all zones are even at two: the tightest of all,
        // b_tight again (768 free), not a_tight (1024) or c_tight (1024).
        assert_eq!(
            instances_of(&plan.placements),
            vec![b_tight, b_tight, c_tight, b_tight],
            "seed {seed}"
        );
        w.fork().commit(&req, &plan.placements);
    }
    let _ = (a_tight, b_roomy);
}

#[test]
fn binpack_then_random_picks_among_the_tightest_at_random() {
    let mut w = World::new();
    let tight: Vec<InstanceId> = (0..4).map(|_| w.add(host(2048, 1024))).collect();
    let roomy: Vec<InstanceId> = (0..2).map(|_| w.add(host(2048, 4096))).collect();
    // Too small for the task: the tightest of all, but infeasible.
    let small = w.add(host(2048, 256));
    let mut req = request("family:web", needs(128, 512), 1);
    req.strategies = vec![binpack("memory"), Strategy::Random];
    let got = picks(&w, &req, 0..64);
    let chosen: BTreeSet<InstanceId> = got.keys().copied().collect();
    assert!(
        chosen.is_subset(&tight.iter().copied().collect()),
        "{got:?}"
    );
    assert!(
        chosen.len() >= 3,
        "random should reach most of the tightest four: {got:?}"
    );
    assert!(!got.contains_key(&small) && roomy.iter().all(|r| !got.contains_key(r)));
}

#[test]
fn binpack_cpu_takes_the_least_cpu_left_not_the_least_memory() {
    let mut w = World::new();
    let cpu_tight = w.add(host(1024, 8192));
    let mem_tight = w.add(host(4096, 1024));
    let mut req = request("family:web", needs(512, 512), 1);
    req.strategies = vec![binpack("cpu")];
    for explain in [false, true] {
        let req = PlacementRequest {
            explain,
            ..req.clone()
        };
        assert_eq!(place(&w.state, &req, 1).placements[0].instance, cpu_tight);
    }
    req.strategies = vec![binpack("memory")];
    assert_eq!(place(&w.state, &req, 1).placements[0].instance, mem_tight);
}

#[test]
fn binpack_packs_a_multi_task_request_onto_the_fullest_instances_first() {
    let mut w = World::new();
    let big = w.add(host(8192, 8192));
    let mid = w.add(host(8192, 2048));
    let small = w.add(host(8192, 1024));
    w.run(big, "other", needs(0, 7168));
    // Free memory: big 1024, mid 2048, small 1024. Tasks of 512: fill big and small (ties by
    // seed) before mid, and never exceed what is free.
    let mut req = request("family:web", needs(1, 512), 8);
    req.strategies = vec![binpack("memory")];
    for explain in [false, true] {
        let req = PlacementRequest {
            explain,
            ..req.clone()
        };
        let plan = place(&w.state, &req, 3);
        let used = instances_of(&plan.placements);
        assert_eq!(used.len(), 8);
        let first_four: BTreeSet<_> = used[..4].iter().copied().collect();
        assert_eq!(first_four, [big, small].into());
        assert!(used[4..].iter().all(|i| *i == mid));
        w.fork().commit(&req, &plan.placements);
    }
}

#[test]
fn random_alone_spreads_over_the_feasible_instances_across_seeds() {
    let mut w = World::new();
    let feasible: Vec<InstanceId> = (0..4).map(|_| w.add(host(1024, 1024))).collect();
    let draining = w.add(host(1024, 1024));
    w.drain(draining);
    let small = w.add(host(64, 1024));
    let mut req = request("family:web", needs(128, 128), 1);
    req.strategies = vec![Strategy::Random];
    for req in [
        req.clone(),
        PlacementRequest {
            strategies: Vec::new(),
            ..req
        },
    ] {
        let got = picks(&w, &req, 0..400);
        assert_eq!(got.keys().copied().collect::<Vec<_>>(), feasible, "{got:?}");
        // Roughly uniform: each of four gets 100 ± a generous margin.
        assert!(got.values().all(|n| (50..=150).contains(n)), "{got:?}");
        assert!(!got.contains_key(&small));
    }
}

#[test]
fn spread_treats_a_missing_attribute_as_a_value_of_its_own() {
    let mut w = World::new();
    let a = w.add(host(1024, 1024).az("us-east-1a"));
    let none = w.add(host(1024, 1024));
    w.run(a, "service:api", needs(0, 0));
    let mut req = request("service:api", needs(1, 1), 1);
    req.strategies = vec![spread_az()];
    for seed in 0..8 {
        assert_eq!(place(&w.state, &req, seed).placements[0].instance, none);
    }
}

#[test]
fn spread_ignores_stopped_tasks_and_tasks_of_other_groups() {
    let mut w = World::new();
    let a = w.add(host(4096, 4096));
    let b = w.add(host(4096, 4096));
    let stopped = w.run(a, "service:api", needs(0, 0));
    w.report(stopped, TaskStatus::Stopped);
    w.run(a, "service:db", needs(0, 0));
    w.run(b, "service:api", needs(0, 0));
    let mut req = request("service:api", needs(1, 1), 1);
    req.strategies = vec![Strategy::Spread(SpreadField::Instance)];
    for seed in 0..8 {
        assert_eq!(place(&w.state, &req, seed).placements[0].instance, a);
    }
}

// ---- constraints ------------------------------------------------------------------------------

#[test]
fn distinct_instance_counts_live_tasks_of_the_group_and_this_plan() {
    let mut w = World::new();
    let busy = w.add(host(4096, 4096));
    let had_one = w.add(host(4096, 4096));
    let others = w.add(host(4096, 4096));
    let free = w.add(host(4096, 4096));
    w.run(busy, "service:api", needs(1, 1));
    let done = w.run(had_one, "service:api", needs(1, 1));
    w.report(done, TaskStatus::Stopped);
    w.run(others, "service:db", needs(1, 1));
    let mut req = request("service:api", needs(1, 1), 4);
    req.constraints = vec![Constraint::DistinctInstance];
    let plan = place(&w.state, &req, 7);
    let used: BTreeSet<InstanceId> = instances_of(&plan.placements).into_iter().collect();
    assert_eq!(used, [had_one, others, free].into());
    assert_eq!(
        plan.placements.len(),
        3,
        "three instances are free of the group"
    );
    let busy_says = plan.rejections.iter().find(|r| r.instance == busy).unwrap();
    assert_eq!(busy_says.reason, FailureReason::Attribute);
    assert!(
        busy_says.detail.contains("distinctInstance"),
        "{busy_says:?}"
    );
    w.fork().commit(&req, &plan.placements);
}

#[test]
fn member_of_task_group_sees_the_tasks_this_plan_has_placed() {
    let mut w = World::new();
    let ids: Vec<InstanceId> = (0..3).map(|_| w.add(host(4096, 4096))).collect();
    let db = w.add(host(4096, 4096));
    w.run(db, "service:db", needs(1, 1));
    // Anti-affinity with itself: at most one task of the group per instance, like
    // distinctInstance.
    let mut req = request("service:api", needs(1, 1), 5);
    req.constraints = vec![member_of("not(task:group == service:api)")];
    let plan = place(&w.state, &req, 1);
    let used: BTreeSet<InstanceId> = instances_of(&plan.placements).into_iter().collect();
    assert_eq!(plan.placements.len(), 4);
    assert_eq!(used.len(), 4);
    // Affinity with the db: only where a db task runs.
    req.constraints = vec![member_of("task:group == service:db")];
    let plan = place(&w.state, &req, 1);
    assert_eq!(instances_of(&plan.placements), vec![db; 5]);
    let _ = ids;
}

#[test]
fn member_of_filters_on_attributes_and_running_tasks() {
    let mut w = World::new();
    let t2 = w.add(host(4096, 4096).kind("t2.small").az("us-east-1a"));
    let m5 = w.add(host(4096, 4096).kind("m5.large").az("us-east-1b"));
    let t3 = w.add(host(4096, 4096).kind("t3.micro").az("us-east-1b"));
    let running = w.run(t3, "service:db", needs(1, 1));
    w.report(running, TaskStatus::Running);
    let mut req = request("service:api", needs(1, 1), 1);
    req.constraints = vec![member_of("attribute:ecs.instance-type =~ t.*")];
    let got = picks(&w, &req, 0..32);
    assert_eq!(
        got.keys().copied().collect::<BTreeSet<_>>(),
        [t2, t3].into()
    );
    req.constraints.push(member_of("runningTasksCount == 0"));
    assert_eq!(
        picks(&w, &req, 0..8).keys().copied().collect::<Vec<_>>(),
        vec![t2]
    );
    req.constraints = vec![member_of(
        "attribute:ecs.availability-zone in [us-east-1b] and not (attribute:ecs.instance-type =~ t.*)",
    )];
    assert_eq!(
        picks(&w, &req, 0..8).keys().copied().collect::<Vec<_>>(),
        vec![m5]
    );
}

// ---- failures ---------------------------------------------------------------------------------

#[test]
fn when_nothing_fits_every_instance_is_listed_with_its_reason_closest_first() {
    let mut w = World::new();
    let draining = w.add(host(4096, 4096).kind("t2.small"));
    let disconnected = w.add(host(4096, 4096).kind("t2.small"));
    let cpu_far = w.add(host(128, 4096).kind("t2.small"));
    let cpu_near = w.add(host(384, 4096).kind("t2.small"));
    let memory = w.add(host(4096, 256).kind("t2.small"));
    let tcp = w.add(host(4096, 4096).kind("t2.small").ports(&[22, 8080]));
    let udp = w.add(host(4096, 4096).kind("t2.small"));
    w.run(
        udp,
        "other",
        Reservation {
            udp: vec![53],
            ..needs(0, 0)
        },
    );
    let attribute = w.add(host(4096, 4096).kind("m5.large"));
    let deregistered = w.add(host(4096, 4096).kind("t2.small"));
    w.drain(draining);
    w.deregister(deregistered);
    w.disconnect(&[disconnected]);
    let mut req = request(
        "family:web",
        Reservation {
            tcp: vec![8080],
            udp: vec![53],
            ..needs(512, 1024)
        },
        1,
    );
    req.constraints = vec![member_of("attribute:ecs.instance-type == t2.small")];
    req.strategies = vec![binpack("memory")];
    for explain in [false, true] {
        let req = PlacementRequest {
            explain,
            ..req.clone()
        };
        let plan = place(&w.state, &req, 0);
        assert!(plan.placements.is_empty());
        let got: Vec<(InstanceId, &str)> = plan
            .rejections
            .iter()
            .map(|r| (r.instance, r.reason.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                (attribute, "ATTRIBUTE"),
                (udp, "RESOURCE:PORTS_UDP"),
                (tcp, "RESOURCE:PORTS"),
                (memory, "RESOURCE:MEMORY"),
                (cpu_near, "RESOURCE:CPU"),
                (cpu_far, "RESOURCE:CPU"),
                (draining, "INACTIVE"),
                (disconnected, "AGENT"),
            ],
            "explain = {explain}"
        );
        for r in &plan.rejections {
            assert!(r.detail.contains(&r.instance.to_string()), "{r:?}");
        }
        let detail = |i: InstanceId| {
            plan.rejections
                .iter()
                .find(|r| r.instance == i)
                .unwrap()
                .detail
                .clone()
        };
        assert!(
            detail(cpu_near).contains("384 CPU units free; the task needs 512"),
            "{}",
            detail(cpu_near)
        );
        assert!(
            detail(memory).contains("256 MiB of memory free; the task needs 1024"),
            "{}",
            detail(memory)
        );
        assert!(detail(tcp).contains("TCP port 8080"), "{}", detail(tcp));
        assert!(detail(udp).contains("UDP port 53"), "{}", detail(udp));
        assert!(
            detail(attribute).contains("memberOf"),
            "{}",
            detail(attribute)
        );
        assert!(
            detail(draining).contains("DRAINING"),
            "{}",
            detail(draining)
        );
        assert!(
            detail(disconnected).contains("not connected"),
            "{}",
            detail(disconnected)
        );
    }
}

#[test]
fn a_partial_plan_says_why_the_next_task_did_not_fit() {
    let mut w = World::new();
    let a = w.add(host(1024, 4096));
    let b = w.add(host(512, 4096));
    let req = request("family:web", needs(512, 128), 5);
    let plan = place(&w.state, &req, 0);
    assert_eq!(plan.placements.len(), 3);
    let got: Vec<(InstanceId, FailureReason)> = plan
        .rejections
        .iter()
        .map(|r| (r.instance, r.reason))
        .collect();
    assert_eq!(
        got,
        vec![
            (a, FailureReason::ResourceCpu),
            (b, FailureReason::ResourceCpu)
        ]
    );
    assert!(
        plan.rejections[0].detail.contains("0 CPU units free"),
        "{:?}",
        plan.rejections
    );
    w.fork().commit(&req, &plan.placements);
}

#[test]
fn tcp_ports_are_checked_before_udp_ports_dynamic_ones_included() {
    let mut w = World::new();
    // No dynamic TCP port left, and the task's static UDP port is taken too: the TCP filter
    // comes first, so the reason is RESOURCE:PORTS.
    let all: Vec<u16> = DYNAMIC_PORTS.collect();
    let both = w.add(host(4096, 4096).ports(&all).udp_ports(&[53]));
    let mut req = request(
        "family:web",
        Reservation {
            udp: vec![53],
            ..needs(1, 1)
        },
        1,
    );
    req.dynamic_tcp = 1;
    let plan = place(&w.state, &req, 0);
    assert_eq!(plan.rejections.len(), 1);
    assert_eq!(plan.rejections[0].instance, both);
    assert_eq!(
        plan.rejections[0].reason,
        FailureReason::ResourcePorts,
        "{:?}",
        plan.rejections
    );
    assert!(
        plan.rejections[0]
            .detail
            .contains("0 free dynamic TCP ports"),
        "{:?}",
        plan.rejections
    );
    // With TCP room, the UDP conflict is what is left.
    req.dynamic_tcp = 0;
    let plan = place(&w.state, &req, 0);
    assert_eq!(plan.rejections[0].reason, FailureReason::ResourcePortsUdp);
    // And dynamic UDP ports run out on their own.
    let mut w = World::new();
    w.add(host(4096, 4096).udp_ports(&all));
    let mut req = request("family:web", needs(1, 1), 1);
    req.dynamic_udp = 1;
    let plan = place(&w.state, &req, 0);
    assert_eq!(plan.rejections[0].reason, FailureReason::ResourcePortsUdp);
    assert!(
        plan.rejections[0]
            .detail
            .contains("0 free dynamic UDP ports"),
        "{:?}",
        plan.rejections
    );
}

#[test]
fn an_empty_cluster_plans_nothing_and_blames_no_instance() {
    let w = World::new();
    let plan = place(&w.state, &request("family:web", needs(1, 1), 2), 0);
    assert!(plan.placements.is_empty() && plan.rejections.is_empty());
}

// ---- explain ----------------------------------------------------------------------------------

#[test]
fn explain_gives_every_instance_a_verdict() {
    let mut w = World::new();
    let chosen = w.add(host(4096, 1024).az("us-east-1b"));
    let looser = w.add(host(4096, 4096).az("us-east-1b"));
    let busier_zone = w.add(host(4096, 512).az("us-east-1a"));
    let small = w.add(host(64, 4096).az("us-east-1c"));
    let draining = w.add(host(4096, 4096).az("us-east-1c"));
    w.drain(draining);
    w.run(busier_zone, "service:api", needs(0, 0));
    let mut req = request("service:api", needs(128, 256), 1);
    req.strategies = vec![spread_az(), binpack("memory")];
    req.explain = true;
    let plan = place(&w.state, &req, 0);
    assert_eq!(instances_of(&plan.placements), vec![chosen]);
    let v: BTreeMap<InstanceId, _> = plan.verdicts.iter().map(|v| (v.instance, v)).collect();
    assert_eq!(v.len(), 5);
    assert_eq!(
        (
            v[&chosen].placed,
            &v[&chosen].rejection,
            &v[&chosen].passed_over
        ),
        (1, &None, &None)
    );
    let over = |i: InstanceId| v[&i].passed_over.clone().unwrap_or_default();
    assert!(
        over(looser)
            .starts_with("binpack(memory): 3840 would remain free; the tightest fit leaves 768"),
        "{}",
        over(looser)
    );
    assert!(
        over(busier_zone).starts_with(
            "spread(attribute:ecs.availability-zone): its value 'us-east-1a' already has 1"
        ),
        "{}",
        over(busier_zone)
    );
    assert_eq!(
        v[&small].rejection.as_ref().unwrap().0,
        FailureReason::ResourceCpu
    );
    assert_eq!(
        v[&draining].rejection.as_ref().unwrap().0,
        FailureReason::Inactive
    );
    for i in [looser, busier_zone] {
        assert_eq!(v[&i].placed, 0);
        assert!(v[&i].rejection.is_none());
    }
    // Without explain, no verdicts — and the same decision.
    let quiet = place(
        &w.state,
        &PlacementRequest {
            explain: false,
            ..req.clone()
        },
        0,
    );
    assert!(quiet.verdicts.is_empty());
    assert_eq!(quiet.placements, plan.placements);
}

#[test]
fn explain_names_random_choices() {
    let mut w = World::new();
    let ids: Vec<InstanceId> = (0..3).map(|_| w.add(host(1024, 1024))).collect();
    let mut req = request("family:web", needs(1, 1), 2);
    req.explain = true;
    // No strategy: ties broken by the seed.
    let plan = place(&w.state, &req, 5);
    let first = plan.placements[0].instance;
    for v in &plan.verdicts {
        if v.instance != first {
            assert_eq!(
                v.passed_over.as_deref(),
                Some("an equally good instance was picked at random")
            );
        }
    }
    assert_eq!(plan.verdicts.iter().map(|v| v.placed).sum::<usize>(), 2);
    // An explicit random strategy says so.
    req.strategies = vec![Strategy::Random];
    let plan = place(&w.state, &req, 5);
    let first = plan.placements[0].instance;
    for v in plan.verdicts.iter().filter(|v| v.instance != first) {
        assert_eq!(
            v.passed_over.as_deref(),
            Some("random: another instance was picked")
        );
    }
    let _ = ids;
}

#[test]
fn explain_when_nothing_fits_rejects_every_instance() {
    let mut w = World::new();
    let a = w.add(host(64, 1024));
    let b = w.add(host(1024, 64));
    let mut req = request("family:web", needs(128, 128), 1);
    req.explain = true;
    let plan = place(&w.state, &req, 0);
    let got: Vec<_> = plan
        .verdicts
        .iter()
        .map(|v| (v.instance, v.rejection.as_ref().map(|r| r.0), v.placed))
        .collect();
    assert_eq!(
        got,
        vec![
            (a, Some(FailureReason::ResourceCpu), 0),
            (b, Some(FailureReason::ResourceMemory), 0)
        ]
    );
    assert!(plan.verdicts.iter().all(|v| v.passed_over.is_none()));
}

// ---- StartTask --------------------------------------------------------------------------------

#[test]
fn start_task_places_one_task_per_listed_instance_ignoring_constraints_and_strategies() {
    let mut w = World::new();
    let a = w.add(host(1024, 1024).kind("m5.large"));
    let b = w.add(host(1024, 1024).kind("t2.small"));
    let roomy = w.add(host(8192, 8192).kind("t2.small"));
    let small = w.add(host(64, 1024));
    let draining = w.add(host(1024, 1024));
    w.drain(draining);
    let gone = w.add(host(1024, 1024));
    w.deregister(gone);
    let foreign = w.add_to(OTHER, host(8192, 8192));
    let unknown = InstanceId(0xdead_beef);
    // `a` already runs the group, fails the memberOf, and is not the binpack choice: all
    // ignored for StartTask.
    w.run(a, "service:api", needs(0, 1));
    let mut req = request("service:api", needs(512, 256), 0);
    req.constraints = vec![
        Constraint::DistinctInstance,
        member_of("attribute:ecs.instance-type == t2.small"),
    ];
    req.strategies = vec![binpack("memory")];
    req.dynamic_tcp = 1;
    req.instances = Some(vec![a, foreign, b, unknown, small, draining, gone, a, a]);
    let plan = place(&w.state, &req, 0);
    assert_eq!(
        instances_of(&plan.placements),
        vec![a, b, a],
        "one per listed instance that can take it"
    );
    assert!(!instances_of(&plan.placements).contains(&roomy));
    let got: Vec<(InstanceId, FailureReason)> = plan
        .rejections
        .iter()
        .map(|r| (r.instance, r.reason))
        .collect();
    assert_eq!(
        got,
        vec![
            (foreign, FailureReason::Missing),
            (unknown, FailureReason::Missing),
            (small, FailureReason::ResourceCpu),
            (draining, FailureReason::Inactive),
            (gone, FailureReason::Inactive),
            // The third task for `a` finds the first two holding its CPU.
            (a, FailureReason::ResourceCpu),
        ]
    );
    for r in &plan.rejections {
        assert!(r.detail.contains(&r.instance.to_string()), "{r:?}");
    }
    // The two tasks on `a` got different dynamic ports.
    assert_ne!(
        plan.placements[0].dynamic_tcp,
        plan.placements[2].dynamic_tcp
    );
    let mut fork = w.fork();
    // StartTask does not ask the commit check for distinctInstance either.
    let req = PlacementRequest {
        constraints: Vec::new(),
        ..req
    };
    fork.commit(&req, &plan.placements);
}
