//! berth's host agent.
//!
//! ```text
//!  berth server ◄── RegisterContainerInstance, Submit*StateChange (ECS JSON) ──┐
//!       │                                                                     │
//!       └── GET /v1/agent/poll (long-poll: assignments; doubles as heartbeat) ─► reconcile loop
//!                                                                             │
//!                                         one supervisor per task ◄───────────┘
//!                                                   │
//!                                   Runtime: Docker │ host process │ hollow
//! ```
//! The agent keeps no state of its own that matters: what should run comes from the server,
//! what does run is read back from the runtime (containers and processes carry labels naming
//! their task and container), so a restarted agent re-attaches instead of starting over.
//! Given several servers of one cluster, it talks to one at a time and moves on to the next
//! when that one fails ([`endpoints`]). It also answers DNS for service discovery
//! ([`dns`]), from a feed the server pushes by long-poll.

pub mod agent;
pub mod client;
pub mod dns;
pub mod endpoints;
mod listener;
pub mod metrics;
pub mod runtime;
pub mod spec;
mod task;

pub use agent::{Agent, AgentConfig, AgentError, Identity, IdentityError, IdentityStore};
pub use task::DockerUnavailable;
