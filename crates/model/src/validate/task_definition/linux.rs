//! The Linux kernel-facing members of a container: `linuxParameters` (capabilities, devices,
//! tmpfs, shared memory, swap), `ulimits` and `systemControls`, checked against what ECS
//! accepts and against the task's network and IPC modes (a namespaced sysctl needs the
//! namespace to be the container's own).

use std::collections::HashSet;

use berth_api::types::{self as api, enums};

use super::{At, TaskCtx};
use crate::entity::NetworkMode;
use crate::error::Error;
use crate::validate::shorten;

/// The Linux capabilities ECS accepts in `linuxParameters.capabilities`.
#[rustfmt::skip]
pub(super) const CAPABILITIES: &[&str] = &[
    "ALL", "AUDIT_CONTROL", "AUDIT_WRITE", "BLOCK_SUSPEND", "CHOWN", "DAC_OVERRIDE",
    "DAC_READ_SEARCH", "FOWNER", "FSETID", "IPC_LOCK", "IPC_OWNER", "KILL", "LEASE",
    "LINUX_IMMUTABLE", "MAC_ADMIN", "MAC_OVERRIDE", "MKNOD", "NET_ADMIN", "NET_BIND_SERVICE",
    "NET_BROADCAST", "NET_RAW", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_ADMIN", "SYS_BOOT",
    "SYS_CHROOT", "SYS_MODULE", "SYS_NICE", "SYS_PACCT", "SYS_PTRACE", "SYS_RAWIO",
    "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "SYSLOG", "WAKE_ALARM",
];

/// The tmpfs mount options ECS accepts (`mode`, `uid`, ... take `=value`).
#[rustfmt::skip]
pub(super) const TMPFS_OPTIONS: &[&str] = &[
    "defaults", "ro", "rw", "suid", "nosuid", "dev", "nodev", "exec", "noexec", "sync", "async",
    "dirsync", "remount", "mand", "nomand", "atime", "noatime", "diratime", "nodiratime", "bind",
    "rbind", "unbindable", "runbindable", "private", "rprivate", "shared", "rshared", "slave",
    "rslave", "relatime", "norelatime", "strictatime", "nostrictatime", "mode", "uid", "gid",
    "nr_inodes", "nr_blocks", "mpol",
];

/// IPC-namespace sysctls (besides `fs.mqueue.*`).
#[rustfmt::skip]
pub(super) const IPC_SYSCTLS: &[&str] = &[
    "kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall",
    "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced",
];

pub(super) fn ulimits(at: &At, ulimits: &[api::Ulimit]) -> Result<(), Error> {
    let mut seen: HashSet<&str> = HashSet::new();
    for (i, u) in ulimits.iter().enumerate() {
        let name = at.required_str(&u.name, &format!("ulimits[{i}].name"))?;
        at.one_of(name, enums::ULIMIT_NAME, &format!("ulimits[{i}].name"))?;
        let soft = *at.required(&u.soft_limit, &format!("ulimits[{i}].softLimit"))?;
        let hard = *at.required(&u.hard_limit, &format!("ulimits[{i}].hardLimit"))?;
        for (what, v) in [("softLimit", soft), ("hardLimit", hard)] {
            if v < -1 {
                return Err(at.err(format!(
                    "ulimit '{name}' {what} ({v}) must be 0 or more, or -1 for unlimited"
                )));
            }
        }
        // -1 is unlimited.
        let as_u64 = |v: i32| if v == -1 { u64::MAX } else { v as u64 };
        if as_u64(soft) > as_u64(hard) {
            return Err(at.err(format!(
                "ulimit '{name}' softLimit ({soft}) must not exceed hardLimit ({hard})"
            )));
        }
        if !seen.insert(name) {
            return Err(at.err(format!(
                "ulimit '{name}' is given more than once; set each ulimit once"
            )));
        }
    }
    Ok(())
}

pub(super) fn is_ipc_sysctl(ns: &str) -> bool {
    IPC_SYSCTLS.contains(&ns) || ns.starts_with("fs.mqueue.")
}

