//! When a follower stands for leader: berth's election timer, in place of openraft's.
//!
//! openraft 0.9 draws a node's election timeout once per process and checks it on a tick of
//! 1.5 heartbeats. Two survivors of a lost leader whose draws land on the same tick stand
//! together, each votes for itself, and — having drawn nothing new — they collide again at
//! the next try: the failover benchmark saw five candidacies and 1.3 s before a leader
//! (BENCHMARKS.md). Raft's liveness argument needs a fresh random timeout per election, so
//! berth turns openraft's timer off (`enable_elect: false`) and keeps its own:
//!
//! - every time this node hears from a leader (an append or snapshot it accepted) or grants a
//!   vote, it draws a new wait: the leader's lease (while voters honour it, a candidacy cannot
//!   win) plus a random election timeout;
//! - a candidacy draws a new wait too, so a split vote is retried at different times;
//! - a candidate refused by a voter with a longer log waits a further lease before standing
//!   again, so the voter with the whole log stands first (openraft's "smaller log" rule);
//! - a leader that hands its office over is held back as long as a follower that heard it
//!   last would wait ([`ElectionTimer::hold`]): granting the target's vote would otherwise
//!   rearm it like any voter, to stand one election timeout later — before the target's own
//!   retry, should the target's first round fall short, and with the same log;
//! - a loop checks the deadline every fifth of a heartbeat and asks openraft to elect.
//!
//! The decisions ([`wait`], [`due`]) are pure, with time and the random draw as inputs; the
//! loop ([`run`]) is the only part that reads a clock or a random number.

use std::sync::Mutex;
use std::time::Duration;

use openraft::ServerState;
use tokio::time::Instant;

use crate::{BerthRaft, Timing};

/// What a wait follows: it sets how long a follower gives the group before standing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Since {
    /// A leader's append or snapshot: the voters honour its lease first.
    Leader,
    /// A vote this node granted, or its own candidacy: no leader holds a lease.
    Election,
    /// This node's candidacy was refused by a voter with a longer log.
    RefusedForLog,
}

/// How long to wait, after `since`, before standing: `draw` in `[0, 1)` picks the election
/// timeout between one and two times [`Timing::election_timeout`]. The lease is openraft's
/// (`election_timeout_max`, twice the timeout).
pub(crate) fn wait(timing: &Timing, since: Since, draw: f64) -> Duration {
    let timeout = timing.election_timeout.mul_f64(1.0 + draw.clamp(0.0, 1.0));
    let lease = timing.election_timeout * 2;
    match since {
        Since::Leader | Since::RefusedForLog => lease + timeout,
        Since::Election => timeout,
    }
}

/// What the loop sees of this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Seen {
    pub state: ServerState,
    pub voter: bool,
    /// The group has no voter but this node.
    pub alone: bool,
}

/// What the loop does now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// Nothing yet.
    Wait,
    /// Start the wait again from now, as after hearing from a leader (this node leads, or
    /// cannot stand).
    Rearm,
    /// Ask openraft to elect this node.
    Stand,
}

/// The timer's decision at `now`, given the deadline drawn last.
pub(crate) fn due(seen: Seen, now: Instant, deadline: Instant) -> Step {
    match seen.state {
        ServerState::Leader | ServerState::Learner | ServerState::Shutdown => Step::Rearm,
        _ if !seen.voter => Step::Rearm,
        // A lone voter has nobody to wait for (after a restart, say).
        ServerState::Follower if seen.alone => Step::Stand,
        _ if seen.alone => Step::Wait,
        _ if now >= deadline => Step::Stand,
        _ => Step::Wait,
    }
}

/// The deadline this node stands at, moved by what it hears.
#[derive(Debug)]
pub(crate) struct ElectionTimer {
    timing: Timing,
    deadline: Mutex<Instant>,
    /// No candidacy before this, whatever rearms the deadline ([`ElectionTimer::hold`]).
    held: Mutex<Option<Instant>>,
}

impl ElectionTimer {
    /// A timer that gives a fresh node one wait after a leader's lease before it stands.
    pub(crate) fn new(timing: Timing) -> ElectionTimer {
        let timer = ElectionTimer {
            timing,
            deadline: Mutex::new(Instant::now()),
            held: Mutex::new(None),
        };
        timer.rearm(Since::Leader);
        timer
    }

    /// Draws a new wait from now.
    pub(crate) fn rearm(&self, since: Since) {
        let deadline = Instant::now() + wait(&self.timing, since, rand::random::<f64>());
        *self.deadline.lock().unwrap_or_else(|e| e.into_inner()) = deadline;
    }

    /// Pushes the deadline out to at least a new wait from now (a refusal for the log must
    /// not bring a later deadline forward).
    pub(crate) fn defer(&self, since: Since) {
        let later = Instant::now() + wait(&self.timing, since, rand::random::<f64>());
        let mut deadline = self.deadline.lock().unwrap_or_else(|e| e.into_inner());
        *deadline = (*deadline).max(later);
    }

