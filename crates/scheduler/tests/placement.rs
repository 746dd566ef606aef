//! Properties of `place` on random clusters: every plan passes the state machine's own commit
//! check, satisfies every constraint, follows the strategy chain, picks dynamic ports that
//! collide with nothing, gives up only when no instance can take another task (saying why for
//! each), explains itself, and is a pure function of (snapshot, request, seed).
//!
//! The reference for "follows the strategy chain" and "why" is `common::oracle`, a brute-force
//! model that sums usage from the tasks themselves rather than from the state's indexes.

mod common;

use std::collections::{BTreeSet, HashMap};

use berth_model::InstanceId;
use berth_model::command::FailureReason;
use berth_model::entity::{DYNAMIC_PORTS, Reservation, TaskStatus};
use berth_scheduler::{
    BinpackField, Constraint, PlacementRequest, Plan, SpreadField, Strategy, parse_constraint,
    place,
};
use berth_state::State;
use proptest::prelude::*;
use proptest::strategy::Strategy as Gen;

use common::*;

const AZS: [&str; 3] = ["us-east-1a", "us-east-1b", "us-east-1c"];
const TYPES: [&str; 4] = ["t2.small", "t3.large", "m5.xlarge", "c5.large"];
const GROUPS: [&str; 3] = ["service:api", "service:db", "family:web"];
/// A window of the dynamic range that "crowded" hosts leave free, so dynamic ports run out and
/// collide often enough to test.
const WINDOW: std::ops::RangeInclusive<u16> = 63000..=63005;
const TCP_POOL: [u16; 7] = [22, 80, 443, 8080, 61153, 63001, 63003];
const UDP_POOL: [u16; 4] = [53, 123, 61153, 63002];

#[derive(Debug, Clone, Copy)]
enum Condition {
    Active,
    Draining,
    Disconnected,
    Deregistered,
}

#[derive(Debug, Clone)]
struct HostSpec {
    cpu: i64,
    memory: i64,
    ports: Vec<u16>,
    udp_ports: Vec<u16>,
    crowded: bool,
    az: Option<usize>,
    kind: usize,
    stack: Option<&'static str>,
    condition: Condition,
}

#[derive(Debug, Clone)]
struct TaskSpec {
    host: usize,
    group: usize,
    cpu: i64,
    memory: i64,
    tcp: Vec<u16>,
    udp: Vec<u16>,
    dynamic_tcp: Vec<u16>,
    dynamic_udp: Vec<u16>,
    status: TaskStatus,
}

#[derive(Debug, Clone)]
struct ClusterSpec {
    hosts: Vec<HostSpec>,
    tasks: Vec<TaskSpec>,
}

#[derive(Debug, Clone)]
struct RequestSpec {
    group: usize,
    cpu: i64,
    memory: i64,
    tcp: Vec<u16>,
    udp: Vec<u16>,
    dynamic_tcp: usize,
    dynamic_udp: usize,
    count: usize,
    distinct: bool,
    member_of: Vec<String>,
    strategies: Vec<Strategy>,
    seed: u64,
}

fn subset(pool: &'static [u16], max: usize) -> impl Gen<Value = Vec<u16>> {
    proptest::sample::subsequence(pool, 0..=max)
}

fn host_spec() -> impl Gen<Value = HostSpec> {
    (
        (1i64..=16).prop_map(|n| n * 256),
        (1i64..=16).prop_map(|n| n * 512),
        subset(&[22, 80, 2375, 61153, 51678, 63003], 3),
        subset(&[53, 61153, 63002], 2),
        prop::bool::weighted(0.15),
        prop::option::weighted(0.9, 0..AZS.len()),
        0..TYPES.len(),
        prop::option::of(prop::sample::select(&["blue", "green"][..])),
        prop_oneof![
            9 => Just(Condition::Active),
            1 => Just(Condition::Draining),
            1 => Just(Condition::Disconnected),
            1 => Just(Condition::Deregistered),
        ],
    )
        .prop_map(
            |(cpu, memory, ports, udp_ports, crowded, az, kind, stack, condition)| HostSpec {
                cpu,
                memory,
                ports,
                udp_ports,
                crowded,
                az,
                kind,
                stack,
                condition,
            },
        )
}

