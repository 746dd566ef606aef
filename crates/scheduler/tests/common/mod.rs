//! Shared by the scheduler's integration tests: a [`World`] that builds a real
//! `berth_state::State` by applying commands (so the engine plans on exactly what the server
//! would give it), builders for hosts, reservations and requests, and [`oracle`], a
//! brute-force model of what the engine should decide.
//!
//! The plan check is the state machine's own: [`World::commit`] turns each placement into a
//! task and applies it through `PlaceTasks`, whose commit-time re-check (resources,
//! ports, distinctInstance) is the ground truth a plan has to pass.
#![allow(dead_code)]

pub mod oracle;

use std::collections::BTreeMap;
use std::sync::Arc;

use berth_model::command::*;
use berth_model::entity::*;
use berth_model::priority::Priority;
use berth_model::{InstanceId, Millis, TaskId};
use berth_scheduler::{Placement, PlacementRequest};
use berth_state::State;

pub const CLUSTER: &str = "prod";
/// A second cluster, whose instances no plan for [`CLUSTER`] may use.
pub const OTHER: &str = "other";
pub const AZ: &str = "ecs.availability-zone";
pub const TYPE: &str = "ecs.instance-type";
pub const FAMILY: &str = "web";

/// A state and the log position and clock the next command is applied at.
pub struct World {
    pub state: State,
    index: u64,
    now: Millis,
    next_task: u128,
    next_instance: u128,
}

impl Default for World {
    fn default() -> Self {
        Self::new()
    }
}

impl World {
    /// Clusters [`CLUSTER`] and [`OTHER`] and an ACTIVE `web:1`.
    pub fn new() -> Self {
        let mut w = Self {
            state: State::default(),
            index: 0,
            now: Millis(1_700_000_000_000),
            next_task: 1,
            next_instance: 1,
        };
        for name in [CLUSTER, OTHER] {
            w.ok(CreateCluster {
                name: name.into(),
                settings: Vec::new(),
                configuration: None,
                service_connect_defaults: None,
                tags: Vec::new(),
                capacity_providers: Vec::new(),
                default_strategy: Vec::new(),
            });
        }
        w.ok(RegisterTaskDefinition {
            family: FAMILY.into(),
            spec: Arc::new(Default::default()),
            requirements: Requirements::default(),
            tags: Vec::new(),
        });
        w
    }

    /// An independent copy (the state is an O(1) snapshot) to commit a plan on.
    pub fn fork(&self) -> World {
        World {
            state: self.state.clone(),
            index: self.index,
            now: self.now,
            next_task: self.next_task,
            next_instance: self.next_instance,
        }
    }