    /// Keeps this node from standing for as long as a follower that heard from a leader now
    /// would wait at most (its lease and the longest election timeout), even if a vote it
    /// grants meanwhile rearms the deadline: what a leader does when it asks a target to
    /// stand in its place.
    pub(crate) fn hold(&self) {
        let until = Instant::now() + wait(&self.timing, Since::Leader, 1.0);
        *self.held.lock().unwrap_or_else(|e| e.into_inner()) = Some(until);
    }

    fn deadline(&self) -> Instant {
        let deadline = *self.deadline.lock().unwrap_or_else(|e| e.into_inner());
        let held = *self.held.lock().unwrap_or_else(|e| e.into_inner());
        held.map_or(deadline, |held| held.max(deadline))
    }
}

/// Checks the timer every fifth of a heartbeat until Raft stops, and asks openraft to elect
/// this node when it is due.
pub(crate) async fn run(
    raft: BerthRaft,
    timer: std::sync::Arc<ElectionTimer>,
    metrics: crate::metrics::RaftMetrics,
) {
    let mut ticks = tokio::time::interval(timer.timing.heartbeat / 5);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let seen = {
            let metrics = raft.metrics();
            let m = metrics.borrow();
            let membership = m.membership_config.membership();
            let voter = membership.voter_ids().any(|id| id == m.id);
            Seen {
                state: m.state,
                voter,
                alone: voter && membership.voter_ids().count() == 1,
            }
        };
        if seen.state == ServerState::Shutdown {
            return;
        }
        match due(seen, Instant::now(), timer.deadline()) {
            Step::Wait => {}
            Step::Rearm => timer.rearm(Since::Leader),
            Step::Stand => {
                timer.rearm(Since::Election);
                metrics.stood();
                if raft.trigger().elect().await.is_err() {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timing() -> Timing {
        Timing::default()
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_follower_of_a_leader_waits_out_the_lease_then_a_random_timeout() {
        let t = timing();
        assert_eq!(wait(&t, Since::Leader, 0.0), ms(300));
        assert_eq!(wait(&t, Since::Leader, 0.5), ms(350));
        assert!(wait(&t, Since::Leader, 0.999) < ms(400));
        // Out-of-range draws are clamped, never a zero or unbounded wait.
        assert_eq!(wait(&t, Since::Leader, -3.0), ms(300));
        assert_eq!(wait(&t, Since::Leader, 7.0), ms(400));
    }

    #[test]
    fn after_an_election_there_is_no_lease_to_wait_for() {
        let t = timing();
        assert_eq!(wait(&t, Since::Election, 0.0), ms(100));
        assert_eq!(wait(&t, Since::Election, 0.25), ms(125));
    }

    #[test]
    fn a_candidate_refused_for_its_log_stands_after_any_other_candidate_retries() {
        let t = timing();
        let slowest_retry = wait(&t, Since::Election, 0.999);
        let soonest_refused = wait(&t, Since::RefusedForLog, 0.0);
        assert!(soonest_refused > slowest_retry);
    }

    #[test]
    fn draws_differ_per_election_so_split_votes_do_not_repeat() {
        let t = timing();
        let a = wait(&t, Since::Election, 0.1);
        let b = wait(&t, Since::Election, 0.7);
        assert_ne!(a, b);
    }

    #[test]
    fn a_held_timer_waits_like_a_follower_of_a_leader_whatever_rearms_it() {
        let timer = ElectionTimer::new(timing());
        let before = Instant::now();
        timer.hold();
        // Granting the target's vote rearms it as after an election (at most 200 ms).
        timer.rearm(Since::Election);
        assert!(timer.deadline() >= before + wait(&timing(), Since::Leader, 1.0));
        // A later deadline still counts.
        *timer.deadline.lock().unwrap() = before + ms(10_000);
        assert_eq!(timer.deadline(), before + ms(10_000));
    }

    fn seen(state: ServerState, voter: bool, alone: bool) -> Seen {
        Seen {
            state,
            voter,
            alone,
        }
    }

    #[test]
    fn only_a_voter_that_does_not_lead_stands_and_only_when_due() {
        let now = Instant::now();
        let later = now + ms(50);
        let follower = seen(ServerState::Follower, true, false);
        assert_eq!(due(follower, now, later), Step::Wait);
        assert_eq!(due(follower, later, later), Step::Stand);
        let candidate = seen(ServerState::Candidate, true, false);
        assert_eq!(due(candidate, later, later), Step::Stand);
        assert_eq!(
            due(seen(ServerState::Leader, true, false), later, now),
            Step::Rearm
        );
        assert_eq!(
            due(seen(ServerState::Learner, false, false), later, now),
            Step::Rearm
        );
        assert_eq!(
            due(seen(ServerState::Follower, false, false), later, now),
            Step::Rearm
        );
    }

    #[test]
    fn a_lone_voter_stands_at_once_but_not_twice() {
        let now = Instant::now();
        let far = now + ms(10_000);
        assert_eq!(
            due(seen(ServerState::Follower, true, true), now, far),
            Step::Stand
        );
        assert_eq!(
            due(seen(ServerState::Candidate, true, true), far, now),
            Step::Wait
        );
    }
}
