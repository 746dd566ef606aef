//! The invariants of every reachable state, checked after every command the tests apply.
//!
//! The primary maps are read from the snapshot (`persist()`), which holds the entities and no
//! index; every query is then compared with a brute-force answer computed from those entities,
//! on the live state and on one restored from a serde round trip of the snapshot. The two
//! states must also give identical answers to every query, history and change log included.

use std::collections::{BTreeMap, BTreeSet};

use berth_model::entity::*;
use berth_model::{InstanceId, TaskId};
use berth_state::{
    Capacity, Counts, EntityKey, Family, Persisted, State, TaskFilter, Usage, Version,
};

/// The entities and bookkeeping of a snapshot.
pub struct Primary {
    pub clusters: Vec<Cluster>,
    pub task_definitions: Vec<TaskDefinition>,
    pub families: Vec<(Name, Family)>,
    pub instances: Vec<ContainerInstance>,
    pub tasks: Vec<Task>,
    pub services: Vec<berth_model::service::Service>,
    pub frameworks: Vec<berth_model::mesos::Framework>,
    pub offers: Vec<berth_model::mesos::Offer>,
    pub credentials: Vec<berth_model::credential::Credential>,
    pub client_tokens: Vec<(Name, String)>,
    pub history: Vec<(EntityKey, Vec<Version>)>,
    pub changes: Vec<(u64, EntityKey)>,
    pub changes_floor: u64,
}

impl Primary {
    pub fn of(snapshot: &Persisted) -> Self {
        let mut v = serde_json::to_value(snapshot).expect("a snapshot serializes");
        let mut field = |name: &str| v[name].take();
        let tokens: Vec<(Name, String, serde_json::Value)> =
            serde_json::from_value(field("client_tokens")).unwrap();
        Self {
            clusters: serde_json::from_value(field("clusters")).unwrap(),
            task_definitions: serde_json::from_value(field("task_definitions")).unwrap(),
            families: serde_json::from_value(field("families")).unwrap(),
            instances: serde_json::from_value(field("instances")).unwrap(),
            tasks: serde_json::from_value(field("tasks")).unwrap(),
            services: serde_json::from_value(field("services")).unwrap(),
            frameworks: serde_json::from_value(field("frameworks")).unwrap(),
            offers: serde_json::from_value(field("offers")).unwrap(),
            credentials: serde_json::from_value(field("credentials")).unwrap(),
            client_tokens: tokens.into_iter().map(|(c, t, _)| (c, t)).collect(),
            history: serde_json::from_value(field("history")).unwrap(),
            changes: serde_json::from_value(field("changes")).unwrap(),
            changes_floor: serde_json::from_value(field("changes_floor")).unwrap(),
        }
    }

    /// Every cluster name any entity mentions, and one nobody does.
    fn cluster_names(&self) -> BTreeSet<Name> {
        let mut names: BTreeSet<Name> = self.clusters.iter().map(|c| c.name.clone()).collect();
        names.extend(self.instances.iter().map(|i| i.cluster.clone()));
        names.extend(self.tasks.iter().map(|t| t.cluster.clone()));
        names.insert("no-such-cluster".into());
        names
    }

    /// Every instance id any entity mentions, and one nobody does.
    fn instance_ids(&self) -> BTreeSet<InstanceId> {
        let mut ids: BTreeSet<InstanceId> = self.instances.iter().map(|i| i.id).collect();
        ids.extend(self.tasks.iter().filter_map(|t| t.instance));
        ids.extend(self.offers.iter().map(|o| o.instance));
        ids.insert(InstanceId(u128::MAX));
        ids
    }

    /// Every task group any task mentions, in any cluster, and one nobody does.
    fn groups(&self) -> BTreeSet<String> {
        let mut groups: BTreeSet<String> = self.tasks.iter().map(|t| t.group.clone()).collect();
        groups.insert("no-such-group".into());
        groups
    }

    /// Every attribute name any instance carries, in any cluster, and one nobody does.
    fn attribute_names(&self) -> BTreeSet<String> {
        let mut names: BTreeSet<String> = self
            .instances
            .iter()
            .flat_map(|i| i.attributes.keys().cloned())
            .collect();
        names.insert("no-such-attribute".into());
        names
    }

