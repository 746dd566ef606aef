//! What one task needs from a container instance: CPU units, memory and host ports.
//!
//! ECS rules: task-level `cpu`/`memory` win when given; otherwise CPU is the sum of container
//! `cpu` and memory the sum over containers of `memoryReservation`, else `memory` (the hard
//! limit). RunTask/StartTask overrides replace the values they name. A port mapping binds a
//! host port in `bridge` mode (its `hostPort`, 0 or absent meaning a dynamic port) and in
//! `host` mode (the container port itself); `awsvpc` and `none` bind no host port.

use berth_api::types as api;

use crate::entity::{NetworkMode, PortClaim, Protocol, Requirements};
use crate::error::Error;

/// Parses a task-level CPU value: CPU units (`"1024"`) or vCPUs (`"1 vCPU"`, `"0.25 vcpu"`).
pub fn parse_cpu(s: &str) -> Option<i64> {
    let t = s.trim();
    let lower = t.to_ascii_lowercase();
    if let Some(v) = lower.strip_suffix("vcpu") {
        let v: f64 = v.trim().parse().ok()?;
        return (v.is_finite() && v >= 0.0).then(|| (v * 1024.0).round() as i64);
    }
    t.parse::<i64>().ok().filter(|v| *v >= 0)
}

/// Parses a task-level memory value: MiB (`"512"`) or GB (`"1 GB"`, `"0.5gb"`, meaning GiB as
/// ECS does).
pub fn parse_memory(s: &str) -> Option<i64> {
    let t = s.trim();
    let lower = t.to_ascii_lowercase();
    if let Some(v) = lower.strip_suffix("gb") {
        let v: f64 = v.trim().parse().ok()?;
        return (v.is_finite() && v >= 0.0).then(|| (v * 1024.0).round() as i64);
    }
    t.parse::<i64>().ok().filter(|v| *v >= 0)
}

