//! Does a reservation fit on an instance? The one check shared by the scheduler (planning on a
//! snapshot) and the state machine (re-checking the plan at commit), so the two can never
//! disagree about what "fits" means.

use berth_model::command::FailureReason;
use berth_model::entity::{ContainerInstance, InstanceStatus, Protocol, Reservation};

use crate::Usage;

/// Why a reservation does not fit, with a detail a person can read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Misfit {
    pub reason: FailureReason,
    pub detail: String,
}

/// Checks, in ECS's order, that `instance` can take `reservation` given what its live tasks
/// already hold (`usage`): ACTIVE, agent connected, CPU, memory, TCP ports, UDP ports (static
/// and dynamic host ports alike must be neither reserved by the host, nor held by a task, nor
/// named twice by the reservation itself).
pub fn fits(
    instance: &ContainerInstance,
    usage: Option<&Usage>,
    reservation: &Reservation,
) -> Result<(), Misfit> {
    let misfit = |reason, detail: String| Err(Misfit { reason, detail });
    if instance.status != InstanceStatus::Active {
        return misfit(
            FailureReason::Inactive,
            format!("container instance {} is {}", instance.id, instance.status),
        );
    }
    if !instance.agent_connected {
        return misfit(
            FailureReason::Agent,
            format!(
                "the agent on container instance {} is not connected",
                instance.id
            ),
        );
    }
    let empty = Usage::default();
    let usage = usage.unwrap_or(&empty);
    let free_cpu = instance.resources.cpu - usage.cpu;
    if reservation.cpu > free_cpu {
        return misfit(
            FailureReason::ResourceCpu,
            format!(
                "container instance {} has {free_cpu} CPU units free; the task needs {}",
                instance.id, reservation.cpu
            ),
        );
    }
    let free_memory = instance.resources.memory - usage.memory;
    if reservation.memory > free_memory {
        return misfit(
            FailureReason::ResourceMemory,
            format!(
                "container instance {} has {free_memory} MiB of memory free; the task needs {}",
                instance.id, reservation.memory
            ),
        );
    }
    for (protocol, reserved, reason) in [
        (
            Protocol::Tcp,
            &instance.resources.ports,
            FailureReason::ResourcePorts,
        ),
        (
            Protocol::Udp,
            &instance.resources.udp_ports,
            FailureReason::ResourcePortsUdp,
        ),
    ] {
        let mut claimed = std::collections::BTreeSet::new();
        for p in reservation.ports(protocol) {
            let why = if reserved.contains(&p) {
                "reserved by the host"
            } else if usage.holds(protocol, p) {
                "in use by another task"
            } else if !claimed.insert(p) {
                // Two mappings of one task cannot bind one host port (a dynamic port chosen
                // equal to a static one, or chosen twice).
                "claimed twice by this task"
            } else {
                continue;
            };
            return misfit(
                reason,
                format!(
                    "{} port {p} on container instance {} is {why}",
                    protocol.as_str().to_uppercase(),
                    instance.id
                ),
            );
        }
    }
    Ok(())
}
