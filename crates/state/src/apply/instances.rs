//! Container instances: registration, deregistration, ACTIVE/DRAINING and attributes.

use std::collections::BTreeMap;
use std::sync::Arc;

use berth_model::arn::ResourceArn;
use berth_model::command::{
    AgentConnectivity, AgentLost, AttributeChange, DeleteAttributes, DeregisterContainerInstance,
    Failure, FailureReason, Partial, PutAttributes, RegisterContainerInstance,
    UpdateContainerInstancesState,
};
use berth_model::entity::*;
use berth_model::{Error, InstanceId, Millis};

use super::Apply;
use crate::{Entity, EntityKey, State};

/// Custom attributes one instance may carry; the built-in ones (set by agents) do not count.
pub const MAX_CUSTOM_ATTRIBUTES: usize = 10;

/// Attribute names agents set themselves (ECS's own and ECS agent capabilities, berth's).
const BUILT_IN_PREFIXES: &[&str] = &["ecs.", "com.amazonaws.ecs.", "berth."];

fn custom_count(attributes: &BTreeMap<String, Option<String>>) -> usize {
    attributes
        .keys()
        .filter(|k| !BUILT_IN_PREFIXES.iter().any(|p| k.starts_with(p)))
        .count()
}

impl State {
    /// Stores `new` (replacing `old`), stamps its version and records it in its history.
    pub(crate) fn put_instance(
        &mut self,
        at: Millis,
        old: Option<&Arc<ContainerInstance>>,
        new: ContainerInstance,
    ) -> Arc<ContainerInstance> {
        let new = Arc::new(ContainerInstance {
            version: self.index,
            ..new
        });
        self.instance_changed(old, Some(&new));
        self.record(
            EntityKey::Instance(new.id),
            at,
            Some(Entity::Instance(new.clone())),
        );
        // An instance that can take no new task (draining, deregistered, its agent silent)
        // takes back what it offered: the offers are rescinded.
        if new.status != InstanceStatus::Active || !new.agent_connected {
            self.release_offers_on(at, new.id);
        }
        new
    }

    /// The instance `id` if it belongs to `cluster`.
    fn instance_in(&self, cluster: &str, id: InstanceId) -> Option<&Arc<ContainerInstance>> {
        self.instances.get(&id).filter(|i| &*i.cluster == cluster)
    }

    /// Applies `edit` for each change to a working copy of its instance, all or nothing: every
    /// target must exist and every edit succeed before any instance is stored.
    fn edit_attributes(
        &mut self,
        at: Millis,
        cluster: &Name,
        changes: &[AttributeChange],
        edit: impl Fn(&mut ContainerInstance, &AttributeChange) -> Result<(), Error>,
    ) -> Result<Vec<AttributeChange>, Error> {
        self.active_cluster(cluster)?;
        let mut updated: BTreeMap<InstanceId, ContainerInstance> = BTreeMap::new();
        for c in changes {
            let instance = match updated.get_mut(&c.instance) {
                Some(i) => i,
                None => {
                    let i = self.instance_in(cluster, c.instance).ok_or_else(|| {
                        Error::TargetNotFound(format!(
                            "Could not find container instance {} in cluster {cluster}",
                            c.instance
                        ))
                    })?;
                    updated.entry(c.instance).or_insert_with(|| (**i).clone())
                }
            };
            edit(instance, c)?;
        }
        for (id, new) in updated {
            let old = self.instances.get(&id).cloned();
            if old.as_deref() != Some(&new) {
                self.put_instance(at, old.as_ref(), new);
            }
        }
        Ok(changes.to_vec())
    }
}

