//! berth's placement engine: a pure function of a state snapshot, a request and a seed.
//!
//! ```text
//!  (snapshot, PlacementRequest, seed) ──► feasibility (fits: ACTIVE, agent, CPU, memory, ports)
//!                                     ──► select (random among feasible, seeded)
//!                                     ──► Plan { assignments, rejections per instance }
//! ```
//! No I/O, no clock, no global randomness: the same snapshot and seed give the same plan. The
//! plan is a proposal — the state machine re-checks every placement when it commits it (see
//! `berth_state::fits`, which both sides share), and a scheduler retries what was rejected on a
//! fresher snapshot.

pub mod query;

use std::collections::HashMap;

use berth_model::InstanceId;
use berth_model::command::FailureReason;
use berth_model::entity::{ContainerInstance, Reservation};
use berth_state::{Misfit, State, Usage, fits};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// What to place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacementRequest {
    pub cluster: String,
    /// What each task reserves.
    pub reservation: Reservation,
    /// How many tasks.
    pub count: usize,
}

/// Why one instance was not chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceRejection {
    pub instance: InstanceId,
    pub reason: FailureReason,
    pub detail: String,
}

/// The scheduler's proposal.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// One instance per placed task, in placement order.
    pub assignments: Vec<InstanceId>,
    /// For tasks that could not be placed: why each instance was unsuitable when the plan ran
    /// out of room (empty when every task was placed).
    pub rejections: Vec<InstanceRejection>,
}

fn add(usage: &mut Usage, r: &Reservation) {
    usage.cpu += r.cpu;
    usage.memory += r.memory;
    usage.tcp.extend(r.tcp.iter().copied());
    usage.udp.extend(r.udp.iter().copied());
}

/// Places `request.count` tasks on the instances of `request.cluster`, choosing uniformly at
/// random (seeded) among those where the task fits, and accounting for the tasks placed
/// earlier in the same plan.
pub fn place(state: &State, request: &PlacementRequest, seed: u64) -> Plan {
    let instances: Vec<&ContainerInstance> = state
        .instances_after(&request.cluster, None)
        .map(|i| &**i)
        .collect();
    let mut planned: HashMap<InstanceId, Usage> = HashMap::new();
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut plan = Plan::default();
    for _ in 0..request.count {
        let mut feasible = Vec::new();
        let mut rejections = Vec::new();
        for instance in &instances {
            let usage = planned
                .get(&instance.id)
                .or_else(|| state.usage(instance.id));
            match fits(instance, usage, &request.reservation) {
                Ok(()) => feasible.push(instance.id),
                Err(Misfit { reason, detail }) => rejections.push(InstanceRejection {
                    instance: instance.id,
                    reason,
                    detail,
                }),
            }
        }
        if feasible.is_empty() {
            plan.rejections = rejections;
            break;
        }
        let chosen = feasible[rng.random_range(0..feasible.len())];
        let usage = planned
            .entry(chosen)
            .or_insert_with(|| state.usage(chosen).cloned().unwrap_or_default());
        add(usage, &request.reservation);
        plan.assignments.push(chosen);
    }
    plan
}