    /// Applies `command` as the next log entry, one second after the previous one.
    pub fn apply(&mut self, command: impl Into<Command>) -> CommandResult {
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

    /// Registers `host` in [`CLUSTER`].
    pub fn add(&mut self, host: Host) -> InstanceId {
        self.add_to(CLUSTER, host)
    }

    /// Registers `host` in `cluster`; ids count up from 1, so instance order is insertion order.
    pub fn add_to(&mut self, cluster: &str, host: Host) -> InstanceId {
        let id = InstanceId(self.next_instance);
        self.next_instance += 1;
        self.ok(RegisterContainerInstance {
            cluster: cluster.into(),
            id,
            reregister: false,
            ec2_instance_id: Some(ec2_id(id)),
            resources: Resources {
                cpu: host.cpu,
                memory: host.memory,
                ports: host.ports,
                udp_ports: host.udp_ports,
                other: Vec::new(),
            },
            attributes: host.attributes,
            version_info: None,
            tags: Vec::new(),
            agent_endpoint: None,
            agent_certificate: None,
        });
        id
    }

    pub fn drain(&mut self, id: InstanceId) {
        let cluster = self.state.instance(id).expect("instance").cluster.clone();
        self.ok(UpdateContainerInstancesState {
            cluster,
            ids: vec![id],
            status: InstanceStatus::Draining,
        });
    }

    /// Deregisters with force (its live tasks are orphaned, i.e. STOPPED).
    pub fn deregister(&mut self, id: InstanceId) {
        let cluster = self.state.instance(id).expect("instance").cluster.clone();
        self.ok(DeregisterContainerInstance {
            cluster,
            id,
            force: true,
        });
    }

    /// Marks the agents of `ids` disconnected. No command does that yet (the server tracks
    /// connections outside the log), so this edits a snapshot and restores it, which rebuilds
    /// every index from the entities.
    pub fn disconnect(&mut self, ids: &[InstanceId]) {
        if ids.is_empty() {
            return;
        }
        let mut json = serde_json::to_value(self.state.persist()).expect("snapshot serializes");
        let wanted: Vec<String> = ids.iter().map(ToString::to_string).collect();
        for i in json["instances"].as_array_mut().expect("instances") {
            if wanted.iter().any(|w| i["id"] == **w) {
                i["agent_connected"] = serde_json::Value::Bool(false);
            }
        }
        let snapshot = serde_json::from_value(json).expect("the edited snapshot deserializes");
        self.state = State::restore(snapshot, self.state.config().clone());
        for id in ids {
            assert!(!self.state.instance(*id).expect("instance").agent_connected);
        }
    }

    /// The time the last command was applied at.
    pub fn now(&self) -> Millis {
        self.now
    }

    /// Moves the clock on so that the next command is applied at `at` or later.
    pub fn advance_to(&mut self, at: Millis) {
        self.now = self.now.max(Millis(at.0 - 1000));
    }

    pub fn task_id(&mut self) -> TaskId {
        let id = TaskId(self.next_task);
        self.next_task += 1;
        id
    }

    /// Places one task of `group` on `instance` through the state machine; `None` when the
    /// commit check refuses it.
    pub fn try_run(
        &mut self,
        instance: InstanceId,
        group: &str,
        reservation: Reservation,
    ) -> Option<TaskId> {
        let cluster = self
            .state
            .instance(instance)
            .map_or_else(|| CLUSTER.into(), |i| i.cluster.clone());
        let id = self.task_id();
        let t = task(id, &cluster, instance, group, reservation);
        let placed = self.ok(PlaceTasks {
            cluster,
            tasks: vec![t],
            client_token: None,
            distinct_instance: false,
        });
        (placed.tasks.len() == 1).then_some(id)
    }

    /// Places a RUNNING task of `group` at `priority` on `instance`, holding `memory` MiB,
    /// protected until `protected`; it must fit.
    pub fn run_at(
        &mut self,
        instance: InstanceId,
        group: &str,
        memory: i64,
        priority: u16,
        protected: Option<Millis>,
    ) -> TaskId {
        let id = self.task_id();
        let t = Task {
            priority: Priority::new(priority),
            protected_until: protected,
            ..task(id, CLUSTER, instance, group, needs(0, memory))
        };
        let placed = self.ok(PlaceTasks {
            cluster: CLUSTER.into(),
            tasks: vec![t],
            client_token: None,
            distinct_instance: false,
        });
        assert_eq!(placed.tasks.len(), 1, "the test's task must fit");
        self.report(id, TaskStatus::Running);
        id
    }

    /// Places one task that must fit.
    pub fn run(&mut self, instance: InstanceId, group: &str, reservation: Reservation) -> TaskId {
        self.try_run(instance, group, reservation)
            .unwrap_or_else(|| panic!("a task of {group} does not fit on {instance}"))
    }

    /// Moves a task forward to `status`, as its agent would report.
    pub fn report(&mut self, id: TaskId, status: TaskStatus) {
        let cluster = self.state.task(id).expect("task").cluster.clone();
        self.ok(TaskStateChange {
            cluster,
            id,
            status: Some(status),
            reason: None,
            containers: Vec::new(),
            pull_started_at: None,
            pull_stopped_at: None,
            execution_stopped_at: None,
        });
    }

    /// The tasks a plan stands for, as the server would build them.
    pub fn tasks_of(&mut self, req: &PlacementRequest, placements: &[Placement]) -> Vec<Task> {
        placements
            .iter()
            .map(|p| {
                let id = self.task_id();
                task(
                    id,
                    &req.cluster,
                    p.instance,
                    &req.group,
                    reservation_of(req, p),
                )
            })
            .collect()
    }

    /// Commits the tasks of a plan through `PlaceTasks` one by one (calling `before`
    /// with the state each task is checked against) and asserts the state machine accepts
    /// every one.
    pub fn commit_each(
        &mut self,
        req: &PlacementRequest,
        placements: &[Placement],
        mut before: impl FnMut(&State, usize, &Placement),
    ) {
        let distinct = req
            .constraints
            .iter()
            .any(|c| matches!(c, berth_scheduler::Constraint::DistinctInstance));
        let tasks = self.tasks_of(req, placements);
        for (k, (t, p)) in tasks.into_iter().zip(placements).enumerate() {
            before(&self.state, k, p);
            let Placed { rejected, .. } = self.ok(PlaceTasks {
                cluster: req.cluster.as_str().into(),
                tasks: vec![t],
                client_token: None,
                distinct_instance: distinct,
            });
            assert!(
                rejected.is_empty(),
                "the state machine refused placement {k} of the plan: {rejected:?}"
            );
        }
    }

    /// Commits a whole plan in one PlaceTasks, as the plan applier does, and asserts the
    /// state machine accepts every task.
    pub fn commit(&mut self, req: &PlacementRequest, placements: &[Placement]) {
        let distinct = req
            .constraints
            .iter()
            .any(|c| matches!(c, berth_scheduler::Constraint::DistinctInstance));
        let tasks = self.tasks_of(req, placements);
        let Placed { tasks, rejected } = self.ok(PlaceTasks {
            cluster: req.cluster.as_str().into(),
            tasks,
            client_token: None,
            distinct_instance: distinct,
        });
        assert!(
            rejected.is_empty(),
            "the state machine refused part of the plan: {rejected:?}"
        );
        assert_eq!(tasks.len(), placements.len());
    }
}

pub fn ec2_id(id: InstanceId) -> String {
    format!("i-{:08x}", id.0)
}

/// What a placed task reserves: the request's needs plus the dynamic ports chosen for it.
pub fn reservation_of(req: &PlacementRequest, p: &Placement) -> Reservation {
    let sorted = |v: &[u16]| {
        let mut v = v.to_vec();
        v.sort_unstable();
        v
    };
    Reservation {
        dynamic_tcp: sorted(&p.dynamic_tcp),
        dynamic_udp: sorted(&p.dynamic_udp),
        ..req.reservation.clone()
    }
}

/// A PENDING task of `web:1` and `group` on `instance`.
pub fn task(
    id: TaskId,
    cluster: &str,
    instance: InstanceId,
    group: &str,
    reservation: Reservation,
) -> Task {
    Task {
        id,
        cluster: cluster.into(),
        instance: Some(instance),
        family: FAMILY.into(),
        revision: 1,
        overrides: Default::default(),
        last_status: TaskStatus::Pending,
        desired_status: DesiredStatus::Running,
        containers: Vec::new(),
        group: group.into(),
        started_by: None,
        launch_type: "EC2".into(),
        cpu: None,
        memory: None,
        reservation,
        ports: Vec::new(),
        availability_zone: None,
        health_status: HealthStatus::Unknown,
        created_at: Millis(1_700_000_000_000),
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
    }
}

/// A host to register: resources and attributes.
#[derive(Debug, Clone)]
pub struct Host {
    pub cpu: i64,
    pub memory: i64,
    pub ports: Vec<u16>,
    pub udp_ports: Vec<u16>,
    pub attributes: BTreeMap<String, Option<String>>,
}

/// A linux host with `cpu` units and `memory` MiB, no reserved ports and no AZ.
pub fn host(cpu: i64, memory: i64) -> Host {
    Host {
        cpu,
        memory,
        ports: Vec::new(),
        udp_ports: Vec::new(),
        attributes: [("ecs.os-type".to_owned(), Some("linux".to_owned()))].into(),
    }
}

impl Host {
    pub fn attr(mut self, name: &str, value: &str) -> Self {
        self.attributes.insert(name.into(), Some(value.into()));
        self
    }

    pub fn az(self, az: &str) -> Self {
        self.attr(AZ, az)
    }

    pub fn kind(self, kind: &str) -> Self {
        self.attr(TYPE, kind)
    }

    /// Reserved TCP ports (sorted here, as the command's contract asks).
    pub fn ports(mut self, ports: &[u16]) -> Self {
        self.ports = ports.to_vec();
        self.ports.sort_unstable();
        self.ports.dedup();
        self
    }

    pub fn udp_ports(mut self, ports: &[u16]) -> Self {
        self.udp_ports = ports.to_vec();
        self.udp_ports.sort_unstable();
        self.udp_ports.dedup();
        self
    }
}

pub fn needs(cpu: i64, memory: i64) -> Reservation {
    Reservation {
        cpu,
        memory,
        ..Default::default()
    }
}

/// A request for `count` tasks of `group` in [`CLUSTER`].
pub fn request(group: &str, reservation: Reservation, count: usize) -> PlacementRequest {
    PlacementRequest::new(CLUSTER, group, reservation, count)
}

/// Which instances a plan used, in placement order.
pub fn instances_of(placements: &[Placement]) -> Vec<InstanceId> {
    placements.iter().map(|p| p.instance).collect()
}