fn task_spec() -> impl Gen<Value = TaskSpec> {
    (
        0usize..64,
        0..GROUPS.len(),
        (0i64..=8).prop_map(|n| n * 128),
        (0i64..=8).prop_map(|n| n * 256),
        subset(&TCP_POOL, 2),
        subset(&UDP_POOL, 1),
        subset(&[61154, 63000, 63004, 65535], 2),
        subset(&[61155, 63001], 1),
        prop_oneof![
            Just(TaskStatus::Pending),
            Just(TaskStatus::Running),
            Just(TaskStatus::Stopped)
        ],
    )
        .prop_map(
            |(host, group, cpu, memory, tcp, udp, dynamic_tcp, dynamic_udp, status)| TaskSpec {
                host,
                group,
                cpu,
                memory,
                tcp,
                udp,
                dynamic_tcp,
                dynamic_udp,
                status,
            },
        )
}

fn cluster_spec() -> impl Gen<Value = ClusterSpec> {
    (
        prop::collection::vec(host_spec(), 1..=12),
        prop::collection::vec(task_spec(), 0..=24),
    )
        .prop_map(|(hosts, tasks)| ClusterSpec { hosts, tasks })
}

/// A memberOf expression from a small grammar over the attributes and tasks the generated
/// clusters have.
fn expression() -> impl Gen<Value = String> {
    let az = prop::sample::select(&AZS[..]);
    let group = prop::sample::select(&GROUPS[..]);
    let leaf = prop_oneof![
        az.clone()
            .prop_map(|a| format!("attribute:ecs.availability-zone == {a}")),
        az.clone()
            .prop_map(|a| format!("attribute:ecs.availability-zone != {a}")),
        (az.clone(), az.clone())
            .prop_map(|(a, b)| format!("attribute:ecs.availability-zone in [{a}, '{b}']")),
        az.prop_map(|a| format!("attribute:ecs.availability-zone not_in [{a}]")),
        Just("attribute:ecs.instance-type =~ t.*".to_owned()),
        Just("attribute:ecs.instance-type !~ .*large".to_owned()),
        Just("attribute:stack exists".to_owned()),
        Just("attribute:stack !exists".to_owned()),
        Just("attribute:stack == blue".to_owned()),
        group.clone().prop_map(|g| format!("task:group == {g}")),
        group.prop_map(|g| format!("not(task:group == {g})")),
        (0u32..4).prop_map(|n| format!("runningTasksCount <= {n}")),
        (0u32..3).prop_map(|n| format!("runningTasksCount > {n}")),
        Just("agentConnected == true".to_owned()),
        (1u32..8, 1u32..8).prop_map(|(a, b)| format!("ec2InstanceId in [i-{a:08x}, i-{b:08x}]")),
    ];
    leaf.prop_recursive(2, 8, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a}) and ({b})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} || {b}")),
            inner.prop_map(|a| format!("!({a})")),
        ]
    })
}

fn strategy() -> impl Gen<Value = Strategy> {
    prop_oneof![
        Just(Strategy::Random),
        Just(Strategy::Spread(SpreadField::Attribute(AZ.into()))),
        Just(Strategy::Spread(SpreadField::Attribute(TYPE.into()))),
        Just(Strategy::Spread(SpreadField::Instance)),
        Just(Strategy::Binpack(BinpackField::Cpu)),
        Just(Strategy::Binpack(BinpackField::Memory)),
    ]
}

fn request_spec() -> impl Gen<Value = RequestSpec> {
    (
        (0..GROUPS.len(), (0i64..=6).prop_map(|n| n * 128), (0i64..=6).prop_map(|n| n * 256)),
        (
            prop_oneof![3 => Just(Vec::new()), 2 => subset(&TCP_POOL, 2)],
            prop_oneof![3 => Just(Vec::new()), 1 => subset(&UDP_POOL, 1)],
            0usize..=3,
            0usize..=2,
        ),
        (
            1usize..=8,
            prop::bool::weighted(0.3),
            prop_oneof![2 => Just(Vec::new()), 2 => prop::collection::vec(expression(), 1), 1 => prop::collection::vec(expression(), 2)],
        ),
        (prop::collection::vec(strategy(), 0..=3), any::<u64>()),
    )
        .prop_map(
            |((group, cpu, memory), (tcp, udp, dynamic_tcp, dynamic_udp), (count, distinct, member_of), (strategies, seed))| {
                RequestSpec {
                    group,
                    cpu,
                    memory,
                    tcp,
                    udp,
                    dynamic_tcp,
                    dynamic_udp,
                    count,
                    distinct,
                    member_of,
                    strategies,
                    seed,
                }
            },
        )
}

