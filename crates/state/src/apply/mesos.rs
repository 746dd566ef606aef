//! Mesos frameworks and offers. An offer is a hold on its instance's resources, counted in the
//! same usage every commit check reads; accepting swaps the hold for the launched tasks in one
//! step, all or nothing.

use std::collections::BTreeSet;
use std::sync::Arc;

use berth_model::command::{
    AcceptOffers, FrameworkDisconnected, MakeOffers, OffersMade, Placed, RemoveFramework,
    RemoveOffers, StopTask, SubscribeFramework,
};
use berth_model::entity::{DesiredStatus, Name, Protocol};
use berth_model::mesos::{Framework, Offer};
use berth_model::{Error, Millis, OfferId};

use super::Apply;
use crate::{Entity, EntityKey, State, fits};

fn no_framework(id: &str) -> Error {
    Error::client(format!("Framework {id} is not subscribed"))
}

impl State {
    fn store_framework(&mut self, at: Millis, framework: Framework) -> Arc<Framework> {
        let framework = Arc::new(Framework {
            version: self.index,
            ..framework
        });
        self.frameworks
            .insert(framework.id.clone(), framework.clone());
        self.record(
            EntityKey::Framework(framework.id.clone()),
            at,
            Some(Entity::Framework(framework.clone())),
        );
        framework
    }

    /// Releases every offer of `framework`.
    fn release_offers_of(&mut self, at: Millis, framework: &str) {
        // In id order: the change log must come out the same on every replica.
        let mut ids: Vec<OfferId> = self
            .offers
            .values()
            .filter(|o| o.framework == framework)
            .map(|o| o.id)
            .collect();
        ids.sort_unstable();
        self.release_offers(at, &ids);
    }

    /// Releases every offer on `instance`.
    pub(super) fn release_offers_on(&mut self, at: Millis, instance: berth_model::InstanceId) {
        let ids: Vec<OfferId> = self.offers_on(instance).map(|o| o.id).collect();
        self.release_offers(at, &ids);
    }

    fn release_offers(&mut self, at: Millis, ids: &[OfferId]) {
        for id in ids {
            if let Some(o) = self.offers.get(id).cloned() {
                self.offer_changed(Some(&o), None);
                self.record(EntityKey::Offer(o.id), at, None);
                self.forget(&EntityKey::Offer(o.id));
            }
        }
    }
}

impl Apply for SubscribeFramework {
    fn apply(&self, state: &mut State, at: Millis) -> Result<Arc<Framework>, Error> {
        let f: &Framework = &self.framework;
        state.active_cluster(&f.cluster)?;
        if f.id.is_empty() || f.name.is_empty() {
            return Err(Error::invalid("A framework needs an id and a name"));
        }
        let actor = state.actor.as_deref().map(str::to_owned);
        let (registered_at, owner) = match state.frameworks.get(&f.id) {
            Some(old) if old.cluster != f.cluster => {
                return Err(Error::invalid(format!(
                    "Framework {} is subscribed to cluster {}, not {}",
                    f.id, old.cluster, f.cluster
                )));
            }
            // A framework belongs to the principal that registered it: nobody else may take
            // it over by subscribing with its id.
            Some(old) if old.owner.is_some() && old.owner != actor => {
                return Err(Error::Conflict(format!(
                    "Framework {} is registered by another principal",
                    f.id
                )));
            }
            Some(old) => (old.registered_at, old.owner.clone().or(actor)),
            None => (at, actor),
        };
        let stored = state.store_framework(
            at,
            Framework {
                connected: true,
                disconnected_at: None,
                registered_at,
                owner,
                ..f.clone()
            },
        );
        Ok(stored)
    }
}

impl Apply for FrameworkDisconnected {
    fn apply(&self, state: &mut State, at: Millis) -> Result<Arc<Framework>, Error> {
        let FrameworkDisconnected { id } = self;
        let old = state
            .frameworks
            .get(id)
            .cloned()
            .ok_or_else(|| no_framework(id))?;
        // Offers go back at once: nobody is listening for them.
        state.release_offers_of(at, id);
        if !old.connected {
            return Ok(old);
        }
        let stored = state.store_framework(
            at,
            Framework {
                connected: false,
                disconnected_at: Some(at),
                ..(*old).clone()
            },
        );
        Ok(stored)
    }
}

impl Apply for RemoveFramework {
    fn apply(&self, state: &mut State, at: Millis) -> Result<(), Error> {
        let RemoveFramework { id, reason } = self;
        let old = state
            .frameworks
            .get(id)
            .cloned()
            .ok_or_else(|| no_framework(id))?;
        state.release_offers_of(at, id);
        let cluster: Name = old.cluster.clone();
        let live: Vec<_> = state
            .tasks_after(
                &cluster,
                &crate::TaskFilter {
                    started_by: Some(id.to_owned()),
                    desired_status: Some(DesiredStatus::Running),
                    ..Default::default()
                },
                None,
            )
            .map(|t| t.id)
            .collect();
        if state.active_cluster(&cluster).is_ok() {
            for task in live {
                // Cannot fail: the cluster is active and the task exists.
                let stop = StopTask {
                    cluster: cluster.clone(),
                    id: task,
                    reason: Some(reason.to_owned()),
                    stop_code: Some("UserInitiated".into()),
                };
                let _ = stop.apply(state, at);
            }
        }
        state.frameworks.remove(id);
        // The removal is in the change log (watchers see it); the history goes with it.
        state.record(EntityKey::Framework(id.to_owned()), at, None);
        state.forget(&EntityKey::Framework(id.to_owned()));
        Ok(())
    }
}

