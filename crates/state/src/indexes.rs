//! Secondary indexes, kept in step with every entity change.
//!
//! Every change to a task, an instance or a credential goes through [`State::task_changed`],
//! [`State::instance_changed`] or [`State::credential_changed`] with the old and new value;
//! they update the primary map and every index by difference. Nothing else writes an index,
//! so the indexes cannot drift from the entities, and a restore rebuilds them by replaying the
//! entities through the same functions.

use std::collections::BTreeSet;
use std::sync::Arc;

use berth_model::credential::{Credential, CredentialKind};
use berth_model::entity::*;
use berth_model::mesos::Offer;

use crate::State;

/// What the live (not yet STOPPED) tasks on one instance hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Usage {
    pub cpu: i64,
    pub memory: i64,
    /// Static TCP host ports in use.
    pub tcp: BTreeSet<u16>,
    /// Static UDP host ports in use.
    pub udp: BTreeSet<u16>,
    /// Dynamic TCP host ports in use (chosen at placement).
    pub dynamic_tcp: BTreeSet<u16>,
    /// Dynamic UDP host ports in use.
    pub dynamic_udp: BTreeSet<u16>,
    pub running: u32,
    pub pending: u32,
    /// Outstanding Mesos offers on the instance (their holds are counted above).
    pub offers: u32,
}

fn bump_offers(count: &mut u32, up: bool) {
    *count = if up {
        *count + 1
    } else {
        count.saturating_sub(1)
    };
}

impl Usage {
    /// Whether a host port of `protocol` is held by a live task (statically or dynamically).
    pub fn holds(&self, protocol: Protocol, port: u16) -> bool {
        match protocol {
            Protocol::Tcp => self.tcp.contains(&port) || self.dynamic_tcp.contains(&port),
            Protocol::Udp => self.udp.contains(&port) || self.dynamic_udp.contains(&port),
        }
    }
}

/// Which free resource an ordering is by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capacity {
    Cpu,
    Memory,
}

/// An instance's entry in the free-capacity orderings: cluster, free CPU, free memory.
type FreeKey = (Name, i64, i64);

/// Per-cluster counters shown by DescribeClusters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub registered_instances: u32,
    pub running_tasks: u32,
    pub pending_tasks: u32,
    pub active_services: u32,
}

/// Which counter a task's last status falls in.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Pending,
    Running,
    Other,
}

fn phase(status: TaskStatus) -> Phase {
    match status {
        TaskStatus::Provisioning | TaskStatus::Pending | TaskStatus::Activating => Phase::Pending,
        TaskStatus::Running => Phase::Running,
        _ => Phase::Other,
    }
}

fn bump(counter: &mut u32, phase_of: Phase, which: Phase, up: bool) {
    if phase_of == which {
        if up {
            *counter += 1;
        } else {
            *counter = counter.saturating_sub(1);
        }
    }
}

impl Usage {
    fn add(&mut self, task: &Task, sign: i64) {
        self.hold(&task.reservation, sign);
        let ph = phase(task.last_status);
        bump(&mut self.running, ph, Phase::Running, sign > 0);
        bump(&mut self.pending, ph, Phase::Pending, sign > 0);
    }

    /// Adds (`sign` 1) or removes (-1) what a reservation holds.
    fn hold(&mut self, r: &Reservation, sign: i64) {
        self.cpu += sign * r.cpu;
        self.memory += sign * r.memory;
        for (ports, set) in [
            (&r.tcp, &mut self.tcp),
            (&r.udp, &mut self.udp),
            (&r.dynamic_tcp, &mut self.dynamic_tcp),
            (&r.dynamic_udp, &mut self.dynamic_udp),
        ] {
            for p in ports {
                if sign > 0 {
                    set.insert(*p);
                } else {
                    set.remove(p);
                }
            }
        }
    }
}