/// Builds the cluster: registers the hosts (and one roomy host in another cluster), places
/// the tasks that fit, moves them to their status, then drains, disconnects and deregisters.
fn build(spec: &ClusterSpec) -> (World, Vec<InstanceId>) {
    let mut w = World::new();
    let mut ids = Vec::new();
    for h in &spec.hosts {
        let mut ports = h.ports.clone();
        if h.crowded {
            // Every dynamic port but the window.
            ports.extend(DYNAMIC_PORTS.filter(|p| !WINDOW.contains(p)));
        }
        let mut host = host(h.cpu, h.memory)
            .kind(TYPES[h.kind])
            .ports(&ports)
            .udp_ports(&h.udp_ports);
        if let Some(az) = h.az {
            host = host.az(AZS[az]);
        }
        if let Some(stack) = h.stack {
            host = host.attr("stack", stack);
        }
        ids.push(w.add(host));
    }
    w.add_to(OTHER, host(1 << 20, 1 << 20).az(AZS[0]).kind(TYPES[0]));
    for t in &spec.tasks {
        let instance = ids[t.host % ids.len()];
        let reservation = Reservation {
            cpu: t.cpu,
            memory: t.memory,
            tcp: t.tcp.clone(),
            udp: t.udp.clone(),
            dynamic_tcp: t.dynamic_tcp.clone(),
            dynamic_udp: t.dynamic_udp.clone(),
        };
        if let Some(id) = w.try_run(instance, GROUPS[t.group], reservation) {
            match t.status {
                TaskStatus::Running => w.report(id, TaskStatus::Running),
                TaskStatus::Stopped => {
                    w.report(id, TaskStatus::Running);
                    w.report(id, TaskStatus::Stopped);
                }
                _ => {}
            }
        }
    }
    let mut disconnected = Vec::new();
    for (h, id) in spec.hosts.iter().zip(&ids) {
        match h.condition {
            Condition::Active => {}
            Condition::Draining => w.drain(*id),
            Condition::Disconnected => disconnected.push(*id),
            Condition::Deregistered => w.deregister(*id),
        }
    }
    w.disconnect(&disconnected);
    (w, ids)
}

fn request_of(spec: &RequestSpec) -> PlacementRequest {
    let mut req = request(GROUPS[spec.group], needs(spec.cpu, spec.memory), spec.count);
    req.reservation.tcp = spec.tcp.clone();
    req.reservation.udp = spec.udp.clone();
    req.dynamic_tcp = spec.dynamic_tcp;
    req.dynamic_udp = spec.dynamic_udp;
    if spec.distinct {
        req.constraints.push(Constraint::DistinctInstance);
    }
    for e in &spec.member_of {
        let c = parse_constraint("memberOf", Some(e)).unwrap_or_else(|err| panic!("{e}: {err}"));
        req.constraints.push(c);
    }
    req.strategies = spec.strategies.clone();
    req
}

fn memberships(req: &PlacementRequest) -> Vec<&berth_scheduler::query::Expr> {
    req.constraints
        .iter()
        .filter_map(|c| match c {
            Constraint::MemberOf(e) => Some(&**e),
            Constraint::DistinctInstance => None,
        })
        .collect()
}

