//! berth's state machine: every fact about the cluster, in memory, as immutable shared values.
//!
//! ```text
//!   Raft log ── entry N: [Stamped, ...] ──► State::apply(N, ..) ──► Outcome / Error
//!                                              │
//!                        entities (Arc<T>, version = N) + secondary indexes + history
//! ```
//! All maps are persistent (`imbl`), so `State::clone` is O(1): a scheduler takes a snapshot
//! and plans on it while writes go on, and readers never block the writer. Applying is
//! deterministic — everything a command decides (ids, times, placements) is inside it — so
//! every replica and every restart reaches the same state from the same log.
//!
//! Secondary indexes (tasks by cluster, instance, group, family, startedBy; queued tasks in
//! queue order; instances by cluster, attribute value and free capacity; live tasks per
//! group per instance;
//! per-instance usage; per-cluster counts; agents' credentials by instance) are derived:
//! [`State::task_changed`], [`State::instance_changed`] and [`State::credential_changed`] keep
//! them in step with every entity change, and a restored snapshot rebuilds them from the
//! entities.

mod apply;
pub mod discovery;
mod fit;
mod indexes;
mod persist;
mod query;

use std::sync::Arc;

use berth_model::account::{AccountSetting, SettingName, SettingOwner};
use berth_model::arn::ResourceArn;
use berth_model::capacity::CapacityProvider;
use berth_model::credential::Credential;
use berth_model::discovery::{DiscoveryService, Namespace};
use berth_model::entity::*;
use berth_model::mesos::{Framework, Offer};
use berth_model::schedule::Schedule;
use berth_model::service::{Service, ServiceStatus};
use berth_model::{InstanceId, Millis, OfferId, TaskId};
use imbl::{HashMap, OrdMap, OrdSet, Vector};
use serde::{Deserialize, Serialize};

pub use fit::{Misfit, fits};
pub use indexes::{Capacity, Counts, Usage};
pub use persist::Persisted;
pub use query::{TaskFilter, TaskIndex};

/// Settings that shape what the state machine remembers. They only affect history, never a
/// decision, so replicas with different settings still agree on every entity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Versions kept per entity in its history.
    pub history_versions: usize,
    /// Entries kept in the change log that watchers read.
    pub changelog_len: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            history_versions: 32,
            changelog_len: 16_384,
        }
    }
}

/// The key of an entity's history.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum EntityKey {
    Cluster(Name),
    TaskDefinition(Name, u32),
    Instance(InstanceId),
    Task(TaskId),
    /// A service, by cluster and name.
    Service(Name, Name),
    /// A Mesos framework, by id.
    Framework(String),
    /// An outstanding Mesos offer.
    Offer(OfferId),
    /// A credential or join token, by access key id.
    Credential(String),
}

impl EntityKey {
    /// The key of the resource an ARN names, when berth keeps history for that kind.
    pub fn of(arn: &ResourceArn) -> Option<Self> {
        Some(match arn {
            ResourceArn::Cluster(name) => EntityKey::Cluster(name.as_str().into()),
            ResourceArn::TaskDefinition(f, r) => EntityKey::TaskDefinition(f.as_str().into(), *r),
            ResourceArn::ContainerInstance(_, id) => EntityKey::Instance(*id),
            ResourceArn::Task(_, id) => EntityKey::Task(*id),
            ResourceArn::Service(c, n) | ResourceArn::TaskSet(c, n, _) => {
                EntityKey::Service(c.as_str().into(), n.as_str().into())
            }
            ResourceArn::CapacityProvider(_) => return None,
        })
    }
}

/// One stored value of any kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Entity {
    Cluster(Arc<Cluster>),
    TaskDefinition(Arc<TaskDefinition>),
    Instance(Arc<ContainerInstance>),
    Task(Arc<Task>),
    Service(Arc<Service>),
    Framework(Arc<Framework>),
    Offer(Arc<Offer>),
    Credential(Arc<Credential>),
}

impl Entity {
    /// The ARN-level identity of this value; `None` for Mesos frameworks, offers and
    /// credentials, which have no ECS ARN.
    pub fn resource(&self) -> Option<ResourceArn> {
        Some(match self {
            Entity::Cluster(c) => ResourceArn::Cluster(c.name.to_string()),
            Entity::TaskDefinition(t) => {
                ResourceArn::TaskDefinition(t.family.to_string(), t.revision)
            }
            Entity::Instance(i) => ResourceArn::ContainerInstance(i.cluster.to_string(), i.id),
            Entity::Task(t) => ResourceArn::Task(t.cluster.to_string(), t.id),
            Entity::Service(s) => ResourceArn::Service(s.cluster.to_string(), s.name.to_string()),
            Entity::Framework(_) | Entity::Offer(_) | Entity::Credential(_) => return None,
        })
    }
}

