//! Leadership transfer (the Raft thesis, §3.10): the leader hands its office to a voter it
//! chooses instead of leaving the group to notice its absence — before an operator removes
//! it, in a rolling restart, or when a server is stopped with SIGTERM.
//!
//! openraft 0.9 has no transfer of its own, so berth builds one from what it does offer:
//!
//! ```text
//!  leader: close the gate ─► target holds the whole log ─► heartbeats off ─► leases lapse
//!          (writes, read indexes wait)                       (only with 4+ voters)
//!     ─► hold own election timer ─► TimeoutNow ─► target: trigger().elect() ─► new leader
//!     ─► heartbeats on, gate open (held writes meet ForwardToLeader and follow it)
//! ```
//!
//! 1. The leader holds new writes and read indexes at its door (`Node::write_local` and
//!    `Node::leader_read_index` pass a gate the transfer closes; those already under way
//!    finish first), so its log stops growing and no heartbeat round goes out.
//! 2. It waits until the target holds its whole log: the target must win a vote, and a voter
//!    grants one only to a log at least as long as its own.
//! 3. It stops sending heartbeats. openraft refuses a vote while the voter's leader lease
//!    runs (two election timeouts after the last append it accepted) and 0.9 has no way for a
//!    transfer's vote to skip that check. The old leader's own lease is the one it took
//!    office with, so with three voters the target's vote and the old leader's are a
//!    majority at once. With more, the target needs followers' votes too: the leader waits
//!    until enough followers' leases have certainly run out, from what its transport
//!    recorded of the calls that renew them ([`crate::lease`]), plus half an election
//!    timeout. The followers' own timers fire no sooner than a whole election timeout after
//!    their leases, so the target stands alone. The leader's own lease must have run out too
//!    (a leader elected a moment ago refuses like a follower).
//! 4. It holds its own election timer for as long as a follower would wait (granting the
//!    target's vote would otherwise rearm it to stand one election timeout later, with the
//!    same log) and tells the target to stand at once ([`crate::network::STAND_PATH`], the
//!    thesis's TimeoutNow). The target checks that the request comes from the leader it
//!    follows, in its term, and that it holds the log the leader saw it hold
//!    ([`check_stand`]), then asks openraft to elect it.
//! 5. The leader waits at most four election timeouts for a new leader, then sends
//!    heartbeats again and opens the gate: the held writes meet openraft's `ForwardToLeader`
//!    and follow the new leader as after any election, or are proposed here if the transfer
//!    failed.
//!
//! Until the target has been told to stand, a failure leaves the old leader leading and
//! nothing changed. Afterwards the target holds a higher term whatever happens, so the old
//! leader steps down at its next heartbeat even if the target dies; the error then says who
//! leads, if anyone yet.
//!
//! Whom to hand over to, and whether a target may stand, are pure decisions here ([`choose`],
//! [`check_stand`]); when the leases lapse is [`crate::lease`]'s; the `Node` methods below
//! are the shell around them. Every transfer a leader leads is counted by outcome
//! (`berth_raft_leadership_transfers`).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::election::Since;
use crate::lease::{self, Leases};
use crate::membership::Configuration;
use crate::metrics::TransferOutcome;
use crate::{Node, network};

/// Why leadership was not handed over.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum TransferError {
    /// The request cannot be met (an unknown server, a learner, nobody to hand over to);
    /// nothing was changed.
    #[error("{0}")]
    Refused(String),
    /// No leader is known to hand over from.
    #[error("no leader is known; retry once one is elected")]
    NoLeader,
    /// The transfer was started but did not end with the target leading; the message says
    /// who leads now.
    #[error("the leadership transfer did not complete: {0}")]
    Failed(String),
}

/// A completed transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Transferred {
    /// Who leads now.
    pub leader: u64,
    /// Who led when the transfer was asked for.
    pub previous: u64,
}

/// What a transfer asks for: a voter, or (`None`) the most up-to-date one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferRequest {
    pub to: Option<u64>,
}

/// The leader's TimeoutNow: stand for election now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StandRequest {
    /// The leader asking, and its term: a target follows only its own leader's request, so a
    /// stale one cannot depose a newer leader.
    pub leader: u64,
    pub term: u64,
    /// The leader's last log index, which the target must hold.
    pub last_log_index: Option<u64>,
}

