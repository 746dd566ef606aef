//! Commands: every write to berth's state, as a typed value in the Raft log.
//!
//! ```text
//!  API edge ──validate──► PlaceTasks ──into──► Command ──Raft (batched, durable)──►
//!      State::apply(index) ──► Outcome (the Raft response) ──try_into──► Placed
//! ```
//! A command is decided before it is logged: ids, timestamps and placements are chosen by the
//! proposer and travel inside it, so applying the log is deterministic on every node and after
//! every restart. What can only be checked against the newest state (does this placement still
//! fit? does the cluster still exist?) is checked at apply time, and the command's output or
//! [`Error`](crate::Error) is the answer the caller gets.
//!
//! Each command is its own struct (one module per resource) naming what applying it produces,
//! its [`TypedCommand::Output`]. [`Command`] is the log's sum of them and [`Outcome`] the
//! Raft response's; writers see neither: they write a `PlaceTasks` and get back a
//! [`Placed`]. A newtype variant is encoded as the struct variant it replaced
//! (`{"PlaceTasks": {...}}`), so logs and snapshots written before commands were typed still
//! read; `tests/fixtures/commands-v1.jsonl` holds such a log and `tests/wire.rs` checks it.
//!
//! Adding a command: its struct in the module of its resource, its line in the `commands!`
//! list below (variant and output), and its `Apply` impl in `berth-state`, whose
//! `State::apply` then asks for its dispatch line. Names and fields are the log format: never
//! rename them; add a field as `#[serde(default, skip_serializing_if = "Option::is_none")]`
//! (or an equivalent default) so that entries already logged keep their bytes.

mod account;
mod capacity;
mod clusters;
mod credentials;
mod discovery;
mod expire;
mod instances;
mod mesos;
pub mod preempt;
mod queue;
mod schedules;
mod services;
mod tags;
mod task_definitions;
mod tasks;

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::account::AccountSetting;
use crate::arn::ResourceArn;
use crate::capacity::CapacityProvider;
use crate::credential::Credential;
use crate::discovery::{DiscoveryService, Namespace};
use crate::entity::*;
use crate::mesos::Framework;
use crate::schedule::Schedule;
use crate::service::Service;
use crate::time::Millis;

pub use account::*;
pub use capacity::*;
pub use clusters::*;
pub use credentials::*;
pub use discovery::*;
pub use expire::*;
pub use instances::*;
pub use mesos::*;
pub use preempt::{PreemptAndPlace, Preempted};
pub use queue::*;
pub use schedules::*;
pub use services::*;
pub use tags::*;
pub use task_definitions::*;
pub use tasks::*;

/// A command, the moment its proposer decided it, and who caused it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stamped {
    pub at: Millis,
    pub command: Command,
    /// The actor whose request this command carries out (`user/alice`,
    /// `container-instance/<cluster>/<id>`, `join-token/<id>`, `system/<what>`); absent for
    /// berth's own background work and for entries logged before it was recorded. History
    /// shows it: "who changed what".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
}

/// A command's type names what applying it produces. `Node::write` and the test harnesses
/// take any `TypedCommand` and hand back its `Output`, so no caller matches on [`Outcome`].
pub trait TypedCommand: Into<Command> {
    /// The command's name in the log (its [`Command`] variant), for logs and messages.
    const NAME: &'static str;
    /// What the command answers with when applied; travels as one [`Outcome`] variant.
    type Output: Into<Outcome> + TryFrom<Outcome, Error = UnexpectedOutcome>;
}

