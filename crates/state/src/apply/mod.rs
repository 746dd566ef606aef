//! `State::apply`: one command, in log order, deterministically.
//!
//! ```text
//!  Stamped { at, Command::PlaceTasks(c) } ──State::apply(index)──► c.apply(state, at)
//!      ──► Result<Placed, Error> ──into──► Result<Outcome, Error> (the Raft response)
//! ```
//! Each command implements [`Apply`] next to the other handlers of its resource (one module
//! per resource), with the output its type names; `State::apply` only advances the index and
//! dispatches. A command either changes the state and returns its output, or changes nothing
//! and returns an [`Error`] — never half of one. Each handler checks everything first and
//! writes last, so an early return leaves the state untouched.

mod account;
mod capacity;
mod credentials;
mod discovery;
mod instances;
mod mesos;
mod preempt;
mod queue;
mod schedules;
mod services;
mod task_definitions;
mod tasks;

use std::sync::Arc;

use berth_model::arn::ResourceArn;
use berth_model::command::*;
use berth_model::entity::*;
use berth_model::validate::{MAX_TAGS, merge_tags};
use berth_model::{Error, Millis};

use crate::{Entity, EntityKey, State};

/// How one kind of command changes the state. Called by [`State::apply`] (and by a handler
/// that applies another command as part of its own, as RemoveFramework stops its tasks) once
/// the state is at the entry's log index: every value a handler stores carries that index as
/// its version.
pub(crate) trait Apply: TypedCommand {
    /// Applies the command decided at `at`: its output, or why it was refused (and then the
    /// state is as it was).
    fn apply(&self, state: &mut State, at: Millis) -> Result<Self::Output, Error>;
}

impl State {
    /// Applies one command as part of log entry `index`.
    pub fn apply(&mut self, index: u64, stamped: &Stamped) -> CommandResult {
        self.index = self.index.max(index);
        self.actor = stamped.by.as_deref().map(Arc::from);
        let at = stamped.at;
        match &stamped.command {
            Command::CreateCluster(c) => self.run(c, at),
            Command::DeleteCluster(c) => self.run(c, at),
            Command::UpdateCluster(c) => self.run(c, at),
            Command::RegisterTaskDefinition(c) => self.run(c, at),
            Command::DeregisterTaskDefinition(c) => self.run(c, at),
            Command::DeleteTaskDefinitions(c) => self.run(c, at),
            Command::RegisterContainerInstance(c) => self.run(c, at),
            Command::DeregisterContainerInstance(c) => self.run(c, at),
            Command::UpdateContainerInstancesState(c) => self.run(c, at),
            Command::PutAttributes(c) => self.run(c, at),
            Command::DeleteAttributes(c) => self.run(c, at),
            Command::PlaceTasks(c) => self.run(c, at),
            Command::StopTask(c) => self.run(c, at),
            Command::TaskStateChange(c) => self.run(c, at),
            Command::AgentConnectivity(c) => self.run(c, at),
            Command::AgentLost(c) => self.run(c, at),
            Command::CreateService(c) => self.run(c, at),
            Command::PutService(c) => self.run(c, at),
            Command::SubscribeFramework(c) => self.run(c, at),
            Command::FrameworkDisconnected(c) => self.run(c, at),
            Command::RemoveFramework(c) => self.run(c, at),
            Command::MakeOffers(c) => self.run(c, at),
            Command::RemoveOffers(c) => self.run(c, at),
            Command::AcceptOffers(c) => self.run(c, at),
            Command::TagResource(c) => self.run(c, at),
            Command::UntagResource(c) => self.run(c, at),
            Command::Expire(c) => self.run(c, at),
            Command::Bootstrap(c) => self.run(c, at),
            Command::CreateCredential(c) => self.run(c, at),
            Command::DeleteCredential(c) => self.run(c, at),
            Command::RevokeSession(c) => self.run(c, at),
            Command::PutAccountSetting(c) => self.run(c, at),
            Command::DeleteAccountSetting(c) => self.run(c, at),
            Command::UpdateTaskProtection(c) => self.run(c, at),
            Command::CreateCapacityProvider(c) => self.run(c, at),
            Command::UpdateCapacityProvider(c) => self.run(c, at),
            Command::DeleteCapacityProvider(c) => self.run(c, at),
            Command::PutClusterCapacityProviders(c) => self.run(c, at),
            Command::PlaceQueuedTasks(c) => self.run(c, at),
            Command::ExpireQueuedTasks(c) => self.run(c, at),
            Command::PreemptAndPlace(c) => self.run(c, at),
            Command::CreateSchedule(c) => self.run(c, at),
            Command::UpdateSchedule(c) => self.run(c, at),
            Command::SetSchedulePolicy(c) => self.run(c, at),
            Command::DeleteSchedule(c) => self.run(c, at),
            Command::TakeDueTimes(c) => self.run(c, at),
            Command::EndScheduleAttempt(c) => self.run(c, at),
            Command::CreateNamespace(c) => self.run(c, at),
            Command::DeleteNamespace(c) => self.run(c, at),
            Command::CreateDiscoveryService(c) => self.run(c, at),
            Command::DeleteDiscoveryService(c) => self.run(c, at),
        }
    }

