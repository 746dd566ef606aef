//! A brute-force model of the placement rules, written from the documentation rather than
//! from the engine: usage is summed from the tasks themselves (not from the state's indexes),
//! and each filter and strategy is applied to every instance in the plainest way.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use berth_model::command::FailureReason;
use berth_model::entity::*;
use berth_model::{InstanceId, Millis};
use berth_scheduler::query::Target;
use berth_scheduler::{BinpackField, Constraint, PlacementRequest, SpreadField, Strategy};
use berth_state::{State, TaskFilter};

/// What the live tasks on one instance hold, summed from the tasks.
#[derive(Debug, Default)]
pub struct Held {
    pub cpu: i64,
    pub memory: i64,
    /// Host ports held, static and dynamic alike.
    pub tcp: BTreeSet<u16>,
    pub udp: BTreeSet<u16>,
    pub running: u64,
    pub groups: Vec<String>,
}

/// Every live task of `cluster`.
pub fn live_tasks(state: &State, cluster: &str) -> Vec<Arc<Task>> {
    let all = TaskFilter::default();
    state
        .tasks_after(cluster, &all, None)
        .filter(|t| t.is_live())
        .cloned()
        .collect()
}

pub fn held(state: &State, instance: &ContainerInstance) -> Held {
    let mut h = Held::default();
    for t in live_tasks(state, &instance.cluster) {
        if t.instance != Some(instance.id) {
            continue;
        }
        let r = &t.reservation;
        h.cpu += r.cpu;
        h.memory += r.memory;
        h.tcp.extend(r.ports(Protocol::Tcp));
        h.udp.extend(r.ports(Protocol::Udp));
        h.running += u64::from(t.last_status == TaskStatus::Running);
        h.groups.push(t.group.clone());
    }
    h
}

/// The registered (not INACTIVE) instances of the request's cluster, by id.
pub fn registered(state: &State, cluster: &str) -> Vec<Arc<ContainerInstance>> {
    state
        .instances_after(cluster, None)
        .filter(|i| i.status != InstanceStatus::Inactive)
        .cloned()
        .collect()
}

/// An instance as the query language sees it, from the brute-force sums.
struct View<'a> {
    instance: &'a ContainerInstance,
    held: &'a Held,
}

impl Target for View<'_> {
    fn agent_connected(&self) -> bool {
        self.instance.agent_connected
    }
    fn agent_version(&self) -> Option<&str> {
        self.instance
            .version_info
            .as_ref()
            .and_then(|v| v.agent_version.as_deref())
    }
    fn attribute(&self, name: &str) -> Option<Option<&str>> {
        self.instance.attributes.get(name).map(|v| v.as_deref())
    }
    fn ec2_instance_id(&self) -> Option<&str> {
        self.instance.ec2_instance_id.as_deref()
    }
    fn registered_at(&self) -> Millis {
        self.instance.registered_at
    }
    fn running_tasks_count(&self) -> u64 {
        self.held.running
    }
    fn any_task_group(&self, test: &mut dyn FnMut(&str) -> bool) -> bool {
        self.held.groups.iter().any(|g| test(g))
    }
}

/// Whether a memberOf expression holds for `instance` as the state stands.
pub fn member_of(
    state: &State,
    instance: &ContainerInstance,
    expr: &berth_scheduler::query::Expr,
) -> bool {
    let held = held(state, instance);
    expr.eval(&View {
        instance,
        held: &held,
    })
}

/// Free ports of the dynamic range for a task: not reserved by the host (a sorted list), not
/// held by a live task, not one of the task's own static ports.
pub fn free_dynamic(reserved: &[u16], held: &BTreeSet<u16>, own: &[u16]) -> usize {
    let in_range = |p: &u16| DYNAMIC_PORTS.contains(p);
    let reserved_in_range = reserved.iter().filter(|p| in_range(p)).count();
    let others: BTreeSet<u16> = held
        .iter()
        .chain(own)
        .copied()
        .filter(|p| in_range(p) && reserved.binary_search(p).is_err())
        .collect();
    DYNAMIC_PORTS.len() - reserved_in_range - others.len()
}

