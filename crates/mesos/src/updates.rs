//! Which status UPDATE a framework is sent for one of its tasks, as a pure decision.
//!
//! ```text
//!  task's state now ──┐
//!  last status sent ──┼──► next_update ──► Nothing | Resend | Send { running_first }
//!  now, resend_after ─┘
//! ```
//! A master delivers agent updates reliably: each new state of a task is sent once with a
//! uuid, and sent again every `resend_after` until the framework ACKNOWLEDGEs that uuid. berth
//! samples the tasks' state rather than forwarding each agent report, so a task that started
//! and ended between two samples would skip RUNNING; frameworks count on seeing it (an agent
//! always sends it), so it is sent first. The server keeps one [`Sent`] per task, builds the
//! statuses and their uuids, and streams them; what to send is decided here, with the time
//! passed in.

use std::time::Duration;

use crate::v1::{TaskState, TaskStatus};

/// The last status a framework was sent for a task, until acknowledged.
#[derive(Debug, Clone, PartialEq)]
pub struct Sent {
    pub state: TaskState,
    /// The uuid the framework acknowledges it with.
    pub uuid: Vec<u8>,
    /// What was sent, to send again.
    pub status: TaskStatus,
    /// When it was last sent (epoch ms).
    pub at: i64,
    pub acked: bool,
}

impl Sent {
    /// Records an ACKNOWLEDGE of `uuid`; whether it acknowledged this status (an
    /// acknowledgement of an older status changes nothing).
    pub fn acknowledge(&mut self, uuid: &[u8]) -> bool {
        let matches = self.uuid == uuid;
        if matches {
            self.acked = true;
        }
        matches
    }

    /// When this status is due to be sent again (`resend_after` after it was last sent), or
    /// `None` once acknowledged.
    pub fn resend_at(&self, resend_after: Duration) -> Option<i64> {
        (!self.acked).then(|| {
            self.at
                .saturating_add(i64::try_from(resend_after.as_millis()).unwrap_or(i64::MAX))
        })
    }
}

/// What to send for one task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// The framework has this state (or it is not yet time to send it again).
    Nothing,
    /// Send [`Sent::status`] again: it is unacknowledged and `resend_after` old.
    Resend,
    /// Send a new status for the task's state, with a new uuid; with `running_first`, a
    /// TASK_RUNNING before it.
    Send { running_first: bool },
}

