//! Shared by the state machine's integration tests: builders for commands, instances and
//! tasks; a [`World`] that applies commands as successive log entries; and [`check`], the
//! invariants every reachable state must satisfy (no over-commitment, indexes equal to a
//! brute-force recomputation and to a restored snapshot, serde round trip, bounded and
//! consistent history and change log).
//!
//! Each test binary uses a different part of this module.
#![allow(dead_code)]

pub mod invariants;

use std::sync::Arc;

use berth_api::types as api;
use berth_model::arn::ResourceArn;
use berth_model::command::*;
use berth_model::entity::*;
use berth_model::{Error, InstanceId, Millis, TaskId};
use berth_state::{Config, State};

pub use invariants::check;

/// The time of the first command a [`World`] applies.
pub const EPOCH: Millis = Millis(1_700_000_000_000);

/// A state and the log position and clock the next command is applied at.
pub struct World {
    pub state: State,
    pub index: u64,
    pub now: Millis,
}

impl Default for World {
    fn default() -> Self {
        Self::new(Config::default())
    }
}

impl World {
    pub fn new(config: Config) -> Self {
        Self {
            state: State::new(config),
            index: 0,
            now: EPOCH,
        }
    }

    /// A world with cluster `name` and an ACTIVE revision 1 of family `web`.
    pub fn with_cluster(name: &str) -> Self {
        let mut w = Self::default();
        w.ok(create_cluster(name));
        w.ok(register_task_definition("web"));
        w
    }

    /// Applies `command` as the next log entry, one second after the previous one, and checks
    /// the invariants of the state it leaves.
    pub fn apply(&mut self, command: impl Into<Command>) -> CommandResult {
        self.index += 1;
        self.now = Millis(self.now.0 + 1000);
        let result = self.state.apply(
            self.index,
            &Stamped {
                at: self.now,
                command: command.into(),
                by: None,
            },
        );
        check(&self.state);
        result
    }

    /// Applies `command` as the next log entry without checking the invariants: for the few
    /// states a command can reach that break one on purpose (an instance re-registered
    /// smaller than its tasks).
    pub fn apply_unchecked(&mut self, command: impl Into<Command>) -> CommandResult {
        self.index += 1;
        self.now = Millis(self.now.0 + 1000);
        self.state.apply(
            self.index,
            &Stamped {
                at: self.now,
                command: command.into(),
                by: None,
            },
        )
    }

    /// Applies a command that must succeed, and returns its output.
    pub fn ok<C: TypedCommand + std::fmt::Debug>(&mut self, command: C) -> C::Output {
        let shown = format!("{command:?}");
        let outcome = self
            .apply(command)
            .unwrap_or_else(|e| panic!("{shown} was refused: {e:?}"));
        C::Output::try_from(outcome).unwrap_or_else(|e| panic!("{shown}: {e}"))
    }

    /// Applies a command that must be refused, and checks that it changed nothing: the
    /// snapshot after equals the one before except for the log index, which every applied
    /// entry advances.
    pub fn refused(&mut self, command: impl Into<Command> + std::fmt::Debug) -> Error {
        let before = self.state.persist();
        let shown = format!("{command:?}");
        let error = match self.apply(command) {
            Ok(o) => panic!("{shown} was accepted: {o:?}"),
            Err(e) => e,
        };
        let mut after = self.state.persist();
        assert_eq!(
            after.index, self.index,
            "a refused entry still advances the index"
        );
        after.index = before.index;
        assert_eq!(
            after, before,
            "{shown} was refused with {error:?} but changed the state"
        );
        error
    }

    /// Applies a PlaceTasks command and returns what it placed and rejected.
    pub fn place(&mut self, command: PlaceTasks) -> (Vec<Arc<Task>>, Vec<Rejection>) {
        let Placed { tasks, rejected } = self.ok(command);
        (tasks, rejected)
    }

    /// An Expire whose cut-offs are just after now: forgets everything finished so far.
    pub fn expire_everything(&self) -> Expire {
        let after_now = Millis(self.now.0 + 1);
        expire(after_now, after_now)
    }

    pub fn task(&self, id: u128) -> Arc<Task> {
        self.state
            .task(TaskId(id))
            .unwrap_or_else(|| panic!("task {id} is not stored"))
            .clone()
    }