/// Checks one placement's dynamic ports against the state it is about to be committed to.
fn check_dynamic_ports(state: &State, req: &PlacementRequest, p: &berth_scheduler::Placement) {
    let i = state
        .instance(p.instance)
        .expect("placed on a known instance");
    let held = oracle::held(state, i);
    for (ports, want, reserved, held, own) in [
        (
            &p.dynamic_tcp,
            req.dynamic_tcp,
            &i.resources.ports,
            &held.tcp,
            &req.reservation.tcp,
        ),
        (
            &p.dynamic_udp,
            req.dynamic_udp,
            &i.resources.udp_ports,
            &held.udp,
            &req.reservation.udp,
        ),
    ] {
        assert_eq!(ports.len(), want, "{p:?}: one port per dynamic claim");
        let distinct: BTreeSet<u16> = ports.iter().copied().collect();
        assert_eq!(distinct.len(), ports.len(), "{p:?}: dynamic ports repeat");
        for port in ports {
            assert!(
                DYNAMIC_PORTS.contains(port),
                "{p:?}: {port} is outside the dynamic range"
            );
            assert!(
                !reserved.contains(port),
                "{p:?}: {port} is reserved by the host"
            );
            assert!(!held.contains(port), "{p:?}: {port} is held by a live task");
            assert!(
                !own.contains(port),
                "{p:?}: {port} is also one of the task's static ports"
            );
        }
    }
}

/// The whole check of one plan: commit it task by task, asserting at each step that the
/// chosen instance was feasible by the oracle, satisfied every memberOf and distinctInstance,
/// was among the strategy chain's survivors and got sound dynamic ports; then that the plan
/// stopped only when nothing could take another task, with one correct rejection per instance.
fn check_plan(w: &mut World, req: &PlacementRequest, plan: &Plan) {
    assert!(plan.placements.len() <= req.count);
    let exprs = memberships(req);
    w.commit_each(req, &plan.placements, |state, k, p| {
        let i = state
            .instance(p.instance)
            .expect("placed on a known instance");
        assert_eq!(&*i.cluster, CLUSTER, "task {k} placed in another cluster");
        for e in &exprs {
            assert!(
                oracle::member_of(state, i, e),
                "task {k} on {} breaks memberOf({e})",
                i.id
            );
        }
        if req
            .constraints
            .iter()
            .any(|c| matches!(c, Constraint::DistinctInstance))
        {
            assert_eq!(
                state.live_in_group_on(CLUSTER, &req.group, i.id),
                0,
                "task {k} shares {} with a task of its group",
                i.id
            );
        }
        assert_eq!(
            oracle::first_failure(state, i, req),
            None,
            "task {k}: {} cannot take it",
            i.id
        );
        let feasible = oracle::feasible(state, req);
        let survivors = oracle::survivors(state, req, &feasible);
        assert!(
            survivors.contains(&i.id),
            "task {k} went to {} but the strategy chain {:?} keeps {survivors:?}",
            i.id,
            req.strategies
        );
        check_dynamic_ports(state, req, p);
    });
    let state = &w.state;
    let registered = oracle::registered(state, CLUSTER);
    if plan.placements.len() == req.count {
        assert!(plan.rejections.is_empty(), "{:?}", plan.rejections);
        return;
    }
    assert!(
        oracle::feasible(state, req).is_empty(),
        "the plan stopped at {} of {} tasks while {:?} could take another",
        plan.placements.len(),
        req.count,
        oracle::feasible(state, req)
            .iter()
            .map(|i| i.id)
            .collect::<Vec<_>>()
    );
    let listed: Vec<InstanceId> = {
        let mut v: Vec<_> = plan.rejections.iter().map(|r| r.instance).collect();
        v.sort();
        v
    };
    let expected: Vec<InstanceId> = registered.iter().map(|i| i.id).collect();
    assert_eq!(
        listed, expected,
        "every registered instance gets exactly one rejection"
    );
    for r in &plan.rejections {
        let i = state.instance(r.instance).expect("instance");
        assert_eq!(
            Some(r.reason),
            oracle::first_failure(state, i, req),
            "{r:?}"
        );
        assert!(
            r.detail.contains(&i.id.to_string()),
            "the detail names the instance: {r:?}"
        );
    }
    // Closest first: the furthest filter reached, then (for CPU and memory) the most of the
    // need available, then by id.
    let closeness = |r: &berth_scheduler::InstanceRejection| {
        let i = state.instance(r.instance).expect("instance");
        let available = match r.reason {
            FailureReason::ResourceCpu => oracle::free(state, i, BinpackField::Cpu),
            FailureReason::ResourceMemory => oracle::free(state, i, BinpackField::Memory),
            _ => 0,
        };
        (
            std::cmp::Reverse(oracle::stage(r.reason)),
            std::cmp::Reverse(available),
            r.instance,
        )
    };
    let order: Vec<_> = plan.rejections.iter().map(closeness).collect();
    assert!(
        order.windows(2).all(|w| w[0] <= w[1]),
        "rejections are not closest first: {:?}",
        plan.rejections
    );
}

