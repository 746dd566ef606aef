//! The snapshot form of the state: entities, history and bookkeeping, without the indexes
//! (they are derived, and rebuilt on restore through the same functions that maintain them).

use std::sync::Arc;

use berth_model::Millis;
use berth_model::account::AccountSetting;
use berth_model::capacity::CapacityProvider;
use berth_model::credential::Credential;
use berth_model::discovery::{DiscoveryService, Namespace};
use berth_model::entity::*;
use berth_model::mesos::{Framework, Offer};
use berth_model::schedule::Schedule;
use berth_model::service::Service;
use imbl::Vector;
use serde::{Deserialize, Serialize};

use crate::{Config, EntityKey, Family, State, TokenRecord, Version};

/// Everything a snapshot must carry to rebuild a [`State`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Persisted {
    pub index: u64,
    clusters: Vec<Arc<Cluster>>,
    task_definitions: Vec<Arc<TaskDefinition>>,
    families: Vec<(Name, Family)>,
    instances: Vec<Arc<ContainerInstance>>,
    tasks: Vec<Arc<Task>>,
    #[serde(default)]
    services: Vec<Arc<Service>>,
    #[serde(default)]
    frameworks: Vec<Arc<Framework>>,
    #[serde(default)]
    offers: Vec<Arc<Offer>>,
    client_tokens: Vec<(Name, String, Arc<TokenRecord>)>,
    history: Vec<(EntityKey, Vector<Version>)>,
    changes: Vector<(u64, EntityKey)>,
    changes_floor: u64,
    #[serde(default)]
    credentials: Vec<Arc<Credential>>,
    #[serde(default)]
    bootstrapped: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    revoked_sessions: Vec<(String, Millis)>,
    #[serde(default)]
    account_settings: Vec<Arc<AccountSetting>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    capacity_providers: Vec<Arc<CapacityProvider>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    schedules: Vec<Arc<Schedule>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    namespaces: Vec<Arc<Namespace>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    discovery_services: Vec<Arc<DiscoveryService>>,
}

impl State {
    /// The snapshot form of this state.
    pub fn persist(&self) -> Persisted {
        let mut instances: Vec<_> = self.instances.values().cloned().collect();
        instances.sort_by_key(|i| i.id);
        let mut tasks: Vec<_> = self.tasks.values().cloned().collect();
        tasks.sort_by_key(|t| t.id);
        let mut client_tokens: Vec<_> = self
            .client_tokens
            .iter()
            .map(|((c, t), r)| (c.clone(), t.clone(), r.clone()))
            .collect();
        client_tokens.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        let mut history: Vec<_> = self
            .history
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        history.sort_by(|a, b| a.0.cmp(&b.0));
        Persisted {
            index: self.index,
            clusters: self.clusters.values().cloned().collect(),
            task_definitions: self.task_definitions.values().cloned().collect(),
            families: self.families.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            instances,
            tasks,
            services: self.services.values().cloned().collect(),
            frameworks: self.frameworks.values().cloned().collect(),
            offers: {
                let mut offers: Vec<_> = self.offers.values().cloned().collect();
                offers.sort_by_key(|o| o.id);
                offers
            },
            client_tokens,
            history,
            changes: self.changes.clone(),
            changes_floor: self.changes_floor,
            credentials: self.credentials.values().cloned().collect(),
            bootstrapped: self.bootstrapped.clone(),
            revoked_sessions: self
                .revoked_sessions
                .iter()
                .map(|(id, expires)| (id.clone(), *expires))
                .collect(),
            account_settings: self.account_settings.values().cloned().collect(),
            capacity_providers: self.capacity_providers.values().cloned().collect(),
            schedules: self.schedules.values().cloned().collect(),
            namespaces: self.namespaces.values().cloned().collect(),
            discovery_services: self.discovery_services.values().cloned().collect(),
        }
    }

    /// Rebuilds a state, indexes included, from its snapshot form.
    pub fn restore(p: Persisted, config: Config) -> State {
        let mut s = State::new(config);
        s.index = p.index;
        for c in p.clusters {
            s.clusters.insert(c.name.clone(), c);
        }
        for t in p.task_definitions {
            s.task_definitions.insert((t.family.clone(), t.revision), t);
        }
        for (name, f) in p.families {
            s.families.insert(name, f);
        }
        for i in &p.instances {
            s.instance_changed(None, Some(i));
        }
        for t in &p.tasks {
            s.task_changed(None, Some(t));
        }
        for v in p.services {
            s.service_changed(None, Some(&v));
            s.services.insert((v.cluster.clone(), v.name.clone()), v);
        }
        for f in p.frameworks {
            s.frameworks.insert(f.id.clone(), f);
        }
        for o in &p.offers {
            s.offer_changed(None, Some(o));
        }
        for (c, t, r) in p.client_tokens {
            s.client_tokens.insert((c, t), r);
        }
        for (k, v) in p.history {
            s.history.insert(k, v);
        }
        s.changes = p.changes;
        s.changes_floor = p.changes_floor;
        for c in &p.credentials {
            s.credential_changed(None, Some(c));
        }
        s.bootstrapped = p.bootstrapped;
        s.revoked_sessions = p.revoked_sessions.into_iter().collect();
        for a in p.account_settings {
            s.account_settings.insert((a.owner.clone(), a.name), a);
        }
        for c in p.capacity_providers {
            s.capacity_providers.insert(c.name.clone(), c);
        }
        for v in p.schedules {
            s.schedules.insert((v.group.clone(), v.name.clone()), v);
        }
        for n in p.namespaces {
            s.namespaces.insert(n.id.clone(), n);
        }
        for d in p.discovery_services {
            s.discovery_services.insert(d.id.clone(), d);
        }
        s
    }
}