/// Declares [`Command`] from one line per command, `Struct => Output`: the newtype variant,
/// `From<Struct> for Command` and the [`TypedCommand`] impl.
macro_rules! commands {
    ($(#[$meta:meta])* pub enum Command { $($name:ident => $output:ty,)+ }) => {
        $(#[$meta])*
        pub enum Command {
            $($name($name),)+
        }

        $(
            impl From<$name> for Command {
                fn from(command: $name) -> Self {
                    Command::$name(command)
                }
            }

            impl TypedCommand for $name {
                const NAME: &'static str = stringify!($name);
                type Output = $output;
            }
        )+
    };
}

commands! {
    /// Every kind of write, as the Raft log holds it: each command struct and what applying it
    /// answers with.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub enum Command {
        CreateCluster => Arc<Cluster>,
        DeleteCluster => Arc<Cluster>,
        UpdateCluster => Arc<Cluster>,
        RegisterTaskDefinition => Arc<TaskDefinition>,
        DeregisterTaskDefinition => Arc<TaskDefinition>,
        DeleteTaskDefinitions => Partial<TaskDefinition>,
        RegisterContainerInstance => Arc<ContainerInstance>,
        DeregisterContainerInstance => Arc<ContainerInstance>,
        UpdateContainerInstancesState => Partial<ContainerInstance>,
        PutAttributes => Vec<AttributeChange>,
        DeleteAttributes => Vec<AttributeChange>,
        PlaceTasks => Placed,
        StopTask => Arc<Task>,
        TaskStateChange => Arc<Task>,
        AgentConnectivity => Partial<ContainerInstance>,
        AgentLost => Arc<ContainerInstance>,
        CreateService => Arc<Service>,
        PutService => Arc<Service>,
        SubscribeFramework => Arc<Framework>,
        FrameworkDisconnected => Arc<Framework>,
        RemoveFramework => (),
        MakeOffers => OffersMade,
        RemoveOffers => (),
        AcceptOffers => Placed,
        TagResource => (),
        UntagResource => (),
        Expire => (),
        Bootstrap => Arc<Credential>,
        CreateCredential => Arc<Credential>,
        DeleteCredential => Arc<Credential>,
        RevokeSession => (),
        PutAccountSetting => Arc<AccountSetting>,
        DeleteAccountSetting => Option<Arc<AccountSetting>>,
        UpdateTaskProtection => Partial<Task>,
        CreateCapacityProvider => Arc<CapacityProvider>,
        UpdateCapacityProvider => Arc<CapacityProvider>,
        DeleteCapacityProvider => Arc<CapacityProvider>,
        PutClusterCapacityProviders => Arc<Cluster>,
        PlaceQueuedTasks => Placed,
        ExpireQueuedTasks => Partial<Task>,
        PreemptAndPlace => Preempted,
        CreateSchedule => Arc<Schedule>,
        UpdateSchedule => Arc<Schedule>,
        SetSchedulePolicy => Arc<Schedule>,
        DeleteSchedule => Arc<Schedule>,
        TakeDueTimes => Arc<Schedule>,
        EndScheduleAttempt => Arc<Schedule>,
        CreateNamespace => Arc<Namespace>,
        DeleteNamespace => Arc<Namespace>,
        CreateDiscoveryService => Arc<DiscoveryService>,
        DeleteDiscoveryService => Arc<DiscoveryService>,
    }
}

wire_enum!(
    /// Why a task could not be placed, or why an item of a batch call failed (ECS
    /// `failures[].reason`).
    FailureReason {
        Missing = "MISSING",
        Inactive = "INACTIVE",
        ResourceCpu = "RESOURCE:CPU",
        ResourceMemory = "RESOURCE:MEMORY",
        ResourcePorts = "RESOURCE:PORTS",
        ResourcePortsUdp = "RESOURCE:PORTS_UDP",
        ResourceGpu = "RESOURCE:GPU",
        Agent = "AGENT",
        Attribute = "ATTRIBUTE",
    }
);

/// One item of a batch call that failed, as ECS `failures[]` reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    pub resource: Option<ResourceArn>,
    /// A [`FailureReason`] spelling where one applies, else a sentence.
    pub reason: String,
    pub detail: Option<String>,
}

/// What a command on several items did: the new values of those it changed (or found as
/// asked), and a failure for each of the others, as ECS batch calls answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Partial<T> {
    pub done: Vec<Arc<T>>,
    pub failures: Vec<Failure>,
}

