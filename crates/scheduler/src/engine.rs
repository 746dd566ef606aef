//! The planner: feasibility, strategies, choice and dynamic ports, one task at a time.
//!
//! Two ways to find each task's instance, which must agree: the scan (every instance checked,
//! then the strategy chain narrowing stage by stage; it also words every rejection and
//! explanation) and, for speed, an index where the chain allows one — the free-capacity walk
//! for binpack first ([`Planner::tightest`]), a lazy seeded shuffle for random first, and
//! [`crate::index`] for spread first. A chain that starts with spread breaks its final ties by
//! a seeded order of the instances ([`crate::index::tie`]) rather than by a draw, so that the
//! index can keep it.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use berth_model::InstanceId;
use berth_model::Millis;
use berth_model::capacity::PROVIDER_ATTRIBUTE;
use berth_model::command::FailureReason;
use berth_model::entity::{ContainerInstance, DYNAMIC_PORTS, InstanceStatus, Protocol};
use berth_state::{Capacity, State, Usage, fits};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::index::{Own, Ranker, Shape, SpreadIndex, tie};
use crate::query::Target;
use crate::request::{BinpackField, Constraint, PlacementRequest, SpreadField, Strategy};

/// One placed task: its instance and the dynamic host ports chosen for it (in the order of the
/// request's dynamic claims).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    pub instance: InstanceId,
    pub dynamic_tcp: Vec<u16>,
    pub dynamic_udp: Vec<u16>,
}

/// Why one instance could not take a task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceRejection {
    pub instance: InstanceId,
    pub reason: FailureReason,
    pub detail: String,
}

/// What the planner concluded about one instance, for the first task of the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub instance: InstanceId,
    /// Tasks of this request placed on the instance.
    pub placed: usize,
    /// Why it could not take the task, when it could not.
    pub rejection: Option<(FailureReason, String)>,
    /// Why a feasible instance was passed over (the strategy that preferred others).
    pub passed_over: Option<String>,
}

/// The planner's proposal.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// One per placed task, in placement order.
    pub placements: Vec<Placement>,
    /// When tasks could not all be placed: why each instance could not take the next one,
    /// closest instance first.
    pub rejections: Vec<InstanceRejection>,
    /// With `explain`: one verdict per instance considered, by instance id.
    pub verdicts: Vec<Verdict>,
}

/// What this plan has put on an instance so far.
#[derive(Debug, Clone, Default)]
struct Planned {
    cpu: i64,
    memory: i64,
    tcp: BTreeSet<u16>,
    udp: BTreeSet<u16>,
    tasks: u32,
}

/// A spread strategy's bucket.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Bucket<'a> {
    Instance(InstanceId),
    Value(Option<&'a str>),
}

/// A feasible instance being ranked.
struct Candidate<'a> {
    instance: &'a ContainerInstance,
}

/// An instance that cannot take the next task, with how close it came, for ordering failures.
struct Miss {
    instance: InstanceId,
    reason: FailureReason,
    why: Why,
    /// The stage reached (higher is closer) and the share of the need that was available.
    closeness: (u8, f64),
}

/// What an instance lacked. Put into words only when a plan reports it: most misses of a plan
/// that succeeds are never shown, and wording every one (a memberOf expression rendered per
/// instance per task) took half the planning time on a 1,000-instance cluster.
enum Why {
    /// Already in words (the shared commit check words its own misfits).
    Said(String),
    DynamicPorts {
        protocol: Protocol,
        free: usize,
        need: usize,
    },
    DistinctInstance,
    /// The request's constraint at this position.
    MemberOf(usize),
}

/// An instance as the query language sees it, including this plan's tasks.
struct View<'a> {
    state: &'a State,
    instance: &'a ContainerInstance,
    planned_group: Option<&'a str>,
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
        self.state
            .usage(self.instance.id)
            .map_or(0, |u| u64::from(u.running))
    }
    fn any_task_group(&self, test: &mut dyn FnMut(&str) -> bool) -> bool {
        self.planned_group.is_some_and(&mut *test)
            || self
                .state
                .tasks_on(self.instance.id)
                .any(|t| t.is_live() && test(&t.group))
    }
}

