//! The service reconciler's harness: a real `berth_state::State` built by applying commands, a
//! virtual clock, and the two loops that surround the reconciler in a running cluster.
//!
//! ```text
//!  step():    for each live service: reconcile(state, service, now, seed)
//!               → StopTask… → PlaceTasks → PreemptAndPlace… → PutService
//!                 (each through State::apply)
//!  agents():  PENDING → RUNNING (health as the image is scripted) or → STOPPED (an image
//!             that fails to start); desiredStatus STOPPED → STOPPED
//!  settle():  step, check, agents, check … until a round decides nothing and no agent moves
//!  advance(): virtual time; nothing else moves the clock
//! ```
//! `step` does what the server's controller does, in the same order, so a test sees exactly
//! the commands a cluster would log; after each commit it asks the reconciler again, with
//! another seed, and insists it decides nothing (idempotence). The checks after every half-round are the invariants a
//! service must keep whatever the test does: event ids unique, a DAEMON service never twice
//! on one instance, and, where a test asks for them, the deployment bounds (healthy tasks
//! never below minimumHealthyPercent, pending and running never above maximumPercent).

// Two test binaries share the harness; each uses part of it.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use berth_api::types as api;
use berth_model::command::*;
use berth_model::entity::*;
use berth_model::service::*;
use berth_model::{InstanceId, Millis, TaskId};
use berth_scheduler::service::{Decision, Settings, reconcile};
use berth_state::{State, TaskFilter};

use crate::common::{CLUSTER, FAMILY, Host, ec2_id};

/// How an image behaves when an agent starts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Image {
    /// Starts; healthy once running if its definition has a health check.
    Starts,
    /// Never runs: the agent reports the task STOPPED straight from PENDING.
    FailsToStart,
    /// Runs, but its health check fails.
    Unhealthy,
}

pub const GOOD: &str = "registry.local/web:1";
pub const BETTER: &str = "registry.local/web:2";
pub const BROKEN: &str = "registry.local/web:missing";
pub const SICK: &str = "registry.local/web:sick";

/// A revision to register: one essential container.
#[derive(Debug, Clone)]
pub struct Def {
    pub image: String,
    pub health_check: bool,
    pub cpu: i64,
    pub memory: i64,
}

/// A revision of one essential container running `image`, 128 CPU units and 256 MiB.
pub fn def(image: &str) -> Def {
    Def {
        image: image.into(),
        health_check: false,
        cpu: 128,
        memory: 256,
    }
}

impl Def {
    pub fn health_check(mut self) -> Self {
        self.health_check = true;
        self
    }

    pub fn memory(mut self, memory: i64) -> Self {
        self.memory = memory;
        self
    }
}

/// Deployment bounds a test asks the harness to hold a service to.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    pub min_healthy: usize,
    pub max_live: usize,
}

/// What the bounds check saw of a service, once per half-round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// RUNNING, healthy and meant to keep running.
    pub healthy: usize,
    /// PENDING or RUNNING (including tasks told to stop that have not stopped yet).
    pub live: usize,
}

pub struct Harness {
    pub state: State,
    index: u64,
    /// The virtual clock: every command is stamped with it; only [`Harness::advance`] moves it.
    pub now: Millis,
    pub settings: Settings,
    images: HashMap<String, Image>,
    next_instance: u128,
    next_seed: u64,
    next_deployment: u64,
    bounds: BTreeMap<String, Bounds>,
    /// Per bounded service, every sample taken.
    pub samples: BTreeMap<String, Vec<Sample>>,
    /// Every decision `step` made, with the time it made it.
    pub log: Vec<(Millis, Decision)>,
    /// Every task `step` placed, in order.
    pub placed: Vec<TaskId>,
}

impl Default for Harness {
    fn default() -> Self {
        Self::new()
    }
}