/// One version in an entity's history: its value after the change at `index`, or `None` when
/// that change removed it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Version {
    pub index: u64,
    pub at: Millis,
    pub value: Option<Entity>,
    /// The actor whose command made this version (see `Stamped::by`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<Arc<str>>,
}

/// Per-family bookkeeping: revisions are never reused, even after deletion.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Family {
    pub last_revision: u32,
    pub active_revisions: u32,
}

/// What a client token answered with, for idempotent RunTask retries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    pub request_digest: u64,
    pub tasks: Vec<TaskId>,
    pub at: Millis,
}

/// The whole cluster state at one log index.
#[derive(Clone)]
pub struct State {
    index: u64,
    config: Arc<Config>,
    clusters: OrdMap<Name, Arc<Cluster>>,
    task_definitions: OrdMap<(Name, u32), Arc<TaskDefinition>>,
    families: OrdMap<Name, Family>,
    instances: HashMap<InstanceId, Arc<ContainerInstance>>,
    instances_by_cluster: OrdSet<(Name, InstanceId)>,
    tasks: HashMap<TaskId, Arc<Task>>,
    tasks_by_cluster: OrdSet<(Name, TaskId)>,
    tasks_by_instance: OrdSet<(InstanceId, TaskId)>,
    tasks_by_group: OrdSet<(Name, Name, TaskId)>,
    tasks_by_family: OrdSet<(Name, Name, TaskId)>,
    tasks_by_started_by: OrdSet<(Name, Name, TaskId)>,
    stopped: OrdSet<(Millis, TaskId)>,
    /// Tasks waiting for capacity, per cluster in queue order ([`Task::queue_key`]).
    queued: OrdSet<(Name, QueueKey)>,
    usage: HashMap<InstanceId, Arc<Usage>>,
    /// Live tasks per (cluster, group, instance): spread, distinctInstance and `task:group`.
    live_by_group: OrdMap<(Name, Name, InstanceId), u32>,
    /// Registered instances by free CPU and by free memory: binpack without a full scan.
    free_cpu: OrdSet<(Name, i64, InstanceId)>,
    free_memory: OrdSet<(Name, i64, InstanceId)>,
    /// Registered instances by attribute name and value: spread and memberOf lookups.
    attribute_index: OrdSet<(Name, String, Option<String>, InstanceId)>,
    counts: HashMap<Name, Counts>,
    /// Services by cluster and name (INACTIVE ones until they expire).
    services: OrdMap<(Name, Name), Arc<Service>>,
    /// Mesos frameworks by id.
    frameworks: OrdMap<String, Arc<Framework>>,
    /// Outstanding Mesos offers, and by instance: each holds its resources in `usage`.
    offers: HashMap<OfferId, Arc<Offer>>,
    offers_by_instance: OrdSet<(InstanceId, OfferId)>,
    client_tokens: HashMap<(Name, String), Arc<TokenRecord>>,
    history: HashMap<EntityKey, Vector<Version>>,
    changes: Vector<(u64, EntityKey)>,
    /// The highest index whose change record was dropped from `changes`.
    changes_floor: u64,
    /// Credentials and join tokens by access key id.
    credentials: OrdMap<String, Arc<Credential>>,
    /// Agents' credentials (their access key ids) by the instance each is bound to: "one
    /// credential per instance" without a scan of every credential at each join.
    agent_credentials: HashMap<InstanceId, String>,
    /// The bootstrap admin's access key id, once the cluster has been bootstrapped (it stays
    /// set if that credential is deleted later: bootstrapping happens once).
    bootstrapped: Option<String>,
    /// Web UI sessions signed out, by session id, until their own expiry (then forgotten).
    revoked_sessions: OrdMap<String, Millis>,
    /// Account settings by owner and name (ListAccountSettings reads them in this order).
    account_settings: OrdMap<(SettingOwner, SettingName), Arc<AccountSetting>>,
    /// Capacity providers by name (deleted ones stay, INACTIVE, until the name is reused).
    capacity_providers: OrdMap<Name, Arc<CapacityProvider>>,
    /// Schedules by group and name.
    schedules: OrdMap<(Name, Name), Arc<Schedule>>,
    /// Service discovery namespaces by id.
    namespaces: OrdMap<Name, Arc<Namespace>>,
    /// Discovery services by id.
    discovery_services: OrdMap<Name, Arc<DiscoveryService>>,
    /// The actor of the command being applied (from its `Stamped`), for history and for the
    /// entities that record who made them.
    actor: Option<Arc<str>>,
}

