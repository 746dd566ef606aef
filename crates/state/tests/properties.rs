//! Property tests: random sequences of commands on a few small instances, with every invariant
//! of [`common::check`] asserted after every step — no instance over-committed, indexes equal
//! to a brute-force recomputation and to a restored snapshot, serde round trip, bounded and
//! ordered history, consistent change log — plus: a refused command changes nothing, the same
//! log applied twice gives the same state, a snapshot taken midway never changes, and tasks
//! placed with `distinct_instance` never share an instance while live. Preemptions
//! (`PreemptAndPlace`) are among the commands: all or nothing, like every refusal.
//!
//! Host ports come from small sets that overlap on purpose: dynamic ports from a three-port
//! window at the bottom of the dynamic range, static ports and host-reserved ports that
//! include ports of that window, so that every kind of port collision happens.
//!
//! Commands sometimes share a log index, as the commands of one Raft entry do.

mod common;

use std::collections::BTreeMap;

use berth_model::command::{
    AcceptOffers, AgentConnectivity, AgentLost, ContainerChange, FrameworkDisconnected, MakeOffers,
    OffersMade, Placed, PreemptAndPlace, RemoveFramework, RemoveOffers, Stamped,
    SubscribeFramework, UntagResource,
};
use berth_model::entity::{DYNAMIC_PORTS, HealthStatus, InstanceStatus, Task, TaskStatus};
use berth_model::priority::Priority;
use berth_model::{Command, CommandResult, InstanceId, Millis, TaskId};
use berth_state::{Config, State};
use proptest::prelude::*;
use proptest::sample::{select, subsequence};

use common::*;

const CLUSTERS: [&str; 2] = ["a", "b"];
const FAMILIES: [&str; 2] = ["web", "db"];
/// Static host ports; 61154 and 61153 are also in the dynamic windows.
const TCP: [u16; 5] = [22, 80, 443, 8080, 61154];
const UDP: [u16; 4] = [53, 80, 5353, 61153];
/// The dynamic host ports the "scheduler" picks from: a small window so that they collide.
const DYNAMIC_TCP: [u16; 3] = [61153, 61154, 61155];
const DYNAMIC_UDP: [u16; 2] = [61153, 61154];
/// The group every plan with `distinct_instance` places its tasks in, and only those plans.
const DISTINCT_GROUP: &str = "distinct";
/// Custom attribute names (more than the limit of ten) and one built-in.
const ATTRIBUTES: [&str; 13] = [
    "c0",
    "c1",
    "c2",
    "c3",
    "c4",
    "c5",
    "c6",
    "c7",
    "c8",
    "c9",
    "c10",
    "c11",
    "ecs.extra",
];

/// One task of a plan.
#[derive(Debug, Clone)]
struct Planned {
    id: u128,
    /// Instance slot; 5 is never registered.
    instance: u128,
    /// Index into CLUSTERS of the cluster the task claims to belong to.
    cluster: Option<usize>,
    cpu: i64,
    memory: i64,
    tcp: Vec<u16>,
    udp: Vec<u16>,
    dynamic_tcp: Vec<u16>,
    dynamic_udp: Vec<u16>,
    family: usize,
    revision: u32,
    group: u8,
    started_by: Option<u8>,
}