struct Planner<'a> {
    state: &'a State,
    req: &'a PlacementRequest,
    planned: HashMap<InstanceId, Planned>,
    /// The group's live tasks per instance, read from the group index once per plan (when
    /// distinctInstance or spread needs them).
    group_on: HashMap<InstanceId, u32>,
    /// Per spread strategy (by position in the chain): tasks of the group per bucket.
    spread: Vec<HashMap<Bucket<'a>, u64>>,
    rng: SmallRng,
    seed: u64,
    /// How a chain that starts with spread ranks, when [`SpreadIndex`] can keep it; its ties
    /// are then broken by [`tie`], in the scan as in the index.
    shape: Option<Shape<'a>>,
}

/// Plans `request.count` tasks (or one per listed instance, for StartTask).
pub fn place(state: &State, request: &PlacementRequest, seed: u64) -> Plan {
    let mut planner = Planner {
        state,
        req: request,
        planned: HashMap::new(),
        group_on: HashMap::new(),
        spread: Vec::new(),
        rng: SmallRng::seed_from_u64(seed),
        seed,
        shape: Shape::of(&request.strategies),
    };
    let needs_group = request
        .constraints
        .iter()
        .any(|c| matches!(c, Constraint::DistinctInstance))
        || request
            .strategies
            .iter()
            .any(|s| matches!(s, Strategy::Spread(_)));
    if needs_group {
        planner.group_on = state
            .live_in_group(&request.cluster, &request.group)
            .collect();
    }
    planner.count_spread();
    match &request.instances {
        Some(ids) => planner.place_on(ids),
        None => planner.place_anywhere(),
    }
}

/// Whether one more task of `request` can go on `instance` as the state stands: the full
/// feasibility check (resources, ports, and the request's constraints unless it names its
/// instances, as StartTask's and daemons' do), with its dynamic ports chosen when it can.
/// Preemption asks this of an instance with some of its tasks taken away.
pub fn feasible_on(
    state: &State,
    request: &PlacementRequest,
    instance: InstanceId,
    seed: u64,
) -> Result<Placement, InstanceRejection> {
    let mut planner = Planner {
        state,
        req: request,
        planned: HashMap::new(),
        group_on: HashMap::new(),
        spread: Vec::new(),
        rng: SmallRng::seed_from_u64(seed),
        seed,
        shape: None,
    };
    let Some(i) = state
        .instance(instance)
        .filter(|i| *i.cluster == *request.cluster && planner.in_provider(i))
    else {
        return Err(InstanceRejection {
            instance,
            reason: FailureReason::Missing,
            detail: format!("container instance {instance} is not registered in this cluster"),
        });
    };
    let constraints = request.instances.is_none();
    if constraints
        && request
            .constraints
            .iter()
            .any(|c| matches!(c, Constraint::DistinctInstance))
    {
        planner.group_on = state
            .live_in_group(&request.cluster, &request.group)
            .collect();
    }
    // One count per strategy, as `commit` keeps them up to date (nothing is ranked here).
    planner.spread = vec![HashMap::new(); request.strategies.len()];
    match planner.check(i, constraints) {
        Ok(()) => Ok(planner.commit(i)),
        Err(m) => Err(planner.rejection(&m)),
    }
}

fn stage(reason: FailureReason) -> u8 {
    match reason {
        FailureReason::Missing | FailureReason::Inactive | FailureReason::Agent => 0,
        FailureReason::ResourceCpu => 1,
        FailureReason::ResourceMemory => 2,
        FailureReason::ResourcePorts => 3,
        FailureReason::ResourcePortsUdp => 4,
        FailureReason::ResourceGpu | FailureReason::Attribute => 5,
    }
}