impl Apply for RegisterContainerInstance {
    fn apply(&self, state: &mut State, at: Millis) -> Result<Arc<ContainerInstance>, Error> {
        let RegisterContainerInstance {
            cluster,
            id,
            reregister,
            ec2_instance_id,
            resources,
            attributes,
            version_info,
            tags,
            agent_endpoint,
            agent_certificate,
        } = self;
        state.active_cluster(cluster)?;
        if custom_count(attributes) > MAX_CUSTOM_ATTRIBUTES {
            return Err(Error::AttributeLimitExceeded(format!(
                "A container instance can have at most {MAX_CUSTOM_ATTRIBUTES} custom attributes"
            )));
        }
        let old = state.instance_in(cluster, *id).cloned();
        let new = match (&old, *reregister) {
            (Some(old), true) => {
                if old.status == InstanceStatus::Inactive {
                    return Err(Error::client(format!(
                        "Container instance {id} was deregistered; register it as a new instance"
                    )));
                }
                // The agent re-sends its built-in attributes; custom ones put since stay.
                let mut merged: BTreeMap<_, _> = old
                    .attributes
                    .iter()
                    .filter(|(k, _)| !k.starts_with("ecs."))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                merged.extend(attributes.iter().map(|(k, v)| (k.clone(), v.clone())));
                if custom_count(&merged) > MAX_CUSTOM_ATTRIBUTES {
                    return Err(Error::AttributeLimitExceeded(format!(
                        "A container instance can have at most {MAX_CUSTOM_ATTRIBUTES} custom attributes"
                    )));
                }
                ContainerInstance {
                    ec2_instance_id: ec2_instance_id
                        .clone()
                        .or_else(|| old.ec2_instance_id.clone()),
                    agent_connected: true,
                    disconnected_at: None,
                    version_info: version_info.clone().or_else(|| old.version_info.clone()),
                    resources: resources.clone(),
                    attributes: merged,
                    tags: if tags.is_empty() {
                        old.tags.clone()
                    } else {
                        tags.to_vec()
                    },
                    // The endpoint and its certificate change together, or not at all.
                    agent_endpoint: match agent_endpoint {
                        Some(_) => agent_endpoint.clone(),
                        None => old.agent_endpoint.clone(),
                    },
                    agent_certificate: match agent_endpoint {
                        Some(_) => agent_certificate.clone(),
                        None => old.agent_certificate.clone(),
                    },
                    ..(**old).clone()
                }
            }
            (None, true) => {
                return Err(Error::invalid(format!(
                    "Container instance {id} is not registered in cluster {cluster}"
                )));
            }
            // Ids are global: one in use in any cluster cannot name a new instance.
            (_, false) if state.instances.contains_key(id) => {
                return Err(Error::client(format!(
                    "Container instance id {id} is already in use"
                )));
            }
            (_, false) => ContainerInstance {
                id: *id,
                cluster: cluster.clone(),
                ec2_instance_id: ec2_instance_id.clone(),
                status: InstanceStatus::Active,
                status_reason: None,
                agent_connected: true,
                disconnected_at: None,
                version_info: version_info.clone(),
                resources: resources.clone(),
                attributes: attributes.clone(),
                registered_at: at,
                deregistered_at: None,
                tags: tags.to_vec(),
                version: 0,
                agent_endpoint: agent_endpoint.clone(),
                agent_certificate: agent_certificate.clone(),
            },
        };
        let new = state.put_instance(at, old.as_ref(), new);
        Ok(new)
    }
}

impl Apply for DeregisterContainerInstance {
    fn apply(&self, state: &mut State, at: Millis) -> Result<Arc<ContainerInstance>, Error> {
        let DeregisterContainerInstance { cluster, id, force } = self;
        state.active_cluster(cluster)?;
        let old = state.instance_in(cluster, *id).cloned().ok_or_else(|| {
            Error::invalid(format!(
                "Container instance {id} not found in cluster {cluster}"
            ))
        })?;
        if old.status == InstanceStatus::Inactive {
            return Ok(old);
        }
        let live: Vec<Arc<Task>> = state
            .tasks_on(*id)
            .filter(|t| t.is_live())
            .cloned()
            .collect();
        if !live.is_empty() && !*force {
            return Err(Error::invalid(format!(
                "Container instance {id} has {} running or pending tasks. Stop them, or deregister with force to orphan them.",
                live.len()
            )));
        }
        for t in live {
            // Orphaned: berth no longer watches or accounts for them.
            let mut containers = t.containers.clone();
            for c in &mut containers {
                c.last_status = TaskStatus::Stopped;
            }
            let stopped = Task {
                containers,
                last_status: TaskStatus::Stopped,
                desired_status: DesiredStatus::Stopped,
                stopping_at: t.stopping_at.or(Some(at)),
                stopped_at: Some(at),
                execution_stopped_at: t.execution_stopped_at.or(Some(at)),
                stopped_reason: Some(format!(
                    "Container instance {id} was deregistered with force; the task was orphaned and its containers may still run on the host"
                )),
                ..(*t).clone()
            };
            state.put_task(at, Some(&t), stopped);
        }
        let new = state.put_instance(
            at,
            Some(&old),
            ContainerInstance {
                status: InstanceStatus::Inactive,
                agent_connected: false,
                deregistered_at: Some(at),
                ..(*old).clone()
            },
        );
        Ok(new)
    }
}

