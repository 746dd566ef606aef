//! Reads: lookups and ordered, resumable iteration for List* calls.
//!
//! Every list is iterated in a stable key order and can resume strictly after a given key, so
//! a `nextToken` is just the last key returned.

use std::cmp::Reverse;
use std::ops::Bound::{Excluded, Included, Unbounded};
use std::sync::Arc;

use berth_model::entity::*;
use berth_model::mesos::{Framework, Offer};
use berth_model::priority::Priority;
use berth_model::service::{Service, ServiceStatus};
use berth_model::{InstanceId, Millis, OfferId, TaskId};
use imbl::{OrdSet, Vector};

use crate::{Capacity, Counts, EntityKey, Family, State, TokenRecord, Usage, Version};

/// ListTasks filters other than the cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskFilter {
    pub instance: Option<InstanceId>,
    pub family: Option<String>,
    pub started_by: Option<String>,
    pub group: Option<String>,
    pub desired_status: Option<DesiredStatus>,
    pub launch_type: Option<String>,
}

/// Which index a task listing walks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskIndex {
    Cluster,
    Instance(InstanceId),
    Group(Name),
    Family(Name),
    StartedBy(Name),
}

impl TaskFilter {
    /// The most selective index the filter allows.
    pub fn index(&self) -> TaskIndex {
        if let Some(s) = &self.started_by {
            TaskIndex::StartedBy(s.as_str().into())
        } else if let Some(i) = self.instance {
            TaskIndex::Instance(i)
        } else if let Some(g) = &self.group {
            TaskIndex::Group(g.as_str().into())
        } else if let Some(f) = &self.family {
            TaskIndex::Family(f.as_str().into())
        } else {
            TaskIndex::Cluster
        }
    }

    pub fn matches(&self, t: &Task) -> bool {
        self.instance.is_none_or(|i| t.instance == Some(i))
            && self.family.as_deref().is_none_or(|f| &*t.family == f)
            && self
                .started_by
                .as_deref()
                .is_none_or(|s| t.started_by.as_deref() == Some(s))
            && self.group.as_deref().is_none_or(|g| t.group == g)
            && self.desired_status.is_none_or(|d| t.desired_status == d)
            && self
                .launch_type
                .as_deref()
                .is_none_or(|l| t.launch_type == l)
    }
}

/// Ids of the entries of a `(prefix.., TaskId)`-keyed set that start with `prefix`, strictly
/// after `after`.
fn ids_after<'a, P: Ord + Clone + 'a>(
    set: &'a OrdSet<(P, TaskId)>,
    prefix: P,
    after: Option<TaskId>,
) -> impl Iterator<Item = TaskId> + 'a {
    let lower = match after {
        Some(id) => Excluded((prefix.clone(), id)),
        None => Included((prefix.clone(), TaskId(0))),
    };
    set.range((lower, Unbounded))
        .take_while(move |(p, _)| *p == prefix)
        .map(|(_, id)| *id)
}

fn ids_after2<'a>(
    set: &'a OrdSet<(Name, Name, TaskId)>,
    cluster: Name,
    key: Name,
    after: Option<TaskId>,
) -> impl Iterator<Item = TaskId> + 'a {
    let lower = match after {
        Some(id) => Excluded((cluster.clone(), key.clone(), id)),
        None => Included((cluster.clone(), key.clone(), TaskId(0))),
    };
    set.range((lower, Unbounded))
        .take_while(move |(c, k, _)| *c == cluster && *k == key)
        .map(|(_, _, id)| *id)
}

impl State {
    pub fn cluster(&self, name: &str) -> Option<&Arc<Cluster>> {
        self.clusters.get(name)
    }