    /// Replaces the state with one restored from its snapshot after `edit` changed the
    /// snapshot's JSON form: how tests reach states no command sequence leads to (yet), to
    /// exercise the state machine's defensive checks.
    pub fn edit_snapshot(&mut self, edit: impl FnOnce(&mut serde_json::Value)) {
        let mut json = serde_json::to_value(self.state.persist()).unwrap();
        edit(&mut json);
        // The last version in each history is the entity's value: keep it so.
        let mut current = std::collections::HashMap::new();
        for (list, kind) in [
            ("clusters", "Cluster"),
            ("task_definitions", "TaskDefinition"),
            ("instances", "Instance"),
            ("tasks", "Task"),
        ] {
            for e in json[list].as_array().unwrap() {
                let key = match kind {
                    "Cluster" => e["name"].clone(),
                    "TaskDefinition" => serde_json::json!([e["family"], e["revision"]]),
                    _ => e["id"].clone(),
                };
                current.insert(
                    serde_json::json!({ kind: key }).to_string(),
                    serde_json::json!({ kind: e }),
                );
            }
        }
        for entry in json["history"].as_array_mut().unwrap() {
            if let Some(value) = current.get(&entry[0].to_string()) {
                let versions = entry[1].as_array_mut().unwrap();
                versions.last_mut().unwrap()["value"] = value.clone();
            }
        }
        let snapshot = serde_json::from_value(json).expect("the edited snapshot deserializes");
        self.state = State::restore(snapshot, self.state.config().clone());
        check(&self.state);
    }

    pub fn instance(&self, id: u128) -> Arc<ContainerInstance> {
        self.state
            .instance(InstanceId(id))
            .unwrap_or_else(|| panic!("instance {id} is not stored"))
            .clone()
    }
}

pub fn tag(key: &str, value: &str) -> Tag {
    Tag {
        key: key.into(),
        value: value.into(),
    }
}

pub fn create_cluster(name: &str) -> CreateCluster {
    create_cluster_tagged(name, Vec::new())
}

pub fn create_cluster_tagged(name: &str, tags: Vec<Tag>) -> CreateCluster {
    CreateCluster {
        name: name.into(),
        settings: Vec::new(),
        configuration: None,
        service_connect_defaults: None,
        tags,
        capacity_providers: Vec::new(),
        default_strategy: Vec::new(),
    }
}

pub fn delete_cluster(name: &str) -> DeleteCluster {
    DeleteCluster { name: name.into() }
}

pub fn setting(name: &str, value: &str) -> api::ClusterSetting {
    api::ClusterSetting {
        name: Some(name.into()),
        value: Some(value.into()),
    }
}

pub fn update_cluster(name: &str, settings: Option<Vec<api::ClusterSetting>>) -> UpdateCluster {
    UpdateCluster {
        name: name.into(),
        settings,
        configuration: None,
        service_connect_defaults: None,
    }
}

/// A revision of `family` with an essential `app` container and a non-essential `sidecar`.
pub fn register_task_definition(family: &str) -> RegisterTaskDefinition {
    let container = |name: &str, essential: bool| api::ContainerDefinition {
        name: Some(name.into()),
        image: Some("busybox".into()),
        essential: Some(essential),
        memory: Some(64),
        ..Default::default()
    };
    RegisterTaskDefinition {
        family: family.into(),
        spec: Arc::new(api::TaskDefinition {
            container_definitions: Some(vec![container("app", true), container("sidecar", false)]),
            ..Default::default()
        }),
        requirements: Requirements {
            cpu: 128,
            memory: 128,
            network_mode: Some(NetworkMode::Bridge),
            ports: Vec::new(),
        },
        tags: Vec::new(),
    }
}

pub fn deregister_task_definition(family: &str, revision: u32) -> DeregisterTaskDefinition {
    DeregisterTaskDefinition {
        family: family.into(),
        revision,
    }
}

pub fn delete_task_definitions(revisions: &[(&str, u32)]) -> DeleteTaskDefinitions {
    DeleteTaskDefinitions {
        revisions: revisions.iter().map(|(f, r)| ((*f).into(), *r)).collect(),
    }
}

/// A RegisterContainerInstance command, built up.
pub struct InstanceBuilder {
    cluster: Name,
    id: InstanceId,
    reregister: bool,
    resources: Resources,
    attributes: std::collections::BTreeMap<String, Option<String>>,
    version_info: Option<api::VersionInfo>,
    tags: Vec<Tag>,
}