impl Default for State {
    fn default() -> Self {
        Self::new(Config::default())
    }
}

impl State {
    pub fn new(config: Config) -> Self {
        Self {
            index: 0,
            config: Arc::new(config),
            clusters: OrdMap::new(),
            task_definitions: OrdMap::new(),
            families: OrdMap::new(),
            instances: HashMap::new(),
            instances_by_cluster: OrdSet::new(),
            tasks: HashMap::new(),
            tasks_by_cluster: OrdSet::new(),
            tasks_by_instance: OrdSet::new(),
            tasks_by_group: OrdSet::new(),
            tasks_by_family: OrdSet::new(),
            tasks_by_started_by: OrdSet::new(),
            stopped: OrdSet::new(),
            queued: OrdSet::new(),
            usage: HashMap::new(),
            live_by_group: OrdMap::new(),
            free_cpu: OrdSet::new(),
            free_memory: OrdSet::new(),
            attribute_index: OrdSet::new(),
            counts: HashMap::new(),
            services: OrdMap::new(),
            frameworks: OrdMap::new(),
            offers: HashMap::new(),
            offers_by_instance: OrdSet::new(),
            client_tokens: HashMap::new(),
            history: HashMap::new(),
            changes: Vector::new(),
            changes_floor: 0,
            credentials: OrdMap::new(),
            agent_credentials: HashMap::new(),
            bootstrapped: None,
            revoked_sessions: OrdMap::new(),
            account_settings: OrdMap::new(),
            capacity_providers: OrdMap::new(),
            schedules: OrdMap::new(),
            namespaces: OrdMap::new(),
            discovery_services: OrdMap::new(),
            actor: None,
        }
    }

    /// The log index of the last applied entry.
    pub fn index(&self) -> u64 {
        self.index
    }

    /// Records that the log reached `index` without a berth command (a Raft membership or
    /// blank entry), so watchers and readers see the index advance.
    pub fn advance(&mut self, index: u64) {
        self.index = self.index.max(index);
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Appends `value` to the history of `key` at the current index.
    fn record(&mut self, key: EntityKey, at: Millis, value: Option<Entity>) {
        let limit = self.config.history_versions.max(1);
        let version = Version {
            index: self.index,
            at,
            value,
            by: self.actor.clone(),
        };
        let entry = self.history.entry(key.clone()).or_default();
        // The commands of one log entry share its index: the entity's version at that index
        // is what the last of them left, and its change is already in the log.
        if let Some(last) = entry.back_mut().filter(|v| v.index == self.index) {
            *last = version;
            return;
        }
        entry.push_back(version);
        while entry.len() > limit {
            entry.pop_front();
        }
        // An entity removed and made again within one entry (a framework torn down and
        // re-subscribed, an offer released and made) has its history restarted, but its
        // change is already logged at this index.
        let index = self.index;
        if self
            .changes
            .iter()
            .rev()
            .take_while(|(i, _)| *i == index)
            .any(|(_, k)| *k == key)
        {
            return;
        }
        self.changes.push_back((self.index, key));
        while self.changes.len() > self.config.changelog_len.max(1) {
            if let Some((dropped, _)) = self.changes.pop_front() {
                self.changes_floor = self.changes_floor.max(dropped);
            }
        }
    }

    /// Keeps the per-cluster service count in step with a service change.
    fn service_changed(&mut self, old: Option<&Arc<Service>>, new: Option<&Arc<Service>>) {
        let counted = |s: Option<&Arc<Service>>| {
            s.filter(|s| s.status != ServiceStatus::Inactive)
                .map(|s| s.cluster.clone())
        };
        if let Some(c) = counted(old) {
            let n = self.counts.entry(c).or_default();
            n.active_services = n.active_services.saturating_sub(1);
        }
        if let Some(c) = counted(new) {
            self.counts.entry(c).or_default().active_services += 1;
        }
    }

    /// Drops the history of an entity that is gone for good.
    fn forget(&mut self, key: &EntityKey) {
        self.history.remove(key);
    }
}