/// Whom a transfer goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The asked-for server leads already: nothing to do.
    AlreadyLeads,
    Voter(u64),
}

/// Chooses the transfer's target from the leader's view: the configuration, and how far each
/// follower has replicated (`matched`, the last index the leader knows it holds; absent when
/// it knows none). Without `to`, the voter with the most log (the lowest id among equals),
/// which needs the least catching up.
pub fn choose(
    config: &Configuration,
    leader: u64,
    matched: &BTreeMap<u64, u64>,
    to: Option<u64>,
) -> Result<Target, TransferError> {
    let refuse = |why: String| Err(TransferError::Refused(why));
    match to {
        Some(id) if id == leader => Ok(Target::AlreadyLeads),
        Some(id) if config.voters.contains(&id) => Ok(Target::Voter(id)),
        Some(id) if config.nodes.contains_key(&id) => refuse(format!(
            "server {id} is a learner, not a voter: only a voter can lead"
        )),
        Some(id) => refuse(format!("there is no server {id} in the group")),
        None => config
            .voters
            .iter()
            .copied()
            .filter(|v| *v != leader)
            // Most log first (any known index above none), then the lowest id.
            .max_by_key(|v| (matched.get(v).copied(), std::cmp::Reverse(*v)))
            .map(Target::Voter)
            .ok_or_else(|| {
                TransferError::Refused(format!(
                    "server {leader} is the only voter: there is nobody to hand leadership to"
                ))
            }),
    }
}

/// What a server knows of itself when it is asked to stand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Following {
    pub id: u64,
    pub voter: bool,
    pub leader: Option<u64>,
    pub term: u64,
    pub last_log_index: Option<u64>,
}

/// Why a server will not stand for election when a leader asks it to. The leader answers
/// it as [`TransferError::Refused`] (by its message: that is what travels between servers).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StandRefusal {
    /// A learner cannot be elected.
    #[error("server {0} is not a voter")]
    NotAVoter(u64),
    /// The request comes from another leader or another term than this server follows (a
    /// stale request).
    #[error(
        "server {id} follows {leader:?} in term {term}, not server {asked_by} in term {asked_term}"
    )]
    Stale {
        id: u64,
        leader: Option<u64>,
        term: u64,
        asked_by: u64,
        asked_term: u64,
    },
    /// This server's log is behind the leader's: it could not win, and should not.
    #[error("server {id} holds the log to {held:?}, not to {wanted:?}")]
    Behind {
        id: u64,
        held: Option<u64>,
        wanted: Option<u64>,
    },
}

/// Whether a server may stand on `req`: it is a voter, follows the asking leader in the same
/// term, and holds the log that leader has.
pub fn check_stand(me: &Following, req: &StandRequest) -> Result<(), StandRefusal> {
    if !me.voter {
        return Err(StandRefusal::NotAVoter(me.id));
    }
    if me.leader != Some(req.leader) || me.term != req.term {
        return Err(StandRefusal::Stale {
            id: me.id,
            leader: me.leader,
            term: me.term,
            asked_by: req.leader,
            asked_term: req.term,
        });
    }
    if me.last_log_index < req.last_log_index {
        return Err(StandRefusal::Behind {
            id: me.id,
            held: me.last_log_index,
            wanted: req.last_log_index,
        });
    }
    Ok(())
}

/// Turns the leader's heartbeats back on when a transfer ends, however it ends.
struct Quiet<'a>(&'a crate::BerthRaft);

impl<'a> Quiet<'a> {
    fn new(raft: &'a crate::BerthRaft) -> Self {
        raft.runtime_config().heartbeat(false);
        Quiet(raft)
    }
}

impl Drop for Quiet<'_> {
    fn drop(&mut self) {
        self.0.runtime_config().heartbeat(true);
    }
}