/// Declares [`Outcome`], one variant per output type and `Done` for `()`, with the
/// conversions both ways; a conversion to the wrong type is an [`UnexpectedOutcome`].
macro_rules! outcomes {
    ($(#[$meta:meta])* pub enum Outcome { $($variant:ident($output:ty),)+ }) => {
        $(#[$meta])*
        pub enum Outcome {
            $($variant($output),)+
            /// The output of commands that answer with nothing (`()`).
            Done,
        }

        impl Outcome {
            /// The variant's name.
            fn kind(&self) -> &'static str {
                match self {
                    $(Outcome::$variant(_) => stringify!($variant),)+
                    Outcome::Done => "Done",
                }
            }
        }

        $(
            impl From<$output> for Outcome {
                fn from(output: $output) -> Self {
                    Outcome::$variant(output)
                }
            }

            impl TryFrom<Outcome> for $output {
                type Error = UnexpectedOutcome;
                fn try_from(outcome: Outcome) -> Result<Self, UnexpectedOutcome> {
                    match outcome {
                        Outcome::$variant(output) => Ok(output),
                        other => Err(UnexpectedOutcome::new(stringify!($variant), &other)),
                    }
                }
            }
        )+
    };
}

outcomes! {
    /// What an applied command produced, as the Raft response carries it: one variant per
    /// [`TypedCommand::Output`] type, and `Done` for `()`. Each is encoded as before commands
    /// were typed (`{"Placed": {"tasks": [...], "rejected": [...]}}`), so a follower and a
    /// leader of either version understand each other's forwarded writes.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub enum Outcome {
        Cluster(Arc<Cluster>),
        TaskDefinition(Arc<TaskDefinition>),
        TaskDefinitions(Partial<TaskDefinition>),
        Instance(Arc<ContainerInstance>),
        Instances(Partial<ContainerInstance>),
        Attributes(Vec<AttributeChange>),
        Placed(Placed),
        Task(Arc<Task>),
        Service(Arc<Service>),
        Framework(Arc<Framework>),
        Offers(OffersMade),
        Credential(Arc<Credential>),
        AccountSetting(Arc<AccountSetting>),
        AccountSettingRemoved(Option<Arc<AccountSetting>>),
        Tasks(Partial<Task>),
        CapacityProvider(Arc<CapacityProvider>),
        Preempted(Preempted),
        Schedule(Arc<Schedule>),
        Namespace(Arc<Namespace>),
        DiscoveryService(Arc<DiscoveryService>),
    }
}

impl From<()> for Outcome {
    fn from((): ()) -> Self {
        Outcome::Done
    }
}

impl TryFrom<Outcome> for () {
    type Error = UnexpectedOutcome;
    fn try_from(outcome: Outcome) -> Result<Self, UnexpectedOutcome> {
        match outcome {
            Outcome::Done => Ok(()),
            other => Err(UnexpectedOutcome::new("Done", &other)),
        }
    }
}

/// An [`Outcome`] of another kind than the command's [`TypedCommand::Output`]. Never a
/// refusal: a bug in the state machine, or a leader running a version that answers the
/// command differently.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[error(
    "internal error: the command was applied, but answered with {found} where {expected} was due"
)]
pub struct UnexpectedOutcome {
    /// The [`Outcome`] variant the command's output type travels as.
    pub expected: String,
    /// The variant that came back.
    pub found: String,
}

impl UnexpectedOutcome {
    fn new(expected: &str, found: &Outcome) -> Self {
        Self {
            expected: expected.to_owned(),
            found: found.kind().to_owned(),
        }
    }
}

/// The result of applying one command.
pub type CommandResult = Result<Outcome, crate::Error>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outcome_converts_to_its_own_output_only() {
        let placed = Placed {
            tasks: Vec::new(),
            rejected: Vec::new(),
        };
        let outcome = Outcome::from(placed.clone());
        assert_eq!(Placed::try_from(outcome.clone()), Ok(placed));
        assert_eq!(
            <()>::try_from(outcome).unwrap_err(),
            UnexpectedOutcome {
                expected: "Done".into(),
                found: "Placed".into(),
            }
        );
        let wrong = Arc::<Task>::try_from(Outcome::Done).unwrap_err();
        assert_eq!(
            wrong.to_string(),
            "internal error: the command was applied, but answered with Done where Task was due"
        );
    }
}