impl State {
    /// Replaces `old` with `new` (either may be absent) in the task map and every task index.
    pub(crate) fn task_changed(&mut self, old: Option<&Arc<Task>>, new: Option<&Arc<Task>>) {
        let same_keys = match (old, new) {
            (Some(o), Some(n)) => {
                o.cluster == n.cluster
                    && o.instance == n.instance
                    && o.group == n.group
                    && o.family == n.family
                    && o.started_by == n.started_by
            }
            _ => false,
        };
        if !same_keys {
            if let Some(o) = old {
                self.tasks_by_cluster.remove(&(o.cluster.clone(), o.id));
                if let Some(i) = o.instance {
                    self.tasks_by_instance.remove(&(i, o.id));
                }
                self.tasks_by_group
                    .remove(&(o.cluster.clone(), o.group.as_str().into(), o.id));
                self.tasks_by_family
                    .remove(&(o.cluster.clone(), o.family.clone(), o.id));
                if let Some(s) = &o.started_by {
                    self.tasks_by_started_by
                        .remove(&(o.cluster.clone(), s.as_str().into(), o.id));
                }
            }
            if let Some(n) = new {
                self.tasks_by_cluster.insert((n.cluster.clone(), n.id));
                if let Some(i) = n.instance {
                    self.tasks_by_instance.insert((i, n.id));
                }
                self.tasks_by_group
                    .insert((n.cluster.clone(), n.group.as_str().into(), n.id));
                self.tasks_by_family
                    .insert((n.cluster.clone(), n.family.clone(), n.id));
                if let Some(s) = &n.started_by {
                    self.tasks_by_started_by
                        .insert((n.cluster.clone(), s.as_str().into(), n.id));
                }
            }
        }

        if let Some(o) = old.filter(|o| o.is_queued()) {
            self.queued.remove(&(o.cluster.clone(), o.queue_key()));
        }
        if let Some(n) = new.filter(|n| n.is_queued()) {
            self.queued.insert((n.cluster.clone(), n.queue_key()));
        }

        if let Some(o) = old.filter(|o| !o.is_live()) {
            self.stopped
                .remove(&(o.stopped_at.unwrap_or_default(), o.id));
        }
        if let Some(n) = new.filter(|n| !n.is_live()) {
            self.stopped
                .insert((n.stopped_at.unwrap_or_default(), n.id));
        }

        let touched: Vec<_> = [old, new]
            .into_iter()
            .flatten()
            .filter(|t| t.is_live())
            .filter_map(|t| t.instance)
            .collect();
        let before: Vec<_> = touched.iter().map(|i| (*i, self.free_key(*i))).collect();
        for (task, sign) in [(old, -1i64), (new, 1i64)] {
            let Some(t) = task.filter(|t| t.is_live()) else {
                continue;
            };
            if let Some(i) = t.instance {
                let key = (t.cluster.clone(), Name::from(t.group.as_str()), i);
                let count = self.live_by_group.get(&key).copied().unwrap_or(0);
                let count = if sign > 0 {
                    count + 1
                } else {
                    count.saturating_sub(1)
                };
                if count == 0 {
                    self.live_by_group.remove(&key);
                } else {
                    self.live_by_group.insert(key, count);
                }
                let usage = Arc::make_mut(self.usage.entry(i).or_default());
                usage.add(t, sign);
                // An instance holds a usage entry only while live tasks hold something on it,
                // as a rebuild from the entities leaves it.
                if *usage == Usage::default() {
                    self.usage.remove(&i);
                }
            }
            let counts = self.counts.entry(t.cluster.clone()).or_default();
            let ph = phase(t.last_status);
            bump(&mut counts.running_tasks, ph, Phase::Running, sign > 0);
            bump(&mut counts.pending_tasks, ph, Phase::Pending, sign > 0);
        }
        for (i, key) in before {
            self.reorder_free(key, self.free_key(i), i);
        }

        match (old, new) {
            (_, Some(n)) => {
                self.tasks.insert(n.id, n.clone());
            }
            (Some(o), None) => {
                self.tasks.remove(&o.id);
            }
            (None, None) => {}
        }
    }

    /// Adds or removes an outstanding offer: its hold counts in its instance's usage (and so
    /// in the free-capacity orderings) exactly as a live task's reservation does.
    pub(crate) fn offer_changed(&mut self, old: Option<&Arc<Offer>>, new: Option<&Arc<Offer>>) {
        for (offer, sign) in [(old, -1i64), (new, 1i64)] {
            let Some(o) = offer else {
                continue;
            };
            let before = self.free_key(o.instance);
            let usage = Arc::make_mut(self.usage.entry(o.instance).or_default());
            usage.hold(&o.hold, sign);
            bump_offers(&mut usage.offers, sign > 0);
            if *usage == Usage::default() {
                self.usage.remove(&o.instance);
            }
            self.reorder_free(before, self.free_key(o.instance), o.instance);
            if sign > 0 {
                self.offers_by_instance.insert((o.instance, o.id));
                self.offers.insert(o.id, o.clone());
            } else {
                self.offers_by_instance.remove(&(o.instance, o.id));
                self.offers.remove(&o.id);
            }
        }
    }