/// Instance `id` of `cluster`: 1024 CPU units, 2048 MiB, ECS's default reserved TCP ports
/// and the built-in attributes an agent sends.
pub fn instance(cluster: &str, id: u128) -> InstanceBuilder {
    InstanceBuilder {
        cluster: cluster.into(),
        id: InstanceId(id),
        reregister: false,
        resources: Resources {
            cpu: 1024,
            memory: 2048,
            ports: vec![22, 2375, 2376, 51678, 51679, 51680],
            udp_ports: Vec::new(),
            other: Vec::new(),
        },
        attributes: [
            ("ecs.os-type", Some("linux")),
            ("ecs.availability-zone", Some("eu-west-1a")),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.map(str::to_owned)))
        .collect(),
        version_info: None,
        tags: Vec::new(),
    }
}

impl InstanceBuilder {
    pub fn cpu(mut self, cpu: i64) -> Self {
        self.resources.cpu = cpu;
        self
    }

    pub fn memory(mut self, memory: i64) -> Self {
        self.resources.memory = memory;
        self
    }

    /// Reserved TCP ports (sorted by the caller, as the command's contract says).
    pub fn ports(mut self, ports: &[u16]) -> Self {
        self.resources.ports = ports.to_vec();
        self
    }

    pub fn udp_ports(mut self, ports: &[u16]) -> Self {
        self.resources.udp_ports = ports.to_vec();
        self
    }

    pub fn resources(mut self, resources: Resources) -> Self {
        self.resources = resources;
        self
    }

    pub fn attribute(mut self, name: &str, value: Option<&str>) -> Self {
        self.attributes
            .insert(name.to_owned(), value.map(str::to_owned));
        self
    }

    pub fn no_attributes(mut self) -> Self {
        self.attributes.clear();
        self
    }

    pub fn agent_version(mut self, version: &str) -> Self {
        self.version_info = Some(api::VersionInfo {
            agent_version: Some(version.into()),
            ..Default::default()
        });
        self
    }

    pub fn tags(mut self, tags: Vec<Tag>) -> Self {
        self.tags = tags;
        self
    }

    pub fn reregister(mut self) -> Self {
        self.reregister = true;
        self
    }

    pub fn build(self) -> RegisterContainerInstance {
        RegisterContainerInstance {
            cluster: self.cluster,
            id: self.id,
            reregister: self.reregister,
            ec2_instance_id: Some(format!("i-{:08x}", self.id.0)),
            resources: self.resources,
            attributes: self.attributes,
            version_info: self.version_info,
            tags: self.tags,
            agent_endpoint: None,
            agent_certificate: None,
        }
    }
}

pub fn deregister_instance(cluster: &str, id: u128, force: bool) -> DeregisterContainerInstance {
    DeregisterContainerInstance {
        cluster: cluster.into(),
        id: InstanceId(id),
        force,
    }
}

pub fn set_instances_state(
    cluster: &str,
    ids: &[u128],
    status: InstanceStatus,
) -> UpdateContainerInstancesState {
    UpdateContainerInstancesState {
        cluster: cluster.into(),
        ids: ids.iter().map(|i| InstanceId(*i)).collect(),
        status,
    }
}

pub fn attribute(instance: u128, name: &str, value: Option<&str>) -> AttributeChange {
    AttributeChange {
        instance: InstanceId(instance),
        name: name.into(),
        value: value.map(str::to_owned),
    }
}

pub fn put_attributes(cluster: &str, attributes: Vec<AttributeChange>) -> PutAttributes {
    PutAttributes {
        cluster: cluster.into(),
        attributes,
    }
}

pub fn delete_attributes(cluster: &str, attributes: Vec<AttributeChange>) -> DeleteAttributes {
    DeleteAttributes {
        cluster: cluster.into(),
        attributes,
    }
}

/// A planned task, built up.
pub struct TaskBuilder(Task);