impl Node {
    /// Hands leadership to `to` (or the most up-to-date voter): here when this node leads,
    /// else at the leader it knows. Answers once the new leader is known.
    pub async fn transfer_leadership(&self, to: Option<u64>) -> Result<Transferred, TransferError> {
        if self.is_leader() {
            return self.transfer_leadership_here(to).await;
        }
        let Some((_, addr)) = self.leader() else {
            return Err(TransferError::NoLeader);
        };
        network::transfer(&self.peers, &addr, &TransferRequest { to })
            .await
            .map_err(|e| TransferError::Failed(format!("the leader at {addr}: {}", e.reason())))?
    }

    /// Hands leadership on before this server stops, if it leads a group with another voter;
    /// `None` when there is nothing to hand over. Bounded by `within`.
    pub async fn hand_off(&self, within: Duration) -> Option<Result<Transferred, TransferError>> {
        if !self.is_leader() || self.configuration().voters.len() < 2 {
            return None;
        }
        let result = tokio::time::timeout(within, self.hand_over(None))
            .await
            .unwrap_or_else(|_| {
                Err(TransferError::Failed(format!(
                    "no new leader within {within:?}"
                )))
            });
        self.count_transfer(&result);
        Some(result)
    }

    /// The leader's side of a transfer (see the module docs): never forwarded again.
    pub async fn transfer_leadership_here(
        &self,
        to: Option<u64>,
    ) -> Result<Transferred, TransferError> {
        let result = self.hand_over(to).await;
        self.count_transfer(&result);
        result
    }

    /// Counts a transfer this node was asked to lead; asking the leader for itself is none.
    fn count_transfer(&self, result: &Result<Transferred, TransferError>) {
        let outcome = match result {
            Ok(t) if t.leader == t.previous => return,
            Ok(_) => TransferOutcome::HandedOver,
            Err(TransferError::Refused(_)) => TransferOutcome::Refused,
            Err(TransferError::NoLeader | TransferError::Failed(_)) => TransferOutcome::Failed,
        };
        self.metrics.transferred(outcome);
    }

