//! berth's domain model: what the cluster is made of and every way it can change.
//!
//! - [`account`]: account settings, per principal and the account default;
//! - [`capacity`]: capacity providers (named pools of instances) and their strategies;
//! - [`entity`]: clusters, task definitions, container instances, tasks (immutable values);
//! - [`command`]: the typed writes that go through Raft, and what applying them produces;
//! - [`id`], [`arn`], [`time`]: identity and time as the ECS API shows them;
//! - [`requirements`]: what a task needs from an instance;
//! - [`service`]: services, their deployments and events;
//! - [`instance_type`]: the CPU and memory of common EC2 instance types;
//! - [`mesos`]: Mesos frameworks and the offers that hold resources for them;
//! - [`queue`]: queued RunTask: who opts in to wait for capacity, for how long, and why a
//!   wait ended;
//! - [`priority`]: task priorities, from the `berth:priority` tag or the kind of launch;
//! - [`schedule`]: schedules that run tasks on a timetable, and the record of their runs;
//! - [`discovery`]: service discovery namespaces and the names ECS services register in;
//! - [`credential`]: who may call berth (credentials, agents' own keys, join tokens);
//! - [`privileges`]: which host privileges a task definition asks for;
//! - [`validate`]: ECS requests checked and turned into domain values;
//! - [`error`]: every refusal, mapped to its ECS exception.
//!
//! No I/O and no async here: the state machine, the scheduler and the API edge all build on it.

pub mod account;
pub mod arn;
pub mod capacity;
pub mod command;
pub mod credential;
pub mod discovery;
pub mod entity;
pub mod error;
pub mod id;
pub mod instance_type;
pub mod mesos;
pub mod priority;
pub mod privileges;
pub mod queue;
pub mod requirements;
pub mod schedule;
pub mod service;
pub mod time;
pub mod validate;

pub use command::{Command, CommandResult, Outcome, Stamped, TypedCommand};
pub use error::Error;
pub use id::{InstanceId, OfferId, TaskId};
pub use time::Millis;