    /// The live tasks placed on instance `id`.
    fn live_on(&self, id: InstanceId) -> impl Iterator<Item = &Task> + '_ {
        self.tasks
            .iter()
            .filter(move |t| t.instance == Some(id) && t.is_live())
    }

    /// Free CPU and memory of `i`: what it registered less what its live tasks reserve.
    fn free(&self, i: &ContainerInstance) -> (i64, i64) {
        let (cpu, memory) = self
            .live_on(i.id)
            .map(|t| &t.reservation)
            .chain(
                self.offers
                    .iter()
                    .filter(|o| o.instance == i.id)
                    .map(|o| &o.hold),
            )
            .fold((0, 0), |(c, m), r| (c + r.cpu, m + r.memory));
        (i.resources.cpu - cpu, i.resources.memory - memory)
    }

    /// Thresholds to ask `by_free` with on `cluster`: extremes, a few round numbers, and
    /// every free amount present with its neighbours.
    fn thresholds(&self, cluster: &Name) -> BTreeSet<i64> {
        let mut out = BTreeSet::from([i64::MIN, -1, 0, 1, 128, 1024, i64::MAX]);
        for i in self.instances.iter().filter(|i| i.cluster == *cluster) {
            let (cpu, memory) = self.free(i);
            for f in [cpu, memory] {
                out.extend([f - 1, f, f + 1]);
            }
        }
        out
    }

    /// The filters ListTasks can be called with on `cluster`: every index, every desired
    /// status, and combinations the index must not short-circuit.
    fn filters(&self, cluster: &Name) -> Vec<TaskFilter> {
        let tasks = self.tasks.iter().filter(|t| t.cluster == *cluster);
        let mut filters = vec![TaskFilter::default()];
        let mut instances = BTreeSet::new();
        let mut groups = BTreeSet::from(["no-such-group".to_owned()]);
        let mut families = BTreeSet::from(["no-such-family".to_owned()]);
        let mut started_by = BTreeSet::from(["no-one".to_owned()]);
        for t in tasks {
            instances.extend(t.instance);
            groups.insert(t.group.clone());
            families.insert(t.family.to_string());
            started_by.extend(t.started_by.clone());
        }
        instances.insert(InstanceId(u128::MAX));
        for i in instances {
            filters.push(TaskFilter {
                instance: Some(i),
                ..Default::default()
            });
            filters.push(TaskFilter {
                instance: Some(i),
                desired_status: Some(DesiredStatus::Running),
                ..Default::default()
            });
        }
        for g in groups {
            filters.push(TaskFilter {
                group: Some(g),
                ..Default::default()
            });
        }
        for f in &families {
            filters.push(TaskFilter {
                family: Some(f.clone()),
                ..Default::default()
            });
            filters.push(TaskFilter {
                family: Some(f.clone()),
                desired_status: Some(DesiredStatus::Stopped),
                ..Default::default()
            });
        }
        for s in started_by {
            filters.push(TaskFilter {
                started_by: Some(s),
                ..Default::default()
            });
        }
        for d in DesiredStatus::ALL {
            filters.push(TaskFilter {
                desired_status: Some(*d),
                ..Default::default()
            });
        }
        for l in ["EC2", "FARGATE"] {
            filters.push(TaskFilter {
                launch_type: Some(l.into()),
                ..Default::default()
            });
        }
        filters
    }
}

/// Checks every invariant of `state`; panics with the first one broken.
pub fn check(state: &State) {
    let snapshot = state.persist();
    let json = serde_json::to_string(&snapshot).expect("a snapshot serializes");
    let back: Persisted = serde_json::from_str(&json).expect("a snapshot deserializes");
    assert_eq!(back, snapshot, "a snapshot survives a JSON round trip");
    let restored = State::restore(back, state.config().clone());
    assert_eq!(
        restored.persist(),
        snapshot,
        "restore(persist()) persists the same"
    );

    let primary = Primary::of(&snapshot);
    matches_entities(state, &primary);
    matches_entities(&restored, &primary);
    history_and_changes(state, &primary);
    assert_eq!(
        answers(state, &primary),
        answers(&restored, &primary),
        "a restored state answers every query as the live one"
    );
}

fn phase_counts<'a>(tasks: impl Iterator<Item = &'a Task>) -> (u32, u32) {
    let mut running = 0;
    let mut pending = 0;
    for t in tasks {
        match t.last_status {
            TaskStatus::Running => running += 1,
            TaskStatus::Provisioning | TaskStatus::Pending | TaskStatus::Activating => pending += 1,
            _ => {}
        }
    }
    (running, pending)
}