/// The first filter `instance` fails for one more task of `req`, in ECS's order: status,
/// agent, CPU, memory, TCP ports (static, then dynamic room), UDP ports, then the constraints
/// in the request's order.
pub fn first_failure(
    state: &State,
    instance: &ContainerInstance,
    req: &PlacementRequest,
) -> Option<FailureReason> {
    if instance.status != InstanceStatus::Active {
        return Some(FailureReason::Inactive);
    }
    if !instance.agent_connected {
        return Some(FailureReason::Agent);
    }
    let h = held(state, instance);
    let r = &req.reservation;
    if instance.resources.cpu - h.cpu < r.cpu {
        return Some(FailureReason::ResourceCpu);
    }
    if instance.resources.memory - h.memory < r.memory {
        return Some(FailureReason::ResourceMemory);
    }
    for (reserved, ports, held, dynamic, reason) in [
        (
            &instance.resources.ports,
            &r.tcp,
            &h.tcp,
            req.dynamic_tcp,
            FailureReason::ResourcePorts,
        ),
        (
            &instance.resources.udp_ports,
            &r.udp,
            &h.udp,
            req.dynamic_udp,
            FailureReason::ResourcePortsUdp,
        ),
    ] {
        if ports
            .iter()
            .any(|p| reserved.contains(p) || held.contains(p))
        {
            return Some(reason);
        }
        if dynamic > 0 && free_dynamic(reserved, held, ports) < dynamic {
            return Some(reason);
        }
    }
    for c in &req.constraints {
        let ok = match c {
            Constraint::DistinctInstance => !h.groups.contains(&req.group),
            Constraint::MemberOf(expr) => expr.eval(&View { instance, held: &h }),
        };
        if !ok {
            return Some(FailureReason::Attribute);
        }
    }
    None
}

/// The instances of the request's cluster that can take one more task, by id.
pub fn feasible(state: &State, req: &PlacementRequest) -> Vec<Arc<ContainerInstance>> {
    registered(state, &req.cluster)
        .into_iter()
        .filter(|i| first_failure(state, i, req).is_none())
        .collect()
}

/// What would remain free of `field` on `instance` after one more task of `req`.
pub fn remaining(
    state: &State,
    instance: &ContainerInstance,
    field: BinpackField,
    req: &PlacementRequest,
) -> i64 {
    let h = held(state, instance);
    match field {
        BinpackField::Cpu => instance.resources.cpu - h.cpu - req.reservation.cpu,
        BinpackField::Memory => instance.resources.memory - h.memory - req.reservation.memory,
    }
}

/// Free memory (or CPU) on an instance as things stand.
pub fn free(state: &State, instance: &ContainerInstance, field: BinpackField) -> i64 {
    let h = held(state, instance);
    match field {
        BinpackField::Cpu => instance.resources.cpu - h.cpu,
        BinpackField::Memory => instance.resources.memory - h.memory,
    }
}

/// The spread bucket of an instance.
pub fn bucket(field: &SpreadField, instance: &ContainerInstance) -> String {
    match field {
        SpreadField::Instance => instance.id.to_string(),
        SpreadField::Attribute(name) => format!("{:?}", instance.attribute(name)),
    }
}

/// Live tasks of `group` per bucket of `field`, counted from the tasks.
pub fn group_counts(
    state: &State,
    cluster: &str,
    group: &str,
    field: &SpreadField,
) -> HashMap<String, u64> {
    let mut counts = HashMap::new();
    for t in live_tasks(state, cluster) {
        if t.group != group {
            continue;
        }
        if let Some(i) = t.instance.and_then(|i| state.instance(i)) {
            *counts.entry(bucket(field, i)).or_default() += 1;
        }
    }
    counts
}

/// The instances the strategy chain may choose among, given the feasible ones: each spread
/// keeps the least-loaded buckets, each binpack the tightest fits, and a random strategy ends
/// the chain (any survivor may be its pick).
pub fn survivors(
    state: &State,
    req: &PlacementRequest,
    feasible: &[Arc<ContainerInstance>],
) -> Vec<InstanceId> {
    let mut keep: Vec<&Arc<ContainerInstance>> = feasible.iter().collect();
    for s in &req.strategies {
        match s {
            Strategy::Random => break,
            Strategy::Spread(field) => {
                let counts = group_counts(state, &req.cluster, &req.group, field);
                let score =
                    |i: &ContainerInstance| counts.get(&bucket(field, i)).copied().unwrap_or(0);
                let best = keep.iter().map(|i| score(i)).min().unwrap_or(0);
                keep.retain(|i| score(i) == best);
            }
            Strategy::Binpack(field) => {
                let best = keep
                    .iter()
                    .map(|i| remaining(state, i, *field, req))
                    .min()
                    .unwrap_or(0);
                keep.retain(|i| remaining(state, i, *field, req) == best);
            }
        }
    }
    keep.iter().map(|i| i.id).collect()
}

/// How far through the filters an instance got, for ordering rejections: later filters first.
pub fn stage(reason: FailureReason) -> u8 {
    match reason {
        FailureReason::Missing | FailureReason::Inactive | FailureReason::Agent => 0,
        FailureReason::ResourceCpu => 1,
        FailureReason::ResourceMemory => 2,
        FailureReason::ResourcePorts => 3,
        FailureReason::ResourcePortsUdp => 4,
        FailureReason::ResourceGpu | FailureReason::Attribute => 5,
    }
}
