//! `State::apply`: one command, in log order, deterministically.
//!
//! A command either changes the state and returns an [`Outcome`], or changes nothing and
//! returns an [`Error`] — never half of one. Each handler checks everything first and writes
//! last, so an early return leaves the state untouched.

mod instances;
mod mesos;
mod services;
mod task_definitions;
mod tasks;

use std::sync::Arc;

use berth_model::arn::ResourceArn;
use berth_model::command::{Command, CommandResult, Outcome, Stamped};
use berth_model::entity::*;
use berth_model::validate::{MAX_TAGS, merge_tags};
use berth_model::{Error, Millis};

use crate::{Entity, EntityKey, State};

impl State {
    /// Applies one command as part of log entry `index`.
    pub fn apply(&mut self, index: u64, stamped: &Stamped) -> CommandResult {
        self.index = self.index.max(index);
        let at = stamped.at;
        match &stamped.command {
            Command::CreateCluster {
                name,
                settings,
                configuration,
                service_connect_defaults,
                tags,
            } => self.create_cluster(
                at,
                name,
                settings,
                configuration,
                service_connect_defaults,
                tags,
            ),
            Command::DeleteCluster { name } => self.delete_cluster(at, name),
            Command::UpdateCluster {
                name,
                settings,
                configuration,
                service_connect_defaults,
            } => self.update_cluster(at, name, settings, configuration, service_connect_defaults),
            Command::RegisterTaskDefinition {
                family,
                spec,
                requirements,
                tags,
            } => self.register_task_definition(at, family, spec, requirements, tags),
            Command::DeregisterTaskDefinition { family, revision } => {
                self.deregister_task_definition(at, family, *revision)
            }
            Command::DeleteTaskDefinitions { revisions } => {
                self.delete_task_definitions(at, revisions)
            }
            Command::RegisterContainerInstance {
                cluster,
                id,
                reregister,
                ec2_instance_id,
                resources,
                attributes,
                version_info,
                tags,
            } => self.register_instance(
                at,
                cluster,
                *id,
                *reregister,
                ec2_instance_id,
                resources,
                attributes,
                version_info,
                tags,
            ),
            Command::DeregisterContainerInstance { cluster, id, force } => {
                self.deregister_instance(at, cluster, *id, *force)
            }
            Command::UpdateContainerInstancesState {
                cluster,
                ids,
                status,
            } => self.update_instances_state(at, cluster, ids, *status),
            Command::PutAttributes {
                cluster,
                attributes,
            } => self.put_attributes(at, cluster, attributes),
            Command::DeleteAttributes {
                cluster,
                attributes,
            } => self.delete_attributes(at, cluster, attributes),
            Command::PlaceTasks {
                cluster,
                tasks,
                client_token,
                distinct_instance,
            } => self.place_tasks(
                at,
                cluster,
                tasks,
                client_token.as_ref(),
                *distinct_instance,
            ),
            Command::StopTask {
                cluster,
                id,
                reason,
                stop_code,
            } => self.stop_task(at, cluster, *id, reason, stop_code),
            Command::TaskStateChange {
                cluster,
                id,
                status,
                reason,
                containers,
                pull_started_at,
                pull_stopped_at,
                execution_stopped_at,
            } => self.task_state_change(
                at,
                cluster,
                *id,
                *status,
                reason,
                containers,
                [*pull_started_at, *pull_stopped_at, *execution_stopped_at],
            ),
            Command::AgentConnectivity {
                cluster,
                ids,
                connected,
            } => self.agent_connectivity(at, cluster, ids, *connected),
            Command::AgentLost {
                cluster,
                id,
                reason,
            } => self.agent_lost(at, cluster, *id, reason),
            Command::CreateService { service } => self.create_service(at, service),
            Command::PutService {
                service,
                expected_version,
            } => self.put_service(at, service, *expected_version),
            Command::SubscribeFramework { framework } => self.subscribe_framework(at, framework),
            Command::FrameworkDisconnected { id } => self.framework_disconnected(at, id),
            Command::RemoveFramework { id, reason } => self.remove_framework(at, id, reason),
            Command::MakeOffers { offers } => self.make_offers(at, offers),
            Command::RemoveOffers { ids } => self.remove_offers(at, ids),
            Command::AcceptOffers {
                framework,
                offers,
                tasks,
            } => self.accept_offers(at, framework, offers, tasks),
            Command::TagResource { resource, tags } => self.tag_resource(at, resource, tags),
            Command::UntagResource { resource, keys } => self.untag_resource(at, resource, keys),
            Command::Expire {
                stopped_before,
                inactive_before,
            } => Ok(self.expire(*stopped_before, *inactive_before)),
        }
    }

