//! Whether each peer answers, told in the log once per change rather than once per retry.
//!
//! A leader retries a peer that does not answer every heartbeat (`network::Peer::backoff`),
//! and openraft logs every failed attempt several times (the replication error, the RPC
//! error, the progress error, the backoff, at warn and error): with one of three servers dead
//! the leader wrote some 20 lines a second, burying everything else. So berth's transport keeps
//! the story instead: each call's outcome goes through [`observe`], which reports a peer
//! lost once (after [`LOST_AFTER`] failures in a row, so one slow answer on a busy machine is
//! not news), then a reminder with a count every [`REMIND_EVERY`], and once when it answers
//! again. openraft's own lines about unanswered calls (and the backoff after them) are
//! dropped by [`QuietRetries`], a `tracing` layer the binary installs; its other warnings and
//! errors pass.
//!
//! [`observe`] is pure, with the time as an input; `network::Peer` is the shell that reads
//! the clock and writes the lines.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

/// Failures in a row before a peer is reported lost.
pub(crate) const LOST_AFTER: u64 = 3;
/// How often a lost peer is reported again.
pub(crate) const REMIND_EVERY: Duration = Duration::from_secs(30);

/// What one call to a peer found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Seen {
    /// The peer answered (whatever it said).
    Answered,
    /// No answer: refused, reset, timed out; why.
    Failed(String),
}

/// What this node knows of one peer's reachability.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct PeerReach {
    /// Failures since the last answer.
    failures: u64,
    /// Since when the peer has been reported lost, and the last report.
    lost: Option<Lost>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Lost {
    since: Instant,
    reported: Instant,
    /// `failures` at the last report.
    reported_failures: u64,
}

/// A line to log about a peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Report {
    /// It stopped answering.
    Lost { error: String },
    /// It still does not answer: `failed` more attempts since the last report.
    StillLost {
        error: String,
        failed: u64,
        for_: Duration,
    },
    /// It answers again, after `failed` attempts over `after`.
    Back { failed: u64, after: Duration },
}

/// Records `seen` at `now`; the line to log, if any.
pub(crate) fn observe(peer: &mut PeerReach, seen: Seen, now: Instant) -> Option<Report> {
    match seen {
        Seen::Answered => {
            let report = peer.lost.map(|lost| Report::Back {
                failed: peer.failures,
                after: now.saturating_duration_since(lost.since),
            });
            *peer = PeerReach::default();
            report
        }
        Seen::Failed(error) => {
            peer.failures += 1;
            match &mut peer.lost {
                None if peer.failures >= LOST_AFTER => {
                    peer.lost = Some(Lost {
                        since: now,
                        reported: now,
                        reported_failures: peer.failures,
                    });
                    Some(Report::Lost { error })
                }
                None => None,
                Some(lost) if now.saturating_duration_since(lost.reported) >= REMIND_EVERY => {
                    let failed = peer.failures - lost.reported_failures;
                    lost.reported = now;
                    lost.reported_failures = peer.failures;
                    Some(Report::StillLost {
                        error,
                        failed,
                        for_: now.saturating_duration_since(lost.since),
                    })
                }
                Some(_) => None,
            }
        }
    }
}

/// Whether a log line's text is about a call that was not answered: openraft's renderings of
/// an unreachable peer and of a call that timed out, and its note of the pause before the next
/// attempt (written only after an unreachable peer).
pub(crate) fn is_retry_noise(text: &str) -> bool {
    text.contains("Unreachable node:")
        || text.contains("timeout after ")
        || text.contains("backoff mode: drain events")
}

/// A `tracing` layer that drops openraft's warnings and errors about calls to peers that did
/// not answer, and the backoff after them: berth's transport reports those itself, once per
/// change (module docs).
#[derive(Debug, Clone, Copy, Default)]
pub struct QuietRetries;

impl<S: Subscriber> Layer<S> for QuietRetries {
    fn event_enabled(&self, event: &Event<'_>, _ctx: Context<'_, S>) -> bool {
        let meta = event.metadata();
        // More verbose than WARN compares greater.
        if !meta.target().starts_with("openraft") || *meta.level() > Level::WARN {
            return true;
        }
        let mut text = Text::default();
        event.record(&mut text);
        !is_retry_noise(&text.0)
    }
}

/// An event's fields as one string.
#[derive(Default)]
struct Text(String);

