//! Does a reservation fit on an instance? The one check shared by the scheduler (planning on a
//! snapshot) and the state machine (re-checking the plan at commit), so the two can never
//! disagree about what "fits" means.

use berth_model::command::FailureReason;
use berth_model::entity::{ContainerInstance, InstanceStatus, Reservation};

use crate::Usage;

/// Why a reservation does not fit, with a detail a person can read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Misfit {
    pub reason: FailureReason,
    pub detail: String,
}

/// Checks, in ECS's order, that `instance` can take `reservation` given what its live tasks
/// already hold (`usage`): ACTIVE, agent connected, CPU, memory, TCP ports, UDP ports.
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
    let taken = |port: &u16, reserved: &[u16], used: &std::collections::BTreeSet<u16>| {
        reserved.contains(port) || used.contains(port)
    };
    if let Some(p) = reservation
        .tcp
        .iter()
        .find(|p| taken(p, &instance.resources.ports, &usage.tcp))
    {
        return misfit(
            FailureReason::ResourcePorts,
            format!(
                "TCP port {p} on container instance {} is reserved or in use",
                instance.id
            ),
        );
    }
    if let Some(p) = reservation
        .udp
        .iter()
        .find(|p| taken(p, &instance.resources.udp_ports, &usage.udp))
    {
        return misfit(
            FailureReason::ResourcePortsUdp,
            format!(
                "UDP port {p} on container instance {} is reserved or in use",
                instance.id
            ),
        );
    }
    Ok(())
}