/// The decision for a task in `state` (`started`: it ran at some point), given what was last
/// sent for it.
pub fn next_update(
    state: TaskState,
    started: bool,
    sent: Option<&Sent>,
    now: i64,
    resend_after: Duration,
) -> Next {
    match sent {
        Some(s) if s.state == state => {
            let due = now.saturating_sub(s.at)
                >= i64::try_from(resend_after.as_millis()).unwrap_or(i64::MAX);
            if !s.acked && due {
                Next::Resend
            } else {
                Next::Nothing
            }
        }
        previous => Next::Send {
            running_first: started
                && state.is_terminal()
                && previous.is_none_or(|p| p.state != TaskState::Running),
        },
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::v1;

    const RESEND: Duration = Duration::from_secs(10);

    fn sent(state: TaskState, at: i64, acked: bool) -> Sent {
        Sent {
            state,
            uuid: vec![1; 16],
            status: v1::TaskStatus::new(v1::TaskId::new("t"), state),
            at,
            acked,
        }
    }

    #[test]
    fn a_new_state_is_sent_once_and_resent_until_acknowledged() {
        let first = next_update(TaskState::Staging, false, None, 0, RESEND);
        assert_eq!(
            first,
            Next::Send {
                running_first: false
            }
        );
        let mut s = sent(TaskState::Staging, 0, false);
        assert_eq!(
            next_update(TaskState::Staging, false, Some(&s), 9_999, RESEND),
            Next::Nothing
        );
        assert_eq!(
            next_update(TaskState::Staging, false, Some(&s), 10_000, RESEND),
            Next::Resend
        );
        assert_eq!(s.resend_at(RESEND), Some(10_000));
        assert!(
            !s.acknowledge(&[2; 16]),
            "another uuid acknowledges nothing"
        );
        assert!(s.acknowledge(&[1; 16]));
        assert_eq!(
            s.resend_at(RESEND),
            None,
            "an acknowledged status is not resent"
        );
        assert_eq!(
            next_update(TaskState::Staging, false, Some(&s), 99_999, RESEND),
            Next::Nothing
        );
        assert_eq!(
            next_update(TaskState::Running, true, Some(&s), 1, RESEND),
            Next::Send {
                running_first: false
            }
        );
    }

    #[test]
    fn a_task_that_ran_and_ended_between_two_looks_reports_running_first() {
        let staging = sent(TaskState::Staging, 0, true);
        assert_eq!(
            next_update(TaskState::Finished, true, Some(&staging), 1, RESEND),
            Next::Send {
                running_first: true
            }
        );
        assert_eq!(
            next_update(TaskState::Failed, true, None, 1, RESEND),
            Next::Send {
                running_first: true
            }
        );
        // Already told it was running, or it never started: no RUNNING.
        let running = sent(TaskState::Running, 0, true);
        assert_eq!(
            next_update(TaskState::Killed, true, Some(&running), 1, RESEND),
            Next::Send {
                running_first: false
            }
        );
        assert_eq!(
            next_update(TaskState::Failed, false, Some(&staging), 1, RESEND),
            Next::Send {
                running_first: false
            }
        );
    }

    fn lifecycle() -> impl Strategy<Value = Vec<(TaskState, i64, bool)>> {
        // A task's states as sampled, each at some time later, possibly acknowledged: it goes
        // forward through STAGING, STARTING, RUNNING, and may end.
        let states = [
            TaskState::Staging,
            TaskState::Starting,
            TaskState::Running,
            TaskState::Finished,
        ];
        prop::collection::vec((0usize..4, 0i64..25_000, any::<bool>()), 1..30).prop_map(
            move |mut rows| {
                rows.sort_by_key(|r| r.0);
                rows.into_iter()
                    .map(|(i, dt, ack)| (states[i], dt, ack))
                    .collect()
            },
        )
    }

    proptest! {
        /// Driven as the server drives it, every state the task goes through is sent once,
        /// in order, RUNNING before the end if the task started; a status is resent only when
        /// unacknowledged and `RESEND` old.
        #[test]
        fn every_state_is_sent_once_in_order_and_resent_only_when_due(samples in lifecycle()) {
            let mut last: Option<Sent> = None;
            let mut now = 0;
            let mut delivered = Vec::new();
            for (state, dt, ack) in samples {
                now += dt;
                let started = matches!(state, TaskState::Running | TaskState::Finished);
                match next_update(state, started, last.as_ref(), now, RESEND) {
                    Next::Nothing => {}
                    Next::Resend => {
                        let s = last.as_mut().expect("resend of something sent");
                        prop_assert!(!s.acked && now - s.at >= 10_000);
                        prop_assert!(s.resend_at(RESEND).is_some_and(|at| at <= now));
                        s.at = now;
                    }
                    Next::Send { running_first } => {
                        if running_first {
                            delivered.push(TaskState::Running);
                        }
                        delivered.push(state);
                        last = Some(sent(state, now, false));
                    }
                }
                if ack {
                    let uuid = last.as_ref().map(|s| s.uuid.clone()).unwrap_or_default();
                    if let Some(s) = last.as_mut() {
                        s.acknowledge(&uuid);
                    }
                }
            }
            let mut expected = delivered.clone();
            expected.dedup();
            prop_assert_eq!(&delivered, &expected, "a state sent twice");
            let order = |s: &TaskState| [TaskState::Staging, TaskState::Starting, TaskState::Running,
                TaskState::Finished].iter().position(|x| x == s);
            prop_assert!(delivered.windows(2).all(|w| order(&w[0]) < order(&w[1])));
            if delivered.contains(&TaskState::Finished) {
                prop_assert!(delivered.contains(&TaskState::Running));
            }
        }
    }
}