impl<'a> Planner<'a> {
    fn instances(&self) -> Vec<&'a ContainerInstance> {
        self.state
            .instances_after(&self.req.cluster, None)
            .filter(|i| i.status != InstanceStatus::Inactive && self.in_provider(i))
            .map(|i| &**i)
            .collect()
    }

    /// Whether `i` belongs to the request's capacity provider (always, without one).
    fn in_provider(&self, i: &ContainerInstance) -> bool {
        self.req
            .capacity_provider
            .as_deref()
            .is_none_or(|p| i.attribute(PROVIDER_ATTRIBUTE) == Some(p))
    }

    fn bucket(field: &SpreadField, i: &'a ContainerInstance) -> Bucket<'a> {
        match field {
            SpreadField::Instance => Bucket::Instance(i.id),
            SpreadField::Attribute(name) => Bucket::Value(i.attribute(name)),
        }
    }

    /// Counts the group's live tasks per spread bucket, once per plan.
    fn count_spread(&mut self) {
        for s in &self.req.strategies {
            let mut counts = HashMap::new();
            if let Strategy::Spread(field) = s {
                for (id, n) in &self.group_on {
                    if let Some(i) = self.state.instance(*id) {
                        *counts.entry(Self::bucket(field, i)).or_default() += u64::from(*n);
                    }
                }
            }
            self.spread.push(counts);
        }
    }

    /// The usage an instance's tasks and this plan's tasks hold together.
    fn usage(&self, id: InstanceId) -> Option<std::borrow::Cow<'a, Usage>> {
        let state = self.state.usage(id);
        match self.planned.get(&id) {
            None => state.map(std::borrow::Cow::Borrowed),
            Some(p) => {
                let mut u = state.cloned().unwrap_or_default();
                u.cpu += p.cpu;
                u.memory += p.memory;
                u.dynamic_tcp.extend(p.tcp.iter().copied());
                u.dynamic_udp.extend(p.udp.iter().copied());
                Some(std::borrow::Cow::Owned(u))
            }
        }
    }

    /// The ports of the dynamic range one more task of the request cannot take on `i`, sorted
    /// and distinct: reserved by the host, held by a live or planned task (statically or
    /// dynamically), or bound statically by the task itself.
    fn taken_dynamic(
        &self,
        i: &ContainerInstance,
        usage: Option<&Usage>,
        protocol: Protocol,
    ) -> Vec<u16> {
        let (reserved, own) = match protocol {
            Protocol::Tcp => (&i.resources.ports, &self.req.reservation.tcp),
            Protocol::Udp => (&i.resources.udp_ports, &self.req.reservation.udp),
        };
        let held = usage.into_iter().flat_map(|u| {
            let (a, b) = match protocol {
                Protocol::Tcp => (&u.tcp, &u.dynamic_tcp),
                Protocol::Udp => (&u.udp, &u.dynamic_udp),
            };
            a.range(DYNAMIC_PORTS).chain(b.range(DYNAMIC_PORTS))
        });
        let mut taken: Vec<u16> = reserved
            .iter()
            .chain(own)
            .filter(|p| DYNAMIC_PORTS.contains(p))
            .chain(held)
            .copied()
            .collect();
        taken.sort_unstable();
        taken.dedup();
        taken
    }

    /// Why `i` has too few free dynamic ports of `protocol` for the task, if it has.
    fn dynamic_shortage(
        &self,
        i: &ContainerInstance,
        usage: Option<&Usage>,
        protocol: Protocol,
    ) -> Option<(FailureReason, Why)> {
        let (need, reason) = match protocol {
            Protocol::Tcp => (self.req.dynamic_tcp, FailureReason::ResourcePorts),
            Protocol::Udp => (self.req.dynamic_udp, FailureReason::ResourcePortsUdp),
        };
        if need == 0 {
            return None;
        }
        let free = DYNAMIC_PORTS.len() - self.taken_dynamic(i, usage, protocol).len();
        (free < need).then_some((
            reason,
            Why::DynamicPorts {
                protocol,
                free,
                need,
            },
        ))
    }

    /// A miss in words.
    fn words(&self, instance: InstanceId, why: &Why) -> String {
        match why {
            Why::Said(text) => text.clone(),
            Why::DynamicPorts {
                protocol,
                free,
                need,
            } => format!(
                "container instance {instance} has {free} free dynamic {} ports in {}-{}; the task needs {need}",
                protocol.as_str().to_uppercase(),
                DYNAMIC_PORTS.start(),
                DYNAMIC_PORTS.end()
            ),
            Why::DistinctInstance => format!(
                "distinctInstance: container instance {instance} already runs a task of group {}",
                self.req.group
            ),
            Why::MemberOf(k) => match &self.req.constraints[*k] {
                Constraint::MemberOf(expr) => {
                    format!("container instance {instance} does not satisfy memberOf({expr})")
                }
                Constraint::DistinctInstance => self.words(instance, &Why::DistinctInstance),
            },
        }
    }

    fn rejection(&self, m: &Miss) -> InstanceRejection {
        InstanceRejection {
            instance: m.instance,
            reason: m.reason,
            detail: self.words(m.instance, &m.why),
        }
    }

    /// Can `i` take one more task? Resources and ports first (through the same check the
    /// commit uses), then dynamic-port room, then constraints.
    fn check(&self, i: &'a ContainerInstance, constraints: bool) -> Result<(), Miss> {
        let usage = self.usage(i.id);
        let miss = |reason: FailureReason, why: Why, share: f64| Miss {
            instance: i.id,
            reason,
            why,
            closeness: (stage(reason), share),
        };
        let r = &self.req.reservation;
        match fits(i, usage.as_deref(), r) {
            Ok(()) => {}
            // `fits` checks static ports only, TCP then UDP; too few free dynamic TCP ports is
            // a TCP failure, and the TCP filter comes first.
            Err(m) if m.reason == FailureReason::ResourcePortsUdp => {
                let (reason, why) = self
                    .dynamic_shortage(i, usage.as_deref(), Protocol::Tcp)
                    .unwrap_or((m.reason, Why::Said(m.detail)));
                return Err(miss(reason, why, 0.0));
            }
            Err(m) => {
                let (used_cpu, used_mem) = usage.as_deref().map_or((0, 0), |u| (u.cpu, u.memory));
                let share = match m.reason {
                    FailureReason::ResourceCpu => {
                        (i.resources.cpu - used_cpu) as f64 / r.cpu.max(1) as f64
                    }
                    FailureReason::ResourceMemory => {
                        (i.resources.memory - used_mem) as f64 / r.memory.max(1) as f64
                    }
                    _ => 0.0,
                };
                return Err(miss(m.reason, Why::Said(m.detail), share));
            }
        }
        for protocol in [Protocol::Tcp, Protocol::Udp] {
            if let Some((reason, why)) = self.dynamic_shortage(i, usage.as_deref(), protocol) {
                return Err(miss(reason, why, 0.0));
            }
        }
        if !constraints {
            return Ok(());
        }
        let planned_here = self.planned.get(&i.id).map_or(0, |p| p.tasks);
        for (k, c) in self.req.constraints.iter().enumerate() {
            match c {
                Constraint::DistinctInstance => {
                    let live = self.group_on.get(&i.id).copied().unwrap_or(0);
                    if live + planned_here > 0 {
                        return Err(miss(FailureReason::Attribute, Why::DistinctInstance, 0.0));
                    }
                }
                Constraint::MemberOf(expr) => {
                    let view = View {
                        state: self.state,
                        instance: i,
                        planned_group: (planned_here > 0).then_some(self.req.group.as_str()),
                    };
                    if !expr.eval(&view) {
                        return Err(miss(FailureReason::Attribute, Why::MemberOf(k), 0.0));
                    }
                }
            }
        }
        Ok(())
    }

    /// What would remain free of `field` on `i` after one more task.
    fn remaining(&self, i: &ContainerInstance, field: BinpackField) -> i64 {
        let usage = self.usage(i.id);
        let (used_cpu, used_mem) = usage.as_deref().map_or((0, 0), |u| (u.cpu, u.memory));
        match field {
            BinpackField::Cpu => i.resources.cpu - used_cpu - self.req.reservation.cpu,
            BinpackField::Memory => i.resources.memory - used_mem - self.req.reservation.memory,
        }
    }

    /// Applies the strategy chain to feasible candidates, from strategy `from` on; returns the
    /// survivors and, per eliminated instance, which strategy eliminated it and why.
    fn narrow(
        &mut self,
        mut candidates: Vec<Candidate<'a>>,
        from: usize,
        notes: &mut Option<HashMap<InstanceId, String>>,
    ) -> Vec<Candidate<'a>> {
        for (k, strategy) in self.req.strategies.iter().enumerate().skip(from) {
            if candidates.len() <= 1 {
                break;
            }
            let keep: Vec<bool> = match strategy {
                Strategy::Random if self.shape.is_some() => {
                    let pick = self.first_by_tie(&candidates);
                    (0..candidates.len()).map(|n| n == pick).collect()
                }
                Strategy::Random => {
                    let pick = self.rng.random_range(0..candidates.len());
                    (0..candidates.len()).map(|n| n == pick).collect()
                }
                Strategy::Spread(field) => {
                    let counts = &self.spread[k];
                    let scores: Vec<u64> = candidates
                        .iter()
                        .map(|c| {
                            counts
                                .get(&Self::bucket(field, c.instance))
                                .copied()
                                .unwrap_or(0)
                        })
                        .collect();
                    let best = scores.iter().copied().min().unwrap_or(0);
                    if let Some(notes) = notes {
                        for (c, s) in candidates.iter().zip(&scores) {
                            if *s > best {
                                notes.entry(c.instance.id).or_insert_with(|| {
                                    format!("spread({}): its {} already has {s} tasks of the group; others have {best}", field_name(field), bucket_name(&Self::bucket(field, c.instance)))
                                });
                            }
                        }
                    }
                    scores.iter().map(|s| *s == best).collect()
                }
                Strategy::Binpack(field) => {
                    let scores: Vec<i64> = candidates
                        .iter()
                        .map(|c| self.remaining(c.instance, *field))
                        .collect();
                    let best = scores.iter().copied().min().unwrap_or(0);
                    if let Some(notes) = notes {
                        for (c, s) in candidates.iter().zip(&scores) {
                            if *s > best {
                                notes.entry(c.instance.id).or_insert_with(|| {
                                    format!("binpack({}): {s} would remain free; the tightest fit leaves {best}", binpack_name(*field))
                                });
                            }
                        }
                    }
                    scores.iter().map(|s| *s == best).collect()
                }
            };
            let mut it = keep.into_iter();
            if let Some(notes) = notes {
                for (c, k) in candidates.iter().zip(it.clone()) {
                    if !k {
                        notes.entry(c.instance.id).or_insert_with(|| {
                            format!("{}: another instance was picked", strategy_name(strategy))
                        });
                    }
                }
            }
            candidates.retain(|_| it.next().unwrap_or(false));
        }
        candidates
    }

    /// The binpack fast path: feasible instances with the least free `field`, found by walking
    /// the free-capacity index upwards instead of checking every instance.
    fn tightest(&self, field: BinpackField) -> Vec<Candidate<'a>> {
        let (capacity, need) = match field {
            BinpackField::Cpu => (Capacity::Cpu, self.req.reservation.cpu),
            BinpackField::Memory => (Capacity::Memory, self.req.reservation.memory),
        };
        let mut best: Option<i64> = None;
        let mut out = Vec::new();
        // Instances this plan has used hold less than the index says: rank them by hand.
        for id in self.planned.keys() {
            let Some(i) = self.state.instance(*id) else {
                continue;
            };
            if self.check(i, true).is_ok() {
                let r = self.remaining(i, field);
                match best {
                    Some(b) if r > b => {}
                    Some(b) if r == b => out.push(Candidate { instance: i }),
                    _ => {
                        best = Some(r);
                        out = vec![Candidate { instance: i }];
                    }
                }
            }
        }
        for (free, id) in self.state.by_free(&self.req.cluster, capacity, need) {
            if best.is_some_and(|b| free - need > b) {
                break;
            }
            if self.planned.contains_key(&id) {
                continue;
            }
            let Some(i) = self.state.instance(id).filter(|i| self.in_provider(i)) else {
                continue;
            };
            if self.check(i, true).is_ok() {
                let r = free - need;
                match best {
                    Some(b) if r == b => out.push(Candidate { instance: i }),
                    _ => {
                        best = Some(r);
                        out = vec![Candidate { instance: i }];
                    }
                }
            }
        }
        out.sort_by_key(|c| c.instance.id);
        out
    }

    /// Chooses `n` free host ports of `protocol` on `i`, sweeping the dynamic range once from a
    /// seeded offset (so no port is chosen twice).
    fn dynamic_ports(&mut self, i: &ContainerInstance, protocol: Protocol, n: usize) -> Vec<u16> {
        if n == 0 {
            return Vec::new();
        }
        let taken = self.taken_dynamic(i, self.usage(i.id).as_deref(), protocol);
        let (lo, len) = (
            u32::from(*DYNAMIC_PORTS.start()),
            DYNAMIC_PORTS.len() as u32,
        );
        let start = self.rng.random_range(0..len);
        (0..len)
            .map(|k| (lo + (start + k) % len) as u16)
            .filter(|port| taken.binary_search(port).is_err())
            .take(n)
            .collect()
    }

    fn commit(&mut self, i: &'a ContainerInstance) -> Placement {
        let tcp = self.dynamic_ports(i, Protocol::Tcp, self.req.dynamic_tcp);
        let udp = self.dynamic_ports(i, Protocol::Udp, self.req.dynamic_udp);
        let r = &self.req.reservation;
        let p = self.planned.entry(i.id).or_default();
        p.cpu += r.cpu;
        p.memory += r.memory;
        p.tcp
            .extend(r.tcp.iter().copied().chain(tcp.iter().copied()));
        p.udp
            .extend(r.udp.iter().copied().chain(udp.iter().copied()));
        p.tasks += 1;
        for (k, s) in self.req.strategies.iter().enumerate() {
            if let Strategy::Spread(field) = s {
                *self.spread[k].entry(Self::bucket(field, i)).or_default() += 1;
            }
        }
        Placement {
            instance: i.id,
            dynamic_tcp: tcp,
            dynamic_udp: udp,
        }
    }

    /// The position in `candidates` of the first by the seeded tie-break (ties by id).
    fn first_by_tie(&self, candidates: &[Candidate<'a>]) -> usize {
        (0..candidates.len())
            .min_by_key(|n| {
                let id = candidates[*n].instance.id;
                (tie(self.seed, id), id)
            })
            .unwrap_or(0)
    }

    fn place_anywhere(mut self) -> Plan {
        let instances = self.instances();
        let mut plan = Plan::default();
        let explain = self.req.explain;
        // A chain that starts with spread, for a plan of several tasks that explains nothing:
        // ranked once, then kept up to date as tasks are placed (see `crate::index`). The scan
        // below then only runs to word why no instance can take the next task. For one task
        // the scan is cheaper than building the index, and picks the same instance.
        let mut index = match &self.shape {
            Some(shape) if !explain && self.req.count > 1 => {
                let group = self
                    .group_on
                    .iter()
                    .filter_map(|(id, n)| self.state.instance(*id).map(|i| (&**i, u64::from(*n))));
                Some(SpreadIndex::build(
                    shape.clone(),
                    self.seed,
                    &self,
                    &instances,
                    group,
                ))
            }
            _ => None,
        };
        let fast = !explain && matches!(self.req.strategies.first(), Some(Strategy::Binpack(_)));
        // With no strategy, or random first, the pick is the first feasible instance of a
        // seeded shuffle — uniform over the feasible ones. Drawing the shuffle lazily finds it
        // after a few checks instead of checking every instance; the full scan below (for
        // explanations and failures) makes the same draws, so it picks the same instance.
        let random_first = matches!(self.req.strategies.first(), None | Some(Strategy::Random));
        for k in 0..self.req.count {
            if let Some(pos) = index.as_ref().and_then(SpreadIndex::best) {
                let i = instances[pos];
                plan.placements.push(self.commit(i));
                if let Some(index) = index.as_mut() {
                    index.placed(&self, pos, i);
                }
                continue;
            }
            if random_first
                && !explain
                && let Some(i) = self.shuffled_first(&instances, |p, i| p.check(i, true).is_ok())
            {
                plan.placements.push(self.commit(i));
                continue;
            }
            let mut candidates = Vec::new();
            let mut from = 0;
            if let (true, Some(Strategy::Binpack(field))) = (fast, self.req.strategies.first()) {
                candidates = self.tightest(*field);
                from = 1;
            }
            let mut misses = Vec::new();
            if candidates.is_empty() {
                from = 0;
                for i in &instances {
                    match self.check(i, true) {
                        Ok(()) => candidates.push(Candidate { instance: i }),
                        Err(m) => misses.push(m),
                    }
                }
            }
            if explain && k == 0 {
                let missed: HashMap<InstanceId, &Miss> =
                    misses.iter().map(|m| (m.instance, m)).collect();
                plan.verdicts = instances
                    .iter()
                    .map(|i| Verdict {
                        instance: i.id,
                        placed: 0,
                        rejection: missed
                            .get(&i.id)
                            .map(|m| (m.reason, self.words(m.instance, &m.why))),
                        passed_over: None,
                    })
                    .collect();
            }
            if candidates.is_empty() {
                misses.sort_by(|a, b| {
                    b.closeness
                        .partial_cmp(&a.closeness)
                        .unwrap_or(std::cmp::Ordering::Equal)
                        .then(a.instance.cmp(&b.instance))
                });
                plan.rejections = misses.iter().map(|m| self.rejection(m)).collect();
                break;
            }
            let mut notes = (explain && k == 0).then(HashMap::new);
            let chosen = if random_first {
                let feasible: std::collections::HashSet<InstanceId> =
                    candidates.iter().map(|c| c.instance.id).collect();
                let chosen = self
                    .shuffled_first(&instances, |_, i| feasible.contains(&i.id))
                    .expect("a feasible instance exists");
                if let (Some(notes), Some(Strategy::Random)) =
                    (notes.as_mut(), self.req.strategies.first())
                {
                    for id in feasible.iter().filter(|id| **id != chosen.id) {
                        notes.insert(*id, "random: another instance was picked".into());
                    }
                }
                chosen
            } else {
                let mut survivors = self.narrow(candidates, from, &mut notes);
                let pick = if self.shape.is_some() {
                    self.first_by_tie(&survivors)
                } else if survivors.len() > 1 {
                    self.rng.random_range(0..survivors.len())
                } else {
                    0
                };
                survivors.swap_remove(pick).instance
            };
            if let Some(notes) = notes {
                for v in &mut plan.verdicts {
                    if v.rejection.is_none() && v.instance != chosen.id {
                        v.passed_over =
                            Some(notes.get(&v.instance).cloned().unwrap_or_else(|| {
                                "an equally good instance was picked at random".into()
                            }));
                    }
                }
            }
            plan.placements.push(self.commit(chosen));
        }
        for v in &mut plan.verdicts {
            v.placed = plan
                .placements
                .iter()
                .filter(|p| p.instance == v.instance)
                .count();
        }
        plan
    }

    /// The first instance, in a seeded random order drawn one step at a time, for which `ok`
    /// holds.
    fn shuffled_first(
        &mut self,
        instances: &[&'a ContainerInstance],
        ok: impl Fn(&Self, &'a ContainerInstance) -> bool,
    ) -> Option<&'a ContainerInstance> {
        let n = instances.len();
        let mut order: Vec<usize> = (0..n).collect();
        for k in 0..n {
            let j = self.rng.random_range(k..n);
            order.swap(k, j);
            let i = instances[order[k]];
            if ok(self, i) {
                return Some(i);
            }
        }
        None
    }

    /// StartTask: one task on each listed instance, checked but not ranked.
    fn place_on(mut self, ids: &[InstanceId]) -> Plan {
        let mut plan = Plan::default();
        for id in ids {
            let instance = self
                .state
                .instance(*id)
                .filter(|i| *i.cluster == *self.req.cluster);
            let Some(i) = instance else {
                plan.rejections.push(InstanceRejection {
                    instance: *id,
                    reason: FailureReason::Missing,
                    detail: format!("container instance {id} is not registered in this cluster"),
                });
                continue;
            };
            let i: &'a Arc<ContainerInstance> = i;
            match self.check(i, false) {
                Ok(()) => {
                    let p = self.commit(i);
                    plan.placements.push(p);
                }
                Err(m) => plan.rejections.push(self.rejection(&m)),
            }
        }
        plan
    }
}

impl<'a> Ranker<'a> for Planner<'a> {
    fn feasible(&self, i: &'a ContainerInstance) -> bool {
        self.check(i, true).is_ok()
    }

    fn own(&self, i: &'a ContainerInstance, own: Own) -> i64 {
        match own {
            Own::Group => {
                let live = self.group_on.get(&i.id).copied().unwrap_or(0);
                let planned = self.planned.get(&i.id).map_or(0, |p| p.tasks);
                i64::from(live) + i64::from(planned)
            }
            Own::Free(field) => self.remaining(i, field),
        }
    }
}

fn field_name(f: &SpreadField) -> String {
    match f {
        SpreadField::Instance => "instanceId".into(),
        SpreadField::Attribute(a) => format!("attribute:{a}"),
    }
}

fn bucket_name(b: &Bucket<'_>) -> String {
    match b {
        Bucket::Instance(i) => format!("instance {i}"),
        Bucket::Value(Some(v)) => format!("value '{v}'"),
        Bucket::Value(None) => "missing value".into(),
    }
}

fn binpack_name(f: BinpackField) -> &'static str {
    match f {
        BinpackField::Cpu => "cpu",
        BinpackField::Memory => "memory",
    }
}

fn strategy_name(s: &Strategy) -> String {
    match s {
        Strategy::Random => "random".into(),
        Strategy::Spread(f) => format!("spread({})", field_name(f)),
        Strategy::Binpack(f) => format!("binpack({})", binpack_name(*f)),
    }
}

/// Whether a cluster-query-language expression holds for an instance as it stands (the
/// `ListContainerInstances --filter` test).
pub fn instance_matches(
    state: &State,
    instance: &ContainerInstance,
    expr: &crate::query::Expr,
) -> bool {
    expr.eval(&View {
        state,
        instance,
        planned_group: None,
    })
}
