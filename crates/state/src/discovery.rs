//! Which tasks answer for a discovery service, read from the state as it is: the one rule
//! behind Cloud Map's DiscoverInstances, `/v1/discover` and every agent's DNS answers.
//!
//! A task of an ECS service that registers in a discovery service is one of its *instances*
//! while it is RUNNING, still meant to run (not being stopped by a deployment, a scale-in or
//! StopTask) and on an ACTIVE container instance (not DRAINING); it is *healthy* when its
//! health is HEALTHY, or UNKNOWN and its task definition has no health check to wait for.
//! DNS answers only healthy instances. Its address is the host's, as its agent advertises it
//! (`berth agent --advertise`), and its port the host port its registered container port is
//! bound to.

use std::net::IpAddr;
use std::sync::Arc;

use berth_model::discovery::{DiscoveryService, Namespace, ServiceRegistry};
use berth_model::entity::{DesiredStatus, HealthStatus, InstanceStatus, Name, Task, TaskStatus};
use berth_model::service::{Service, group_of};
use serde::{Deserialize, Serialize};

use crate::{State, TaskFilter};

/// One task as a discovery service's instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instance {
    /// The task id: Cloud Map's instance id, and the first label of its SRV target.
    pub id: String,
    pub cluster: Name,
    pub ecs_service: Name,
    pub family: Name,
    pub revision: u32,
    /// The host's address, when its agent advertises one that is an IP address.
    pub address: Option<IpAddr>,
    /// The host port of the registered container port (or the registry's `port`).
    pub port: Option<u16>,
    pub availability_zone: Option<String>,
    pub healthy: bool,
}

/// A discovery service and its instances, healthy or not.
#[derive(Debug, Clone, PartialEq)]
pub struct Registered {
    pub namespace: Arc<Namespace>,
    pub service: Arc<DiscoveryService>,
    pub instances: Vec<Instance>,
}

impl State {
    /// The instances of discovery service `service`: the tasks of every ECS service that
    /// registers in it, in task id order.
    pub fn discovery_instances(&self, service: &DiscoveryService) -> Vec<Instance> {
        let mut instances = Vec::new();
        for ecs in self.services_registered_in(&service.id) {
            for registry in ecs
                .service_registries
                .iter()
                .filter(|r| r.registry_id == service.id)
            {
                self.instances_of(ecs, registry, &mut instances);
            }
        }
        instances.sort_by(|a, b| a.id.cmp(&b.id));
        instances.dedup_by(|a, b| a.id == b.id);
        instances
    }

    /// Every discovery service of a DNS namespace with its instances: what agents answer.
    pub fn registered(&self) -> Vec<Registered> {
        let mut all = Vec::new();
        for service in self.discovery_services() {
            let Some(namespace) = self.namespace(&service.namespace_id) else {
                continue;
            };
            all.push(Registered {
                namespace: namespace.clone(),
                service: service.clone(),
                instances: self.discovery_instances(service),
            });
        }
        all
    }

    fn instances_of(&self, ecs: &Service, registry: &ServiceRegistry, out: &mut Vec<Instance>) {
        let filter = TaskFilter {
            group: Some(group_of(&ecs.name)),
            desired_status: Some(DesiredStatus::Running),
            ..TaskFilter::default()
        };
        for task in self.tasks_after(&ecs.cluster, &filter, None) {
            if task.last_status != TaskStatus::Running {
                continue;
            }
            let Some(host) = task.instance.and_then(|i| self.instance(i)) else {
                continue;
            };
            if host.status != InstanceStatus::Active {
                continue;
            }
            out.push(Instance {
                id: task.id.to_string(),
                cluster: ecs.cluster.clone(),
                ecs_service: ecs.name.clone(),
                family: task.family.clone(),
                revision: task.revision,
                address: host.agent_endpoint.as_deref().and_then(address_of),
                port: port_of(task, registry),
                availability_zone: host.attribute("ecs.availability-zone").map(str::to_owned),
                healthy: self.healthy(task),
            });
        }
    }

    fn healthy(&self, task: &Task) -> bool {
        match task.health_status {
            HealthStatus::Healthy => true,
            HealthStatus::Unhealthy => false,
            HealthStatus::Unknown => self
                .task_definition(&task.family, task.revision)
                .is_some_and(|d| {
                    d.spec
                        .container_definitions
                        .iter()
                        .flatten()
                        .all(|c| c.health_check.is_none())
                }),
        }
    }
}

/// The host's address: the host part of the endpoint its agent registered, when that is an
/// IP address.
fn address_of(endpoint: &str) -> Option<IpAddr> {
    let authority = endpoint
        .split_once("://")
        .map_or(endpoint, |(_, rest)| rest)
        .split('/')
        .next()?;
    let host = match authority.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => authority,
    };
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()
}

/// The host port the registry's container port is bound to; the registry's own `port` when
/// it names no container (awsvpc).
fn port_of(task: &Task, registry: &ServiceRegistry) -> Option<u16> {
    let (Some(name), Some(container_port)) = (&registry.container_name, registry.container_port)
    else {
        return registry.port;
    };
    let container = task.containers.iter().find(|c| &c.name == name)?;
    container
        .network_bindings
        .iter()
        .find(|b| b.container_port == Some(i32::from(container_port)))
        .and_then(|b| b.host_port)
        .and_then(|p| u16::try_from(p).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_address_is_the_advertised_endpoints_ip() {
        let ip = address_of;
        assert_eq!(ip("https://10.0.0.7:51678"), Some([10, 0, 0, 7].into()));
        assert_eq!(ip("https://10.0.0.7"), Some([10, 0, 0, 7].into()));
        assert_eq!(ip("https://[::1]:51678"), Some("::1".parse().unwrap()));
        assert_eq!(ip("https://agent.example:51678"), None);
    }
}
