//! The Mesos v1 scheduler HTTP API, as data: berth's contract with Mesos frameworks.
//!
//! berth serves the scheduler API so that unmodified Mesos frameworks (pymesos-based ones in
//! particular) can schedule on it. This crate is that contract and the master's decisions
//! over it, in the way `berth-api` is the contract with ECS clients: no HTTP server, no async
//! runtime, no clock, no state of its own. The server's Mesos adapter is the thin shell that
//! reads berth's state, asks these functions what to do, and does it.
//!
//! - [`v1`] and [`scheduler`]: the messages of `mesos.proto` and `scheduler/scheduler.proto`
//!   in the JSON a master speaks (proto field names, enums by name, 64-bit integers as
//!   numbers, bytes as base64, unset fields left out, unknown fields ignored). Calls are
//!   parsed as sent; events can only be built well-formed.
//! - [`validate`]: what a master checks before acting on a call, a set of offers, or a
//!   launch, with errors that say what to fix.
//! - [`resources`]: resource lists summed into cpus/mem/disk/gpus/ports, fit checks with the
//!   shortfall spelled out, and conversion to berth's CPU units and MiB.
//! - [`recordio`]: the framing of the event stream, both ways.
//! - [`protocol`]: paths, headers and the version string.
//! - [`allocator`]: which framework each free agent is offered to (DRF, refuse filters,
//!   suppression, offer holds and timeouts), a pure function of a snapshot, the time and a
//!   seed.
//! - [`updates`]: which status UPDATE a framework is sent for a task, and when again.
//! - [`pass`]: what the leader loop's next pass looks at (what the change log says changed),
//!   and when it may run (a gap apart under a burst, at once after a quiet gap).
//!
//! The protocol facts, and what pymesos expects beyond the protos, are collected in
//! `shared/notes/mesos-http-api.md`.

pub mod allocator;
pub mod pass;
pub mod protocol;
pub mod recordio;
pub mod resources;
pub mod scheduler;
pub mod updates;
pub mod v1;
pub mod validate;
mod wire;

pub use resources::{Quantity, RangeSet, Resources};
pub use scheduler::{Call, CallType, Event, EventType};
pub use wire::{Base64Bytes, ProtoEnum, UnknownEnumValue};