impl Apply for MakeOffers {
    fn apply(&self, state: &mut State, at: Millis) -> Result<OffersMade, Error> {
        let MakeOffers { offers } = self;
        let mut made = Vec::new();
        let mut rejected = Vec::new();
        for offer in offers {
            let framework = state
                .frameworks
                .get(&offer.framework)
                .ok_or_else(|| no_framework(&offer.framework))?;
            if !framework.connected {
                rejected.push((offer.id, "the framework is disconnected".to_owned()));
                continue;
            }
            if framework.cluster != offer.cluster {
                rejected.push((offer.id, "the instance is in another cluster".to_owned()));
                continue;
            }
            if state.offers.contains_key(&offer.id) {
                rejected.push((offer.id, "an offer with this id exists".to_owned()));
                continue;
            }
            let Some(instance) = state
                .instances
                .get(&offer.instance)
                .filter(|i| i.cluster == offer.cluster)
            else {
                rejected.push((offer.id, "no such container instance".to_owned()));
                continue;
            };
            if let Err(m) = fits(
                instance,
                state.usage.get(&offer.instance).map(|u| &**u),
                &offer.hold,
            ) {
                rejected.push((offer.id, m.detail));
                continue;
            }
            let stored = Arc::new(Offer {
                version: state.index,
                created_at: at,
                ..offer.clone()
            });
            state.offer_changed(None, Some(&stored));
            state.record(
                EntityKey::Offer(stored.id),
                at,
                Some(Entity::Offer(stored.clone())),
            );
            made.push(stored);
        }
        Ok(OffersMade { made, rejected })
    }
}

impl Apply for RemoveOffers {
    fn apply(&self, state: &mut State, at: Millis) -> Result<(), Error> {
        let RemoveOffers { ids } = self;
        state.release_offers(at, ids);
        Ok(())
    }
}

impl Apply for AcceptOffers {
    fn apply(&self, state: &mut State, at: Millis) -> Result<Placed, Error> {
        let AcceptOffers {
            framework,
            offers: ids,
            tasks,
        } = self;
        let f = state
            .frameworks
            .get(framework)
            .cloned()
            .ok_or_else(|| no_framework(framework))?;
        let invalid = |why: String| Err(Error::invalid(format!("Invalid offers: {why}")));
        if ids.is_empty() {
            return invalid("no offer given".into());
        }
        let mut offers = Vec::new();
        for id in ids {
            match state.offers.get(id) {
                Some(o) if o.framework == *framework => offers.push(o.clone()),
                Some(_) => return invalid(format!("offer {id} is another framework's")),
                None => return invalid(format!("offer {id} is no longer valid")),
            }
        }
        if ids.iter().collect::<BTreeSet<_>>().len() != ids.len() {
            return invalid("an offer is named twice".into());
        }
        let instance = offers[0].instance;
        if offers.iter().any(|o| o.instance != instance) {
            return invalid("the offers are on different agents".into());
        }
        match state.instances.get(&instance) {
            Some(i)
                if i.status == berth_model::entity::InstanceStatus::Active && i.agent_connected => {
            }
            _ => {
                return invalid(format!(
                    "the agent of container instance {instance} is gone, draining or disconnected"
                ));
            }
        }
        // What the offers hold, together, and what the tasks need of it.
        let held_cpu: i64 = offers.iter().map(|o| o.hold.cpu).sum();
        let held_memory: i64 = offers.iter().map(|o| o.hold.memory).sum();
        let held = |protocol| -> BTreeSet<u16> {
            offers
                .iter()
                .flat_map(|o| o.hold.ports(protocol).collect::<Vec<_>>())
                .collect()
        };
        let (held_tcp, held_udp) = (held(Protocol::Tcp), held(Protocol::Udp));
        let mut used_tcp = BTreeSet::new();
        let mut used_udp = BTreeSet::new();
        let (mut cpu, mut memory) = (0, 0);
        let mut ids_seen = BTreeSet::new();
        for t in tasks {
            if t.instance != Some(instance) || t.cluster != f.cluster {
                return Err(Error::invalid(format!(
                    "Task {} is not on the offered instance",
                    t.id
                )));
            }
            if state.tasks.contains_key(&t.id) || !ids_seen.insert(t.id) {
                return Err(Error::invalid(format!("Task {} exists", t.id)));
            }
            cpu += t.reservation.cpu;
            memory += t.reservation.memory;
            for (protocol, held, used) in [
                (Protocol::Tcp, &held_tcp, &mut used_tcp),
                (Protocol::Udp, &held_udp, &mut used_udp),
            ] {
                for p in t.reservation.ports(protocol) {
                    if !held.contains(&p) || !used.insert(p) {
                        return Err(Error::invalid(format!(
                            "Task {} uses {} port {p}, which the offers do not hold (or another task takes)",
                            t.id,
                            protocol.as_str().to_uppercase()
                        )));
                    }
                }
            }
        }
        if cpu > held_cpu || memory > held_memory {
            return Err(Error::invalid(format!(
                "The tasks need {cpu} CPU units and {memory} MiB; the offers hold {held_cpu} and {held_memory}"
            )));
        }
        // Swap the holds for the tasks: they fit in what the holds freed, by the checks above.
        state.release_offers(at, ids);
        let mut placed = Vec::with_capacity(tasks.len());
        for t in tasks {
            placed.push(state.put_task(at, None, t.clone()));
        }
        Ok(Placed {
            tasks: placed,
            rejected: Vec::new(),
        })
    }
}
