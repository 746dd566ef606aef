//! Which host privileges a task definition asks for.
//!
//! A container that is privileged, mounts a host path, joins a host namespace, adds Linux
//! capabilities, maps host devices or runs as a plain host process can take over its host.
//! Registering such a task definition, and running one, needs the matching permission
//! ([`Privilege::action`]), which only the `admin` role holds by default; everything else a
//! task definition can say runs confined to its container.

use std::collections::BTreeSet;

use berth_api::types as api;
use berth_auth::Privilege;

/// The docker label that picks a task's runtime on the agent (`docker`, `process`, `hollow`).
pub const RUNTIME_LABEL: &str = "berth.runtime";

/// Where a task that names no runtime may go for a caller that may not run host processes:
/// not to an agent whose default runtime is the process runtime (one without Docker), where
/// it would run as a host process all the same. Agents register `berth.default-runtime`, and
/// only an agent can set `berth.` attributes.
pub const NOT_ON_HOST_PROCESS_AGENTS: &str = "not(attribute:berth.default-runtime == process)";

/// Whether some container of `spec` names its runtime with [`RUNTIME_LABEL`].
pub fn names_runtime(spec: &api::TaskDefinition) -> bool {
    spec.container_definitions.iter().flatten().any(|c| {
        c.docker_labels
            .as_ref()
            .is_some_and(|l| l.contains_key(RUNTIME_LABEL))
    })
}

/// What `spec` asks of its host beyond an ordinary container.
pub fn privileges(spec: &api::TaskDefinition) -> BTreeSet<Privilege> {
    let mut needs = BTreeSet::new();
    let host = |mode: &Option<String>| mode.as_deref() == Some("host");
    if host(&spec.network_mode) || host(&spec.pid_mode) || host(&spec.ipc_mode) {
        needs.insert(Privilege::HostNamespaces);
    }
    for volume in spec.volumes.iter().flatten() {
        if volume
            .host
            .as_ref()
            .is_some_and(|h| h.source_path.as_deref().is_some_and(|p| !p.is_empty()))
        {
            needs.insert(Privilege::HostPath);
        }
        // The local driver with a device (or a bind) mounts whatever host path it names.
        if let Some(docker) = &volume.docker_volume_configuration {
            let opts = docker.driver_opts.iter().flatten();
            let binds = opts.into_iter().any(|(k, v)| {
                k == "device" || (k == "o" && v.split(',').any(|o| o.trim() == "bind"))
            });
            if binds {
                needs.insert(Privilege::HostPath);
            }
        }
    }
    for c in spec.container_definitions.iter().flatten() {
        if c.privileged == Some(true) {
            needs.insert(Privilege::PrivilegedContainer);
        }
        let unconfined = c.docker_security_options.iter().flatten().any(|o| {
            let o = o.to_ascii_lowercase();
            o.contains("unconfined") || o == "label:disable" || o == "label=disable"
        });
        if unconfined {
            needs.insert(Privilege::PrivilegedContainer);
        }
        if let Some(lp) = &c.linux_parameters {
            if lp
                .capabilities
                .as_ref()
                .and_then(|caps| caps.add.as_ref())
                .is_some_and(|add| !add.is_empty())
            {
                needs.insert(Privilege::AddCapabilities);
            }
            if lp.devices.as_ref().is_some_and(|d| !d.is_empty()) {
                needs.insert(Privilege::HostDevices);
            }
        }
        if c.docker_labels
            .as_ref()
            .and_then(|l| l.get(RUNTIME_LABEL))
            .is_some_and(|r| r == "process")
        {
            needs.insert(Privilege::HostProcess);
        }
    }
    // A host process is in the host's namespaces whatever the network mode says: asking for
    // it is the one permission that matters (a Mesos command task is exactly this).
    if needs.contains(&Privilege::HostProcess) {
        needs.remove(&Privilege::HostNamespaces);
    }
    needs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: serde_json::Value) -> api::TaskDefinition {
        serde_json::from_value(json).expect("task definition")
    }

    #[test]
    fn an_ordinary_task_needs_nothing() {
        let t = spec(serde_json::json!({
            "family": "web",
            "networkMode": "bridge",
            "containerDefinitions": [{"name": "web", "image": "nginx", "memory": 64,
                "linuxParameters": {"capabilities": {"drop": ["ALL"]}},
                "dockerLabels": {"berth.runtime": "docker"}}],
            "volumes": [{"name": "scratch"}, {"name": "v", "dockerVolumeConfiguration": {"driver": "local", "scope": "task"}}]
        }));
        assert!(privileges(&t).is_empty());
    }

    #[test]
    fn the_issue_s_root_on_every_host_definition_needs_everything() {
        let t = spec(serde_json::json!({
            "family": "root",
            "networkMode": "host", "pidMode": "host", "ipcMode": "host",
            "containerDefinitions": [{"name": "x", "image": "busybox", "memory": 64,
                "privileged": true,
                "linuxParameters": {"capabilities": {"add": ["ALL"]},
                                    "devices": [{"hostPath": "/dev/sda"}]}}],
            "volumes": [{"name": "root", "host": {"sourcePath": "/"}},
                        {"name": "sock", "host": {"sourcePath": "/var/run/docker.sock"}}]
        }));
        let all_but_process: BTreeSet<_> = Privilege::ALL
            .into_iter()
            .filter(|p| *p != Privilege::HostProcess)
            .collect();
        assert_eq!(privileges(&t), all_but_process);
    }

    #[test]
    fn a_host_process_needs_that_permission_alone() {
        let t = spec(serde_json::json!({
            "family": "cmd", "networkMode": "host",
            "containerDefinitions": [{"name": "x", "image": "i", "memory": 8,
                "dockerLabels": {"berth.runtime": "process"}}]
        }));
        assert_eq!(privileges(&t), BTreeSet::from([Privilege::HostProcess]));
    }

    #[test]
    fn each_way_in_is_caught_on_its_own() {
        let one = |json: serde_json::Value| privileges(&spec(json));
        assert_eq!(
            one(serde_json::json!({"pidMode": "host", "containerDefinitions": []})),
            BTreeSet::from([Privilege::HostNamespaces])
        );
        assert_eq!(
            one(
                serde_json::json!({"volumes": [{"name": "v", "dockerVolumeConfiguration":
                {"driver": "local", "driverOpts": {"type": "none", "o": "bind", "device": "/etc"}}}]})
            ),
            BTreeSet::from([Privilege::HostPath])
        );
        assert_eq!(
            one(serde_json::json!({"containerDefinitions": [{"name": "x",
                "dockerSecurityOptions": ["seccomp:unconfined"]}]})),
            BTreeSet::from([Privilege::PrivilegedContainer])
        );
    }
}