    /// The cluster, if it exists and is ACTIVE.
    pub(crate) fn active_cluster(&self, name: &str) -> Result<&Arc<Cluster>, Error> {
        match self.clusters.get(name) {
            Some(c) if c.status == ClusterStatus::Active => Ok(c),
            Some(_) => Err(Error::ClusterInactive),
            None => Err(Error::ClusterNotFound),
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

    fn create_cluster(
        &mut self,
        at: Millis,
        name: &Name,
        settings: &[berth_api::types::ClusterSetting],
        configuration: &Option<berth_api::types::ClusterConfiguration>,
        service_connect_defaults: &Option<berth_api::types::ClusterServiceConnectDefaults>,
        tags: &[Tag],
    ) -> CommandResult {
        // ECS answers CreateCluster for an existing active cluster with that cluster, unchanged.
        if let Some(existing) = self.clusters.get(name)
            && existing.status == ClusterStatus::Active
        {
            return Ok(Outcome::Cluster(existing.clone()));
        }
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
        let cluster = self.put_cluster(
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
            },
        );
        Ok(Outcome::Cluster(cluster))
    }

    fn delete_cluster(&mut self, at: Millis, name: &Name) -> CommandResult {
        let cluster = self.active_cluster(name)?.clone();
        // Services, then tasks, then instances: the order a person has to clean up in.
        let counts = self.counts(name);
        if counts.active_services > 0 {
            return Err(Error::ClusterContainsServices);
        }
        if counts.running_tasks > 0 || counts.pending_tasks > 0 || self.has_live_tasks(name) {
            return Err(Error::ClusterContainsTasks);
        }
        if counts.registered_instances > 0 {
            return Err(Error::ClusterContainsInstances);
        }
        let cluster = self.put_cluster(
            at,
            Cluster {
                status: ClusterStatus::Inactive,
                ..(*cluster).clone()
            },
        );
        Ok(Outcome::Cluster(cluster))
    }

    fn update_cluster(
        &mut self,
        at: Millis,
        name: &Name,
        settings: &Option<Vec<berth_api::types::ClusterSetting>>,
        configuration: &Option<berth_api::types::ClusterConfiguration>,
        service_connect_defaults: &Option<berth_api::types::ClusterServiceConnectDefaults>,
    ) -> CommandResult {
        let mut cluster = (**self.active_cluster(name)?).clone();
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
        Ok(Outcome::Cluster(self.put_cluster(at, cluster)))
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
        }
    }

    fn tag_resource(&mut self, at: Millis, resource: &ResourceArn, tags: &[Tag]) -> CommandResult {
        let merged = merge_tags(&self.tags_of(resource)?, tags);
        if merged.len() > MAX_TAGS {
            return Err(Error::invalid(format!(
                "A resource can have at most {MAX_TAGS} tags; this request would leave it with {}",
                merged.len()
            )));
        }
        self.set_tags(at, resource, merged);
        Ok(Outcome::Done)
    }

    fn untag_resource(
        &mut self,
        at: Millis,
        resource: &ResourceArn,
        keys: &[String],
    ) -> CommandResult {
        let mut tags = self.tags_of(resource)?;
        let before = tags.len();
        tags.retain(|t| !keys.contains(&t.key));
        if tags.len() != before {
            self.set_tags(at, resource, tags);
        }
        Ok(Outcome::Done)
    }

    fn expire(&mut self, stopped_before: Millis, inactive_before: Millis) -> Outcome {
        // STOPPED tasks, oldest first.
        let old: Vec<_> = self
            .stopped
            .iter()
            .take_while(|(when, _)| *when < stopped_before)
            .map(|(_, id)| *id)
            .collect();
        for id in old {
            if let Some(t) = self.tasks.get(&id).cloned() {
                self.task_changed(Some(&t), None);
                self.forget(&EntityKey::Task(id));
            }
        }
        // INACTIVE instances no task refers to any more.
        let gone: Vec<_> = self
            .instances
            .values()
            .filter(|i| {
                i.status == InstanceStatus::Inactive
                    && i.deregistered_at.is_some_and(|d| d < inactive_before)
            })
            .filter(|i| self.tasks_on(i.id).next().is_none())
            .cloned()
            .collect();
        for i in gone {
            self.instance_changed(Some(&i), None);
            self.forget(&EntityKey::Instance(i.id));
        }
        // Revisions marked for deletion once no live task uses them.
        let deleting: Vec<_> = self
            .task_definitions
            .values()
            .filter(|t| t.status == TaskDefinitionStatus::DeleteInProgress)
            .filter(|t| !self.revision_in_use(&t.family, t.revision))
            .cloned()
            .collect();
        for t in deleting {
            self.task_definitions
                .remove(&(t.family.clone(), t.revision));
            self.forget(&EntityKey::TaskDefinition(t.family.clone(), t.revision));
        }
        self.expire_services(inactive_before);
        self.client_tokens
            .retain(|_, record| record.at >= stopped_before);
        Outcome::Done
    }
}
