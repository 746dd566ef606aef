//! What the replicated log measures about itself, for the server's `/metrics`.
//!
//! ```text
//!  batcher ── propose ─► committed + applied ── commit latency, commands per entry,
//!                                               placements and offers in the results
//!  log writer ── one durable redb transaction ── entries per fsync, its duration
//!  scrape ── openraft's metrics + file sizes ── term, leader, indexes, log and snapshot bytes
//! ```
//! Counters and histograms are recorded where the work happens; everything that is a level
//! (term, indexes, file sizes) is read when Prometheus asks, so nothing here runs between
//! scrapes. Placements are counted in the batcher's results because the leader's batcher sees
//! every write exactly once, whichever server took it and whichever scheduler (RunTask,
//! services, Mesos) planned it.

use std::path::PathBuf;

use berth_model::{CommandResult, Outcome};
use openraft::ServerState;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

use crate::BerthRaft;

/// A set of one label: a refused placement's ECS failure reason (`reason`: `RESOURCE:CPU`,
/// ...), a leadership transfer's `outcome`.
type OneLabel = [(&'static str, &'static str); 1];

/// How a leadership transfer this server led ended (the `outcome` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TransferOutcome {
    /// The target leads.
    HandedOver,
    /// Nothing was changed: the request could not be met.
    Refused,
    /// Started but did not end with the target leading.
    Failed,
}

impl TransferOutcome {
    fn label(self) -> &'static str {
        match self {
            TransferOutcome::HandedOver => "handed_over",
            TransferOutcome::Refused => "refused",
            TransferOutcome::Failed => "failed",
        }
    }
}

/// The log's counters and histograms; cheap to record into from any thread.
#[derive(Debug, Clone)]
pub struct RaftMetrics {
    commit_seconds: Histogram,
    entry_commands: Histogram,
    log_write_entries: Histogram,
    log_write_seconds: Histogram,
    placed: Counter,
    refused: Family<OneLabel, Counter>,
    offers: Counter,
    leader_changes: Counter,
    candidacies: Counter,
    transfers: Family<OneLabel, Counter>,
}

impl Default for RaftMetrics {
    fn default() -> Self {
        RaftMetrics {
            // 100 µs to ~3.3 s.
            commit_seconds: Histogram::new(exponential_buckets(0.0001, 2.0, 16)),
            // 1 to 1024 (the largest batch).
            entry_commands: Histogram::new(exponential_buckets(1.0, 2.0, 11)),
            log_write_entries: Histogram::new(exponential_buckets(1.0, 2.0, 11)),
            // 50 µs to ~1.6 s.
            log_write_seconds: Histogram::new(exponential_buckets(0.00005, 2.0, 16)),
            placed: Counter::default(),
            refused: Family::default(),
            offers: Counter::default(),
            leader_changes: Counter::default(),
            candidacies: Counter::default(),
            transfers: Family::default(),
        }
    }
}

impl RaftMetrics {
    /// An entry of `commands` commands was committed and applied `seconds` after it was
    /// proposed, with these results.
    pub(crate) fn committed(&self, commands: usize, seconds: f64, results: &[CommandResult]) {
        self.entry_commands.observe(commands as f64);
        self.commit_seconds.observe(seconds);
        for result in results {
            match result {
                Ok(Outcome::Placed(placed)) => {
                    self.placed.inc_by(placed.tasks.len() as u64);
                    for rejection in &placed.rejected {
                        self.refused
                            .get_or_create(&[("reason", rejection.reason.as_str())])
                            .inc();
                    }
                }
                Ok(Outcome::Offers(offers)) => {
                    self.offers.inc_by(offers.made.len() as u64);
                }
                _ => {}
            }
        }
    }

    /// The log writer made `entries` entries durable in one transaction (one fsync).
    pub(crate) fn log_written(&self, entries: usize, seconds: f64) {
        self.log_write_entries.observe(entries as f64);
        self.log_write_seconds.observe(seconds);
    }

    /// This node saw a new leader (or lost the one it knew).
    pub(crate) fn leader_changed(&self) {
        self.leader_changes.inc();
    }

    /// This node's election timer ran out and it stood for leader.
    pub(crate) fn stood(&self) {
        self.candidacies.inc();
    }

    /// A leadership transfer this server led (as the leader) ended so.
    pub(crate) fn transferred(&self, outcome: TransferOutcome) {
        self.transfers
            .get_or_create(&[("outcome", outcome.label())])
            .inc();
    }