    /// Applies one command and wraps its output for the Raft response.
    fn run<C: Apply>(&mut self, command: &C, at: Millis) -> CommandResult {
        command.apply(self, at).map(Into::into)
    }

    /// The cluster, if it exists and is ACTIVE.
    pub(crate) fn active_cluster(&self, name: &str) -> Result<&Arc<Cluster>, Error> {
        match self.clusters.get(name) {
            Some(c) if c.status == ClusterStatus::Active => Ok(c),
            Some(_) => Err(Error::ClusterInactive(name.to_owned())),
            None => Err(Error::ClusterNotFound(name.to_owned())),
        }
    }

    pub(crate) fn put_cluster(&mut self, at: Millis, cluster: Cluster) -> Arc<Cluster> {
        let cluster = Arc::new(Cluster {
            version: self.index,
            ..cluster
        });
        self.clusters.insert(cluster.name.clone(), cluster.clone());
        self.record(
            EntityKey::Cluster(cluster.name.clone()),
            at,
            Some(Entity::Cluster(cluster.clone())),
        );
        cluster
    }

    /// The current tags of a resource, or why it cannot be tagged.
    fn tags_of(&self, resource: &ResourceArn) -> Result<Vec<Tag>, Error> {
        let missing =
            || Error::ResourceNotFound("The specified resource could not be found.".into());
        Ok(match resource {
            ResourceArn::Cluster(name) => self
                .clusters
                .get(name.as_str())
                .ok_or_else(missing)?
                .tags
                .clone(),
            ResourceArn::TaskDefinition(f, r) => self
                .task_definitions
                .get(&(f.as_str().into(), *r))
                .ok_or_else(missing)?
                .tags
                .clone(),
            ResourceArn::ContainerInstance(c, id) => self
                .instances
                .get(id)
                .filter(|i| *i.cluster == **c)
                .ok_or_else(missing)?
                .tags
                .clone(),
            ResourceArn::Task(c, id) => self
                .tasks
                .get(id)
                .filter(|t| *t.cluster == **c)
                .ok_or_else(missing)?
                .tags
                .clone(),
            ResourceArn::Service(c, n) => self
                .service(c, n)
                .filter(|s| s.status != berth_model::service::ServiceStatus::Inactive)
                .ok_or_else(missing)?
                .tags
                .clone(),
            ResourceArn::CapacityProvider(name) => self
                .capacity_providers
                .get(name.as_str())
                .filter(|p| p.status == berth_model::capacity::CapacityProviderStatus::Active)
                .ok_or_else(missing)?
                .tags
                .clone(),
            ResourceArn::TaskSet(c, n, id) => self
                .service(c, n)
                .and_then(|s| s.task_sets.iter().find(|t| t.id == *id))
                .ok_or_else(missing)?
                .tags
                .clone(),
        })
    }