    /// Replaces `old` with `new` in the instance map and the instance indexes.
    pub(crate) fn instance_changed(
        &mut self,
        old: Option<&Arc<ContainerInstance>>,
        new: Option<&Arc<ContainerInstance>>,
    ) {
        let registered = |i: &ContainerInstance| i.status != InstanceStatus::Inactive;
        let free_before = old.and_then(|o| self.free_key(o.id));
        let attributes_same = match (old, new) {
            (Some(o), Some(n)) => {
                o.cluster == n.cluster
                    && registered(o) == registered(n)
                    && o.attributes == n.attributes
            }
            _ => false,
        };
        if !attributes_same {
            for (i, insert) in [(old, false), (new, true)] {
                let Some(i) = i.filter(|i| registered(i)) else {
                    continue;
                };
                for (name, value) in &i.attributes {
                    let key = (i.cluster.clone(), name.clone(), value.clone(), i.id);
                    if insert {
                        self.attribute_index.insert(key);
                    } else {
                        self.attribute_index.remove(&key);
                    }
                }
            }
        }
        if let Some(o) = old {
            self.instances_by_cluster.remove(&(o.cluster.clone(), o.id));
            if registered(o) {
                let c = self.counts.entry(o.cluster.clone()).or_default();
                c.registered_instances = c.registered_instances.saturating_sub(1);
            }
        }
        if let Some(n) = new {
            self.instances_by_cluster.insert((n.cluster.clone(), n.id));
            if registered(n) {
                self.counts
                    .entry(n.cluster.clone())
                    .or_default()
                    .registered_instances += 1;
            }
            self.instances.insert(n.id, n.clone());
        } else if let Some(o) = old {
            self.instances.remove(&o.id);
            self.usage.remove(&o.id);
        }
        if let Some(id) = new.or(old).map(|i| i.id) {
            self.reorder_free(free_before, self.free_key(id), id);
        }
    }

    /// Replaces `old` with `new` (either may be absent; both have the same access key id) in
    /// the credential map and the agents' credentials by instance.
    pub(crate) fn credential_changed(
        &mut self,
        old: Option<&Arc<Credential>>,
        new: Option<&Arc<Credential>>,
    ) {
        if let Some(o) = old {
            if let CredentialKind::Agent { instance, .. } = &o.kind
                && self.agent_credentials.get(instance) == Some(&o.access_key_id)
            {
                self.agent_credentials.remove(instance);
            }
            self.credentials.remove(&o.access_key_id);
        }
        if let Some(n) = new {
            if let CredentialKind::Agent { instance, .. } = &n.kind {
                self.agent_credentials
                    .insert(*instance, n.access_key_id.clone());
            }
            self.credentials.insert(n.access_key_id.clone(), n.clone());
        }
    }

    /// Where an instance sits in the free-capacity orderings: registered (not INACTIVE)
    /// instances only.
    fn free_key(&self, id: berth_model::InstanceId) -> Option<FreeKey> {
        let i = self.instances.get(&id)?;
        if i.status == InstanceStatus::Inactive {
            return None;
        }
        let (cpu, memory) = self.usage.get(&id).map_or((0, 0), |u| (u.cpu, u.memory));
        Some((
            i.cluster.clone(),
            i.resources.cpu - cpu,
            i.resources.memory - memory,
        ))
    }

    fn reorder_free(
        &mut self,
        before: Option<FreeKey>,
        after: Option<FreeKey>,
        id: berth_model::InstanceId,
    ) {
        if before == after {
            return;
        }
        if let Some((cluster, cpu, memory)) = before {
            self.free_cpu.remove(&(cluster.clone(), cpu, id));
            self.free_memory.remove(&(cluster, memory, id));
        }
        if let Some((cluster, cpu, memory)) = after {
            self.free_cpu.insert((cluster.clone(), cpu, id));
            self.free_memory.insert((cluster, memory, id));
        }
    }
}