    async fn hand_over(&self, to: Option<u64>) -> Result<Transferred, TransferError> {
        let me = self.id;
        if !self.is_leader() {
            return Err(TransferError::Failed(format!(
                "server {me} no longer leads"
            )));
        }
        let config = self.configuration();
        let target = match choose(&config, me, &self.matched(), to)? {
            Target::AlreadyLeads => {
                return Ok(Transferred {
                    leader: me,
                    previous: me,
                });
            }
            Target::Voter(id) => id,
        };
        let addr = config.nodes.get(&target).cloned().unwrap_or_default();
        let still = |why: String| TransferError::Failed(format!("{why}; server {me} still leads"));
        let bound = self.timing.write_timeout;

        // 1. No new writes or read indexes; those under way finish.
        let _held = tokio::time::timeout(bound, self.gate.write())
            .await
            .map_err(|_| still(format!("writes in flight did not commit within {bound:?}")))?;
        // 2. The target holds the whole log.
        let last = self.raft.metrics().borrow().last_log_index;
        let mut metrics = self.raft.metrics();
        let caught_up = tokio::time::timeout(
            bound,
            metrics.wait_for(|m| self.matched_by(m).get(&target).copied() >= last),
        )
        .await
        .is_ok_and(|seen| seen.is_ok());
        if !caught_up {
            return Err(still(format!(
                "server {target} did not catch up with the log within {bound:?}"
            )));
        }
        // 3. Quiet, until enough leases have run out for the target to win.
        let _quiet = Quiet::new(&self.raft);
        let within = self.timing.election_timeout * 4;
        let others: Vec<u64> = config
            .voters
            .iter()
            .copied()
            .filter(|v| *v != me && *v != target)
            .collect();
        if tokio::time::timeout(within, self.leases_lapse(&others, config.voters.len()))
            .await
            .is_err()
        {
            return Err(still(format!(
                "the followers' leader leases did not run out within {within:?}"
            )));
        }
        // 4. Hold back, then TimeoutNow.
        self.election.hold();
        let term = self.raft.metrics().borrow().current_term;
        let stand = StandRequest {
            leader: me,
            term,
            last_log_index: last,
        };
        match tokio::time::timeout(within, network::stand(&self.peers, &addr, &stand)).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(refused))) => return Err(still(format!("server {target}: {refused}"))),
            Ok(Err(unreached)) => {
                return Err(still(format!(
                    "server {target} at {addr} could not be asked to stand: {}",
                    unreached.reason()
                )));
            }
            Err(_) => {
                return Err(still(format!(
                    "server {target} at {addr} did not answer within {within:?}"
                )));
            }
        }
        // 5. A new leader.
        let moved = metrics.wait_for(|m| m.current_leader.is_some_and(|l| l != me));
        let _ = tokio::time::timeout(within, moved).await;
        if metrics.borrow().current_leader.is_none() {
            // This server stepped down and an election is under way (a loaded host can make
            // it take longer than one bound): wait one more for its outcome, so the answer
            // names who leads rather than "nobody yet".
            let known = metrics.wait_for(|m| m.current_leader.is_some());
            let _ = tokio::time::timeout(within, known).await;
        }
        let leader = metrics.borrow().current_leader;
        match leader {
            Some(l) if l == target => {
                tracing::info!(to = target, "handed leadership over");
                Ok(Transferred {
                    leader: target,
                    previous: me,
                })
            }
            Some(l) if l != me => Err(TransferError::Failed(format!(
                "server {l} took over instead of server {target}"
            ))),
            Some(_) => Err(still(format!(
                "server {target} did not take over within {within:?}"
            ))),
            None => Err(TransferError::Failed(format!(
                "server {target} did not take over within {within:?}; server {me} stepped \
                 down and no leader is known yet"
            ))),
        }
    }

    /// Waits (heartbeats off, the gate closed) until this leader's own lease and those of
    /// enough of `others` (the voters but this node and the target, in a group of `voters`)
    /// have run out, plus half an election timeout: then the target's vote request is
    /// granted by a majority, and no follower's timer has fired yet (see the module docs).
    async fn leases_lapse(&self, others: &[u64], voters: usize) {
        let lease = self.timing.election_timeout * 2;
        let margin = self.timing.election_timeout / 2;
        let poll = self.timing.heartbeat / 5;
        let needed = lease::needed_from_followers(voters);
        // A leader's vote changes only when it stops leading, which ends the transfer anyway.
        let own = self
            .raft
            .with_raft_state(|s| s.vote_last_modified())
            .await
            .ok()
            .flatten()
            .map(|took_office| took_office + lease);
        loop {
            let contacts = others.iter().map(|peer| self.peers.contact(*peer));
            let followers = match lease::lapses(contacts, needed, lease) {
                Leases::Renewing => {
                    tokio::time::sleep(poll).await;
                    continue;
                }
                Leases::Lapsed => None,
                Leases::LapseAt(end) => Some(end + margin),
            };
            match own.max(followers) {
                // A call made meanwhile moves it: look again then.
                Some(ready) if ready > Instant::now() => tokio::time::sleep_until(ready).await,
                _ => return,
            }
        }
    }

    /// The target's side: stand for election now, if the request is its leader's.
    pub(crate) async fn stand(&self, req: StandRequest) -> Result<(), TransferError> {
        // The log the leader saw acknowledged may reach this node's metrics a moment later.
        let mut metrics = self.raft.metrics();
        let _ = tokio::time::timeout(
            self.timing.heartbeat,
            metrics.wait_for(|m| m.last_log_index >= req.last_log_index),
        )
        .await;
        let me = {
            let m = metrics.borrow();
            Following {
                id: self.id,
                voter: m
                    .membership_config
                    .membership()
                    .voter_ids()
                    .any(|v| v == self.id),
                leader: m.current_leader,
                term: m.current_term,
                last_log_index: m.last_log_index,
            }
        };
        check_stand(&me, &req).map_err(|e| TransferError::Refused(e.to_string()))?;
        self.election.rearm(Since::Election);
        self.metrics.stood();
        self.raft
            .trigger()
            .elect()
            .await
            .map_err(|e| TransferError::Failed(e.to_string()))
    }

    /// How far each follower has replicated, as this leader knows it.
    fn matched(&self) -> BTreeMap<u64, u64> {
        self.matched_by(&self.raft.metrics().borrow())
    }

    fn matched_by(
        &self,
        m: &openraft::RaftMetrics<u64, openraft::BasicNode>,
    ) -> BTreeMap<u64, u64> {
        m.replication
            .iter()
            .flatten()
            .filter_map(|(id, log)| Some((*id, log.as_ref()?.index)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(voters: &[u64], learners: &[u64]) -> Configuration {
        Configuration {
            nodes: voters
                .iter()
                .chain(learners)
                .map(|i| (*i, format!("10.0.0.{i}:8642")))
                .collect(),
            voters: voters.iter().copied().collect(),
        }
    }

    fn refused(r: Result<Target, TransferError>) -> String {
        match r {
            Err(TransferError::Refused(why)) => why,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn a_named_voter_is_the_target_and_the_leader_itself_is_nothing_to_do() {
        let g = group(&[1, 2, 3], &[]);
        let none = BTreeMap::new();
        assert_eq!(choose(&g, 1, &none, Some(3)), Ok(Target::Voter(3)));
        assert_eq!(choose(&g, 1, &none, Some(1)), Ok(Target::AlreadyLeads));
    }

    #[test]
    fn learners_and_strangers_cannot_lead() {
        let g = group(&[1, 2, 3], &[4]);
        let none = BTreeMap::new();
        let why = refused(choose(&g, 1, &none, Some(4)));
        assert!(why.contains("server 4 is a learner"), "{why}");
        let why = refused(choose(&g, 1, &none, Some(9)));
        assert!(why.contains("no server 9"), "{why}");
    }

    #[test]
    fn without_a_name_the_voter_with_the_most_log_is_chosen() {
        let g = group(&[1, 2, 3, 4], &[5]);
        // The learner has the most, but cannot lead; 3 has more than 2; 4 is unknown.
        let matched = BTreeMap::from([(2, 10), (3, 12), (5, 40)]);
        assert_eq!(choose(&g, 1, &matched, None), Ok(Target::Voter(3)));
        // Equals: the lowest id.
        let matched = BTreeMap::from([(2, 12), (3, 12), (4, 12)]);
        assert_eq!(choose(&g, 1, &matched, None), Ok(Target::Voter(2)));
        // Nothing known yet: still a voter, never the leader.
        assert_eq!(choose(&g, 1, &BTreeMap::new(), None), Ok(Target::Voter(2)));
        // Index 0 counts as known, above unknown.
        let matched = BTreeMap::from([(4, 0)]);
        assert_eq!(choose(&g, 1, &matched, None), Ok(Target::Voter(4)));
    }

    #[test]
    fn a_lone_voter_has_nobody_to_hand_over_to() {
        let why = refused(choose(&group(&[1], &[2]), 1, &BTreeMap::new(), None));
        assert!(why.contains("only voter"), "{why}");
    }

    fn following() -> Following {
        Following {
            id: 2,
            voter: true,
            leader: Some(1),
            term: 5,
            last_log_index: Some(40),
        }
    }

    fn asked(leader: u64, term: u64, last: Option<u64>) -> StandRequest {
        StandRequest {
            leader,
            term,
            last_log_index: last,
        }
    }

    #[test]
    fn a_follower_stands_only_for_its_own_leader_in_its_term_with_the_whole_log() {
        assert_eq!(check_stand(&following(), &asked(1, 5, Some(40))), Ok(()));
        assert_eq!(check_stand(&following(), &asked(1, 5, Some(39))), Ok(()));
        let why = check_stand(&following(), &asked(1, 5, Some(41))).unwrap_err();
        assert!(why.to_string().contains("holds the log to"), "{why}");
        // A stale request: another leader, or an older term.
        assert!(check_stand(&following(), &asked(3, 5, Some(40))).is_err());
        assert!(check_stand(&following(), &asked(1, 4, Some(40))).is_err());
        let learner = Following {
            voter: false,
            ..following()
        };
        let why = check_stand(&learner, &asked(1, 5, Some(40))).unwrap_err();
        assert!(why.to_string().contains("not a voter"), "{why}");
    }

    #[test]
    fn requests_travel_as_json() {
        let json = serde_json::to_value(asked(1, 5, Some(40))).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"leader": 1, "term": 5, "lastLogIndex": 40})
        );
        let back: TransferRequest = serde_json::from_str(r#"{"to":null}"#).unwrap();
        assert_eq!(back, TransferRequest { to: None });
    }
}