/// Task `id` of `web:1` on `instance` in `cluster`, PENDING, reserving 128 CPU units and
/// 128 MiB, with an essential `app` and a non-essential `sidecar` container.
pub fn task(cluster: &str, id: u128, instance: u128) -> TaskBuilder {
    let container = |name: &str, essential: bool| Container {
        name: name.into(),
        image: "busybox".into(),
        essential,
        runtime_id: None,
        image_digest: None,
        last_status: TaskStatus::Pending,
        exit_code: None,
        reason: None,
        network_bindings: Vec::new(),
        health_status: HealthStatus::Unknown,
        cpu: None,
        memory: Some(64),
        memory_reservation: None,
    };
    TaskBuilder(Task {
        id: TaskId(id),
        cluster: cluster.into(),
        instance: Some(InstanceId(instance)),
        family: "web".into(),
        revision: 1,
        overrides: Default::default(),
        last_status: TaskStatus::Pending,
        desired_status: DesiredStatus::Running,
        containers: vec![container("app", true), container("sidecar", false)],
        group: "family:web".into(),
        started_by: None,
        launch_type: "EC2".into(),
        cpu: None,
        memory: None,
        reservation: Reservation {
            cpu: 128,
            memory: 128,
            tcp: Vec::new(),
            udp: Vec::new(),
            dynamic_tcp: Vec::new(),
            dynamic_udp: Vec::new(),
        },
        // Filled by `build` from the reservation.
        ports: Vec::new(),
        availability_zone: None,
        health_status: HealthStatus::Unknown,
        created_at: EPOCH,
        pull_started_at: None,
        pull_stopped_at: None,
        started_at: None,
        stopping_at: None,
        stopped_at: None,
        execution_stopped_at: None,
        stop_code: None,
        stopped_reason: None,
        enable_execute_command: false,
        tags: Vec::new(),
        protected_until: None,
        version: 0,
        capacity_provider: None,
        queued: None,
        priority: None,
    })
}

impl TaskBuilder {
    pub fn cpu(mut self, cpu: i64) -> Self {
        self.0.reservation.cpu = cpu;
        self
    }

    pub fn memory(mut self, memory: i64) -> Self {
        self.0.reservation.memory = memory;
        self
    }

    pub fn tcp(mut self, ports: &[u16]) -> Self {
        self.0.reservation.tcp = ports.to_vec();
        self
    }

    pub fn udp(mut self, ports: &[u16]) -> Self {
        self.0.reservation.udp = ports.to_vec();
        self
    }

    /// TCP host ports the scheduler chose for mappings with no host port (sorted by caller).
    pub fn dynamic_tcp(mut self, ports: &[u16]) -> Self {
        self.0.reservation.dynamic_tcp = ports.to_vec();
        self
    }

    pub fn dynamic_udp(mut self, ports: &[u16]) -> Self {
        self.0.reservation.dynamic_udp = ports.to_vec();
        self
    }

    pub fn family(mut self, family: &str, revision: u32) -> Self {
        self.0.family = family.into();
        self.0.revision = revision;
        self.0.group = format!("family:{family}");
        self
    }

    pub fn group(mut self, group: &str) -> Self {
        self.0.group = group.into();
        self
    }

    pub fn started_by(mut self, started_by: &str) -> Self {
        self.0.started_by = Some(started_by.into());
        self
    }

    pub fn tags(mut self, tags: Vec<Tag>) -> Self {
        self.0.tags = tags;
        self
    }

    /// A task RunTask queued for capacity: PROVISIONING on no instance, waiting until `until`.
    pub fn queued(mut self, until: Millis) -> Self {
        self.0.instance = None;
        self.0.last_status = TaskStatus::Provisioning;
        self.0.queued = Some(berth_model::queue::QueuedPlacement {
            until,
            constraints: Vec::new(),
            strategies: Vec::new(),
        });
        self
    }

    /// A task of a capacity provider's share of a launch.
    pub fn capacity_provider(mut self, provider: &str) -> Self {
        self.0.capacity_provider = Some(provider.into());
        self
    }

    /// The task, its resolved port bindings filled in from its reservation as a placement
    /// leaves them: `app` binds each static host port to the same container port and each
    /// dynamic one to container port 8000, 8001, ...
    pub fn build(mut self) -> Task {
        let r = &self.0.reservation;
        let mut ports = Vec::new();
        for (protocol, fixed, dynamic) in [
            (Protocol::Tcp, &r.tcp, &r.dynamic_tcp),
            (Protocol::Udp, &r.udp, &r.dynamic_udp),
        ] {
            let claim = |container_port, host_port| PortClaim {
                container: "app".into(),
                container_port,
                host_port,
                protocol,
            };
            ports.extend(fixed.iter().map(|p| claim(*p, *p)));
            ports.extend(
                dynamic
                    .iter()
                    .enumerate()
                    .map(|(k, p)| claim(8000 + k as u16, *p)),
            );
        }
        self.0.ports = ports;
        self.0
    }
}

