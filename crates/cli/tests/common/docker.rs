//! Docker for the integration tests that need it: whether the engine is there (tests say so
//! and skip outside CI, and fail under `CI=true`), the test image, and cleaning up a
//! cluster's containers and task volumes whatever a test's outcome.

use std::process::Command;
use std::sync::OnceLock;

/// The labels berth puts on everything it creates.
pub const LABEL_CLUSTER: &str = "com.berth.cluster";
pub const LABEL_TASK: &str = "com.berth.task-arn";

/// `false` (after saying why) when Docker is unavailable outside CI; panics under CI, which
/// must run the Docker tests.
pub fn docker_or_skip() -> bool {
    match docker_unavailable() {
        None => {
            build_test_image();
            true
        }
        Some(why) if std::env::var("CI").is_ok_and(|ci| ci == "true") => {
            panic!("Docker is unavailable: {why} (CI runs the Docker tests and needs Docker)")
        }
        Some(why) => {
            eprintln!("skipping: Docker is unavailable: {why}");
            false
        }
    }
}

/// Why Docker cannot be used, if it cannot (checked once per test process).
pub fn docker_unavailable() -> Option<&'static str> {
    static WHY: OnceLock<Option<String>> = OnceLock::new();
    WHY.get_or_init(|| {
        match Command::new("docker")
            .args(["version", "--format", "{{.Server.Version}}"])
            .output()
        {
            Err(e) => Some(format!("cannot run the docker CLI: {e}")),
            Ok(out) if !out.status.success() => Some(format!(
                "`docker version` failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )),
            Ok(_) => None,
        }
    })
    .as_deref()
}

/// Runs `scripts/test-image.sh` once per test process; it does nothing when the image is there.
pub fn build_test_image() {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    let built = BUILT.get_or_init(|| {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/test-image.sh");
        let out = Command::new("bash")
            .arg(script)
            .output()
            .map_err(|e| format!("cannot run {script}: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{script} failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    });
    if let Err(e) = built {
        panic!("{e}");
    }
}

/// Removes every container (and task-scoped volume) of a cluster when dropped, so a test
/// leaves nothing behind, passed or failed.
pub struct Cleanup {
    pub cluster: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        // Never panic here: this also runs while a failed test unwinds.
        let run = |args: &[&str]| Command::new("docker").args(args).output().ok();
        let filter = format!("label={LABEL_CLUSTER}={}", self.cluster);
        if let Some(out) = run(&["ps", "-aq", "--no-trunc", "--filter", &filter]) {
            let ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(str::to_owned)
                .collect();
            if !ids.is_empty() {
                let mut args = vec!["rm", "-f", "-v"];
                args.extend(ids.iter().map(String::as_str));
                run(&args);
            }
        }
        let format = format!("{{{{.Name}}}}\t{{{{.Label \"{LABEL_TASK}\"}}}}");
        let tasks_here = format!(":task/{}/", self.cluster);
        if let Some(out) = run(&[
            "volume",
            "ls",
            "--filter",
            &format!("label={LABEL_TASK}"),
            "--format",
            &format,
        ]) {
            for line in String::from_utf8_lossy(&out.stdout).lines() {
                if let Some((name, task)) = line.split_once('\t')
                    && task.contains(&tasks_here)
                {
                    run(&["volume", "rm", "-f", name]);
                }
            }
        }
    }
}