/// Every query of `state` against an answer computed from the entities alone, and the
/// resource invariants of every instance.
pub fn matches_entities(state: &State, p: &Primary) {
    // Lookups.
    let listed: Vec<&Name> = state.clusters_after(None).map(|c| &c.name).collect();
    let expected: Vec<&Name> = p.clusters.iter().map(|c| &c.name).collect();
    assert_eq!(listed, expected, "clusters in name order");
    for c in &p.clusters {
        assert_eq!(state.cluster(&c.name).map(|c| &**c), Some(c));
    }
    for i in &p.instances {
        assert_eq!(state.instance(i.id).map(|i| &**i), Some(i));
    }
    for t in &p.tasks {
        assert_eq!(state.task(t.id).map(|t| &**t), Some(t));
        if let Some(i) = t.instance {
            assert!(
                p.instances.iter().any(|x| x.id == i),
                "task {} refers to instance {i}, which is not stored",
                t.id
            );
        }
    }

    // Per cluster: instances, counts, task listings by every index.
    for c in p.cluster_names() {
        let instances: Vec<&ContainerInstance> =
            p.instances.iter().filter(|i| i.cluster == c).collect();
        let ids: Vec<InstanceId> = instances.iter().map(|i| i.id).collect();
        let listed: Vec<InstanceId> = state.instances_after(&c, None).map(|i| i.id).collect();
        assert_eq!(listed, ids, "instances of cluster {c}");
        for (k, id) in ids.iter().enumerate() {
            let rest: Vec<InstanceId> =
                state.instances_after(&c, Some(*id)).map(|i| i.id).collect();
            assert_eq!(rest, ids[k + 1..], "instances of cluster {c} after {id}");
        }

        let mut queued: Vec<&Task> = p
            .tasks
            .iter()
            .filter(|t| t.cluster == c && t.is_queued())
            .collect();
        queued.sort_by_key(|t| t.queue_key());
        let queue: Vec<TaskId> = state.queued(&c).map(|t| t.id).collect();
        assert_eq!(
            queue,
            queued.iter().map(|t| t.id).collect::<Vec<_>>(),
            "queue of cluster {c}"
        );
        assert!(
            queued.iter().all(|t| t.instance.is_none()),
            "a queued task holds no instance"
        );

        let live = p.tasks.iter().filter(|t| t.cluster == c && t.is_live());
        let (running_tasks, pending_tasks) = phase_counts(live);
        let registered_instances = instances
            .iter()
            .filter(|i| i.status != InstanceStatus::Inactive)
            .count() as u32;
        assert_eq!(
            state.counts(&c),
            Counts {
                registered_instances,
                running_tasks,
                pending_tasks,
                active_services: p
                    .services
                    .iter()
                    .filter(|s| {
                        s.cluster == c && s.status != berth_model::service::ServiceStatus::Inactive
                    })
                    .count() as u32,
            },
            "counts of cluster {c}"
        );
        let mut services: Vec<&str> = p
            .services
            .iter()
            .filter(|s| s.cluster == c)
            .map(|s| &*s.name)
            .collect();
        services.sort_unstable();
        let listed: Vec<&str> = state.services_after(&c, None).map(|s| &*s.name).collect();
        assert_eq!(listed, services, "services of cluster {c}");
        if let Some(first) = services.first() {
            let rest: Vec<&str> = state
                .services_after(&c, Some(first))
                .map(|s| &*s.name)
                .collect();
            assert_eq!(rest, services[1..], "services of cluster {c} after {first}");
        }

        for f in p.filters(&c) {
            let expected: Vec<TaskId> = p
                .tasks
                .iter()
                .filter(|t| t.cluster == c && f.matches(t))
                .map(|t| t.id)
                .collect();
            let listed: Vec<TaskId> = state.tasks_after(&c, &f, None).map(|t| t.id).collect();
            assert_eq!(listed, expected, "tasks of cluster {c} matching {f:?}");
            if let Some(first) = expected.first() {
                let rest: Vec<TaskId> = state
                    .tasks_after(&c, &f, Some(*first))
                    .map(|t| t.id)
                    .collect();
                assert_eq!(
                    rest,
                    expected[1..],
                    "tasks of {c} matching {f:?} after {first}"
                );
            }
        }
    }

    // Per instance: the tasks on it, what they hold, and that it is not over-committed.
    for id in p.instance_ids() {
        let on: Vec<&Task> = p.tasks.iter().filter(|t| t.instance == Some(id)).collect();
        let listed: Vec<TaskId> = state.tasks_on(id).map(|t| t.id).collect();
        let expected: Vec<TaskId> = on.iter().map(|t| t.id).collect();
        assert_eq!(listed, expected, "tasks on instance {id}");

        let live: Vec<&Task> = on.into_iter().filter(|t| t.is_live()).collect();
        let (running, pending) = phase_counts(live.iter().copied());
        let offers: Vec<&berth_model::mesos::Offer> =
            p.offers.iter().filter(|o| o.instance == id).collect();
        // What is held on the instance: live tasks' reservations and offers' holds alike.
        let held: Vec<(String, &Reservation)> = live
            .iter()
            .map(|t| (format!("task {}", t.id), &t.reservation))
            .chain(offers.iter().map(|o| (format!("offer {}", o.id), &o.hold)))
            .collect();
        let usage = Usage {
            cpu: held.iter().map(|(_, r)| r.cpu).sum(),
            memory: held.iter().map(|(_, r)| r.memory).sum(),
            tcp: held.iter().flat_map(|(_, r)| r.tcp.clone()).collect(),
            udp: held.iter().flat_map(|(_, r)| r.udp.clone()).collect(),
            dynamic_tcp: held
                .iter()
                .flat_map(|(_, r)| r.dynamic_tcp.clone())
                .collect(),
            dynamic_udp: held
                .iter()
                .flat_map(|(_, r)| r.dynamic_udp.clone())
                .collect(),
            running,
            pending,
            offers: offers.len() as u32,
        };
        // No entry at all while nothing is held.
        let expected = (usage != Usage::default()).then_some(usage);
        assert_eq!(state.usage(id), expected.as_ref(), "usage of instance {id}");
        let mut listed: Vec<_> = state.offers_on(id).map(|o| o.id).collect();
        listed.sort();
        let mut expected: Vec<_> = offers.iter().map(|o| o.id).collect();
        expected.sort();
        assert_eq!(listed, expected, "offers on instance {id}");

        let Some(instance) = p.instances.iter().find(|i| i.id == id) else {
            assert!(held.is_empty(), "tasks or offers on unknown instance {id}");
            continue;
        };
        not_over_committed(instance, &held);
    }
    // Offers belong to subscribed frameworks of their cluster.
    for o in &p.offers {
        let f = p.frameworks.iter().find(|f| f.id == o.framework);
        assert!(
            f.is_some_and(|f| f.cluster == o.cluster && f.connected),
            "offer {} of framework {} which is not a connected framework of {}",
            o.id,
            o.framework,
            o.cluster
        );
        assert_eq!(state.offer(o.id).map(|x| &**x), Some(o));
    }
    for f in &p.frameworks {
        assert_eq!(state.framework(&f.id).map(|x| &**x), Some(f));
    }
    assert_eq!(state.frameworks().count(), p.frameworks.len());
    assert_eq!(state.offers().count(), p.offers.len());

    placement_indexes(state, p);

    // Task definitions and families.
    let keys: Vec<(Name, u32)> = p
        .task_definitions
        .iter()
        .map(|t| (t.family.clone(), t.revision))
        .collect();
    let key = |t: &std::sync::Arc<TaskDefinition>| (t.family.clone(), t.revision);
    let ascending: Vec<_> = state.task_definitions_after(None, false).map(key).collect();
    assert_eq!(
        ascending, keys,
        "task definitions in (family, revision) order"
    );
    let mut descending: Vec<_> = state.task_definitions_after(None, true).map(key).collect();
    descending.reverse();
    assert_eq!(descending, keys, "task definitions, descending");
    for (k, (f, r)) in keys.iter().enumerate() {
        let after: Vec<_> = state
            .task_definitions_after(Some((f.clone(), *r)), false)
            .map(key)
            .collect();
        assert_eq!(after, keys[k + 1..]);
        let before: Vec<_> = state
            .task_definitions_after(Some((f.clone(), *r)), true)
            .map(key)
            .collect();
        assert_eq!(before, keys[..k].iter().rev().cloned().collect::<Vec<_>>());
    }
    for t in &p.task_definitions {
        assert_eq!(
            state.task_definition(&t.family, t.revision).map(|t| &**t),
            Some(t)
        );
    }
    let families: Vec<(Name, Family)> = state
        .families_after(None)
        .map(|(n, f)| (n.clone(), *f))
        .collect();
    assert_eq!(families, p.families);
    for (name, family) in &p.families {
        let revisions: Vec<&TaskDefinition> = p
            .task_definitions
            .iter()
            .filter(|t| t.family == *name)
            .collect();
        let active: Vec<u32> = revisions
            .iter()
            .filter(|t| t.status == TaskDefinitionStatus::Active)
            .map(|t| t.revision)
            .collect();
        assert_eq!(family.active_revisions as usize, active.len(), "{name}");
        assert!(revisions.iter().all(|t| t.revision <= family.last_revision));
        assert_eq!(
            state.latest_active(name).map(|t| t.revision),
            active.last().copied(),
            "latest ACTIVE revision of {name}"
        );
    }
    for t in &p.task_definitions {
        assert!(
            p.families.iter().any(|(n, _)| *n == t.family),
            "revision {}:{} has no family record",
            t.family,
            t.revision
        );
    }
}