pub(super) fn system_controls(
    at: &At,
    scs: &[api::SystemControl],
    t: &TaskCtx<'_>,
) -> Result<(), Error> {
    for (i, sc) in scs.iter().enumerate() {
        let ns = at.required_str(&sc.namespace, &format!("systemControls[{i}].namespace"))?;
        at.required_str(&sc.value, &format!("systemControls[{i}].value"))?;
        let net = ns.starts_with("net.");
        if !net && !is_ipc_sysctl(ns) {
            return Err(at.err(format!(
                "systemControls namespace '{}' is not a namespaced sysctl; use net.*, fs.mqueue.* or one of {}",
                shorten(ns),
                IPC_SYSCTLS.join(", ")
            )));
        }
        if net && t.mode == NetworkMode::Host {
            return Err(at.err(format!(
                "systemControls '{ns}': network sysctls (net.*) are not supported with networkMode host, which shares the host's network namespace"
            )));
        }
        if !net && t.ipc_mode == Some("host") {
            return Err(at.err(format!(
                "systemControls '{ns}': IPC sysctls are not supported with ipcMode host, which shares the host's IPC namespace"
            )));
        }
    }
    Ok(())
}

pub(super) fn linux_parameters(at: &At, lp: &api::LinuxParameters) -> Result<(), Error> {
    if let Some(caps) = &lp.capabilities {
        for (what, list) in [("add", &caps.add), ("drop", &caps.drop)] {
            for cap in list.as_deref().unwrap_or_default() {
                at.one_of(
                    cap,
                    CAPABILITIES,
                    &format!("linuxParameters.capabilities.{what} capability"),
                )?;
            }
        }
    }
    for (i, d) in lp.devices.as_deref().unwrap_or_default().iter().enumerate() {
        let w = format!("linuxParameters.devices[{i}]");
        let host = at.required_str(&d.host_path, &format!("{w}.hostPath"))?;
        at.absolute(host, &format!("{w}.hostPath"))?;
        if let Some(p) = d.container_path.as_deref() {
            at.absolute(p, &format!("{w}.containerPath"))?;
        }
        for p in d.permissions.as_deref().unwrap_or_default() {
            at.one_of(
                p,
                enums::DEVICE_CGROUP_PERMISSION,
                &format!("{w}.permissions value"),
            )?;
        }
    }
    for (i, t) in lp.tmpfs.as_deref().unwrap_or_default().iter().enumerate() {
        let w = format!("linuxParameters.tmpfs[{i}]");
        let path = at.required_str(&t.container_path, &format!("{w}.containerPath"))?;
        at.absolute(path, &format!("{w}.containerPath"))?;
        let size = *at.required(&t.size, &format!("{w}.size"))?;
        if size <= 0 {
            return Err(at.err(format!("{w}.size ({size}) must be 1 MiB or more")));
        }
        for o in t.mount_options.as_deref().unwrap_or_default() {
            let key = o.split_once('=').map_or(o.as_str(), |(k, _)| k);
            at.one_of(key, TMPFS_OPTIONS, &format!("{w}.mountOptions option"))?;
        }
    }
    if let Some(s) = lp.shared_memory_size
        && s <= 0
    {
        return Err(at.err(format!(
            "linuxParameters.sharedMemorySize ({s}) must be 1 MiB or more"
        )));
    }
    if let Some(s) = lp.max_swap
        && s < 0
    {
        return Err(at.err(format!(
            "linuxParameters.maxSwap ({s}) must be 0 (no swap) or more MiB"
        )));
    }
    if let Some(s) = lp.swappiness {
        at.range(s, (0, 100), "linuxParameters.swappiness", "")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use crate::validate::task_definition::tests::*;

    #[test]
    fn ulimit_rules() {
        let u = |v: Value| one(json!({"ulimits": v}));
        ok(u(
            json!([{"name": "nofile", "softLimit": 1024, "hardLimit": 4096}, {"name": "memlock", "softLimit": -1, "hardLimit": -1}]),
        ));
        ok(u(
            json!([{"name": "core", "softLimit": 0, "hardLimit": -1}]),
        ));
        client(
            u(json!([{"name": "files", "softLimit": 1, "hardLimit": 1}])),
            &["Container 'web'", "'files'", "nofile"],
        );
        client(
            u(json!([{"name": "nofile", "softLimit": 10, "hardLimit": 5}])),
            &["Container 'web'", "softLimit (10)", "hardLimit (5)"],
        );
        client(
            u(json!([{"name": "nofile", "softLimit": -1, "hardLimit": 5}])),
            &["softLimit (-1)"],
        );
        client(
            u(json!([{"name": "nofile", "softLimit": -2, "hardLimit": 5}])),
            &["softLimit (-2)", "-1 for unlimited"],
        );
        client(
            u(json!([{"name": "nofile", "hardLimit": 5}])),
            &["ulimits[0].softLimit"],
        );
        client(
            u(json!([{"softLimit": 1, "hardLimit": 5}])),
            &["ulimits[0].name"],
        );
        client(
            u(
                json!([{"name": "nproc", "softLimit": 1, "hardLimit": 1}, {"name": "nproc", "softLimit": 2, "hardLimit": 2}]),
            ),
            &["ulimit 'nproc'", "more than once"],
        );
    }

    #[test]
    fn system_controls_rules() {
        let sc =
            |v: Value, extra: Value| task(vec![ctr("web", json!({"systemControls": v}))], extra);
        ok(sc(
            json!([{"namespace": "net.core.somaxconn", "value": "1024"}, {"namespace": "kernel.shmmax", "value": "1"}, {"namespace": "fs.mqueue.msg_max", "value": "10"}]),
            json!({}),
        ));
        client(
            sc(json!([{"value": "1"}]), json!({})),
            &["Container 'web'", "systemControls[0].namespace"],
        );
        client(
            sc(
                json!([{"namespace": "net.ipv4.ip_forward", "value": ""}]),
                json!({}),
            ),
            &["systemControls[0].value"],
        );
        client(
            sc(
                json!([{"namespace": "vm.swappiness", "value": "1"}]),
                json!({}),
            ),
            &["'vm.swappiness'", "namespaced"],
        );
        client(
            sc(
                json!([{"namespace": "net.core.somaxconn", "value": "1"}]),
                json!({"networkMode": "host"}),
            ),
            &["Container 'web'", "net.core.somaxconn", "networkMode host"],
        );
        client(
            sc(
                json!([{"namespace": "kernel.sem", "value": "1"}]),
                json!({"ipcMode": "host"}),
            ),
            &["kernel.sem", "ipcMode host"],
        );
    }

    #[test]
    fn linux_parameters_rules() {
        let lp = |v: Value| one(json!({"linuxParameters": v}));
        ok(lp(json!({
            "capabilities": {"add": ["SYS_PTRACE", "NET_ADMIN"], "drop": ["ALL"]},
            "devices": [{"hostPath": "/dev/fuse", "containerPath": "/dev/fuse", "permissions": ["read", "write", "mknod"]}],
            "initProcessEnabled": true, "sharedMemorySize": 64,
            "tmpfs": [{"containerPath": "/run", "size": 64, "mountOptions": ["rw", "noexec", "mode=1777"]}],
            "maxSwap": 0, "swappiness": 0,
        })));
        client(
            lp(json!({"capabilities": {"add": ["CAP_SYS_ADMIN"]}})),
            &["Container 'web'", "'CAP_SYS_ADMIN'", "SYS_ADMIN"],
        );
        client(
            lp(json!({"capabilities": {"drop": ["sys_admin"]}})),
            &["capabilities.drop"],
        );
        client(
            lp(json!({"devices": [{"containerPath": "/dev/x"}]})),
            &["Container 'web'", "linuxParameters.devices[0].hostPath"],
        );
        client(
            lp(json!({"devices": [{"hostPath": "dev/x"}]})),
            &["hostPath 'dev/x'", "absolute"],
        );
        client(
            lp(json!({"devices": [{"hostPath": "/dev/x", "permissions": ["execute"]}]})),
            &["'execute'", "read, write, mknod"],
        );
        client(
            lp(json!({"tmpfs": [{"containerPath": "/run", "size": 0}]})),
            &["Container 'web'", "tmpfs[0].size (0)"],
        );
        client(
            lp(json!({"tmpfs": [{"containerPath": "/run"}]})),
            &["tmpfs[0].size"],
        );
        client(
            lp(json!({"tmpfs": [{"size": 1}]})),
            &["tmpfs[0].containerPath"],
        );
        client(
            lp(json!({"tmpfs": [{"containerPath": "/run", "size": 1, "mountOptions": ["fast"]}]})),
            &["'fast'", "mountOptions"],
        );
        client(
            lp(json!({"sharedMemorySize": 0})),
            &["sharedMemorySize (0)"],
        );
        client(lp(json!({"maxSwap": -1})), &["maxSwap (-1)"]);
        client(
            lp(json!({"swappiness": 101})),
            &["swappiness (101)", "0 and 100"],
        );
        client(lp(json!({"swappiness": -1})), &["swappiness (-1)"]);
    }
}
