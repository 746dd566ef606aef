//! The leader loop's view of the agents frameworks can be offered, kept from pass to pass.
//!
//! Each agent is held as the allocator reads it (`berth_mesos::allocator::Agent`: its total,
//! what is free, the ports an offer of it would carry, whether an offer holds it). Working that
//! out for every instance is most of what preparing an allocation costs (an instance's free
//! ports are looked up one by one in its usage), so the view is built once when the loop
//! starts leading, and then refreshed only for the instances the change log names: a pass
//! after one decline or one task report refreshes one agent, not a thousand. The change log
//! names an entity, not what it was, so the view also remembers where each outstanding offer
//! is: once an offer is gone, its instance is the one to refresh.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use berth_mesos::allocator::{Agent, Amount};
use berth_mesos::pass::Change;
use berth_model::entity::{InstanceStatus, Name};
use berth_model::mesos::Offer;
use berth_model::{InstanceId, OfferId, TaskId};
use berth_state::{EntityKey, State};

use super::translate;

/// One change of the log as the loop's scope takes it.
pub(super) type LoggedChange = Change<InstanceId, TaskId, OfferId>;

/// The agents of the clusters frameworks subscribed to, as the allocator sees them.
#[derive(Default)]
pub(super) struct View {
    /// The clusters of the subscribed frameworks: only their instances are agents.
    clusters: BTreeSet<Name>,
    agents: BTreeMap<InstanceId, Agent<InstanceId>>,
    /// Where each outstanding offer is.
    offers: HashMap<OfferId, InstanceId>,
}

impl View {
    /// Reads every agent and offer again.
    pub(super) fn rebuild(&mut self, state: &State) {
        self.clusters = state.frameworks().map(|f| f.cluster.clone()).collect();
        self.agents.clear();
        for cluster in &self.clusters {
            for i in state.instances_after(cluster, None) {
                if let Some(agent) = agent(state, &self.clusters, i.id) {
                    self.agents.insert(i.id, agent);
                }
            }
        }
        self.offers = state.offers().map(|o| (o.id, o.instance)).collect();
    }

    /// Reads `instance` again: its free resources, or that it can no longer be offered.
    pub(super) fn refresh(&mut self, state: &State, instance: InstanceId) {
        match agent(state, &self.clusters, instance) {
            Some(a) => self.agents.insert(instance, a),
            None => self.agents.remove(&instance),
        };
    }

    /// The agents of `pools`.
    pub(super) fn agents<'a>(
        &'a self,
        pools: &'a HashSet<String>,
    ) -> impl Iterator<Item = &'a Agent<InstanceId>> + 'a {
        self.agents.values().filter(|a| pools.contains(&a.pool))
    }

    /// The loop made `offer`: its agent is held until the offer goes.
    pub(super) fn offered(&mut self, offer: &Offer) {
        self.offers.insert(offer.id, offer.instance);
        if let Some(a) = self.agents.get_mut(&offer.instance) {
            a.offered = true;
        }
    }

    /// What the log entry `key` means to the loop; `own`: the offers its passes made that the
    /// log has not yet shown it (each is taken out once seen).
    pub(super) fn change(
        &mut self,
        state: &State,
        key: &EntityKey,
        own: &mut HashSet<OfferId>,
    ) -> Option<LoggedChange> {
        Some(match key {
            EntityKey::Task(id) => {
                let task = state.task(*id)?;
                Change::Task {
                    id: *id,
                    framework: task
                        .started_by
                        .as_deref()
                        .is_some_and(|f| state.framework(f).is_some()),
                    agent: task.instance,
                }
            }
            EntityKey::Instance(id) => Change::Agent(*id),
            EntityKey::Offer(id) => {
                let mine = own.remove(id);
                match state.offer(*id) {
                    Some(o) => {
                        self.offers.insert(*id, o.instance);
                        Change::Offer {
                            id: *id,
                            agent: Some(o.instance),
                            own: mine,
                        }
                    }
                    None => Change::Offer {
                        id: *id,
                        agent: self.offers.remove(id),
                        own: false,
                    },
                }
            }
            EntityKey::Framework(_) | EntityKey::Cluster(_) => Change::Everything,
            // Task definitions, services, credentials: nothing the loop reads.
            _ => return None,
        })
    }
}

/// `instance` as an agent, if it can take tasks (ACTIVE, its agent connected) in one of
/// `clusters`. Free ports are only worked out for instances no offer holds (the others are
/// not offered).
fn agent(
    state: &State,
    clusters: &BTreeSet<Name>,
    instance: InstanceId,
) -> Option<Agent<InstanceId>> {
    let i = state
        .instance(instance)
        .filter(|i| clusters.contains(&i.cluster))
        .filter(|i| i.status == InstanceStatus::Active && i.agent_connected)?;
    let offered = state.offers_on(i.id).next().is_some();
    let (cpu, memory, ports) = if offered {
        (0, 0, Vec::new())
    } else {
        translate::free(i, state.usage(i.id))
    };
    Some(Agent {
        id: i.id,
        pool: i.cluster.to_string(),
        total: Amount::new(i.resources.cpu, i.resources.memory),
        free: Amount::new(cpu, memory),
        ports,
        offered,
    })
}