impl Harness {
    /// Cluster [`CLUSTER`], no instances, no revisions; [`GOOD`] and [`BETTER`] start,
    /// [`BROKEN`] fails to start, [`SICK`] runs unhealthy.
    pub fn new() -> Self {
        let mut h = Self {
            state: State::default(),
            index: 0,
            now: Millis(1_700_000_000_000),
            settings: Settings::default(),
            images: HashMap::from([
                (GOOD.to_owned(), Image::Starts),
                (BETTER.to_owned(), Image::Starts),
                (BROKEN.to_owned(), Image::FailsToStart),
                (SICK.to_owned(), Image::Unhealthy),
            ]),
            next_instance: 1,
            next_seed: 0,
            next_deployment: 0,
            bounds: BTreeMap::new(),
            samples: BTreeMap::new(),
            log: Vec::new(),
            placed: Vec::new(),
        };
        h.ok(CreateCluster {
            name: CLUSTER.into(),
            settings: Vec::new(),
            configuration: None,
            service_connect_defaults: None,
            tags: Vec::new(),
            capacity_providers: Vec::new(),
            default_strategy: Vec::new(),
        });
        h
    }

    // --- the log --------------------------------------------------------------------------

    /// Applies `command` as the next log entry, stamped with the virtual clock.
    pub fn apply(&mut self, command: impl Into<Command>) -> CommandResult {
        self.index += 1;
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

    pub fn advance(&mut self, ms: i64) {
        self.now = self.now.saturating_add_ms(ms);
    }

    /// A seed per reconcile, as the controller derives one from the log position.
    fn seed(&mut self) -> u64 {
        self.next_seed += 1;
        self.next_seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ self.index
    }

    // --- instances ------------------------------------------------------------------------

    /// Registers `host`; ids count up from 1.
    pub fn add(&mut self, host: Host) -> InstanceId {
        let id = InstanceId(self.next_instance);
        self.next_instance += 1;
        self.ok(RegisterContainerInstance {
            cluster: CLUSTER.into(),
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

    pub fn set_instance_status(&mut self, id: InstanceId, status: InstanceStatus) {
        let Partial { failures, .. } = self.ok(UpdateContainerInstancesState {
            cluster: CLUSTER.into(),
            ids: vec![id],
            status,
        });
        assert!(failures.is_empty(), "{failures:?}");
    }

    pub fn drain(&mut self, id: InstanceId) {
        self.set_instance_status(id, InstanceStatus::Draining);
    }

    pub fn put_attribute(&mut self, id: InstanceId, name: &str, value: Option<&str>) {
        self.ok(PutAttributes {
            cluster: CLUSTER.into(),
            attributes: vec![AttributeChange {
                instance: id,
                name: name.into(),
                value: value.map(str::to_owned),
            }],
        });
    }

    pub fn delete_attribute(&mut self, id: InstanceId, name: &str) {
        self.ok(DeleteAttributes {
            cluster: CLUSTER.into(),
            attributes: vec![AttributeChange {
                instance: id,
                name: name.into(),
                value: None,
            }],
        });
    }

    /// The heartbeat monitor's verdicts: the agent went silent, then stayed silent for the
    /// grace period (which stops its live tasks).
    pub fn lose_agent(&mut self, id: InstanceId) {
        self.disconnect(id);
        self.ok(AgentLost {
            cluster: CLUSTER.into(),
            id,
            reason: "The container instance's agent was lost".into(),
        });
    }

    pub fn disconnect(&mut self, id: InstanceId) {
        self.ok(AgentConnectivity {
            cluster: CLUSTER.into(),
            ids: vec![id],
            connected: false,
        });
    }

    // --- revisions and services -----------------------------------------------------------

    /// Registers the next revision of [`FAMILY`]; returns its number.
    pub fn register(&mut self, d: Def) -> u32 {
        let container = api::ContainerDefinition {
            name: Some("app".into()),
            image: Some(d.image.clone()),
            essential: Some(true),
            memory: Some(d.memory as i32),
            health_check: d.health_check.then(|| api::HealthCheck {
                command: Some(vec!["CMD-SHELL".into(), "curl -f localhost".into()]),
                interval: Some(5),
                timeout: Some(2),
                retries: Some(3),
                start_period: None,
            }),
            ..Default::default()
        };
        let spec = api::TaskDefinition {
            family: Some(FAMILY.into()),
            container_definitions: Some(vec![container]),
            ..Default::default()
        };
        self.ok(RegisterTaskDefinition {
            family: FAMILY.into(),
            spec: Arc::new(spec),
            requirements: Requirements {
                cpu: d.cpu,
                memory: d.memory,
                network_mode: None,
                ports: Vec::new(),
            },
            tags: Vec::new(),
        })
        .revision
    }

    /// A deployment id as ECS makes them, counting up.
    pub fn deployment_id(&mut self) -> String {
        self.next_deployment += 1;
        format!(
            "ecs-svc/{}",
            1_234_567_890_123_456_789 + self.next_deployment
        )
    }

    /// A new PRIMARY deployment of `revision`, as the API makes one.
    pub fn deployment(&mut self, revision: u32, desired: u32) -> Deployment {
        let id = self.deployment_id();
        Deployment {
            rollout_state_reason: Some(format!("ECS deployment {id} in progress.")),
            id,
            status: DeploymentStatus::Primary,
            family: FAMILY.into(),
            revision,
            desired_count: desired,
            rollout_state: RolloutState::InProgress,
            failed_tasks: 0,
            rollback_of: None,
            created_at: self.now,
            updated_at: self.now,
            rolled_back_by: None,
            sources: Vec::new(),
            capacity_provider_strategy: Vec::new(),
            finished_at: None,
        }
    }

    /// A REPLICA service of `revision` at `desired`, with ECS's defaults, as CreateService
    /// would write it.
    pub fn replica(&mut self, name: &str, revision: u32, desired: u32) -> Service {
        let deployment = self.deployment(revision, desired);
        Service {
            cluster: CLUSTER.into(),
            name: name.into(),
            status: ServiceStatus::Active,
            scheduling_strategy: SchedulingStrategy::Replica,
            desired_count: desired,
            deployment_configuration: DeploymentConfig::default_for(SchedulingStrategy::Replica),
            placement_constraints: Vec::new(),
            placement_strategy: Vec::new(),
            health_check_grace_period_seconds: None,
            deployments: vec![deployment],
            events: Vec::new(),
            steady: false,
            enable_ecs_managed_tags: false,
            propagate_tags: None,
            enable_execute_command: false,
            tags: Vec::new(),
            created_at: self.now,
            deleted_at: None,
            request_digest: 0,
            version: 0,
            created_by: None,
            capacity_provider_strategy: Vec::new(),
            deployment_controller: DeploymentControllerType::Ecs,
            task_sets: Vec::new(),
            past_deployments: Vec::new(),
            service_registries: Vec::new(),
        }
    }

    /// A REPLICA service with the EXTERNAL deployment controller at `desired`: no task sets
    /// yet, as CreateService writes one.
    pub fn external(&mut self, name: &str, desired: u32) -> Service {
        let mut s = self.replica(name, 0, desired);
        s.deployments.clear();
        s.deployment_controller = DeploymentControllerType::External;
        s
    }

    /// CreateTaskSet: an ACTIVE task set of `revision` at `scale` percent. Returns its id.
    pub fn create_task_set(&mut self, name: &str, revision: u32, scale: f64) -> String {
        let id = self.deployment_id();
        let set = TaskSet {
            id: id.clone(),
            status: TaskSetStatus::Active,
            family: FAMILY.into(),
            revision,
            external_id: None,
            scale,
            capacity_provider_strategy: Vec::new(),
            stability_status: StabilityStatus::Stabilizing,
            stability_status_at: self.now,
            tags: Vec::new(),
            client_token: None,
            created_at: self.now,
            updated_at: self.now,
        };
        self.update(name, |s| s.task_sets.push(set));
        id
    }

    /// Changes the task set `id` of service `name` as UpdateTaskSet,
    /// UpdateServicePrimaryTaskSet or DeleteTaskSet would.
    pub fn change_task_set(&mut self, name: &str, id: &str, change: impl FnOnce(&mut TaskSet)) {
        let now = self.now;
        self.update(name, |s| {
            let set = s
                .task_sets
                .iter_mut()
                .find(|t| t.id == id)
                .unwrap_or_else(|| panic!("no task set {id}"));
            change(set);
            set.updated_at = now;
        });
    }

    /// The task set `id` of service `name`, if it is still there.
    pub fn task_set(&self, name: &str, id: &str) -> Option<TaskSet> {
        self.service(name)
            .task_sets
            .iter()
            .find(|t| t.id == id)
            .cloned()
    }

    /// A DAEMON service of `revision` (desired count 0 until the reconciler counts).
    pub fn daemon(&mut self, name: &str, revision: u32) -> Service {
        let mut s = self.replica(name, revision, 0);
        s.scheduling_strategy = SchedulingStrategy::Daemon;
        s.deployment_configuration = DeploymentConfig::default_for(SchedulingStrategy::Daemon);
        s
    }

    pub fn create(&mut self, service: Service) -> Arc<Service> {
        self.ok(CreateService {
            service: Arc::new(service),
        })
    }

    /// Writes `change(service)` over the current value, as the API's writes do.
    pub fn update(&mut self, name: &str, change: impl FnOnce(&mut Service)) -> Arc<Service> {
        let current = self.service(name);
        let mut next = (*current).clone();
        change(&mut next);
        next.steady = false;
        self.ok(PutService {
            service: Arc::new(next),
            expected_version: current.version,
        })
    }

    /// UpdateService with a new revision: a new PRIMARY deployment (IN_PROGRESS) in front,
    /// the old PRIMARY becomes ACTIVE.
    pub fn deploy(&mut self, name: &str, revision: u32) -> String {
        let desired = self.service(name).desired_count;
        let deployment = self.deployment(revision, desired);
        let id = deployment.id.clone();
        let now = self.now;
        self.update(name, |s| {
            for d in &mut s.deployments {
                if d.status == DeploymentStatus::Primary {
                    d.status = DeploymentStatus::Active;
                    d.updated_at = now;
                }
            }
            s.deployments.insert(0, deployment);
        });
        id
    }

    /// UpdateService with a new desired count only.
    pub fn scale(&mut self, name: &str, desired: u32) {
        self.update(name, |s| {
            s.desired_count = desired;
            s.deployments[0].desired_count = desired;
        });
    }

    /// DeleteService with force: DRAINING at desired count 0.
    pub fn delete(&mut self, name: &str) {
        let now = self.now;
        self.update(name, |s| {
            s.status = ServiceStatus::Draining;
            s.desired_count = 0;
            for d in &mut s.deployments {
                d.desired_count = 0;
            }
            s.deleted_at = Some(now);
        });
    }

    pub fn service(&self, name: &str) -> Arc<Service> {
        self.state
            .service(CLUSTER, name)
            .unwrap_or_else(|| panic!("no service {name}"))
            .clone()
    }

    /// The service's events, newest first.
    pub fn events(&self, name: &str) -> Vec<String> {
        self.service(name)
            .events
            .iter()
            .map(|e| e.message.clone())
            .collect()
    }

    /// How many of the service's events contain `text`.
    pub fn count_events(&self, name: &str, text: &str) -> usize {
        self.events(name)
            .iter()
            .filter(|e| e.contains(text))
            .count()
    }

    /// Every task of the service, stopped ones included, by id.
    pub fn tasks(&self, name: &str) -> Vec<Arc<Task>> {
        let filter = TaskFilter {
            group: Some(group_of(name)),
            ..TaskFilter::default()
        };
        self.state
            .tasks_after(CLUSTER, &filter, None)
            .cloned()
            .collect()
    }

    /// The service's tasks that are PENDING or RUNNING and meant to keep running.
    pub fn running(&self, name: &str) -> Vec<Arc<Task>> {
        self.tasks(name)
            .into_iter()
            .filter(|t| t.is_live() && t.desired_status == DesiredStatus::Running)
            .collect()
    }

    pub fn task(&self, id: TaskId) -> Arc<Task> {
        self.state.task(id).expect("task").clone()
    }

    /// The definition of `t` has a health check on an essential container.
    fn health_checked(&self, t: &Task) -> bool {
        self.state
            .task_definition(&t.family, t.revision)
            .and_then(|d| d.spec.container_definitions.clone())
            .unwrap_or_default()
            .iter()
            .any(|c| c.essential != Some(false) && c.health_check.is_some())
    }

    /// RUNNING, meant to keep running, and healthy where a health check says so.
    pub fn is_healthy(&self, t: &Task) -> bool {
        t.last_status == TaskStatus::Running
            && t.desired_status == DesiredStatus::Running
            && (!self.health_checked(t) || t.health_status == HealthStatus::Healthy)
    }

    // --- the controller -------------------------------------------------------------------

    /// One controller pass: for every live service, reconcile and commit the decision (stops,
    /// then placements, then the service). Returns the decisions.
    pub fn step(&mut self) -> Vec<Decision> {
        let names: Vec<String> = self
            .state
            .live_services()
            .filter(|s| &*s.cluster == CLUSTER)
            .map(|s| s.name.to_string())
            .collect();
        let mut decisions = Vec::new();
        for name in names {
            let service = self.service(&name);
            let seed = self.seed();
            let decision = reconcile(&self.state, &service, self.now, seed, &self.settings);
            for command in decision.stop_commands() {
                self.ok(command);
            }
            let mut placed = Vec::new();
            if let Some(command) = decision.place_command() {
                let Placed { tasks, .. } = self.ok(command);
                placed.extend(tasks.iter().map(|t| t.id));
            }
            for command in decision.preempt.clone() {
                let Preempted { task, .. } = self.ok(command);
                placed.push(task.id);
            }
            if let Some(command) = decision.service_command(&placed, self.now, seed) {
                self.ok(command);
            }
            self.placed.extend(placed);
            // Idempotence: on the state its decision produced, at the same moment and with any
            // seed, the reconciler has nothing more to decide until something else moves.
            let again = self.decide(&name, seed.rotate_left(17));
            assert!(
                again.is_empty(),
                "{name} decided again on the state its decision produced: stop {:?}, launch {:?}, preempt {:?}, service {:#?}",
                again.stop,
                again.launch.iter().map(|t| t.id).collect::<Vec<_>>(),
                again
                    .preempt
                    .iter()
                    .map(|p| (p.task.id, &p.victims))
                    .collect::<Vec<_>>(),
                again
                    .service
                    .as_ref()
                    .map(|s| (&s.deployments, &s.task_sets, s.events.first()))
            );
            self.log.push((self.now, decision.clone()));
            decisions.push(decision);
        }
        decisions
    }

    /// The service's decision on the current state, without committing it.
    pub fn decide(&self, name: &str, seed: u64) -> Decision {
        reconcile(
            &self.state,
            &self.service(name),
            self.now,
            seed,
            &self.settings,
        )
    }

    // --- the agents -----------------------------------------------------------------------

    /// Scripts how `image` behaves from now on.
    pub fn script(&mut self, image: &str, behaviour: Image) {
        self.images.insert(image.into(), behaviour);
    }

    fn report(&mut self, id: TaskId, status: Option<TaskStatus>, containers: Vec<ContainerChange>) {
        self.ok(TaskStateChange {
            cluster: CLUSTER.into(),
            id,
            status,
            reason: None,
            containers,
            pull_started_at: None,
            pull_stopped_at: None,
            execution_stopped_at: None,
        });
    }

    /// Every connected agent does what it was told: starts PENDING tasks (as their images
    /// are scripted) and stops tasks whose desired status is STOPPED. Returns whether
    /// anything changed.
    pub fn agents(&mut self) -> bool {
        let all = TaskFilter::default();
        let live: Vec<Arc<Task>> = self
            .state
            .tasks_after(CLUSTER, &all, None)
            .filter(|t| t.is_live())
            .cloned()
            .collect();
        let mut moved = false;
        for t in live {
            let connected = t
                .instance
                .and_then(|i| self.state.instance(i))
                .is_some_and(|i| i.agent_connected);
            if !connected {
                continue;
            }
            if t.desired_status == DesiredStatus::Stopped {
                let containers = t
                    .containers
                    .iter()
                    .map(|c| ContainerChange {
                        name: c.name.clone(),
                        status: Some(TaskStatus::Stopped),
                        exit_code: Some(143),
                        ..Default::default()
                    })
                    .collect();
                self.report(t.id, Some(TaskStatus::Stopped), containers);
                moved = true;
            } else if t.last_status < TaskStatus::Running {
                let behaviour = t
                    .containers
                    .iter()
                    .map(|c| self.images.get(&c.image).copied().unwrap_or(Image::Starts))
                    .find(|b| *b != Image::Starts)
                    .unwrap_or(Image::Starts);
                let checked = self.health_checked(&t);
                let containers = t
                    .containers
                    .iter()
                    .map(|c| match behaviour {
                        Image::FailsToStart => ContainerChange {
                            name: c.name.clone(),
                            status: Some(TaskStatus::Stopped),
                            reason: Some(format!(
                                "CannotPullContainerError: pull access denied for {}",
                                c.image
                            )),
                            ..Default::default()
                        },
                        Image::Starts | Image::Unhealthy => ContainerChange {
                            name: c.name.clone(),
                            status: Some(TaskStatus::Running),
                            health_status: checked.then_some(if behaviour == Image::Starts {
                                HealthStatus::Healthy
                            } else {
                                HealthStatus::Unhealthy
                            }),
                            ..Default::default()
                        },
                    })
                    .collect();
                let status = match behaviour {
                    Image::FailsToStart => TaskStatus::Stopped,
                    _ => TaskStatus::Running,
                };
                self.report(t.id, Some(status), containers);
                moved = true;
            }
        }
        moved
    }

    /// The task's essential container exits on its own.
    pub fn exit(&mut self, id: TaskId) {
        let t = self.task(id);
        let containers = t
            .containers
            .iter()
            .map(|c| ContainerChange {
                name: c.name.clone(),
                status: Some(TaskStatus::Stopped),
                exit_code: Some(1),
                ..Default::default()
            })
            .collect();
        self.report(id, Some(TaskStatus::Stopped), containers);
    }

    /// The task's containers report `health`.
    pub fn set_health(&mut self, id: TaskId, health: HealthStatus) {
        let t = self.task(id);
        let containers = t
            .containers
            .iter()
            .map(|c| ContainerChange {
                name: c.name.clone(),
                health_status: Some(health),
                ..Default::default()
            })
            .collect();
        self.report(id, None, containers);
    }

    // --- settling and invariants ----------------------------------------------------------

    /// Holds `name` to `bounds` at every check from now on.
    pub fn bound(&mut self, name: &str, bounds: Bounds) {
        self.bounds.insert(name.into(), bounds);
        self.samples.insert(name.into(), Vec::new());
    }

    /// Rounds of step and agents until a round decides nothing and no agent moves; panics
    /// with the services' events if that takes more than 50 rounds. Returns the rounds.
    pub fn settle(&mut self) -> usize {
        for round in 1..=50 {
            let decisions = self.step();
            self.check(&format!("round {round}, after the controller"));
            let moved = self.agents();
            self.check(&format!("round {round}, after the agents"));
            if decisions.iter().all(Decision::is_empty) && !moved {
                return round;
            }
        }
        let events: Vec<String> = self
            .state
            .live_services()
            .map(|s| {
                let lines: Vec<&str> = s.events.iter().map(|e| e.message.as_str()).collect();
                format!("{}:\n  {}", s.name, lines.join("\n  "))
            })
            .collect();
        panic!(
            "the services did not settle in 50 rounds:\n{}",
            events.join("\n")
        );
    }

    /// The invariants every service keeps, and the bounds tests asked for.
    pub fn check(&mut self, when: &str) {
        let services: Vec<Arc<Service>> =
            self.state.services_after(CLUSTER, None).cloned().collect();
        for s in services {
            let ids: BTreeSet<&str> = s.events.iter().map(|e| e.id.as_str()).collect();
            assert_eq!(
                ids.len(),
                s.events.len(),
                "{when}: service {} has events with the same id",
                s.name
            );
            let tasks = self.tasks(&s.name);
            let live: Vec<&Arc<Task>> = tasks.iter().filter(|t| t.is_live()).collect();
            if s.scheduling_strategy == SchedulingStrategy::Daemon {
                let mut on: BTreeMap<Option<InstanceId>, usize> = BTreeMap::new();
                for t in &live {
                    *on.entry(t.instance).or_default() += 1;
                }
                assert!(
                    on.values().all(|n| *n <= 1),
                    "{when}: daemon {} runs twice on an instance: {on:?}",
                    s.name
                );
            }
            if let Some(b) = self.bounds.get(&*s.name).copied() {
                let sample = Sample {
                    healthy: live.iter().filter(|t| self.is_healthy(t)).count(),
                    live: live.len(),
                };
                assert!(
                    sample.healthy >= b.min_healthy,
                    "{when}: {} healthy tasks of {}, below the minimum {}",
                    sample.healthy,
                    s.name,
                    b.min_healthy
                );
                assert!(
                    sample.live <= b.max_live,
                    "{when}: {} pending or running tasks of {}, above the maximum {}",
                    sample.live,
                    s.name,
                    b.max_live
                );
                self.samples
                    .entry(s.name.to_string())
                    .or_default()
                    .push(sample);
            }
        }
    }
}