/// The live tasks on `instance` fit in what it registered, and no host port, static or
/// dynamic, is held twice (by two tasks, or twice by one) or overlaps a port the host reserves.
///
/// Placement alone keeps this true. An agent re-registering with less CPU or memory than its
/// tasks hold is accepted and breaks it (see `commands::indexes`); tests that do that apply
/// those commands without this check.
fn not_over_committed(instance: &ContainerInstance, held: &[(String, &Reservation)]) {
    let id = instance.id;
    let cpu: i64 = held.iter().map(|(_, r)| r.cpu).sum();
    let memory: i64 = held.iter().map(|(_, r)| r.memory).sum();
    assert!(
        cpu <= instance.resources.cpu,
        "instance {id}: {cpu} CPU units reserved of {}",
        instance.resources.cpu
    );
    assert!(
        memory <= instance.resources.memory,
        "instance {id}: {memory} MiB reserved of {}",
        instance.resources.memory
    );
    for (protocol, reserved) in [
        (Protocol::Tcp, &instance.resources.ports),
        (Protocol::Udp, &instance.resources.udp_ports),
    ] {
        let mut holders: BTreeMap<u16, Vec<&str>> = BTreeMap::new();
        for (who, r) in held {
            for p in r.ports(protocol) {
                holders.entry(p).or_default().push(who);
            }
        }
        for (port, by) in holders {
            assert!(
                by.len() <= 1,
                "instance {id}: {protocol} port {port} held {} times, by {by:?}",
                by.len()
            );
            assert!(
                !reserved.contains(&port),
                "instance {id}: reserved {protocol} port {port} held by {}",
                by[0]
            );
        }
    }
}

