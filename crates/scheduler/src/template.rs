//! A task template: everything the tasks of one launch share (definition, overrides, group,
//! reservation, constraints, strategies), and how a placement becomes a fully formed task.
//!
//! RunTask, StartTask and the service reconciler all launch through it, so a service task and
//! a RunTask task of the same definition are the same value, and the state machine's commit
//! check sees them alike.

use std::sync::Arc;

use berth_api::types as api;
use berth_model::entity::*;
use berth_model::priority::{self, Kind, Priority};
use berth_model::queue::QueuedPlacement;
use berth_model::{InstanceId, Millis, TaskId};

use crate::engine::Placement;
use crate::request::{Constraint, PlacementRequest, Strategy};

/// What every task of one launch shares.
#[derive(Debug, Clone)]
pub struct TaskTemplate {
    pub cluster: Name,
    pub definition: Arc<TaskDefinition>,
    /// Overrides as ECS echoes them: an entry for every container.
    pub overrides: api::TaskOverride,
    pub group: String,
    pub started_by: Option<String>,
    pub tags: Vec<Tag>,
    /// What one task needs, overrides applied.
    pub needs: Requirements,
    pub constraints: Vec<Constraint>,
    pub strategies: Vec<Strategy>,
    pub enable_execute_command: bool,
    pub created_at: Millis,
    /// The capacity provider these tasks go to (one share of a strategy), if any.
    pub capacity_provider: Option<Name>,
    /// The priority every task of the launch carries ([`berth_model::priority`]).
    pub priority: Priority,
}

/// ECS echoes an override entry for every container of the definition.
pub fn complete_overrides(
    definition: &TaskDefinition,
    given: Option<&api::TaskOverride>,
) -> api::TaskOverride {
    let mut overrides = given.cloned().unwrap_or_default();
    let mut container_overrides = overrides.container_overrides.take().unwrap_or_default();
    for c in definition
        .spec
        .container_definitions
        .as_deref()
        .unwrap_or_default()
    {
        if !container_overrides.iter().any(|o| o.name == c.name) {
            container_overrides.push(api::ContainerOverride {
                name: c.name.clone(),
                ..Default::default()
            });
        }
    }
    overrides.container_overrides = Some(container_overrides);
    overrides
        .inference_accelerator_overrides
        .get_or_insert_with(Vec::new);
    overrides
}

fn sorted(ports: &[u16]) -> Vec<u16> {
    let mut v = ports.to_vec();
    v.sort_unstable();
    v
}

impl TaskTemplate {
    /// Tasks of a revision as registered (no overrides), as services launch them; their
    /// priority is what the definition's tags give a standalone task (a service sets its own).
    pub fn plain(
        cluster: Name,
        definition: Arc<TaskDefinition>,
        group: String,
        started_by: Option<String>,
        constraints: Vec<Constraint>,
        strategies: Vec<Strategy>,
        created_at: Millis,
    ) -> Self {
        let overrides = complete_overrides(&definition, None);
        let needs = definition.requirements.clone();
        let priority = priority::effective(&[], None, &definition.tags, Kind::Standalone);
        Self {
            cluster,
            definition,
            overrides,
            group,
            started_by,
            tags: Vec::new(),
            needs,
            constraints,
            strategies,
            enable_execute_command: false,
            created_at,
            capacity_provider: None,
            priority,
        }
    }

    /// The tasks carry a distinctInstance constraint (re-checked at commit).
    pub fn distinct_instance(&self) -> bool {
        self.constraints
            .iter()
            .any(|c| matches!(c, Constraint::DistinctInstance))
    }

    fn dynamic(&self, protocol: Protocol) -> usize {
        self.needs
            .ports
            .iter()
            .filter(|p| p.protocol == protocol && p.host_port == 0)
            .count()
    }

    /// What one task reserves on its instance, before dynamic ports are chosen.
    pub fn reservation(&self) -> Reservation {
        let mut tcp: Vec<u16> = self.needs.static_ports(Protocol::Tcp).collect();
        let mut udp: Vec<u16> = self.needs.static_ports(Protocol::Udp).collect();
        tcp.sort_unstable();
        udp.sort_unstable();
        Reservation {
            cpu: self.needs.cpu,
            memory: self.needs.memory,
            tcp,
            udp,
            dynamic_tcp: Vec::new(),
            dynamic_udp: Vec::new(),
        }
    }

