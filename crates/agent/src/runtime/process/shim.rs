//! The shim proper (`berth process-shim --run <sandbox>`): the small process that owns one
//! container's process group. It reads the stored spec, starts the command as its own
//! process group with the container's environment, directory, user and rlimits, runs the
//! health check the way Docker's monitor does, passes the stop on to the group, and records
//! what happened (child pid, health, exit code or start error) as files in the sandbox, so
//! the agent can restart and still find its containers where the shim left them.

use std::fs::{self, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, TryRecvError};
use std::thread;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::resource::setrlimit;
use nix::sys::signal::{SigSet, Signal, killpg};
use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid};
use nix::unistd::Pid;

use super::{
    CHILD_PID_FILE, ERROR_FILE, EXIT_FILE, EXIT_START_FAILED, HEALTH_FILE, LOG_FILE, ProcId,
    SHIM_LOG_FILE, SHIM_PID_FILE, Stored, StoredHealthCheck, exit_code, read_exit, read_spec,
    rlimit_resource, rlimit_value, write_atomic,
};

/// A command that did not start: why, and the exit code to record (as a shell would).
struct NotStarted {
    message: String,
    code: i32,
}

impl NotStarted {
    fn new(message: String) -> NotStarted {
        NotStarted {
            message,
            code: EXIT_START_FAILED,
        }
    }
}

pub(super) fn run(dir: &Path) -> i32 {
    // Before anything else, and before any thread exists (threads inherit the mask): a
    // stop that comes before the command is spawned must wait for it, not kill the shim.
    let signals = handled_signals();
    if let Err(e) = signals.thread_block() {
        note(dir, &format!("cannot block signals: {e}"));
        return 1;
    }
    // A new session: no controlling terminal, out of the agent's process group.
    if let Err(e) = nix::unistd::setsid() {
        note(dir, &format!("setsid: {e}"));
    }
    let _ = std::env::set_current_dir("/");
    match read_exit(dir) {
        // `start` gave up on this shim before it got here.
        Ok(Some(_)) => return 0,
        Ok(None) => {}
        Err(e) => note(dir, &format!("reading the exit file: {e}")),
    }
    let recorded = ProcId::of(std::process::id())
        .ok_or_else(|| io::Error::other("cannot read /proc/self/stat"))
        .and_then(|me| write_atomic(&dir.join(SHIM_PID_FILE), &me.render()));
    let outcome = match recorded {
        Err(e) => Err(NotStarted::new(format!(
            "the shim cannot record its pid: {e}"
        ))),
        Ok(()) => match read_spec(dir) {
            Ok(stored) => supervise(dir, &stored, &signals),
            Err(e) => Err(NotStarted::new(format!(
                "the shim cannot read the container: {e}"
            ))),
        },
    };
    let code = match outcome {
        Ok(code) => code,
        Err(not_started) => {
            if let Err(e) = write_atomic(&dir.join(ERROR_FILE), &not_started.message) {
                note(dir, &format!("cannot record the error: {e}"));
            }
            not_started.code
        }
    };
    match write_atomic(&dir.join(EXIT_FILE), &code.to_string()) {
        Ok(()) => 0,
        Err(e) => {
            note(dir, &format!("cannot record the exit code {code}: {e}"));
            1
        }
    }
}

fn handled_signals() -> SigSet {
    let mut set = SigSet::empty();
    for signal in [
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGUSR1,
        Signal::SIGCHLD,
    ] {
        set.add(signal);
    }
    set
}

/// Appends one of the shim's own warnings to `shim.log`; it has nowhere else to say it.
fn note(dir: &Path, message: &str) {
    if let Ok(mut log) = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(SHIM_LOG_FILE))
    {
        let _ = writeln!(log, "{message}");
    }
}