/// The placement engine's indexes against brute force: live tasks per group and instance,
/// registered instances by free CPU and memory, and instances by attribute value.
fn placement_indexes(state: &State, p: &Primary) {
    let groups = p.groups();
    let names = p.attribute_names();
    for c in p.cluster_names() {
        for g in &groups {
            let mut expected: BTreeMap<InstanceId, u32> = BTreeMap::new();
            for t in p.tasks.iter().filter(|t| t.cluster == c && t.group == *g) {
                if let Some(i) = t.instance.filter(|_| t.is_live()) {
                    *expected.entry(i).or_default() += 1;
                }
            }
            let listed: Vec<(InstanceId, u32)> = state.live_in_group(&c, g).collect();
            let want: Vec<(InstanceId, u32)> = expected.iter().map(|(i, n)| (*i, *n)).collect();
            assert_eq!(listed, want, "live tasks of group {g} in cluster {c}");
            for id in p.instance_ids() {
                assert_eq!(
                    state.live_in_group_on(&c, g, id),
                    expected.get(&id).copied().unwrap_or(0),
                    "live tasks of group {g} in cluster {c} on instance {id}"
                );
            }
        }

        let registered: Vec<&ContainerInstance> = p
            .instances
            .iter()
            .filter(|i| i.cluster == c && i.status != InstanceStatus::Inactive)
            .collect();
        for (capacity, pick) in [
            (
                Capacity::Cpu,
                (|f: (i64, i64)| f.0) as fn((i64, i64)) -> i64,
            ),
            (Capacity::Memory, |f: (i64, i64)| f.1),
        ] {
            let mut all: Vec<(i64, InstanceId)> =
                registered.iter().map(|i| (pick(p.free(i)), i.id)).collect();
            all.sort();
            for at_least in p.thresholds(&c) {
                let expected: Vec<(i64, InstanceId)> = all
                    .iter()
                    .copied()
                    .filter(|(f, _)| *f >= at_least)
                    .collect();
                let listed: Vec<(i64, InstanceId)> =
                    state.by_free(&c, capacity, at_least).collect();
                assert_eq!(
                    listed, expected,
                    "instances of {c} with at least {at_least} free {capacity:?}"
                );
            }
        }

        for name in &names {
            let mut expected: Vec<(Option<&str>, InstanceId)> = registered
                .iter()
                .filter_map(|i| i.attributes.get(name).map(|v| (v.as_deref(), i.id)))
                .collect();
            expected.sort();
            let listed: Vec<(Option<&str>, InstanceId)> =
                state.attribute_holders(&c, name).collect();
            assert_eq!(listed, expected, "holders of attribute {name} in {c}");
        }
    }
}

