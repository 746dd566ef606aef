//! Best-effort cgroup v2 limits for a process container: when the sandbox is made, the
//! container gets `berth/<name>` with the spec's CPU weight and memory limits where cgroup v2
//! is mounted and writable (and runs without limits where it is not); afterwards it tells
//! whether the container was OOM-killed, and it is removed with the sandbox.

use std::fs;
use std::path::{Path, PathBuf};

use crate::runtime::ContainerSpec;

const ROOT: &str = "/sys/fs/cgroup";

/// Makes `berth/<name>` with the spec's limits; `None` where cgroup v2 is not there or
/// not writable.
pub(super) fn prepare(name: &str, spec: &ContainerSpec) -> Option<PathBuf> {
    let root = Path::new(ROOT);
    if !root.join("cgroup.controllers").is_file() {
        tracing::debug!(
            container = name,
            "no cgroup v2 hierarchy at {ROOT}: resource limits are not enforced"
        );
        return None;
    }
    let parent = root.join("berth");
    let dir = parent.join(name);
    let made = fs::create_dir_all(&parent).and_then(|()| {
        // The controllers must be enabled on the way down; either may be already.
        for cgroup in [root, parent.as_path()] {
            for controller in ["+cpu", "+memory"] {
                let _ = fs::write(cgroup.join("cgroup.subtree_control"), controller);
            }
        }
        match fs::create_dir(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => Err(e),
            _ => Ok(()),
        }
    });
    if let Err(e) = made {
        tracing::debug!(
            container = name,
            "cannot make cgroup {}: {e}; resource limits are not enforced",
            dir.display()
        );
        return None;
    }
    for (file, value) in limits(spec) {
        if let Err(e) = fs::write(dir.join(file), &value) {
            tracing::debug!(
                container = name,
                "cannot set {file} to {value} in {}: {e}",
                dir.display()
            );
        }
    }
    Some(dir)
}

fn limits(spec: &ContainerSpec) -> Vec<(&'static str, String)> {
    let bytes = |mib: Option<i64>| {
        mib.filter(|&m| m > 0)
            .and_then(|m| m.checked_mul(1024 * 1024))
            .map(|b| b.to_string())
    };
    let mut limits = Vec::new();
    if let Some(max) = bytes(spec.memory_mib) {
        limits.push(("memory.max", max));
    }
    if let Some(low) = bytes(spec.memory_reservation_mib) {
        limits.push(("memory.low", low));
    }
    if let Some(shares) = spec.cpu_shares {
        limits.push(("cpu.weight", cpu_weight(shares).to_string()));
    }
    limits
}

/// Docker's (runc's) mapping of CPU shares (2..=262144) to cgroup v2 weight (1..=10000).
fn cpu_weight(shares: i64) -> u64 {
    let shares = shares.clamp(2, 262_144).unsigned_abs();
    1 + ((shares - 2) * 9999) / 262_142
}

pub(super) fn oom_killed(dir: &Path) -> bool {
    fs::read_to_string(dir.join("memory.events")).is_ok_and(|events| {
        events.lines().any(|line| {
            line.strip_prefix("oom_kill ")
                .and_then(|n| n.trim().parse::<u64>().ok())
                .is_some_and(|n| n > 0)
        })
    })
}

pub(super) fn remove(dir: &Path) {
    match fs::remove_dir(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            tracing::debug!("cannot remove cgroup {}: {e}", dir.display());
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_shares_map_to_cgroup_weights_as_in_runc() {
        assert_eq!(cpu_weight(2), 1);
        assert_eq!(cpu_weight(1024), 39);
        assert_eq!(cpu_weight(262_144), 10_000);
        assert_eq!(cpu_weight(0), 1);
        assert_eq!(cpu_weight(i64::MAX), 10_000);
    }
}