    fn register(&self, registry: &mut Registry) {
        registry.register_with_unit(
            "berth_raft_commit_duration",
            "Time from proposing a Raft entry to its being committed and applied",
            Unit::Seconds,
            self.commit_seconds.clone(),
        );
        registry.register(
            "berth_raft_entry_commands",
            "Commands carried by one Raft entry (group commit in the batcher)",
            self.entry_commands.clone(),
        );
        registry.register(
            "berth_raft_log_write_entries",
            "Raft entries made durable by one log transaction (one fsync)",
            self.log_write_entries.clone(),
        );
        registry.register_with_unit(
            "berth_raft_log_write_duration",
            "Time one durable log transaction took, fsync included",
            Unit::Seconds,
            self.log_write_seconds.clone(),
        );
        registry.register(
            "berth_placements_committed",
            "Tasks placed by a committed PlaceTasks (RunTask, StartTask, services), counted by the leader",
            self.placed.clone(),
        );
        registry.register(
            "berth_placements_refused",
            "Planned placements the commit check refused, by ECS failure reason, counted by the leader",
            self.refused.clone(),
        );
        registry.register(
            "berth_mesos_offers",
            "Mesos offers made to frameworks, counted by the leader",
            self.offers.clone(),
        );
        registry.register(
            "berth_raft_leader_changes",
            "Times this server saw the Raft leader change (elections it observed)",
            self.leader_changes.clone(),
        );
        registry.register(
            "berth_raft_candidacies",
            "Times this server stood for leader (its election timer ran out without a leader)",
            self.candidacies.clone(),
        );
        registry.register(
            "berth_raft_leadership_transfers",
            "Leadership transfers this server led as the leader, by outcome (handed_over, \
             refused: nothing changed, failed: the target did not take over)",
            self.transfers.clone(),
        );
    }
}

/// Registers the log's metrics and the levels read at scrape time.
pub(crate) fn register(
    metrics: &RaftMetrics,
    raft: BerthRaft,
    data_dir: PathBuf,
    registry: &mut Registry,
) {
    metrics.register(registry);
    registry.register_collector(Box::new(Levels { raft, data_dir }));
}

/// Term, leadership, indexes and file sizes, read when scraped.
struct Levels {
    raft: BerthRaft,
    data_dir: PathBuf,
}

impl std::fmt::Debug for Levels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Levels")
            .field("data_dir", &self.data_dir)
            .finish()
    }
}

fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    value: i64,
) -> Result<(), std::fmt::Error> {
    let gauge = ConstGauge::new(value);
    gauge.encode(encoder.encode_descriptor(name, help, unit, gauge.metric_type())?)
}

impl Collector for Levels {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let m = self.raft.metrics().borrow().clone();
        let index = |id: Option<openraft::LogId<u64>>| id.map_or(0, |l| l.index as i64);
        let last_log = m.last_log_index.map_or(0, |i| i as i64);
        let purged = index(m.purged);
        let e = &mut encoder;
        gauge(
            e,
            "berth_raft_term",
            "The Raft term this server is in",
            None,
            m.current_term as i64,
        )?;
        gauge(
            e,
            "berth_raft_is_leader",
            "1 if this server leads its Raft group, else 0",
            None,
            i64::from(m.state == ServerState::Leader),
        )?;
        gauge(
            e,
            "berth_raft_has_leader",
            "1 if this server knows a leader, else 0",
            None,
            i64::from(m.current_leader.is_some()),
        )?;
        gauge(
            e,
            "berth_raft_last_log_index",
            "The last index in this server's log",
            None,
            last_log,
        )?;
        gauge(
            e,
            "berth_raft_applied_index",
            "The last index this server applied to its state",
            None,
            index(m.last_applied),
        )?;
        gauge(
            e,
            "berth_raft_snapshot_index",
            "The last index this server's newest snapshot holds",
            None,
            index(m.snapshot),
        )?;
        gauge(
            e,
            "berth_raft_log_entries",
            "Entries in this server's log (not yet purged after a snapshot)",
            None,
            (last_log - purged).max(0),
        )?;
        let membership = m.membership_config.membership();
        for (name, help, count) in [
            (
                "berth_raft_voters",
                "Voters in the Raft group's membership as this server knows it",
                membership.voter_ids().count(),
            ),
            (
                "berth_raft_learners",
                "Learners (servers catching up before they vote) in the membership",
                membership.learner_ids().count(),
            ),
        ] {
            gauge(e, name, help, None, count as i64)?;
        }
        gauge(
            e,
            "berth_raft_membership_changing",
            "1 while a membership change is in its joint phase (old and new voters both decide)",
            None,
            i64::from(membership.get_joint_config().len() > 1),
        )?;
        for (file, name, help) in [
            (
                "raft-log.redb",
                "berth_raft_log_file",
                "Size of the Raft log database on disk",
            ),
            (
                "raft-snapshot.redb",
                "berth_raft_snapshot_file",
                "Size of the snapshot database on disk",
            ),
        ] {
            let bytes = std::fs::metadata(self.data_dir.join(file)).map_or(0, |m| m.len() as i64);
            gauge(e, name, help, Some(&Unit::Bytes), bytes)?;
        }
        Ok(())
    }
}