pub fn place(cluster: &str, tasks: Vec<TaskBuilder>) -> PlaceTasks {
    PlaceTasks {
        cluster: cluster.into(),
        tasks: tasks.into_iter().map(TaskBuilder::build).collect(),
        client_token: None,
        distinct_instance: false,
    }
}

/// A plan whose tasks carry a `distinctInstance` constraint.
pub fn place_distinct(cluster: &str, tasks: Vec<TaskBuilder>) -> PlaceTasks {
    PlaceTasks {
        cluster: cluster.into(),
        tasks: tasks.into_iter().map(TaskBuilder::build).collect(),
        client_token: None,
        distinct_instance: true,
    }
}

pub fn place_with_token(
    cluster: &str,
    tasks: Vec<TaskBuilder>,
    token: &str,
    request_digest: u64,
    continuation: bool,
) -> PlaceTasks {
    PlaceTasks {
        cluster: cluster.into(),
        tasks: tasks.into_iter().map(TaskBuilder::build).collect(),
        client_token: Some(ClientToken {
            token: token.into(),
            request_digest,
            continuation,
        }),
        distinct_instance: false,
    }
}

pub fn stop_task(cluster: &str, id: u128) -> StopTask {
    StopTask {
        cluster: cluster.into(),
        id: TaskId(id),
        reason: None,
        stop_code: None,
    }
}

pub fn stop_task_because(cluster: &str, id: u128, reason: &str, stop_code: &str) -> StopTask {
    StopTask {
        cluster: cluster.into(),
        id: TaskId(id),
        reason: Some(reason.into()),
        stop_code: Some(stop_code.into()),
    }
}

/// A TaskStateChange command, built up.
pub struct ReportBuilder {
    cluster: Name,
    id: TaskId,
    status: Option<TaskStatus>,
    reason: Option<String>,
    containers: Vec<ContainerChange>,
    pull: (Option<Millis>, Option<Millis>),
    execution_stopped_at: Option<Millis>,
}

/// An agent's report that task `id` reached `status` (or only container news, for `None`).
pub fn report(cluster: &str, id: u128, status: Option<TaskStatus>) -> ReportBuilder {
    ReportBuilder {
        cluster: cluster.into(),
        id: TaskId(id),
        status,
        reason: None,
        containers: Vec::new(),
        pull: (None, None),
        execution_stopped_at: None,
    }
}

/// A container change that only moves `name` to `status`.
pub fn container_status(name: &str, status: TaskStatus) -> ContainerChange {
    ContainerChange {
        name: name.into(),
        status: Some(status),
        ..Default::default()
    }
}

impl ReportBuilder {
    pub fn reason(mut self, reason: &str) -> Self {
        self.reason = Some(reason.into());
        self
    }

    pub fn container(mut self, change: ContainerChange) -> Self {
        self.containers.push(change);
        self
    }

    pub fn pulled(mut self, started: Millis, stopped: Millis) -> Self {
        self.pull = (Some(started), Some(stopped));
        self
    }

    pub fn execution_stopped_at(mut self, at: Millis) -> Self {
        self.execution_stopped_at = Some(at);
        self
    }

    pub fn build(self) -> TaskStateChange {
        TaskStateChange {
            cluster: self.cluster,
            id: self.id,
            status: self.status,
            reason: self.reason,
            containers: self.containers,
            pull_started_at: self.pull.0,
            pull_stopped_at: self.pull.1,
            execution_stopped_at: self.execution_stopped_at,
        }
    }
}

pub fn tag_resource(resource: ResourceArn, tags: Vec<Tag>) -> TagResource {
    TagResource { resource, tags }
}

pub fn untag_resource(resource: ResourceArn, keys: &[&str]) -> UntagResource {
    UntagResource {
        resource,
        keys: keys.iter().map(|k| (*k).to_owned()).collect(),
    }
}

pub fn expire(stopped_before: Millis, inactive_before: Millis) -> Expire {
    Expire {
        stopped_before,
        inactive_before,
    }
}

pub fn task_arn(cluster: &str, id: u128) -> ResourceArn {
    ResourceArn::Task(cluster.into(), TaskId(id))
}

pub fn instance_arn(cluster: &str, id: u128) -> ResourceArn {
    ResourceArn::ContainerInstance(cluster.into(), InstanceId(id))
}

pub fn cluster_arn(cluster: &str) -> ResourceArn {
    ResourceArn::Cluster(cluster.into())
}