/// The instance's first-task verdicts agree with the oracle and with the plan.
fn check_verdicts(state: &State, req: &PlacementRequest, plan: &Plan) {
    let registered = oracle::registered(state, CLUSTER);
    let ids: Vec<InstanceId> = plan.verdicts.iter().map(|v| v.instance).collect();
    assert_eq!(
        ids,
        registered.iter().map(|i| i.id).collect::<Vec<_>>(),
        "one verdict per instance, by id"
    );
    let first = plan.placements.first().map(|p| p.instance);
    for (v, i) in plan.verdicts.iter().zip(&registered) {
        let placed = plan
            .placements
            .iter()
            .filter(|p| p.instance == v.instance)
            .count();
        assert_eq!(v.placed, placed, "{v:?}");
        let failure = oracle::first_failure(state, i, req);
        assert_eq!(v.rejection.as_ref().map(|r| r.0), failure, "{v:?}");
        if let Some((_, detail)) = &v.rejection {
            assert!(detail.contains(&i.id.to_string()), "{v:?}");
            assert!(v.passed_over.is_none(), "{v:?}");
        } else if Some(v.instance) == first {
            assert!(
                v.passed_over.is_none(),
                "the chosen instance is not passed over: {v:?}"
            );
        } else {
            let why = v
                .passed_over
                .as_deref()
                .unwrap_or_else(|| panic!("{v:?} has no verdict"));
            assert!(!why.is_empty());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Items 1, 2, 4, 6, 7: constraints hold, the commit check accepts the plan, the chain is
    /// followed, dynamic ports are sound, failures are complete, ordered and right.
    #[test]
    fn plans_pass_the_commit_check_and_follow_the_rules(cluster in cluster_spec(), spec in request_spec()) {
        let (mut w, _) = build(&cluster);
        let req = request_of(&spec);
        let snapshot = w.state.clone();
        let plan = place(&snapshot, &req, spec.seed);
        // Pure: the same snapshot and seed plan the same again.
        prop_assert_eq!(&place(&snapshot, &req, spec.seed), &plan);
        // explain changes what is reported, never what is decided (it only turns the binpack
        // fast path off, which must pick among the same tightest instances).
        let explained = place(&snapshot, &PlacementRequest { explain: true, ..req.clone() }, spec.seed);
        prop_assert_eq!(&explained.placements, &plan.placements);
        prop_assert_eq!(&explained.rejections, &plan.rejections);
        check_verdicts(&snapshot, &req, &explained);
        prop_assert!(plan.verdicts.is_empty());
        // The plan applier commits the whole plan in one entry.
        w.fork().commit(&req, &plan.placements);
        check_plan(&mut w, &req, &plan);
    }

    /// Item 2 (issue 18): a chain that starts with spread is planned through an index of
    /// instances bucketed by attribute value when nothing is explained, and by the full scan
    /// when it is: both place every task on the same instance, and follow the chain.
    #[test]
    fn spread_first_index_and_full_scan_place_alike(
        cluster in cluster_spec(),
        spec in request_spec(),
        first in prop_oneof![
            Just(SpreadField::Attribute(AZ.into())),
            Just(SpreadField::Attribute(TYPE.into())),
            Just(SpreadField::Instance),
        ],
        count in 1usize..=24,
    ) {
        let (mut w, _) = build(&cluster);
        let mut req = request_of(&spec);
        req.count = count;
        req.strategies.insert(0, Strategy::Spread(first));
        let indexed = place(&w.state, &req, spec.seed);
        let scanned = place(&w.state, &PlacementRequest { explain: true, ..req.clone() }, spec.seed);
        prop_assert_eq!(&indexed.placements, &scanned.placements);
        prop_assert_eq!(&indexed.rejections, &scanned.rejections);
        check_plan(&mut w, &req, &indexed);
    }

    /// Item 2: a chain that starts with binpack always takes a tightest fit — through the
    /// index-walking fast path (explain off) and the full scan (explain on) alike.
    #[test]
    fn binpack_takes_the_tightest_fit_fast_path_and_full_scan_agree(
        cluster in cluster_spec(),
        spec in request_spec(),
        field in prop_oneof![Just(BinpackField::Cpu), Just(BinpackField::Memory)],
        then in prop::option::of(strategy()),
    ) {
        let (w, _) = build(&cluster);
        let mut req = request_of(&spec);
        req.strategies = std::iter::once(Strategy::Binpack(field)).chain(then).collect();
        let fast = place(&w.state, &req, spec.seed);
        let full = place(&w.state, &PlacementRequest { explain: true, ..req.clone() }, spec.seed);
        let amounts = |plan: &Plan| -> Vec<i64> {
            let mut left = Vec::new();
            commit_checking_tightest(&mut w.fork(), &req, plan, field, &mut left);
            left
        };
        prop_assert_eq!(amounts(&fast), amounts(&full));
    }
}

/// Item 9: StartTask places on exactly the listed instances, in order, each checked for
/// resources and ports as things stand after the earlier ones, with constraints and strategies
/// ignored; instances of another cluster and unknown ids are MISSING.
#[test]
fn start_task_checks_each_listed_instance_in_order() {
    proptest!(ProptestConfig::with_cases(128), |(
        cluster in cluster_spec(),
        spec in request_spec(),
        picks in prop::collection::vec(0usize..16, 0..10),
    )| {
        let (mut w, ids) = build(&cluster);
        let foreign = InstanceId(ids.len() as u128 + 1);
        prop_assert_eq!(&*w.state.instance(foreign).unwrap().cluster, OTHER);
        let unknown = InstanceId(999_999);
        let listed: Vec<InstanceId> = picks
            .iter()
            .map(|p| match p {
                14 => foreign,
                15 => unknown,
                p => ids[p % ids.len()],
            })
            .collect();
        let mut req = request_of(&spec);
        req.instances = Some(listed.clone());
        let plan = place(&w.state, &req, spec.seed);
        prop_assert_eq!(&plan, &place(&w.state, &req, spec.seed));
        // What the commit check and the oracle judge: the request without its constraints.
        let bare = PlacementRequest { constraints: Vec::new(), ..req.clone() };
        let mut placements = plan.placements.iter();
        let mut rejections = plan.rejections.iter();
        for id in &listed {
            let expected = match w.state.instance(*id).filter(|i| &*i.cluster == CLUSTER) {
                None => Some(FailureReason::Missing),
                Some(i) => oracle::first_failure(&w.state, i, &bare),
            };
            match expected {
                None => {
                    let p = placements.next().expect("a placement for a listed instance that can take it");
                    prop_assert_eq!(p.instance, *id);
                    check_dynamic_ports(&w.state, &bare, p);
                    w.commit(&bare, std::slice::from_ref(p));
                }
                Some(reason) => {
                    let r = rejections.next().expect("a rejection for a listed instance that cannot");
                    prop_assert_eq!((r.instance, r.reason), (*id, reason), "{:?}", r);
                    prop_assert!(r.detail.contains(&id.to_string()), "{:?}", r);
                }
            }
        }
        prop_assert!(placements.next().is_none() && rejections.next().is_none());
    });
}

/// Commits `plan` task by task, asserting each pick leaves the least of `field` free among the
/// instances the oracle finds feasible, and records what it left.
fn commit_checking_tightest(
    w: &mut World,
    req: &PlacementRequest,
    plan: &Plan,
    field: BinpackField,
    left: &mut Vec<i64>,
) {
    w.commit_each(req, &plan.placements, |state, k, p| {
        let feasible = oracle::feasible(state, req);
        let best = feasible
            .iter()
            .map(|i| oracle::remaining(state, i, field, req))
            .min()
            .expect("a placement implies a feasible instance");
        let i = state.instance(p.instance).expect("instance");
        let got = oracle::remaining(state, i, field, req);
        assert_eq!(
            got, best,
            "task {k} on {} leaves {got} {field:?}; the tightest leaves {best}",
            i.id
        );
        left.push(got);
    });
}

/// Item 3: spread over AZs with ample capacity, from an uneven start, puts every task in a
/// least-loaded AZ, so the gap never widens and closes to at most one.
#[test]
fn spread_over_zones_never_widens_the_gap_and_converges() {
    proptest!(ProptestConfig::with_cases(48), |(
        existing in prop::collection::vec(0usize..3, 0..30),
        per_zone in 1usize..4,
        count in 1usize..30,
        seed in any::<u64>(),
        then_binpack in any::<bool>(),
    )| {
        let mut w = World::new();
        let mut zones: Vec<Vec<InstanceId>> = vec![Vec::new(); 3];
        for (z, az) in AZS.iter().enumerate() {
            for k in 0..per_zone {
                let memory = 8192 + 512 * (k as i64);
                zones[z].push(w.add(host(1 << 16, memory << 4).az(az)));
            }
        }
        for (n, z) in existing.iter().enumerate() {
            let i = zones[*z][n % per_zone];
            w.run(i, "service:api", needs(16, 16));
        }
        let field = SpreadField::Attribute(AZ.into());
        let mut req = request("service:api", needs(16, 16), count);
        req.strategies = vec![Strategy::Spread(field.clone())];
        if then_binpack {
            req.strategies.push(Strategy::Binpack(BinpackField::Memory));
        }
        let plan = place(&w.state, &req, seed);
        prop_assert_eq!(plan.placements.len(), count);
        let zone_of: HashMap<InstanceId, usize> =
            zones.iter().enumerate().flat_map(|(z, ids)| ids.iter().map(move |i| (*i, z))).collect();
        let mut counts = [0i64; 3];
        for z in &existing {
            counts[*z] += 1;
        }
        let gap = |c: &[i64; 3]| c.iter().max().unwrap() - c.iter().min().unwrap();
        for p in &plan.placements {
            let before = gap(&counts);
            let z = zone_of[&p.instance];
            prop_assert_eq!(counts[z], *counts.iter().min().unwrap(), "placed in a busier zone: {:?}", counts);
            counts[z] += 1;
            prop_assert!(gap(&counts) <= before.max(1));
        }
        let start = {
            let mut c = [0i64; 3];
            for z in &existing {
                c[*z] += 1;
            }
            c
        };
        // Enough tasks to fill every zone up to the busiest reach balance.
        let needed: i64 = start.iter().map(|c| start.iter().max().unwrap() - c).sum();
        if count as i64 >= needed {
            prop_assert!(gap(&counts) <= 1, "{:?} from {:?}", counts, start);
        }
        // The chained binpack then picks the tightest instance in the chosen zone.
        if then_binpack {
            w.fork().commit_each(&req, &plan.placements, |state, _, p| {
                let i = state.instance(p.instance).unwrap();
                let z = zone_of[&p.instance];
                let tightest = zones[z]
                    .iter()
                    .map(|id| oracle::free(state, state.instance(*id).unwrap(), BinpackField::Memory))
                    .min()
                    .unwrap();
                assert_eq!(oracle::free(state, i, BinpackField::Memory), tightest);
            });
        }
    });
}

/// Item 3: spread(instanceId) with room everywhere evens out the group over the instances.
#[test]
fn spread_over_instances_evens_out_the_group() {
    proptest!(ProptestConfig::with_cases(48), |(
        existing in prop::collection::vec(0usize..6, 0..20),
        hosts in 1usize..7,
        count in 1usize..25,
        seed in any::<u64>(),
    )| {
        let mut w = World::new();
        let ids: Vec<InstanceId> = (0..hosts).map(|_| w.add(host(1 << 16, 1 << 16))).collect();
        let mut counts: HashMap<InstanceId, i64> = ids.iter().map(|i| (*i, 0)).collect();
        for n in &existing {
            let i = ids[n % hosts];
            w.run(i, "family:web", needs(8, 8));
            *counts.get_mut(&i).unwrap() += 1;
        }
        // Tasks of another group do not count.
        w.run(ids[0], "service:other", needs(8, 8));
        let mut req = request("family:web", needs(8, 8), count);
        req.strategies = vec![Strategy::Spread(SpreadField::Instance)];
        let plan = place(&w.state, &req, seed);
        prop_assert_eq!(plan.placements.len(), count);
        let gap = |c: &HashMap<InstanceId, i64>| c.values().max().unwrap() - c.values().min().unwrap();
        let start = counts.clone();
        for p in &plan.placements {
            let before = gap(&counts);
            let least = *counts.values().min().unwrap();
            prop_assert_eq!(counts[&p.instance], least);
            *counts.get_mut(&p.instance).unwrap() += 1;
            prop_assert!(gap(&counts) <= before.max(1));
        }
        let top = *start.values().max().unwrap();
        let needed: i64 = start.values().map(|c| top - c).sum();
        if count as i64 >= needed {
            prop_assert!(gap(&counts) <= 1);
        }
    });
}

/// Item 5: different seeds do pick differently where the rules leave a choice.
#[test]
fn different_seeds_may_choose_differently() {
    let mut w = World::new();
    for _ in 0..8 {
        w.add(host(1024, 1024));
    }
    let req = request("family:web", needs(128, 128), 1);
    let picks: BTreeSet<InstanceId> = (0..32)
        .map(|seed| place(&w.state, &req, seed).placements[0].instance)
        .collect();
    assert!(picks.len() > 1, "32 seeds all chose {picks:?}");
    for seed in 0..32 {
        assert_eq!(
            place(&w.state, &req, seed),
            place(&w.state.clone(), &req, seed)
        );
    }
}

/// Dynamic ports under pressure: a host that leaves only a few dynamic ports free, some held
/// by live tasks (statically and dynamically), fills exactly the rest and then reports
/// RESOURCE:PORTS — never handing out a port twice.
#[test]
fn dynamic_ports_fill_exactly_the_free_ones() {
    let mut w = World::new();
    let reserved: Vec<u16> = DYNAMIC_PORTS.filter(|p| !WINDOW.contains(p)).collect();
    let i = w.add(host(4096, 4096).ports(&reserved));
    w.run(
        i,
        "other",
        Reservation {
            tcp: vec![63000],
            dynamic_tcp: vec![63001],
            ..needs(1, 1)
        },
    );
    // 63002..=63005 are free: two tasks of two dynamic ports each fit, a third does not.
    let mut req = request("family:web", needs(1, 1), 3);
    req.dynamic_tcp = 2;
    for seed in 0..16 {
        let plan = place(&w.state, &req, seed);
        assert_eq!(plan.placements.len(), 2, "{plan:?}");
        let all: BTreeSet<u16> = plan
            .placements
            .iter()
            .flat_map(|p| p.dynamic_tcp.iter().copied())
            .collect();
        assert_eq!(all, (63002..=63005).collect());
        assert_eq!(plan.rejections.len(), 1);
        assert_eq!(plan.rejections[0].reason, FailureReason::ResourcePorts);
        assert!(
            plan.rejections[0]
                .detail
                .contains("0 free dynamic TCP ports"),
            "{:?}",
            plan.rejections
        );
        w.fork().commit(&req, &plan.placements);
    }
}

/// A task's own static port in the dynamic range is not free for its dynamic claims.
#[test]
fn dynamic_ports_avoid_the_tasks_own_static_ports() {
    let mut w = World::new();
    let reserved: Vec<u16> = DYNAMIC_PORTS.filter(|p| !WINDOW.contains(p)).collect();
    w.add(host(4096, 4096).ports(&reserved));
    // Six ports free; the task binds 63000 statically and wants five dynamic ones.
    let mut req = request(
        "family:web",
        Reservation {
            tcp: vec![63000],
            ..needs(1, 1)
        },
        1,
    );
    req.dynamic_tcp = 5;
    for seed in 0..16 {
        let plan = place(&w.state, &req, seed);
        assert_eq!(plan.placements.len(), 1, "{plan:?}");
        let mut got = plan.placements[0].dynamic_tcp.clone();
        got.sort_unstable();
        assert_eq!(got, vec![63001, 63002, 63003, 63004, 63005]);
    }
    // Six dynamic ports do not fit beside it.
    req.dynamic_tcp = 6;
    let plan = place(&w.state, &req, 0);
    assert!(plan.placements.is_empty(), "{plan:?}");
    assert_eq!(plan.rejections[0].reason, FailureReason::ResourcePorts);
}