    /// Clusters by name, strictly after `after`.
    pub fn clusters_after(&self, after: Option<&str>) -> impl Iterator<Item = &Arc<Cluster>> + '_ {
        let lower = match after {
            Some(name) => Excluded(Name::from(name)),
            None => Unbounded,
        };
        self.clusters.range((lower, Unbounded)).map(|(_, c)| c)
    }

    pub fn service(&self, cluster: &str, name: &str) -> Option<&Arc<Service>> {
        self.services.get(&(Name::from(cluster), Name::from(name)))
    }

    /// Services of `cluster` by name, strictly after `after` (INACTIVE ones included).
    pub fn services_after(
        &self,
        cluster: &str,
        after: Option<&str>,
    ) -> impl Iterator<Item = &Arc<Service>> + '_ {
        let c: Name = cluster.into();
        let lower = match after {
            Some(name) => Excluded((c.clone(), Name::from(name))),
            None => Included((c.clone(), Name::from(""))),
        };
        self.services
            .range((lower, Unbounded))
            .take_while(move |((cc, _), _)| *cc == c)
            .map(|(_, s)| s)
    }

    /// Every service of every cluster that is not INACTIVE.
    pub fn live_services(&self) -> impl Iterator<Item = &Arc<Service>> + '_ {
        self.services
            .values()
            .filter(|s| s.status != ServiceStatus::Inactive)
    }

    pub fn framework(&self, id: &str) -> Option<&Arc<Framework>> {
        self.frameworks.get(id)
    }

    /// Every subscribed framework, by id.
    pub fn frameworks(&self) -> impl Iterator<Item = &Arc<Framework>> + '_ {
        self.frameworks.values()
    }

    pub fn offer(&self, id: OfferId) -> Option<&Arc<Offer>> {
        self.offers.get(&id)
    }

    /// The outstanding offers on `instance`, by id.
    pub fn offers_on(&self, instance: InstanceId) -> impl Iterator<Item = &Arc<Offer>> + '_ {
        self.offers_by_instance
            .range((instance, OfferId(0))..)
            .take_while(move |(i, _)| *i == instance)
            .filter_map(|(_, id)| self.offers.get(id))
    }

    /// Every outstanding offer, in no particular order.
    pub fn offers(&self) -> impl Iterator<Item = &Arc<Offer>> + '_ {
        self.offers.values()
    }

    pub fn counts(&self, cluster: &str) -> Counts {
        self.counts.get(cluster).copied().unwrap_or_default()
    }

    pub fn task_definition(&self, family: &str, revision: u32) -> Option<&Arc<TaskDefinition>> {
        self.task_definitions.get(&(Name::from(family), revision))
    }

    /// The newest ACTIVE revision of `family`.
    pub fn latest_active(&self, family: &str) -> Option<&Arc<TaskDefinition>> {
        let f: Name = family.into();
        self.task_definitions
            .range((f.clone(), 0)..=(f, u32::MAX))
            .rev()
            .map(|(_, t)| t)
            .find(|t| t.status == TaskDefinitionStatus::Active)
    }

    /// Revisions in (family, revision) order, ascending or descending, strictly after `after`.
    pub fn task_definitions_after(
        &self,
        after: Option<(Name, u32)>,
        descending: bool,
    ) -> Box<dyn Iterator<Item = &Arc<TaskDefinition>> + '_> {
        match (after, descending) {
            (None, false) => Box::new(self.task_definitions.values()),
            (None, true) => Box::new(self.task_definitions.values().rev()),
            (Some(k), false) => Box::new(
                self.task_definitions
                    .range((Excluded(k), Unbounded))
                    .map(|(_, t)| t),
            ),
            (Some(k), true) => Box::new(
                self.task_definitions
                    .range((Unbounded, Excluded(k)))
                    .rev()
                    .map(|(_, t)| t),
            ),
        }
    }

    /// Families by name, strictly after `after`.
    pub fn families_after(
        &self,
        after: Option<&str>,
    ) -> impl Iterator<Item = (&Name, &Family)> + '_ {
        let lower = match after {
            Some(name) => Excluded(Name::from(name)),
            None => Unbounded,
        };
        self.families.range((lower, Unbounded))
    }

    pub fn instance(&self, id: InstanceId) -> Option<&Arc<ContainerInstance>> {
        self.instances.get(&id)
    }

    /// Instances of `cluster` by id, strictly after `after`.
    pub fn instances_after(
        &self,
        cluster: &str,
        after: Option<InstanceId>,
    ) -> impl Iterator<Item = &Arc<ContainerInstance>> + '_ {
        let c: Name = cluster.into();
        let lower = match after {
            Some(id) => Excluded((c.clone(), id)),
            None => Included((c.clone(), InstanceId(0))),
        };
        self.instances_by_cluster
            .range((lower, Unbounded))
            .take_while(move |(cc, _)| *cc == c)
            .filter_map(|(_, id)| self.instances.get(id))
    }

    /// What the live tasks on an instance hold; `None` while they hold nothing.
    pub fn usage(&self, id: InstanceId) -> Option<&Usage> {
        self.usage.get(&id).map(|u| &**u)
    }

    pub fn task(&self, id: TaskId) -> Option<&Arc<Task>> {
        self.tasks.get(&id)
    }

    /// Every task placed on an instance (live or stopped and not yet expired).
    pub fn tasks_on(&self, instance: InstanceId) -> impl Iterator<Item = &Arc<Task>> + '_ {
        ids_after(&self.tasks_by_instance, instance, None).filter_map(|id| self.tasks.get(&id))
    }

    /// Tasks of `cluster` matching `filter`, in id order, strictly after `after`.
    pub fn tasks_after<'a>(
        &'a self,
        cluster: &str,
        filter: &'a TaskFilter,
        after: Option<TaskId>,
    ) -> Box<dyn Iterator<Item = &'a Arc<Task>> + 'a> {
        let c: Name = cluster.into();
        let ids: Box<dyn Iterator<Item = TaskId> + 'a> = match filter.index() {
            TaskIndex::Cluster => Box::new(ids_after(&self.tasks_by_cluster, c, after)),
            TaskIndex::Instance(i) => Box::new(ids_after(&self.tasks_by_instance, i, after)),
            TaskIndex::Group(g) => Box::new(ids_after2(&self.tasks_by_group, c, g, after)),
            TaskIndex::Family(f) => Box::new(ids_after2(&self.tasks_by_family, c, f, after)),
            TaskIndex::StartedBy(s) => Box::new(ids_after2(&self.tasks_by_started_by, c, s, after)),
        };
        let cluster: Name = cluster.into();
        Box::new(
            ids.filter_map(|id| self.tasks.get(&id))
                .filter(move |t| t.cluster == cluster && filter.matches(t)),
        )
    }

    /// The tasks of `cluster` waiting for capacity, in queue order (first to be placed first).
    pub fn queued(&self, cluster: &str) -> impl Iterator<Item = &Arc<Task>> + '_ {
        let c: Name = cluster.into();
        let first = (Reverse(Priority::MAX), Millis(i64::MIN), TaskId(0));
        self.queued
            .range((c.clone(), first)..)
            .take_while(move |(cc, _)| *cc == c)
            .filter_map(|(_, (_, _, id))| self.tasks.get(id))
    }

    /// How many tasks wait for capacity in each cluster that has any, by cluster name.
    pub fn queue_lengths(&self) -> Vec<(Name, usize)> {
        let mut out: Vec<(Name, usize)> = Vec::new();
        for (c, _) in &self.queued {
            match out.last_mut() {
                Some((last, n)) if last == c => *n += 1,
                _ => out.push((c.clone(), 1)),
            }
        }
        out
    }

    /// Live tasks of `group` on `instance`.
    pub fn live_in_group_on(&self, cluster: &str, group: &str, instance: InstanceId) -> u32 {
        self.live_by_group
            .get(&(Name::from(cluster), Name::from(group), instance))
            .copied()
            .unwrap_or(0)
    }

    /// The instances running live tasks of `group`, with how many each runs, by instance id.
    pub fn live_in_group(
        &self,
        cluster: &str,
        group: &str,
    ) -> impl Iterator<Item = (InstanceId, u32)> + '_ {
        let (c, g): (Name, Name) = (cluster.into(), group.into());
        self.live_by_group
            .range((c.clone(), g.clone(), InstanceId(0))..)
            .take_while(move |((cc, gg, _), _)| *cc == c && *gg == g)
            .map(|((_, _, i), n)| (*i, *n))
    }

    /// Registered instances of `cluster` with at least `at_least` free of `capacity`, least
    /// free first (ties by id): the order binpack wants.
    pub fn by_free(
        &self,
        cluster: &str,
        capacity: Capacity,
        at_least: i64,
    ) -> impl Iterator<Item = (i64, InstanceId)> + '_ {
        let c: Name = cluster.into();
        let set = match capacity {
            Capacity::Cpu => &self.free_cpu,
            Capacity::Memory => &self.free_memory,
        };
        set.range((c.clone(), at_least, InstanceId(0))..)
            .take_while(move |(cc, _, _)| *cc == c)
            .map(|(_, free, id)| (*free, *id))
    }

    /// Registered instances of `cluster` carrying attribute `name`, with its value, by value.
    pub fn attribute_holders(
        &self,
        cluster: &str,
        name: &str,
    ) -> impl Iterator<Item = (Option<&str>, InstanceId)> + '_ {
        let (c, n): (Name, String) = (cluster.into(), name.to_owned());
        self.attribute_index
            .range((c.clone(), n.clone(), None, InstanceId(0))..)
            .take_while(move |(cc, nn, _, _)| *cc == c && *nn == n)
            .map(|(_, _, v, id)| (v.as_deref(), *id))
    }

    /// The retained versions of an entity, oldest first.
    pub fn history(&self, key: &EntityKey) -> Option<&Vector<Version>> {
        self.history.get(key)
    }

    /// The entities changed after `index`, oldest first; `None` when the change log no longer
    /// reaches back that far.
    pub fn changes_since(&self, index: u64) -> Option<Vec<(u64, EntityKey)>> {
        if self.changes_floor > index {
            return None;
        }
        Some(
            self.changes
                .iter()
                .rev()
                .take_while(|(i, _)| *i > index)
                .cloned()
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect(),
        )
    }

    pub fn client_token(&self, cluster: &str, token: &str) -> Option<&TokenRecord> {
        self.client_tokens
            .get(&(Name::from(cluster), token.to_owned()))
            .map(|r| &**r)
    }

    /// True when any task of `cluster` is not yet STOPPED.
    pub(crate) fn has_live_tasks(&self, cluster: &str) -> bool {
        ids_after(&self.tasks_by_cluster, Name::from(cluster), None)
            .filter_map(|id| self.tasks.get(&id))
            .any(|t| t.is_live())
    }

    /// True when a live task runs this revision.
    pub(crate) fn revision_in_use(&self, family: &Name, revision: u32) -> bool {
        self.clusters.keys().any(|c| {
            ids_after2(&self.tasks_by_family, c.clone(), family.clone(), None)
                .filter_map(|id| self.tasks.get(&id))
                .any(|t| t.revision == revision && t.is_live())
        })
    }
}