/// Runs the command to its end; its exit code.
fn supervise(dir: &Path, stored: &Stored, signals: &SigSet) -> Result<i32, NotStarted> {
    if let Some(cgroup) = &stored.cgroup {
        let procs = cgroup.join("cgroup.procs");
        if let Err(e) = fs::write(&procs, std::process::id().to_string()) {
            note(dir, &format!("cannot join {}: {e}", procs.display()));
        }
    }
    if stored.health_check.is_some() {
        write_atomic(&dir.join(HEALTH_FILE), "starting")
            .map_err(|e| NotStarted::new(format!("cannot record the health: {e}")))?;
    }
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(LOG_FILE))
        .and_then(|log| Ok((log.try_clone()?, log)))
        .map_err(|e| NotStarted::new(format!("cannot open {LOG_FILE}: {e}")))?;
    if !stored.cwd.is_dir() {
        return Err(NotStarted {
            message: format!("working directory {} does not exist", stored.cwd.display()),
            code: 126,
        });
    }
    let mut command = command(stored, &stored.argv)?;
    command.stdout(log.0).stderr(log.1);
    let limits: Vec<_> = stored
        .ulimits
        .iter()
        .filter_map(|u| {
            Some((
                rlimit_resource(&u.name)?,
                rlimit_value(u.soft),
                rlimit_value(u.hard),
            ))
        })
        .collect();
    if !limits.is_empty() {
        // SAFETY: the closure runs between fork and exec, where only async-signal-safe
        // calls are allowed: it makes setrlimit calls over memory allocated before the
        // fork, and neither allocates nor takes locks.
        unsafe {
            command.pre_exec(move || {
                for &(resource, soft, hard) in &limits {
                    setrlimit(resource, soft, hard)?;
                }
                Ok(())
            });
        }
    }
    let mut child = command.spawn().map_err(|e| NotStarted {
        message: format!("cannot run {:?}: {e}", stored.argv[0]),
        code: match e.kind() {
            io::ErrorKind::NotFound => 127,
            io::ErrorKind::PermissionDenied => 126,
            _ => EXIT_START_FAILED,
        },
    })?;
    let group = Pid::from_raw(child.id().try_into().unwrap_or(i32::MAX));
    match ProcId::of(child.id()) {
        Some(id) => {
            if let Err(e) = write_atomic(&dir.join(CHILD_PID_FILE), &id.render()) {
                note(dir, &format!("cannot record the command's pid: {e}"));
            }
        }
        None => note(dir, "cannot read the command's /proc entry"),
    }
    let health = stored.health_check.as_ref().map(|hc| {
        let (stop, stopped) = mpsc::channel::<()>();
        let (dir, stored, hc) = (dir.to_owned(), stored.clone(), hc.clone());
        let thread = thread::spawn(move || check_health(&dir, &stored, &hc, &stopped));
        (stop, thread)
    });
    loop {
        match signals.wait() {
            Ok(signal @ (Signal::SIGTERM | Signal::SIGINT)) => {
                let _ = killpg(group, signal);
            }
            Ok(Signal::SIGUSR1) => {
                let _ = killpg(group, Signal::SIGKILL);
            }
            _ => {}
        }
        // Look without reaping: while the command is a zombie its process group cannot
        // be recycled, so what it left behind can be killed safely.
        let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
        match waitid(Id::Pid(group), flags) {
            Ok(WaitStatus::StillAlive) | Err(Errno::EINTR) => {}
            _ => break,
        }
    }
    let _ = killpg(group, Signal::SIGKILL);
    let status = child.wait();
    if let Some((stop, thread)) = health {
        drop(stop);
        let _ = thread.join();
    }
    match status {
        Ok(status) => Ok(exit_code(status)),
        Err(e) => {
            note(dir, &format!("cannot reap the command: {e}"));
            Ok(super::EXIT_KILLED)
        }
    }
}

/// The command (or a health check) with the container's environment, directory and user,
/// leading a process group of its own, with no signal blocked: the shim blocks the ones
/// it waits for, and a child inherits the mask (std does not reset it), so without this
/// a command that does not clear it itself (anything run without a shell) would never
/// see the stop's SIGTERM.
fn command(stored: &Stored, argv: &[String]) -> Result<Command, NotStarted> {
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| NotStarted::new("the command is empty".into()))?;
    let mut command = Command::new(program);
    command
        .args(args)
        .env_clear()
        .envs(stored.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&stored.cwd)
        .stdin(Stdio::null())
        .process_group(0);
    // SAFETY: runs between fork and exec, where only async-signal-safe calls are allowed:
    // pthread_sigmask is one, over a set built on the stack, with no allocation or lock.
    unsafe {
        command.pre_exec(|| {
            nix::sys::signal::SigSet::empty()
                .thread_set_mask()
                .map_err(io::Error::from)
        });
    }
    if let Some(gid) = stored.gid {
        command.gid(gid);
    }
    if let Some(uid) = stored.uid {
        command.uid(uid);
    }
    Ok(command)
}

/// Docker's health monitor: a probe every `interval` after the last one ended; a pass makes
/// the container healthy, `retries` failures in a row unhealthy; failures during the start
/// period do not count while it has not yet been healthy.
pub(super) fn check_health(
    dir: &Path,
    stored: &Stored,
    hc: &StoredHealthCheck,
    stop: &Receiver<()>,
) {
    let started = Instant::now();
    let start_period = Duration::from_millis(hc.start_period_ms);
    let interval = Duration::from_millis(hc.interval_ms);
    let mut healthy = None::<bool>;
    let mut failures = 0;
    loop {
        match stop.recv_timeout(interval) {
            Err(RecvTimeoutError::Timeout) => {}
            _ => return,
        }
        let Some(passed) = probe(dir, stored, hc, stop) else {
            return;
        };
        let before = healthy;
        if passed {
            failures = 0;
            healthy = Some(true);
        } else if healthy.is_some() || started.elapsed() >= start_period {
            failures += 1;
            if failures >= hc.retries {
                healthy = Some(false);
            }
        }
        if healthy != before {
            let word = if healthy == Some(true) {
                "healthy"
            } else {
                "unhealthy"
            };
            if let Err(e) = write_atomic(&dir.join(HEALTH_FILE), word) {
                note(dir, &format!("cannot record the health: {e}"));
            }
        }
    }
}

/// Runs one probe: whether it passed within the timeout; `None` when told to stop.
fn probe(dir: &Path, stored: &Stored, hc: &StoredHealthCheck, stop: &Receiver<()>) -> Option<bool> {
    let spawned = command(stored, &hc.argv)
        .map_err(|e| e.message)
        .and_then(|mut c| {
            c.stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| e.to_string())
        });
    let mut child: Child = match spawned {
        Ok(child) => child,
        Err(e) => {
            note(
                dir,
                &format!("cannot run the health check {:?}: {e}", hc.argv),
            );
            return Some(false);
        }
    };
    let deadline = Instant::now() + Duration::from_millis(hc.timeout_ms);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status.success()),
            Ok(None) => {}
            Err(_) => return Some(false),
        }
        let stopped = !matches!(stop.try_recv(), Err(TryRecvError::Empty));
        if stopped || Instant::now() >= deadline {
            let group = Pid::from_raw(child.id().try_into().unwrap_or(i32::MAX));
            let _ = killpg(group, Signal::SIGKILL);
            let _ = child.wait();
            return if stopped { None } else { Some(false) };
        }
        thread::sleep(Duration::from_millis(10));
    }
}