    /// The placement request for `count` tasks (or one per listed instance).
    pub fn request(
        &self,
        count: usize,
        instances: Option<Vec<InstanceId>>,
        explain: bool,
    ) -> PlacementRequest {
        PlacementRequest {
            cluster: self.cluster.to_string(),
            group: self.group.clone(),
            reservation: self.reservation(),
            dynamic_tcp: self.dynamic(Protocol::Tcp),
            dynamic_udp: self.dynamic(Protocol::Udp),
            count,
            constraints: self.constraints.clone(),
            strategies: self.strategies.clone(),
            instances,
            capacity_provider: self.capacity_provider.clone(),
            explain,
        }
    }

    /// Task `id` on `instance` as `placement` placed it: dynamic host ports filled in.
    pub fn task(&self, id: TaskId, instance: &ContainerInstance, placement: &Placement) -> Task {
        self.form(id, Some((instance, placement)))
    }

    /// Task `id` waiting for capacity: PROVISIONING on no instance, holding nothing, with what
    /// its placement will need (`queued`). Placed later, it becomes [`Self::task`]'s value.
    pub fn queued_task(&self, id: TaskId, queued: QueuedPlacement) -> Task {
        Task {
            last_status: TaskStatus::Provisioning,
            queued: Some(queued),
            ..self.form(id, None)
        }
    }

    fn form(&self, id: TaskId, placed: Option<(&ContainerInstance, &Placement)>) -> Task {
        let spec = &self.definition.spec;
        let overrides = self
            .overrides
            .container_overrides
            .as_deref()
            .unwrap_or_default();
        let containers = spec
            .container_definitions
            .as_deref()
            .unwrap_or_default()
            .iter()
            .map(|c| {
                let o = overrides.iter().find(|o| o.name == c.name);
                Container {
                    name: c.name.clone().unwrap_or_default(),
                    image: c.image.clone().unwrap_or_default(),
                    essential: c.essential.unwrap_or(true),
                    runtime_id: None,
                    image_digest: None,
                    last_status: TaskStatus::Pending,
                    exit_code: None,
                    reason: None,
                    network_bindings: Vec::new(),
                    health_status: HealthStatus::Unknown,
                    cpu: o.and_then(|o| o.cpu).or(c.cpu),
                    memory: o.and_then(|o| o.memory).or(c.memory),
                    memory_reservation: o
                        .and_then(|o| o.memory_reservation)
                        .or(c.memory_reservation),
                }
            })
            .collect();
        let no_ports = Vec::new();
        let (chosen_tcp, chosen_udp) = placed.map_or((&no_ports, &no_ports), |(_, p)| {
            (&p.dynamic_tcp, &p.dynamic_udp)
        });
        let mut dynamic_tcp = chosen_tcp.iter();
        let mut dynamic_udp = chosen_udp.iter();
        let ports = self
            .needs
            .ports
            .iter()
            .map(|p| {
                let host_port = match (p.host_port, p.protocol) {
                    (0, Protocol::Tcp) => dynamic_tcp.next().copied().unwrap_or(0),
                    (0, Protocol::Udp) => dynamic_udp.next().copied().unwrap_or(0),
                    (port, _) => port,
                };
                PortClaim {
                    host_port,
                    ..p.clone()
                }
            })
            .collect();
        let mut reservation = self.reservation();
        reservation.dynamic_tcp = sorted(chosen_tcp);
        reservation.dynamic_udp = sorted(chosen_udp);
        Task {
            id,
            cluster: self.cluster.clone(),
            instance: placed.map(|(i, _)| i.id),
            family: self.definition.family.clone(),
            revision: self.definition.revision,
            overrides: self.overrides.clone(),
            last_status: TaskStatus::Pending,
            desired_status: DesiredStatus::Running,
            containers,
            group: self.group.clone(),
            started_by: self.started_by.clone(),
            launch_type: "EC2".into(),
            cpu: self.overrides.cpu.clone().or_else(|| spec.cpu.clone()),
            memory: self
                .overrides
                .memory
                .clone()
                .or_else(|| spec.memory.clone()),
            reservation,
            ports,
            availability_zone: placed
                .and_then(|(i, _)| i.attribute("ecs.availability-zone"))
                .map(str::to_owned),
            health_status: HealthStatus::Unknown,
            created_at: self.created_at,
            pull_started_at: None,
            pull_stopped_at: None,
            started_at: None,
            stopping_at: None,
            stopped_at: None,
            execution_stopped_at: None,
            stop_code: None,
            stopped_reason: None,
            enable_execute_command: self.enable_execute_command,
            tags: self.tags.clone(),
            protected_until: None,
            version: 0,
            capacity_provider: self.capacity_provider.clone(),
            queued: None,
            priority: Some(self.priority),
        }
    }
}