/// The key of each stored entity and its current value.
fn entities(p: &Primary) -> BTreeMap<EntityKey, berth_state::Entity> {
    use berth_state::Entity;
    use std::sync::Arc;
    let mut out = BTreeMap::new();
    for c in &p.clusters {
        out.insert(
            EntityKey::Cluster(c.name.clone()),
            Entity::Cluster(Arc::new(c.clone())),
        );
    }
    for t in &p.task_definitions {
        out.insert(
            EntityKey::TaskDefinition(t.family.clone(), t.revision),
            Entity::TaskDefinition(Arc::new(t.clone())),
        );
    }
    for i in &p.instances {
        out.insert(
            EntityKey::Instance(i.id),
            Entity::Instance(Arc::new(i.clone())),
        );
    }
    for t in &p.tasks {
        out.insert(EntityKey::Task(t.id), Entity::Task(Arc::new(t.clone())));
    }
    for s in &p.services {
        out.insert(
            EntityKey::Service(s.cluster.clone(), s.name.clone()),
            Entity::Service(Arc::new(s.clone())),
        );
    }
    for f in &p.frameworks {
        out.insert(
            EntityKey::Framework(f.id.clone()),
            Entity::Framework(Arc::new(f.clone())),
        );
    }
    for o in &p.offers {
        out.insert(EntityKey::Offer(o.id), Entity::Offer(Arc::new(o.clone())));
    }
    for c in &p.credentials {
        out.insert(
            EntityKey::Credential(c.access_key_id.clone()),
            Entity::Credential(Arc::new(c.clone())),
        );
    }
    out
}

fn entity_version(e: &berth_state::Entity) -> u64 {
    use berth_state::Entity;
    match e {
        Entity::Cluster(c) => c.version,
        Entity::TaskDefinition(t) => t.version,
        Entity::Instance(i) => i.version,
        Entity::Task(t) => t.version,
        Entity::Service(s) => s.version,
        Entity::Framework(f) => f.version,
        Entity::Offer(o) => o.version,
        Entity::Credential(c) => c.version,
    }
}