#[derive(Debug, Clone)]
enum Op {
    CreateCluster(usize),
    DeleteCluster(usize),
    RegisterTaskDefinition(usize),
    DeregisterTaskDefinition(usize, u32),
    DeleteTaskDefinition(usize, u32),
    Register {
        cluster: usize,
        slot: u128,
        cpu: i64,
        memory: i64,
        tcp: Vec<u16>,
        udp: Vec<u16>,
        attributes: Vec<&'static str>,
    },
    /// Re-registration with the resources the instance has (an agent restart), or with its
    /// CPU and memory changed (never below what its live tasks hold); attributes change.
    Reregister {
        cluster: usize,
        slot: u128,
        attributes: Vec<&'static str>,
        resize: Option<(i64, i64)>,
    },
    Deregister {
        cluster: usize,
        slot: u128,
        force: bool,
    },
    Connectivity {
        cluster: usize,
        slots: Vec<u128>,
        connected: bool,
    },
    Lost {
        cluster: usize,
        slot: u128,
    },
    SetState {
        cluster: usize,
        slots: Vec<u128>,
        draining: bool,
    },
    PutAttributes {
        cluster: usize,
        changes: Vec<(u128, &'static str)>,
    },
    DeleteAttributes {
        cluster: usize,
        changes: Vec<(u128, &'static str)>,
    },
    /// With `distinct`, every task is in [`DISTINCT_GROUP`] and the plan carries
    /// `distinct_instance`.
    Place {
        cluster: usize,
        tasks: Vec<Planned>,
        token: Option<(u8, u64, bool)>,
        distinct: bool,
    },
    /// `task` picks a task, see [`existing_task`].
    Stop {
        cluster: usize,
        task: u128,
    },
    /// A preemption: `task` at `priority` on its instance, stopping the tasks `victims` pick
    /// (see [`existing_task`]); the commit refuses it whole unless each is live there, lower
    /// and unprotected, and the task fits once they are gone.
    Preempt {
        cluster: usize,
        task: Planned,
        priority: u16,
        victims: Vec<u128>,
    },
    Report {
        cluster: usize,
        task: u128,
        status: Option<TaskStatus>,
        container: Option<(bool, Option<TaskStatus>, Option<HealthStatus>)>,
    },
    Tag {
        target: Target,
        first: usize,
        count: usize,
    },
    Untag {
        target: Target,
        first: usize,
        count: usize,
    },
    Expire {
        stopped_ago: i64,
        inactive_ago: i64,
    },
    /// Mesos framework `fw{fw}` subscribes to cluster `cluster`.
    Subscribe {
        cluster: usize,
        fw: u8,
    },
    Disconnect(u8),
    Teardown(u8),
    /// Offers `(id, slot, cpu, memory, tcp)` for framework `fw{fw}`, in its cluster.
    Offer {
        fw: u8,
        offers: Vec<(u128, u128, i64, i64, Vec<u16>)>,
    },
    Decline(Vec<u128>),
    /// Accepts offers with tasks on the first offer's instance (or `Planned`'s own).
    Accept {
        fw: u8,
        offers: Vec<u128>,
        tasks: Vec<Planned>,
    },
}

#[derive(Debug, Clone)]
enum Target {
    Cluster(usize),
    Instance(usize, u128),
    Task(usize, u128),
    TaskDefinition(usize, u32),
}

/// One step: an op, whether it shares the previous command's log entry, and how much time
/// passed before it.
#[derive(Debug, Clone)]
struct Step {
    op: Op,
    same_entry: bool,
    elapsed: i64,
}

fn cluster() -> impl Strategy<Value = usize> {
    // Mostly the first cluster, so that most commands meet each other.
    prop_oneof![4 => Just(0usize), 1 => Just(1usize)]
}

fn slot() -> impl Strategy<Value = u128> {
    1u128..=4
}

fn task_id() -> impl Strategy<Value = u128> {
    1u128..=10
}

fn planned() -> impl Strategy<Value = Planned> {
    (
        (
            task_id(),
            prop_oneof![8 => 1u128..=2, 2 => 3u128..=5],
            prop_oneof![15 => Just(None), 1 => (0usize..2).prop_map(Some)],
        ),
        select(vec![0i64, 64, 128, 256, 512, 1024]),
        select(vec![0i64, 64, 128, 256, 512, 1024]),
        (
            subsequence(TCP.to_vec(), 0..=2),
            subsequence(UDP.to_vec(), 0..=1),
            prop_oneof![2 => Just(Vec::new()), 3 => subsequence(DYNAMIC_TCP.to_vec(), 1..=2)],
            prop_oneof![2 => Just(Vec::new()), 1 => subsequence(DYNAMIC_UDP.to_vec(), 1..=1)],
        ),
        (
            0usize..2,
            prop_oneof![6 => Just(1u32), 1 => 2u32..=3],
            0u8..3,
            proptest::option::of(0u8..2),
        ),
    )
        .prop_map(
            |(
                (id, instance, cluster),
                cpu,
                memory,
                (tcp, udp, dynamic_tcp, dynamic_udp),
                (family, revision, group, started_by),
            )| {
                Planned {
                    id,
                    instance,
                    cluster,
                    cpu,
                    memory,
                    tcp,
                    udp,
                    dynamic_tcp,
                    dynamic_udp,
                    family,
                    revision,
                    group,
                    started_by,
                }
            },
        )
}

fn target() -> impl Strategy<Value = Target> {
    prop_oneof![
        (0usize..2).prop_map(Target::Cluster),
        (cluster(), slot()).prop_map(|(c, s)| Target::Instance(c, s)),
        (cluster(), task_id()).prop_map(|(c, t)| Target::Task(c, t)),
        (0usize..2, 1u32..=3).prop_map(|(f, r)| Target::TaskDefinition(f, r)),
    ]
}

fn status() -> impl Strategy<Value = TaskStatus> {
    select(TaskStatus::ALL.to_vec())
}

fn op() -> impl Strategy<Value = Op> {
    let attributes = || subsequence(ATTRIBUTES.to_vec(), 0..=12);
    prop_oneof![
        1 => (0usize..2).prop_map(Op::CreateCluster),
        1 => (0usize..2).prop_map(Op::DeleteCluster),
        1 => (0usize..2).prop_map(Op::RegisterTaskDefinition),
        1 => (0usize..2, 1u32..=4).prop_map(|(f, r)| Op::DeregisterTaskDefinition(f, r)),
        1 => (0usize..2, 1u32..=4).prop_map(|(f, r)| Op::DeleteTaskDefinition(f, r)),
        4 => (
            cluster(),
            slot(),
            select(vec![512i64, 1024, 2048]),
            select(vec![512i64, 1024, 2048]),
            subsequence(vec![22u16, 80, 61155], 0..=2),
            subsequence(vec![53u16, 61154], 0..=1),
            attributes(),
        )
            .prop_map(|(cluster, slot, cpu, memory, tcp, udp, attributes)| Op::Register {
                cluster,
                slot,
                cpu,
                memory,
                tcp,
                udp,
                attributes,
            }),
        2 => (
            cluster(),
            slot(),
            attributes(),
            proptest::option::of((
                select(vec![256i64, 512, 1024, 2048]),
                select(vec![256i64, 512, 1024, 2048]),
            )),
        )
            .prop_map(|(cluster, slot, attributes, resize)| Op::Reregister {
                cluster,
                slot,
                attributes,
                resize,
            }),
        2 => (cluster(), slot(), any::<bool>())
            .prop_map(|(cluster, slot, force)| Op::Deregister { cluster, slot, force }),
        2 => (cluster(), proptest::collection::vec(1u128..=5, 0..3), any::<bool>())
            .prop_map(|(cluster, slots, draining)| Op::SetState { cluster, slots, draining }),
        2 => (cluster(), proptest::collection::vec(1u128..=5, 0..3), any::<bool>())
            .prop_map(|(cluster, slots, connected)| Op::Connectivity { cluster, slots, connected }),
        1 => (cluster(), slot()).prop_map(|(cluster, slot)| Op::Lost { cluster, slot }),
        1 => (cluster(), proptest::collection::vec((1u128..=5, select(ATTRIBUTES.to_vec())), 0..6))
            .prop_map(|(cluster, changes)| Op::PutAttributes { cluster, changes }),
        1 => (cluster(), proptest::collection::vec((1u128..=5, select(ATTRIBUTES.to_vec())), 0..3))
            .prop_map(|(cluster, changes)| Op::DeleteAttributes { cluster, changes }),
        10 => (
            cluster(),
            proptest::collection::vec(planned(), 0..5),
            proptest::option::of((0u8..2, 0u64..2, any::<bool>())),
            prop_oneof![3 => Just(false), 1 => Just(true)],
        )
            .prop_map(|(cluster, tasks, token, distinct)| Op::Place {
                cluster,
                tasks,
                token,
                distinct,
            }),
        3 => (cluster(), task_id()).prop_map(|(cluster, task)| Op::Stop { cluster, task }),
        10 => (
            cluster(),
            task_id(),
            proptest::option::of(status()),
            proptest::option::of((
                any::<bool>(),
                proptest::option::of(status()),
                proptest::option::of(select(HealthStatus::ALL.to_vec())),
            )),
        )
            .prop_map(|(cluster, task, status, container)| Op::Report {
                cluster,
                task,
                status,
                container,
            }),
        1 => (target(), 0usize..60, 0usize..30)
            .prop_map(|(target, first, count)| Op::Tag { target, first, count }),
        1 => (target(), 0usize..60, 0usize..30)
            .prop_map(|(target, first, count)| Op::Untag { target, first, count }),
        2 => (select(vec![0i64, 3_000, 20_000, -1]), select(vec![0i64, 3_000, 20_000, -1]))
            .prop_map(|(stopped_ago, inactive_ago)| Op::Expire { stopped_ago, inactive_ago }),
        1 => (cluster(), 0u8..2).prop_map(|(cluster, fw)| Op::Subscribe { cluster, fw }),
        1 => (0u8..3).prop_map(Op::Disconnect),
        1 => (0u8..3).prop_map(Op::Teardown),
        2 => (
            0u8..3,
            proptest::collection::vec(
                (
                    1u128..=6,
                    prop_oneof![8 => 1u128..=2, 2 => 3u128..=5],
                    select(vec![0i64, 128, 512, 1024]),
                    select(vec![0i64, 128, 512, 1024]),
                    subsequence(TCP.to_vec(), 0..=2),
                ),
                1..=3,
            ),
        )
            .prop_map(|(fw, offers)| Op::Offer { fw, offers }),
        1 => proptest::collection::vec(1u128..=7, 1..=3).prop_map(Op::Decline),
        2 => (
            0u8..3,
            proptest::collection::vec(1u128..=7, 0..=2),
            proptest::collection::vec(planned(), 0..=3),
        )
            .prop_map(|(fw, offers, tasks)| Op::Accept { fw, offers, tasks }),
    ]
}

/// A preemption, at one of a few priorities, naming up to two victims.
fn preemption() -> impl Strategy<Value = Op> {
    (
        cluster(),
        planned(),
        select(vec![0u16, 100, 500, 1000]),
        proptest::collection::vec(task_id(), 0..3),
    )
        .prop_map(|(cluster, task, priority, victims)| Op::Preempt {
            cluster,
            task,
            priority,
            victims,
        })
}

/// Any command, preemptions included (kept apart from [`op`] so that the collision coverage
/// below samples the same sequences as before they existed).
fn any_op() -> impl Strategy<Value = Op> {
    prop_oneof![20 => op(), 1 => preemption()]
}

fn step() -> impl Strategy<Value = Step> {
    step_of(any_op())
}

fn step_of(op: impl Strategy<Value = Op>) -> impl Strategy<Value = Step> {
    (
        op,
        prop_oneof![4 => Just(false), 1 => Just(true)],
        0i64..4_000,
    )
        .prop_map(|(op, same_entry, elapsed)| Step {
            op,
            same_entry,
            elapsed,
        })
}

/// A history of at most three versions and a short change log, so that both are trimmed.
fn short_memory() -> impl Strategy<Value = Config> {
    (1usize..4, 1usize..24).prop_map(|(history_versions, changelog_len)| Config {
        history_versions,
        changelog_len,
    })
}

fn tags(first: usize, count: usize) -> Vec<berth_model::entity::Tag> {
    (first..first + count)
        .map(|k| tag(&format!("k{k}"), &format!("v{}", k % 3)))
        .collect()
}

/// The command an op stands for, in `state`: a re-registration reports the resources the
/// instance registered with (an agent restarting), and stops and reports mostly name a task
/// that exists.
fn command(op: &Op, state: &State, now: Millis) -> Command {
    let name = |c: usize| CLUSTERS[c];
    let with_attributes = |mut b: InstanceBuilder, attributes: &[&str]| {
        for a in attributes {
            b = b.attribute(a, Some("v"));
        }
        b
    };
    match op {
        Op::CreateCluster(c) => create_cluster(name(*c)).into(),
        Op::DeleteCluster(c) => delete_cluster(name(*c)).into(),
        Op::RegisterTaskDefinition(f) => register_task_definition(FAMILIES[*f]).into(),
        Op::DeregisterTaskDefinition(f, r) => deregister_task_definition(FAMILIES[*f], *r).into(),
        Op::DeleteTaskDefinition(f, r) => delete_task_definitions(&[(FAMILIES[*f], *r)]).into(),
        Op::Register {
            cluster,
            slot,
            cpu,
            memory,
            tcp,
            udp,
            attributes,
        } => with_attributes(
            instance(name(*cluster), *slot)
                .cpu(*cpu)
                .memory(*memory)
                .ports(tcp)
                .udp_ports(udp),
            attributes,
        )
        .build()
        .into(),
        Op::Reregister {
            cluster,
            slot,
            attributes,
            resize,
        } => {
            let mut b = instance(name(*cluster), *slot).reregister();
            if let Some(i) = state.instance(InstanceId(*slot)) {
                b = b.resources(i.resources.clone());
            }
            // Never below what its live tasks hold: an instance re-registered smaller than
            // that is over-committed by its agent, not by a placement (see
            // `commands::indexes::an_instance_shrunk_below_its_tasks_has_negative_free`).
            if let Some((cpu, memory)) = resize {
                let held = state.usage(InstanceId(*slot));
                let (cpu_held, memory_held) = held.map_or((0, 0), |u| (u.cpu, u.memory));
                b = b
                    .cpu((*cpu).max(cpu_held))
                    .memory((*memory).max(memory_held));
            }
            with_attributes(b, attributes).build().into()
        }
        Op::Deregister {
            cluster,
            slot,
            force,
        } => deregister_instance(name(*cluster), *slot, *force).into(),
        Op::Connectivity {
            cluster,
            slots,
            connected,
        } => AgentConnectivity {
            cluster: name(*cluster).into(),
            ids: slots.iter().map(|&s| InstanceId(s)).collect(),
            connected: *connected,
        }
        .into(),
        Op::Lost { cluster, slot } => AgentLost {
            cluster: name(*cluster).into(),
            id: InstanceId(*slot),
            reason: "lost".into(),
        }
        .into(),
        Op::SetState {
            cluster,
            slots,
            draining,
        } => {
            let status = if *draining {
                InstanceStatus::Draining
            } else {
                InstanceStatus::Active
            };
            set_instances_state(name(*cluster), slots, status).into()
        }
        Op::PutAttributes { cluster, changes } => put_attributes(
            name(*cluster),
            changes
                .iter()
                .map(|(i, a)| attribute(*i, a, Some("v")))
                .collect(),
        )
        .into(),
        Op::DeleteAttributes { cluster, changes } => delete_attributes(
            name(*cluster),
            changes
                .iter()
                .map(|(i, a)| attribute(*i, a, None))
                .collect(),
        )
        .into(),
        Op::Place {
            cluster,
            tasks,
            token,
            distinct,
        } => {
            let tasks = tasks
                .iter()
                .map(|p| {
                    let group = if *distinct {
                        DISTINCT_GROUP.to_owned()
                    } else {
                        format!("group{}", p.group)
                    };
                    let mut b = task(name(p.cluster.unwrap_or(*cluster)), p.id, p.instance)
                        .family(FAMILIES[p.family], p.revision)
                        .cpu(p.cpu)
                        .memory(p.memory)
                        .tcp(&p.tcp)
                        .udp(&p.udp)
                        .dynamic_tcp(&p.dynamic_tcp)
                        .dynamic_udp(&p.dynamic_udp)
                        .group(&group);
                    if let Some(s) = p.started_by {
                        b = b.started_by(&format!("starter{s}"));
                    }
                    b
                })
                .collect();
            let mut command = match token {
                None => place(name(*cluster), tasks),
                Some((t, digest, continuation)) => place_with_token(
                    name(*cluster),
                    tasks,
                    &format!("token{t}"),
                    *digest,
                    *continuation,
                ),
            };
            command.distinct_instance = *distinct;
            command.into()
        }
        Op::Stop { cluster, task } => {
            stop_task(name(*cluster), existing_task(state, name(*cluster), *task)).into()
        }
        Op::Preempt {
            cluster,
            task: p,
            priority,
            victims,
        } => {
            let c = name(*cluster);
            let mut victims: Vec<TaskId> = victims
                .iter()
                .map(|v| TaskId(existing_task(state, c, *v)))
                .collect();
            victims.dedup();
            let task = Task {
                priority: Priority::new(*priority),
                ..task(name(p.cluster.unwrap_or(*cluster)), p.id, p.instance)
                    .family(FAMILIES[p.family], p.revision)
                    .cpu(p.cpu)
                    .memory(p.memory)
                    .tcp(&p.tcp)
                    .udp(&p.udp)
                    .dynamic_tcp(&p.dynamic_tcp)
                    .dynamic_udp(&p.dynamic_udp)
                    .group(&format!("group{}", p.group))
                    .build()
            };
            PreemptAndPlace {
                cluster: c.into(),
                task: Box::new(task),
                distinct_instance: false,
                victims,
            }
            .into()
        }
        Op::Report {
            cluster,
            task,
            status,
            container,
        } => {
            let id = existing_task(state, name(*cluster), *task);
            let mut b = report(name(*cluster), id, *status);
            if let Some((app, status, health)) = container {
                b = b.container(ContainerChange {
                    name: if *app { "app" } else { "sidecar" }.into(),
                    status: *status,
                    health_status: *health,
                    exit_code: status.filter(|s| *s == TaskStatus::Stopped).map(|_| 1),
                    ..Default::default()
                });
            }
            b.build().into()
        }
        Op::Tag {
            target,
            first,
            count,
        } => tag_resource(resource(target), tags(*first, *count)).into(),
        Op::Untag {
            target,
            first,
            count,
        } => {
            let keys: Vec<String> = (*first..first + count).map(|k| format!("k{k}")).collect();
            UntagResource {
                resource: resource(target),
                keys,
            }
            .into()
        }
        Op::Expire {
            stopped_ago,
            inactive_ago,
        } => expire(Millis(now.0 - stopped_ago), Millis(now.0 - inactive_ago)).into(),
        Op::Subscribe { cluster, fw } => subscribe(&format!("fw{fw}"), name(*cluster), now).into(),
        Op::Disconnect(fw) => FrameworkDisconnected {
            id: format!("fw{fw}"),
        }
        .into(),
        Op::Teardown(fw) => RemoveFramework {
            id: format!("fw{fw}"),
            reason: "torn down".into(),
        }
        .into(),
        Op::Offer { fw, offers } => {
            let id = format!("fw{fw}");
            let cluster = framework_cluster(state, &id);
            MakeOffers {
                offers: offers
                    .iter()
                    .map(|(o, slot, cpu, memory, tcp)| berth_model::mesos::Offer {
                        id: berth_model::OfferId(*o),
                        framework: id.clone(),
                        cluster: cluster.as_str().into(),
                        instance: InstanceId(*slot),
                        hold: berth_model::entity::Reservation {
                            cpu: *cpu,
                            memory: *memory,
                            tcp: tcp.clone(),
                            ..Default::default()
                        },
                        created_at: now,
                        version: 0,
                    })
                    .collect(),
            }
            .into()
        }
        Op::Decline(ids) => RemoveOffers {
            ids: ids.iter().map(|i| berth_model::OfferId(*i)).collect(),
        }
        .into(),
        Op::Accept { fw, offers, tasks } => {
            let id = format!("fw{fw}");
            let cluster = framework_cluster(state, &id);
            // Mostly offers the framework holds (the `pick`-th, round robin), so that accepts
            // meet them; the raw id, which may be anyone's or nobody's, otherwise.
            let mut own: Vec<berth_model::OfferId> = state
                .offers()
                .filter(|o| o.framework == id)
                .map(|o| o.id)
                .collect();
            own.sort_unstable();
            let offers: Vec<u128> = offers
                .iter()
                .map(|pick| match own.len() {
                    0 => *pick,
                    _ if *pick > 6 => *pick,
                    n => own[*pick as usize % n].0,
                })
                .collect();
            let first = offers
                .first()
                .and_then(|o| state.offer(berth_model::OfferId(*o)));
            let n = tasks.len().max(1) as i64;
            AcceptOffers {
                framework: id.clone(),
                offers: offers.iter().map(|o| berth_model::OfferId(*o)).collect(),
                tasks: tasks
                    .iter()
                    .enumerate()
                    .map(|(k, p)| {
                        // Mostly a share of what the first offer holds (so accepts succeed),
                        // sometimes what the plan says (so they are refused).
                        let (instance, cpu, memory, tcp) = match first {
                            Some(o) if p.group > 0 => (
                                o.instance.0,
                                o.hold.cpu / n,
                                o.hold.memory / n,
                                o.hold.tcp.get(k).copied().into_iter().collect(),
                            ),
                            _ => (p.instance, p.cpu / 4, p.memory / 4, p.tcp.clone()),
                        };
                        let mut t = task(&cluster, p.id, instance)
                            .cpu(cpu)
                            .memory(memory)
                            .tcp(&tcp)
                            .started_by(&id)
                            .build();
                        t.group = format!("mesos:framework{fw}");
                        t
                    })
                    .collect(),
            }
            .into()
        }
    }
}

/// Framework `id` subscribing to `cluster`.
fn subscribe(id: &str, cluster: &str, now: Millis) -> SubscribeFramework {
    SubscribeFramework {
        framework: std::sync::Arc::new(berth_model::mesos::Framework {
            id: id.to_owned(),
            cluster: cluster.into(),
            name: format!("framework-{id}"),
            user: "root".into(),
            roles: Vec::new(),
            hostname: None,
            principal: None,
            webui_url: None,
            capabilities: Vec::new(),
            checkpoint: false,
            failover_timeout: 0.0,
            connected: true,
            disconnected_at: None,
            registered_at: now,
            version: 0,
            owner: None,
        }),
    }
}

/// The cluster framework `id` is subscribed to, or the first cluster.
fn framework_cluster(state: &State, id: &str) -> String {
    state
        .framework(id)
        .map_or_else(|| CLUSTERS[0].to_owned(), |f| f.cluster.to_string())
}

/// Mostly one of the tasks `cluster` has (the `pick`-th, round robin), so that stops and
/// reports meet tasks; `pick` itself, an id that may not exist, otherwise.
fn existing_task(state: &State, cluster: &str, pick: u128) -> u128 {
    let filter = berth_state::TaskFilter::default();
    let ids: Vec<u128> = state
        .tasks_after(cluster, &filter, None)
        .map(|t| t.id.0)
        .collect();
    if ids.is_empty() || pick > 8 {
        pick
    } else {
        ids[pick as usize % ids.len()]
    }
}

fn resource(target: &Target) -> berth_model::arn::ResourceArn {
    use berth_model::arn::ResourceArn;
    match target {
        Target::Cluster(c) => cluster_arn(CLUSTERS[*c]),
        Target::Instance(c, i) => instance_arn(CLUSTERS[*c], *i),
        Target::Task(c, t) => task_arn(CLUSTERS[*c], *t),
        Target::TaskDefinition(f, r) => ResourceArn::TaskDefinition(FAMILIES[*f].into(), *r),
    }
}

/// What every run starts from: both clusters, a revision of each family, and instances 1
/// and 2 in cluster `a`.
fn setup() -> Vec<Command> {
    vec![
        create_cluster("a").into(),
        create_cluster("b").into(),
        register_task_definition("web").into(),
        register_task_definition("db").into(),
        instance("a", 1).ports(&[22]).build().into(),
        instance("a", 2)
            .cpu(512)
            .memory(512)
            .udp_ports(&[53])
            .build()
            .into(),
        subscribe("fw0", "a", EPOCH).into(),
        subscribe("fw1", "a", EPOCH).into(),
    ]
}

/// Tasks placed with `distinct_instance` (the only ones in [`DISTINCT_GROUP`]) never share
/// an instance while live, in any cluster.
fn distinct_tasks_stay_apart(state: &State) -> Result<(), TestCaseError> {
    for c in CLUSTERS {
        let filter = berth_state::TaskFilter {
            group: Some(DISTINCT_GROUP.into()),
            ..Default::default()
        };
        let mut on: BTreeMap<InstanceId, Vec<u128>> = BTreeMap::new();
        for t in state.tasks_after(c, &filter, None).filter(|t| t.is_live()) {
            on.entry(t.instance.expect("a placed task has an instance"))
                .or_default()
                .push(t.id.0);
        }
        for (i, ids) in on {
            prop_assert!(
                ids.len() == 1,
                "distinct tasks {:?} share instance {} in {}",
                ids,
                i,
                c
            );
        }
    }
    Ok(())
}

/// Applies one command, checks that a refusal changed nothing but the index, and checks every
/// invariant of the state it leaves.
fn apply_checked(
    state: &mut State,
    index: u64,
    stamped: &Stamped,
) -> Result<CommandResult, TestCaseError> {
    let before = state.persist();
    let result = state.apply(index, stamped);
    if result.is_err() {
        let mut after = state.persist();
        prop_assert_eq!(after.index, index);
        after.index = before.index;
        prop_assert!(
            after == before,
            "{:?} was refused but changed the state",
            stamped
        );
    }
    check(state);
    distinct_tasks_stay_apart(state)?;
    Ok(result)
}

type Log = Vec<(u64, Stamped, CommandResult)>;

/// Applies the setup and `steps` to a fresh state under `config`, checking after each, and
/// returns the state and the log it applied with each command's result. A snapshot taken
/// halfway must not change while the rest is applied.
fn run(config: &Config, steps: &[Step]) -> Result<(State, Log), TestCaseError> {
    let mut state = State::new(config.clone());
    let mut log = Vec::new();
    let mut now = EPOCH;
    for command in setup() {
        let index = log.len() as u64 + 1;
        let stamped = Stamped {
            at: now,
            command,
            by: None,
        };
        let result = apply_checked(&mut state, index, &stamped)?;
        log.push((index, stamped, result));
    }
    let mut index = log.len() as u64;
    let mut snapshot = None;
    for (n, step) in steps.iter().enumerate() {
        if !step.same_entry {
            index += 1;
        }
        now = Millis(now.0 + step.elapsed);
        let stamped = Stamped {
            at: now,
            command: command(&step.op, &state, now),
            by: None,
        };
        let result = apply_checked(&mut state, index, &stamped)?;
        log.push((index, stamped, result));
        if n == steps.len() / 2 {
            snapshot = Some((state.clone(), state.persist()));
        }
    }
    if let Some((snapshot, frozen)) = snapshot {
        prop_assert!(snapshot.persist() == frozen, "a snapshot saw later writes");
    }
    Ok((state, log))
}

/// Runs `steps`, then replays the log it applied on a fresh state: the same answers and the
/// same state.
fn deterministic(config: &Config, steps: &[Step]) -> Result<(), TestCaseError> {
    let (state, log) = run(config, steps)?;
    let mut replay = State::new(config.clone());
    for (index, stamped, result) in &log {
        let again = replay.apply(*index, stamped);
        prop_assert_eq!(&again, result);
    }
    prop_assert!(replay.persist() == state.persist(), "replay diverged");
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 128,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_sequences_keep_every_invariant(
        steps in proptest::collection::vec(step(), 1..50),
    ) {
        deterministic(&Config::default(), &steps)?;
    }

    #[test]
    fn random_sequences_keep_every_invariant_with_short_memory(
        config in short_memory(),
        steps in proptest::collection::vec(step(), 1..50),
    ) {
        deterministic(&config, &steps)?;
    }
}

#[test]
fn dynamic_windows_are_dynamic_ports() {
    for p in DYNAMIC_TCP.iter().chain(&DYNAMIC_UDP) {
        assert!(DYNAMIC_PORTS.contains(p), "{p} is not a dynamic port");
    }
}

/// The generator reaches what the properties above are meant to exercise: every kind of host
/// port collision, static and dynamic, on both protocols, and distinctInstance refusals within
/// one plan and against tasks already placed, and Mesos offers made, refused, accepted with
/// tasks and refused at accept. Sequences from a fixed seed, applied without
/// the (slow) invariant checks, classified by the rejections their plans got.
#[test]
fn the_generator_reaches_every_kind_of_collision() {
    use berth_model::command::FailureReason;
    use berth_model::entity::{Protocol, Task};
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    use std::collections::BTreeSet;

    let mut runner = TestRunner::deterministic();
    let strategy = proptest::collection::vec(step_of(op()), 1..50);
    let mut seen = BTreeSet::new();
    for _ in 0..400 {
        let steps = strategy.new_tree(&mut runner).unwrap().current();
        let mut state = State::default();
        let mut now = EPOCH;
        let mut index = 0;
        for command in setup() {
            index += 1;
            state
                .apply(
                    index,
                    &Stamped {
                        at: now,
                        command,
                        by: None,
                    },
                )
                .unwrap();
        }
        for step in &steps {
            index += 1;
            now = Millis(now.0 + step.elapsed);
            let command = command(&step.op, &state, now);
            let result = state.apply(
                index,
                &Stamped {
                    at: now,
                    command: command.clone(),
                    by: None,
                },
            );
            match (&command, &result) {
                (Command::MakeOffers(_), Ok(outcome)) => {
                    let OffersMade { made, rejected } = outcome.clone().try_into().unwrap();
                    if !made.is_empty() {
                        seen.insert("offer made");
                    }
                    if !rejected.is_empty() {
                        seen.insert("offer refused");
                    }
                }
                (Command::AcceptOffers(_), Ok(outcome)) => {
                    let Placed { tasks, .. } = outcome.clone().try_into().unwrap();
                    if !tasks.is_empty() {
                        seen.insert("offer accepted with tasks");
                    }
                }
                (Command::AcceptOffers(_), Err(_)) => {
                    seen.insert("accept refused");
                }
                _ => {}
            }
            let (Command::PlaceTasks(plan), Ok(outcome)) = (&command, result) else {
                continue;
            };
            let tasks = &plan.tasks;
            let Placed {
                tasks: placed,
                rejected,
            } = outcome.try_into().unwrap();
            let ids: BTreeSet<_> = tasks.iter().map(|t| t.id).collect();
            if ids.len() != tasks.len() {
                continue;
            }
            if placed.iter().any(|t| !t.reservation.dynamic_tcp.is_empty()) {
                seen.insert("placed with dynamic ports");
            }
            for r in &rejected {
                let t: &Task = tasks.iter().find(|t| t.id == r.task).unwrap();
                let Some(i) = t.instance.and_then(|i| state.instance(i)) else {
                    continue;
                };
                let usage = state.usage(i.id).cloned().unwrap_or_default();
                if r.reason == FailureReason::Attribute {
                    let same_plan = placed
                        .iter()
                        .any(|p| p.instance == t.instance && p.group == t.group);
                    seen.insert(if same_plan {
                        "distinct: within one plan"
                    } else {
                        "distinct: against a placed task"
                    });
                    continue;
                }
                let (protocol, fixed, dynamic, reserved, held, held_dynamic) = match r.reason {
                    FailureReason::ResourcePorts => (
                        Protocol::Tcp,
                        &t.reservation.tcp,
                        &t.reservation.dynamic_tcp,
                        &i.resources.ports,
                        &usage.tcp,
                        &usage.dynamic_tcp,
                    ),
                    FailureReason::ResourcePortsUdp => (
                        Protocol::Udp,
                        &t.reservation.udp,
                        &t.reservation.dynamic_udp,
                        &i.resources.udp_ports,
                        &usage.udp,
                        &usage.dynamic_udp,
                    ),
                    _ => continue,
                };
                let port: u16 = r
                    .detail
                    .split_whitespace()
                    .skip_while(|w| *w != "port")
                    .nth(1)
                    .and_then(|p| p.parse().ok())
                    .expect("a port refusal names the port");
                let mine = if dynamic.contains(&port) {
                    "dynamic"
                } else {
                    "static"
                };
                let theirs = if reserved.contains(&port) {
                    "reserved"
                } else if held.contains(&port) {
                    "static"
                } else if held_dynamic.contains(&port) {
                    "dynamic"
                } else {
                    assert!(fixed.contains(&port) && dynamic.contains(&port), "{r:?}");
                    "own static"
                };
                seen.insert(match (protocol, mine, theirs) {
                    (Protocol::Tcp, "dynamic", "reserved") => "tcp: dynamic vs reserved",
                    (Protocol::Tcp, "dynamic", "static") => "tcp: dynamic vs static",
                    (Protocol::Tcp, "dynamic", "dynamic") => "tcp: dynamic vs dynamic",
                    (Protocol::Tcp, "static", "dynamic") => "tcp: static vs dynamic",
                    (Protocol::Tcp, _, "own static") => "tcp: own static",
                    (Protocol::Udp, "dynamic", "static" | "dynamic") => "udp: dynamic vs held",
                    (Protocol::Udp, "static", "dynamic") => "udp: static vs dynamic",
                    (Protocol::Udp, _, "own static") => "udp: own static",
                    (_, "static", "static") => "static vs static",
                    (_, "static", "reserved") => "static vs reserved",
                    _ => "other",
                });
            }
        }
    }
    for want in [
        "placed with dynamic ports",
        "distinct: within one plan",
        "distinct: against a placed task",
        "tcp: dynamic vs reserved",
        "tcp: dynamic vs static",
        "tcp: dynamic vs dynamic",
        "tcp: static vs dynamic",
        "tcp: own static",
        "udp: dynamic vs held",
        "udp: static vs dynamic",
        "udp: own static",
        "static vs static",
        "static vs reserved",
        "offer made",
        "offer refused",
        "offer accepted with tasks",
        "accept refused",
    ] {
        assert!(
            seen.contains(want),
            "never reached {want:?}; reached {seen:?}"
        );
    }
}