    fn set_tags(&mut self, at: Millis, resource: &ResourceArn, tags: Vec<Tag>) {
        let index = self.index;
        match resource {
            ResourceArn::Cluster(name) => {
                if let Some(c) = self.clusters.get(name.as_str()) {
                    let c = Cluster {
                        tags,
                        ..(**c).clone()
                    };
                    self.put_cluster(at, c);
                }
            }
            ResourceArn::TaskDefinition(f, r) => {
                if let Some(t) = self.task_definitions.get(&(f.as_str().into(), *r)) {
                    let t = TaskDefinition {
                        tags,
                        version: index,
                        ..(**t).clone()
                    };
                    self.put_task_definition(at, t);
                }
            }
            ResourceArn::ContainerInstance(_, id) => {
                if let Some(i) = self.instances.get(id).cloned() {
                    let new = ContainerInstance {
                        tags,
                        ..(*i).clone()
                    };
                    self.put_instance(at, Some(&i), new);
                }
            }
            ResourceArn::Task(_, id) => {
                if let Some(t) = self.tasks.get(id).cloned() {
                    let new = Task {
                        tags,
                        ..(*t).clone()
                    };
                    self.put_task(at, Some(&t), new);
                }
            }
            ResourceArn::Service(c, n) => {
                if let Some(s) = self.service(c, n).cloned() {
                    let new = berth_model::service::Service {
                        tags,
                        ..(*s).clone()
                    };
                    self.store_service(at, &new);
                }
            }
            ResourceArn::CapacityProvider(name) => {
                if let Some(p) = self.capacity_providers.get(name.as_str()) {
                    let p = berth_model::capacity::CapacityProvider {
                        tags,
                        ..(**p).clone()
                    };
                    self.put_provider(p);
                }
            }
            ResourceArn::TaskSet(c, n, id) => {
                if let Some(s) = self.service(c, n) {
                    let mut new = (**s).clone();
                    if let Some(set) = new.task_sets.iter_mut().find(|t| t.id == *id) {
                        set.tags = tags;
                        self.store_service(at, &new);
                    }
                }
            }
        }
    }
}

impl Apply for CreateCluster {
    fn apply(&self, state: &mut State, at: Millis) -> Result<Arc<Cluster>, Error> {
        let CreateCluster {
            name,
            settings,
            configuration,
            service_connect_defaults,
            tags,
            capacity_providers,
            default_strategy,
        } = self;
        // ECS answers CreateCluster for an existing active cluster with that cluster, unchanged.
        if let Some(existing) = state.clusters.get(name)
            && existing.status == ClusterStatus::Active
        {
            return Ok(existing.clone());
        }
        state.check_cluster_providers(capacity_providers, default_strategy)?;
        // ECS reports Container Insights as disabled unless the caller set it.
        let mut settings = settings.to_vec();
        if !settings
            .iter()
            .any(|s| s.name.as_deref() == Some("containerInsights"))
        {
            settings.push(berth_api::types::ClusterSetting {
                name: Some("containerInsights".into()),
                value: Some("disabled".into()),
            });
        }
        let cluster = state.put_cluster(
            at,
            Cluster {
                name: name.clone(),
                status: ClusterStatus::Active,
                settings,
                configuration: configuration.clone(),
                service_connect_defaults: service_connect_defaults.clone(),
                tags: tags.to_vec(),
                created_at: at,
                version: 0,
                capacity_providers: capacity_providers.clone(),
                default_strategy: default_strategy.clone(),
            },
        );
        Ok(cluster)
    }
}

impl Apply for DeleteCluster {
    fn apply(&self, state: &mut State, at: Millis) -> Result<Arc<Cluster>, Error> {
        let DeleteCluster { name } = self;
        let cluster = state.active_cluster(name)?.clone();
        // Services, then tasks, then instances: the order a person has to clean up in.
        let counts = state.counts(name);
        if counts.active_services > 0 {
            return Err(Error::ClusterContainsServices);
        }
        if counts.running_tasks > 0 || counts.pending_tasks > 0 || state.has_live_tasks(name) {
            return Err(Error::ClusterContainsTasks);
        }
        if counts.registered_instances > 0 {
            return Err(Error::ClusterContainsInstances);
        }
        let cluster = state.put_cluster(
            at,
            Cluster {
                status: ClusterStatus::Inactive,
                ..(*cluster).clone()
            },
        );
        Ok(cluster)
    }
}

