//! The semantics of every command, one module per area. Every command goes through
//! [`common::World`], which checks the state's invariants after it; refusals go through
//! `World::refused`, which also checks that they changed nothing.

#[path = "../common/mod.rs"]
mod common;

mod account;
mod attributes;
mod capacity;
mod clusters;
mod connectivity;
mod discovery;
mod distinct;
mod dynamic_ports;
mod expire;
mod indexes;
mod instances;
mod mesos;
mod placement;
mod queue;
mod services;
mod sessions;
mod snapshots;
mod tags;
mod task_definitions;
mod tasks;
mod tokens;