/// The requirements of one task of `spec` with `overrides` applied. `spec` is a registered
/// (validated) task definition, so only the overrides can be malformed here.
pub fn requirements(
    spec: &api::TaskDefinition,
    overrides: &api::TaskOverride,
) -> Result<Requirements, Error> {
    let network_mode = spec
        .network_mode
        .as_deref()
        .map(|m| {
            NetworkMode::parse(m)
                .ok_or_else(|| Error::invalid(format!("Unknown networkMode '{m}'")))
        })
        .transpose()?;
    let containers = spec.container_definitions.as_deref().unwrap_or_default();
    let container_overrides = overrides.container_overrides.as_deref().unwrap_or_default();
    for o in container_overrides {
        let name = o.name.as_deref().unwrap_or_default();
        if !containers.iter().any(|c| c.name.as_deref() == Some(name)) {
            return Err(Error::invalid(format!(
                "Container override names '{name}', which is not a container of the task definition"
            )));
        }
    }
    let override_of = |name: &Option<String>| {
        container_overrides
            .iter()
            .find(|o| o.name.is_some() && o.name == *name)
    };

    let mut cpu = 0i64;
    let mut memory = 0i64;
    let mut ports = Vec::new();
    for c in containers {
        let o = override_of(&c.name);
        let c_cpu = o.and_then(|o| o.cpu).or(c.cpu).unwrap_or(0);
        let c_mem = o.and_then(|o| o.memory).or(c.memory);
        let c_res = o
            .and_then(|o| o.memory_reservation)
            .or(c.memory_reservation);
        if c_cpu < 0 || c_mem.is_some_and(|m| m < 0) || c_res.is_some_and(|m| m < 0) {
            return Err(Error::invalid(
                "Container cpu, memory and memoryReservation overrides must not be negative",
            ));
        }
        cpu += i64::from(c_cpu);
        memory += i64::from(c_res.or(c_mem).unwrap_or(0));
        for pm in c.port_mappings.as_deref().unwrap_or_default() {
            let Some(container_port) = pm.container_port else {
                continue; // a containerPortRange: dynamic host ports, no static claim
            };
            let protocol = match pm.protocol.as_deref() {
                Some("udp") => Protocol::Udp,
                _ => Protocol::Tcp,
            };
            let host_port = match network_mode.unwrap_or(NetworkMode::Bridge) {
                NetworkMode::Bridge => pm.host_port.unwrap_or(0),
                NetworkMode::Host => container_port,
                NetworkMode::Awsvpc | NetworkMode::None => continue,
            };
            ports.push(PortClaim {
                container: c.name.clone().unwrap_or_default(),
                container_port: u16::try_from(container_port)
                    .map_err(|_| Error::invalid("containerPort must be 0 to 65535"))?,
                host_port: u16::try_from(host_port)
                    .map_err(|_| Error::invalid("hostPort must be 0 to 65535"))?,
                protocol,
            });
        }
    }

    let task_cpu = overrides.cpu.as_deref().or(spec.cpu.as_deref());
    if let Some(s) = task_cpu {
        cpu = parse_cpu(s).ok_or_else(|| Error::invalid(format!("Invalid task cpu '{s}'")))?;
    }
    let task_memory = overrides.memory.as_deref().or(spec.memory.as_deref());
    if let Some(s) = task_memory {
        memory =
            parse_memory(s).ok_or_else(|| Error::invalid(format!("Invalid task memory '{s}'")))?;
    }
    Ok(Requirements {
        cpu,
        memory,
        network_mode,
        ports,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(
        name: &str,
        cpu: i32,
        mem: Option<i32>,
        res: Option<i32>,
    ) -> api::ContainerDefinition {
        api::ContainerDefinition {
            name: Some(name.into()),
            image: Some("busybox".into()),
            cpu: Some(cpu),
            memory: mem,
            memory_reservation: res,
            ..Default::default()
        }
    }

    #[test]
    fn parses_cpu_and_memory_forms() {
        assert_eq!(parse_cpu("1024"), Some(1024));
        assert_eq!(parse_cpu("1 vCPU"), Some(1024));
        assert_eq!(parse_cpu("0.25 vcpu"), Some(256));
        assert_eq!(parse_cpu("-1"), None);
        assert_eq!(parse_cpu("lots"), None);
        assert_eq!(parse_memory("512"), Some(512));
        assert_eq!(parse_memory("2 GB"), Some(2048));
        assert_eq!(parse_memory("0.5gb"), Some(512));
        assert_eq!(parse_memory("1 TB"), None);
    }

    #[test]
    fn sums_containers_preferring_reservation() {
        let spec = api::TaskDefinition {
            container_definitions: Some(vec![
                container("a", 256, Some(512), Some(128)),
                container("b", 128, Some(256), None),
            ]),
            ..Default::default()
        };
        let r = requirements(&spec, &Default::default()).unwrap();
        assert_eq!((r.cpu, r.memory), (384, 384));
    }

    #[test]
    fn task_level_and_overrides_win() {
        let spec = api::TaskDefinition {
            cpu: Some("1 vCPU".into()),
            memory: Some("2GB".into()),
            container_definitions: Some(vec![container("a", 256, Some(512), None)]),
            ..Default::default()
        };
        let r = requirements(&spec, &Default::default()).unwrap();
        assert_eq!((r.cpu, r.memory), (1024, 2048));
        let o = api::TaskOverride {
            memory: Some("1024".into()),
            ..Default::default()
        };
        assert_eq!(requirements(&spec, &o).unwrap().memory, 1024);

        let spec = api::TaskDefinition {
            container_definitions: Some(vec![container("a", 256, Some(512), None)]),
            ..Default::default()
        };
        let o = api::TaskOverride {
            container_overrides: Some(vec![api::ContainerOverride {
                name: Some("a".into()),
                cpu: Some(10),
                memory_reservation: Some(64),
                ..Default::default()
            }]),
            ..Default::default()
        };
        let r = requirements(&spec, &o).unwrap();
        assert_eq!((r.cpu, r.memory), (10, 64));
        let bad = api::TaskOverride {
            container_overrides: Some(vec![api::ContainerOverride {
                name: Some("nope".into()),
                ..Default::default()
            }]),
            ..Default::default()
        };
        assert!(requirements(&spec, &bad).is_err());
    }

    #[test]
    fn ports_by_network_mode() {
        let mut c = container("web", 0, Some(64), None);
        c.port_mappings = Some(vec![
            api::PortMapping {
                container_port: Some(80),
                host_port: Some(8080),
                ..Default::default()
            },
            api::PortMapping {
                container_port: Some(53),
                protocol: Some("udp".into()),
                ..Default::default()
            },
        ]);
        let mut spec = api::TaskDefinition {
            container_definitions: Some(vec![c]),
            ..Default::default()
        };
        let r = requirements(&spec, &Default::default()).unwrap();
        assert_eq!(
            r.static_ports(Protocol::Tcp).collect::<Vec<_>>(),
            vec![8080]
        );
        assert_eq!(r.static_ports(Protocol::Udp).count(), 0, "dynamic udp port");
        spec.network_mode = Some("host".into());
        let r = requirements(&spec, &Default::default()).unwrap();
        assert_eq!(r.static_ports(Protocol::Tcp).collect::<Vec<_>>(), vec![80]);
        assert_eq!(r.static_ports(Protocol::Udp).collect::<Vec<_>>(), vec![53]);
        spec.network_mode = Some("awsvpc".into());
        assert!(
            requirements(&spec, &Default::default())
                .unwrap()
                .ports
                .is_empty()
        );
    }
}