impl Apply for UpdateCluster {
    fn apply(&self, state: &mut State, at: Millis) -> Result<Arc<Cluster>, Error> {
        let UpdateCluster {
            name,
            settings,
            configuration,
            service_connect_defaults,
        } = self;
        let mut cluster = (**state.active_cluster(name)?).clone();
        if let Some(new) = settings {
            for s in new {
                match cluster.settings.iter_mut().find(|o| o.name == s.name) {
                    Some(o) => *o = s.clone(),
                    None => cluster.settings.push(s.clone()),
                }
            }
        }
        if configuration.is_some() {
            cluster.configuration = configuration.clone();
        }
        if service_connect_defaults.is_some() {
            cluster.service_connect_defaults = service_connect_defaults.clone();
        }
        Ok(state.put_cluster(at, cluster))
    }
}

impl Apply for TagResource {
    fn apply(&self, state: &mut State, at: Millis) -> Result<(), Error> {
        let TagResource { resource, tags } = self;
        let merged = merge_tags(&state.tags_of(resource)?, tags);
        if merged.len() > MAX_TAGS {
            return Err(Error::invalid(format!(
                "A resource can have at most {MAX_TAGS} tags; this request would leave it with {}",
                merged.len()
            )));
        }
        state.set_tags(at, resource, merged);
        Ok(())
    }
}

impl Apply for UntagResource {
    fn apply(&self, state: &mut State, at: Millis) -> Result<(), Error> {
        let UntagResource { resource, keys } = self;
        let mut tags = state.tags_of(resource)?;
        let before = tags.len();
        tags.retain(|t| !keys.contains(&t.key));
        if tags.len() != before {
            state.set_tags(at, resource, tags);
        }
        Ok(())
    }
}

impl Apply for Expire {
    fn apply(&self, state: &mut State, at: Millis) -> Result<(), Error> {
        let Expire {
            stopped_before,
            inactive_before,
        } = *self;
        // STOPPED tasks, oldest first.
        let old: Vec<_> = state
            .stopped
            .iter()
            .take_while(|(when, _)| *when < stopped_before)
            .map(|(_, id)| *id)
            .collect();
        for id in old {
            if let Some(t) = state.tasks.get(&id).cloned() {
                state.task_changed(Some(&t), None);
                state.forget(&EntityKey::Task(id));
            }
        }
        // INACTIVE instances no task refers to any more.
        let gone: Vec<_> = state
            .instances
            .values()
            .filter(|i| {
                i.status == InstanceStatus::Inactive
                    && i.deregistered_at.is_some_and(|d| d < inactive_before)
            })
            .filter(|i| state.tasks_on(i.id).next().is_none())
            .cloned()
            .collect();
        for i in gone {
            state.instance_changed(Some(&i), None);
            state.forget(&EntityKey::Instance(i.id));
        }
        // Revisions marked for deletion once no live task uses them.
        let deleting: Vec<_> = state
            .task_definitions
            .values()
            .filter(|t| t.status == TaskDefinitionStatus::DeleteInProgress)
            .filter(|t| !state.revision_in_use(&t.family, t.revision))
            .cloned()
            .collect();
        for t in deleting {
            state
                .task_definitions
                .remove(&(t.family.clone(), t.revision));
            state.forget(&EntityKey::TaskDefinition(t.family.clone(), t.revision));
        }
        state.expire_services(inactive_before);
        state.expire_capacity_providers(inactive_before);
        state
            .client_tokens
            .retain(|_, record| record.at >= stopped_before);
        state.expire_credentials(inactive_before);
        state.expire_revoked_sessions(at);
        Ok(())
    }
}