impl Apply for AgentConnectivity {
    fn apply(&self, state: &mut State, at: Millis) -> Result<Partial<ContainerInstance>, Error> {
        let AgentConnectivity {
            cluster,
            ids,
            connected,
        } = self;
        state.active_cluster(cluster)?;
        let mut done = Vec::new();
        let mut failures = Vec::new();
        for &id in ids {
            let Some(old) = state.instance_in(cluster, id).cloned() else {
                failures.push(Failure {
                    resource: None,
                    reason: FailureReason::Missing.as_str().into(),
                    detail: Some(format!("container instance {id}")),
                });
                continue;
            };
            if old.agent_connected == *connected || old.status == InstanceStatus::Inactive {
                done.push(old);
                continue;
            }
            let new = ContainerInstance {
                agent_connected: *connected,
                disconnected_at: (!*connected).then_some(at),
                ..(*old).clone()
            };
            done.push(state.put_instance(at, Some(&old), new));
        }
        Ok(Partial { done, failures })
    }
}

impl Apply for AgentLost {
    fn apply(&self, state: &mut State, at: Millis) -> Result<Arc<ContainerInstance>, Error> {
        let AgentLost {
            cluster,
            id,
            reason,
        } = self;
        state.active_cluster(cluster)?;
        let instance = state.instance_in(cluster, *id).cloned().ok_or_else(|| {
            Error::invalid(format!(
                "Container instance {id} not found in cluster {cluster}"
            ))
        })?;
        if instance.agent_connected {
            return Ok(instance);
        }
        let live: Vec<Arc<Task>> = state
            .tasks_on(*id)
            .filter(|t| t.is_live())
            .cloned()
            .collect();
        for t in live {
            let mut containers = t.containers.clone();
            for c in &mut containers {
                if c.last_status != TaskStatus::Stopped {
                    c.last_status = TaskStatus::Stopped;
                    c.reason.get_or_insert_with(|| reason.to_owned());
                }
            }
            let stopped = Task {
                containers,
                last_status: TaskStatus::Stopped,
                desired_status: DesiredStatus::Stopped,
                stopping_at: t.stopping_at.or(Some(at)),
                stopped_at: Some(at),
                execution_stopped_at: t.execution_stopped_at.or(Some(at)),
                // The host went away, not the task: TerminationNotice even for a task that
                // never got to run, so that the service scheduler does not count it as a
                // failed launch (circuit breaker, throttling).
                stop_code: t
                    .stop_code
                    .clone()
                    .or_else(|| Some("TerminationNotice".into())),
                stopped_reason: Some(reason.to_owned()),
                ..(*t).clone()
            };
            state.put_task(at, Some(&t), stopped);
        }
        Ok(instance)
    }
}

impl Apply for UpdateContainerInstancesState {
    fn apply(&self, state: &mut State, at: Millis) -> Result<Partial<ContainerInstance>, Error> {
        let UpdateContainerInstancesState {
            cluster,
            ids,
            status,
        } = self;
        state.active_cluster(cluster)?;
        if !matches!(status, InstanceStatus::Active | InstanceStatus::Draining) {
            return Err(Error::invalid("status must be ACTIVE or DRAINING"));
        }
        let mut done = Vec::new();
        let mut failures = Vec::new();
        for id in ids {
            let resource = Some(ResourceArn::ContainerInstance(cluster.to_string(), *id));
            match state.instance_in(cluster, *id).cloned() {
                None => failures.push(Failure {
                    resource,
                    reason: FailureReason::Missing.as_str().into(),
                    detail: None,
                }),
                Some(i) if i.status == InstanceStatus::Inactive => failures.push(Failure {
                    resource,
                    reason: FailureReason::Inactive.as_str().into(),
                    detail: Some("The container instance is deregistered.".into()),
                }),
                Some(i) if i.status == *status => done.push(i),
                Some(i) => done.push(state.put_instance(
                    at,
                    Some(&i),
                    ContainerInstance {
                        status: *status,
                        ..(*i).clone()
                    },
                )),
            }
        }
        Ok(Partial { done, failures })
    }
}

impl Apply for PutAttributes {
    fn apply(&self, state: &mut State, at: Millis) -> Result<Vec<AttributeChange>, Error> {
        let PutAttributes {
            cluster,
            attributes: changes,
        } = self;
        state.edit_attributes(at, cluster, changes, |instance, c| {
            instance.attributes.insert(c.name.clone(), c.value.clone());
            if custom_count(&instance.attributes) > MAX_CUSTOM_ATTRIBUTES {
                return Err(Error::AttributeLimitExceeded(format!(
                    "Container instance {} would have more than {MAX_CUSTOM_ATTRIBUTES} custom attributes",
                    c.instance
                )));
            }
            Ok(())
        })
    }
}

impl Apply for DeleteAttributes {
    fn apply(&self, state: &mut State, at: Millis) -> Result<Vec<AttributeChange>, Error> {
        let DeleteAttributes {
            cluster,
            attributes: changes,
        } = self;
        state.edit_attributes(at, cluster, changes, |instance, c| {
            instance.attributes.remove(&c.name);
            Ok(())
        })
    }
}