/// History is bounded, strictly ordered, ends at each entity's current value and is dropped
/// with the entity; the change log is ordered, bounded, and `changes_since` answers from it.
fn history_and_changes(state: &State, p: &Primary) {
    let config = state.config();
    let entities = entities(p);
    let history: BTreeMap<&EntityKey, &Vec<Version>> =
        p.history.iter().map(|(k, v)| (k, v)).collect();

    for (key, versions) in &history {
        assert!(!versions.is_empty(), "empty history for {key:?}");
        assert!(
            versions.len() <= config.history_versions.max(1),
            "history of {key:?} holds {} versions",
            versions.len()
        );
        for w in versions.windows(2) {
            assert!(
                w[0].index < w[1].index,
                "history of {key:?} is not strictly increasing: {} then {}",
                w[0].index,
                w[1].index
            );
        }
        assert!(versions.iter().all(|v| v.index <= state.index()));
        assert!(
            entities.contains_key(key),
            "history kept for {key:?}, which is gone"
        );
        assert_eq!(state.history(key).map(|h| h.len()), Some(versions.len()));
    }
    for (key, entity) in &entities {
        let versions = history
            .get(key)
            .unwrap_or_else(|| panic!("{key:?} has no history"));
        let last = versions.last().unwrap();
        assert_eq!(
            last.value.as_ref(),
            Some(entity),
            "last version of {key:?} is its value"
        );
        assert_eq!(last.index, entity_version(entity), "{key:?}: version");
    }

    let changes = &p.changes;
    assert!(changes.len() <= config.changelog_len.max(1));
    for w in changes.windows(2) {
        assert!(w[0].0 <= w[1].0, "change log out of order: {w:?}");
    }
    let unique: BTreeSet<&(u64, EntityKey)> = changes.iter().collect();
    assert_eq!(unique.len(), changes.len(), "a change is logged once");
    assert!(
        changes
            .iter()
            .all(|(i, _)| *i >= p.changes_floor && *i <= state.index())
    );
    for i in 0..=state.index() + 1 {
        let expected = (i >= p.changes_floor).then(|| {
            changes
                .iter()
                .filter(|(at, _)| *at > i)
                .cloned()
                .collect::<Vec<_>>()
        });
        assert_eq!(state.changes_since(i), expected, "changes since {i}");
    }
    // Every retained version newer than the floor is in the change log, and every logged
    // change of an entity within its retained history has its version.
    for (key, versions) in &history {
        for v in versions.iter().filter(|v| v.index > p.changes_floor) {
            assert!(
                changes.contains(&(v.index, (*key).clone())),
                "version {} of {key:?} is not in the change log",
                v.index
            );
        }
        let oldest = versions[0].index;
        for (i, _) in changes.iter().filter(|(i, k)| k == *key && *i >= oldest) {
            assert!(
                versions.iter().any(|v| v.index == *i),
                "change {i} of {key:?} has no version"
            );
        }
    }
}

/// What `state` answers to every query over the keys `p` mentions, as text.
fn answers(state: &State, p: &Primary) -> Vec<String> {
    let mut out = vec![format!("index {}", state.index())];
    out.extend(state.clusters_after(None).map(|c| format!("{c:?}")));
    for c in p.cluster_names() {
        out.push(format!(
            "cluster {c}: {:?} {:?}",
            state.cluster(&c),
            state.counts(&c)
        ));
        out.extend(state.instances_after(&c, None).map(|i| format!("{i:?}")));
        for f in p.filters(&c) {
            let ids: Vec<TaskId> = state.tasks_after(&c, &f, None).map(|t| t.id).collect();
            out.push(format!("{c} {f:?}: {ids:?}"));
        }
        for g in p.groups() {
            let live: Vec<_> = state.live_in_group(&c, &g).collect();
            out.push(format!("{c} group {g}: {live:?}"));
        }
        for capacity in [Capacity::Cpu, Capacity::Memory] {
            let free: Vec<_> = state.by_free(&c, capacity, i64::MIN).collect();
            out.push(format!("{c} free {capacity:?}: {free:?}"));
        }
        for name in p.attribute_names() {
            let holders: Vec<_> = state.attribute_holders(&c, &name).collect();
            out.push(format!("{c} attribute {name}: {holders:?}"));
        }
    }
    for id in p.instance_ids() {
        let on: Vec<TaskId> = state.tasks_on(id).map(|t| t.id).collect();
        out.push(format!(
            "{id}: {:?} {:?} {on:?}",
            state.instance(id),
            state.usage(id)
        ));
    }
    for t in &p.tasks {
        out.push(format!("{:?}", state.task(t.id)));
    }
    out.extend(
        state
            .task_definitions_after(None, false)
            .map(|t| format!("{t:?}")),
    );
    for (name, family) in state.families_after(None) {
        out.push(format!(
            "{name} {family:?} {:?}",
            state.latest_active(name).map(|t| t.revision)
        ));
    }
    for (c, t) in &p.client_tokens {
        out.push(format!("token {c}/{t}: {:?}", state.client_token(c, t)));
    }
    for (key, _) in &p.history {
        out.push(format!("{key:?}: {:?}", state.history(key)));
    }
    for i in 0..=state.index() + 1 {
        out.push(format!("since {i}: {:?}", state.changes_since(i)));
    }
    out
}
