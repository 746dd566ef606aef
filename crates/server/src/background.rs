//! The server's background loops, owned and supervised in one place.
//!
//! ```text
//!  spawn_background(app) ─► one supervisor per loop:
//!      start(app) ─► JoinHandle ─┬─ returned while the server stops ─► done
//!                                ├─ panicked ─► error log, berth_background_restarts_total,
//!                                │              wait restart_delay(n), start again
//!                                └─ returned otherwise ─► the same: a loop never ends by itself
//! ```
//! Each loop asks `Node::is_leader` itself (followers' loops idle), so restarting one on any
//! node is safe: what it does next is decided from the replicated state, as after a leader
//! change. A loop that panics used to die silently and leave its work (expiring tasks,
//! reconciling services, running schedules, offering to frameworks) undone until a restart.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::agents::Monitor;
use crate::{App, Housekeeping, MesosLoop, QueueController, ScheduleRunner, ServiceController};

/// One background loop: its name (in logs and metrics) and how to start it.
#[derive(Clone, Copy)]
pub struct Loop {
    pub name: &'static str,
    pub start: fn(Arc<App>) -> JoinHandle<()>,
}

/// Every loop a server runs.
pub const LOOPS: [Loop; 6] = [
    Loop {
        name: "housekeeping",
        start: Housekeeping::spawn,
    },
    Loop {
        name: "service_controller",
        start: ServiceController::spawn,
    },
    Loop {
        name: "queue_controller",
        start: QueueController::spawn,
    },
    Loop {
        name: "schedule_runner",
        start: ScheduleRunner::spawn,
    },
    Loop {
        name: "mesos",
        start: MesosLoop::spawn,
    },
    Loop {
        name: "agent_monitor",
        start: Monitor::spawn,
    },
];

/// How long to wait before the `restarts`-th restart of a loop (counting from 1): 100 ms,
/// doubling, at most 30 s, so a loop that fails at once every time costs little and one that
/// failed once is back almost at once.
pub fn restart_delay(restarts: u32) -> Duration {
    let doublings = restarts.saturating_sub(1).min(9);
    Duration::from_millis(100 << doublings).min(Duration::from_secs(30))
}

/// Starts every loop of [`LOOPS`] under supervision; the handles end when the server stops.
pub fn spawn_background(app: &Arc<App>) -> Vec<JoinHandle<()>> {
    LOOPS.iter().map(|l| supervise(app.clone(), *l)).collect()
}

/// Runs `l`, and runs it again whenever it ends before the server stops.
pub fn supervise(app: Arc<App>, l: Loop) -> JoinHandle<()> {
    let stop = app.stop_signal();
    let metrics = app.clone();
    keep_running(app, l.name, l.start, stop, move |name| {
        metrics.metrics.background_restart(name)
    })
}

/// Runs `start(context)`, and runs it again (after [`restart_delay`]) whenever it ends, until
/// `stop` turns true; `restarted` hears of each restart.
fn keep_running<C: Clone + Send + 'static>(
    context: C,
    name: &'static str,
    start: fn(C) -> JoinHandle<()>,
    mut stop: watch::Receiver<bool>,
    restarted: impl Fn(&'static str) + Send + 'static,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut restarts = 0;
        loop {
            let mut running = start(context.clone());
            let ended = tokio::select! {
                ended = &mut running => ended,
                _ = stop.wait_for(|stopping| *stopping) => {
                    running.abort();
                    return;
                }
            };
            match ended {
                Err(e) if e.is_panic() => {
                    tracing::error!(background = name, error = %e, "a background loop panicked; restarting it");
                }
                Err(e) => {
                    tracing::error!(background = name, error = %e, "a background loop was cancelled; restarting it");
                }
                Ok(()) => {
                    tracing::error!(background = name, "a background loop ended; restarting it");
                }
            }
            restarts += 1;
            restarted(name);
            tokio::select! {
                () = tokio::time::sleep(restart_delay(restarts)) => {}
                _ = stop.wait_for(|stopping| *stopping) => return,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[test]
    fn restarts_back_off_from_100_ms_to_30_s() {
        assert_eq!(restart_delay(1), Duration::from_millis(100));
        assert_eq!(restart_delay(2), Duration::from_millis(200));
        assert_eq!(restart_delay(5), Duration::from_millis(1600));
        assert_eq!(restart_delay(10), Duration::from_secs(30));
        assert_eq!(restart_delay(u32::MAX), Duration::from_secs(30));
    }

    /// Starts a loop that panics on its first two runs and then runs until stopped.
    fn flaky(starts: Arc<AtomicUsize>) -> JoinHandle<()> {
        tokio::spawn(async move {
            if starts.fetch_add(1, Ordering::SeqCst) < 2 {
                panic!("a bug in a background loop");
            }
            std::future::pending::<()>().await;
        })
    }

    #[tokio::test(start_paused = true)]
    async fn a_loop_that_panics_is_restarted_until_the_server_stops() {
        let starts = Arc::new(AtomicUsize::new(0));
        let restarts = Arc::new(AtomicUsize::new(0));
        let (stop, stopped) = watch::channel(false);
        let counted = restarts.clone();
        let supervisor = keep_running(starts.clone(), "flaky", flaky, stopped, move |name| {
            assert_eq!(name, "flaky");
            counted.fetch_add(1, Ordering::SeqCst);
        });
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(starts.load(Ordering::SeqCst), 3, "started, restarted twice");
        assert_eq!(restarts.load(Ordering::SeqCst), 2);
        stop.send_replace(true);
        tokio::time::timeout(Duration::from_secs(1), supervisor)
            .await
            .expect("the supervisor ends when the server stops")
            .unwrap();
        assert_eq!(starts.load(Ordering::SeqCst), 3, "not started again");
    }

    #[test]
    fn every_loop_has_its_own_name() {
        let mut names: Vec<&str> = LOOPS.iter().map(|l| l.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), LOOPS.len());
    }
}