impl Visit for Text {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, "{}={value:?} ", field.name());
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        let _ = write!(self.0, "{}={value} ", field.name());
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use openraft::RPCTypes;
    use openraft::error::{RPCError, Timeout, Unreachable};
    use tracing_subscriber::prelude::*;

    use super::*;

    fn failed() -> Seen {
        Seen::Failed("connection refused".into())
    }

    #[test]
    fn a_peer_is_reported_lost_once_then_reminded_with_a_count_then_back_once() {
        let t0 = Instant::now();
        let mut peer = PeerReach::default();
        let ms = Duration::from_millis;
        // A blip is not news.
        assert_eq!(observe(&mut peer, failed(), t0), None);
        assert_eq!(observe(&mut peer, failed(), t0 + ms(50)), None);
        let lost = observe(&mut peer, failed(), t0 + ms(100));
        assert!(matches!(lost, Some(Report::Lost { .. })), "{lost:?}");
        // Retries every 50 ms for just under the reminder period: silence.
        let mut at = t0 + ms(100);
        let mut lines = 0;
        for _ in 0..599 {
            at += ms(50);
            lines += usize::from(observe(&mut peer, failed(), at).is_some());
        }
        assert_eq!(lines, 0);
        at += ms(50);
        assert_eq!(
            observe(&mut peer, failed(), at),
            Some(Report::StillLost {
                error: "connection refused".into(),
                failed: 600,
                for_: Duration::from_secs(30),
            })
        );
        assert_eq!(observe(&mut peer, failed(), at + ms(50)), None);
        assert_eq!(
            observe(&mut peer, Seen::Answered, at + ms(100)),
            Some(Report::Back {
                failed: 604,
                after: Duration::from_millis(30_100),
            })
        );
        assert_eq!(peer, PeerReach::default());
        assert_eq!(observe(&mut peer, Seen::Answered, at + ms(150)), None);
    }

    #[test]
    fn an_answer_between_failures_starts_the_count_again() {
        let t0 = Instant::now();
        let mut peer = PeerReach::default();
        for _ in 0..LOST_AFTER - 1 {
            assert_eq!(observe(&mut peer, failed(), t0), None);
        }
        assert_eq!(observe(&mut peer, Seen::Answered, t0), None);
        for _ in 0..LOST_AFTER - 1 {
            assert_eq!(observe(&mut peer, failed(), t0), None);
        }
    }

    /// Counts the events that reach the layers below `QuietRetries`.
    #[derive(Clone, Default)]
    struct Count(Arc<Mutex<Vec<String>>>);

    impl<S: Subscriber> Layer<S> for Count {
        fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
            let mut text = Text::default();
            event.record(&mut text);
            self.0.lock().unwrap().push(text.0);
        }
    }

    #[test]
    fn openraft_lines_about_unanswered_calls_are_dropped_and_others_pass() {
        let count = Count::default();
        let subscriber = tracing_subscriber::registry()
            .with(QuietRetries)
            .with(count.clone());
        let unreachable: RPCError<u64, openraft::BasicNode> =
            RPCError::Unreachable(Unreachable::new(&std::io::Error::other("refused")));
        let timeout: RPCError<u64, openraft::BasicNode> = RPCError::Timeout(Timeout {
            action: RPCTypes::AppendEntries,
            id: 1,
            target: 3,
            timeout: Duration::from_millis(50),
        });
        tracing::subscriber::with_default(subscriber, || {
            // As openraft's replication and progress handlers write them.
            tracing::warn!(target: "openraft::replication", error = %unreachable, "error replication to target=3");
            tracing::error!(target: "openraft::replication", err = %timeout, "RPCError");
            tracing::warn!(target: "openraft::engine", "heartbeat error: {}, no update", unreachable);
            tracing::warn!(target: "openraft::replication", interval = ?Duration::from_millis(50), "ReplicationCore::backoff_drain_events backoff mode: drain events without processing them");
            // Passed: openraft's other warnings, and anyone else's lines.
            tracing::warn!(target: "openraft::core", "storage error: disk full");
            tracing::info!(target: "openraft::replication", error = %unreachable, "info passes");
            tracing::warn!(target: "berth_raft::network", error = %unreachable, "berth's own");
        });
        let seen = count.0.lock().unwrap().clone();
        assert_eq!(seen.len(), 3, "{seen:#?}");
        assert!(seen[0].contains("disk full"), "{seen:#?}");
    }
}
