//! Checks on Raft RPCs from peers, before openraft sees them.
//!
//! Only the cluster's servers can send these (the server's authentication layer sees to
//! that), but a bug or a compromised peer must still not be able to panic a node or corrupt
//! its disk: openraft trusts its input (a vote of term `u64::MAX` overflows inside it; a
//! snapshot that does not decode stops its core for good, and the node after every restart).
//! So every RPC is checked here first, and refused as a whole if anything is off:
//!
//! - terms are bounded (no real cluster reaches 2^48 elections) and never run ahead of the
//!   sender's own vote;
//! - a vote or append comes from a member of the current configuration;
//! - appended entries are consecutive after `prev_log_id`, and membership entries name
//!   voters with addresses;
//! - a snapshot arrives whole (one chunk), and decodes completely into a state whose last
//!   applied log id and membership are the ones its metadata claims.

use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};
use openraft::{BasicNode, EntryPayload, LogId, Membership};

use crate::TypeConfig;

/// No real cluster holds this many elections.
pub const MAX_TERM: u64 = 1 << 48;
/// No real log reaches this index.
pub const MAX_INDEX: u64 = 1 << 62;
/// The largest snapshot a server sends or installs (it travels in one request).
pub const MAX_SNAPSHOT_BYTES: u64 = 1024 * 1024 * 1024;

/// Why an RPC from a peer was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("refused Raft RPC: {0}")]
pub struct RpcRefused(pub String);

fn refuse(message: impl Into<String>) -> RpcRefused {
    RpcRefused(message.into())
}

/// Who may take part: the current configuration's voters and learners. A node that has no
/// configuration yet (a fresh server waiting to be contacted by the one that forms the group)
/// hears from any peer: only servers holding the cluster secret reach this check at all.
pub struct Members<'a>(pub &'a Membership<u64, BasicNode>);

impl Members<'_> {
    fn contains(&self, id: u64) -> bool {
        self.0.nodes().next().is_none() || self.0.get_node(&id).is_some()
    }
}

fn check_term(what: &str, term: u64) -> Result<(), RpcRefused> {
    if term >= MAX_TERM {
        return Err(refuse(format!(
            "{what} term {term} is beyond any real election count"
        )));
    }
    Ok(())
}

fn check_log_id(what: &str, id: &LogId<u64>, vote_term: u64) -> Result<(), RpcRefused> {
    check_term(what, id.leader_id.term)?;
    if id.leader_id.term > vote_term {
        return Err(refuse(format!(
            "{what} has term {} after the sender's own term {vote_term}",
            id.leader_id.term
        )));
    }
    if id.index >= MAX_INDEX {
        return Err(refuse(format!("{what} index {} is out of range", id.index)));
    }
    Ok(())
}

fn check_membership(what: &str, m: &Membership<u64, BasicNode>) -> Result<(), RpcRefused> {
    if m.voter_ids().next().is_none() {
        return Err(refuse(format!("{what} names no voter")));
    }
    for (id, node) in m.nodes() {
        let addr = &node.addr;
        let well_formed = !addr.is_empty()
            && addr.len() <= 255
            && addr
                .rsplit_once(':')
                .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
        if !well_formed {
            return Err(refuse(format!(
                "{what} gives node {id} the address '{}', not HOST:PORT",
                addr.chars().take(64).collect::<String>()
            )));
        }
    }
    Ok(())
}

/// A vote request.
pub fn check_vote(req: &VoteRequest<u64>, members: &Members<'_>) -> Result<(), RpcRefused> {
    let term = req.vote.leader_id.term;
    check_term("the vote's", term)?;
    if !members.contains(req.vote.leader_id.node_id) {
        return Err(refuse(format!(
            "node {} is not a member of this cluster",
            req.vote.leader_id.node_id
        )));
    }
    if let Some(last) = &req.last_log_id {
        check_log_id("the candidate's last log id", last, term)?;
    }
    Ok(())
}

/// An append-entries request (heartbeats included).
pub fn check_append(
    req: &AppendEntriesRequest<TypeConfig>,
    members: &Members<'_>,
) -> Result<(), RpcRefused> {
    let term = req.vote.leader_id.term;
    check_term("the leader's", term)?;
    if !members.contains(req.vote.leader_id.node_id) {
        return Err(refuse(format!(
            "node {} is not a member of this cluster",
            req.vote.leader_id.node_id
        )));
    }
    if let Some(prev) = &req.prev_log_id {
        check_log_id("prev_log_id", prev, term)?;
    }
    if let Some(commit) = &req.leader_commit {
        check_log_id("leader_commit", commit, term)?;
    }
    let first = req.prev_log_id.map_or(0, |p| p.index + 1);
    let mut last_term = req.prev_log_id.map_or(0, |p| p.leader_id.term);
    for (expected, entry) in (first..).zip(&req.entries) {
        check_log_id("an entry", &entry.log_id, term)?;
        if entry.log_id.index != expected {
            return Err(refuse(format!(
                "entries are not consecutive: index {} where {expected} was due",
                entry.log_id.index
            )));
        }
        if entry.log_id.leader_id.term < last_term {
            return Err(refuse("entry terms go backwards"));
        }
        last_term = entry.log_id.leader_id.term;
        if let EntryPayload::Membership(m) = &entry.payload {
            check_membership("a membership entry", m)?;
        }
    }
    Ok(())
}

/// An install-snapshot request: whole, and decoding into exactly what its metadata claims.
pub fn check_snapshot(req: &InstallSnapshotRequest<TypeConfig>) -> Result<(), RpcRefused> {
    let term = req.vote.leader_id.term;
    check_term("the leader's", term)?;
    if req.offset != 0 || !req.done {
        return Err(refuse(
            "a snapshot must arrive in one piece (offset 0, done)",
        ));
    }
    let Some(last) = &req.meta.last_log_id else {
        return Err(refuse("the snapshot's metadata has no last log id"));
    };
    check_log_id("the snapshot's last log id", last, term)?;
    check_membership(
        "the snapshot's membership",
        req.meta.last_membership.membership(),
    )?;
    let body = crate::state_machine::decode_snapshot(&req.data)
        .map_err(|e| refuse(format!("the snapshot does not decode: {e}")))?;
    if body.last_applied != req.meta.last_log_id {
        return Err(refuse(
            "the snapshot's data was taken at another log id than its metadata says",
        ));
    }
    if body.last_membership != req.meta.last_membership {
        return Err(refuse(
            "the snapshot's data holds another membership than its metadata says",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use berth_state::State;
    use openraft::{CommittedLeaderId, Entry, SnapshotMeta, StoredMembership, Vote};

    use super::*;
    use crate::Batch;
    use crate::state_machine::SnapshotBody;

    fn three() -> Membership<u64, BasicNode> {
        let nodes: BTreeMap<u64, BasicNode> = (1..=3)
            .map(|i| (i, BasicNode::new(format!("127.0.0.1:{}", 8000 + i))))
            .collect();
        Membership::new(vec![BTreeSet::from([1, 2, 3])], nodes)
    }

    fn log_id(term: u64, index: u64) -> LogId<u64> {
        LogId::new(CommittedLeaderId::new(term, 1), index)
    }

    fn entry(term: u64, index: u64, payload: EntryPayload<TypeConfig>) -> Entry<TypeConfig> {
        Entry {
            log_id: log_id(term, index),
            payload,
        }
    }

    fn append(
        term: u64,
        prev: Option<LogId<u64>>,
        entries: Vec<Entry<TypeConfig>>,
    ) -> AppendEntriesRequest<TypeConfig> {
        AppendEntriesRequest {
            vote: Vote::new_committed(term, 1),
            prev_log_id: prev,
            entries,
            leader_commit: prev,
        }
    }

    #[test]
    fn absurd_terms_and_strangers_are_refused() {
        let m = three();
        let members = Members(&m);
        let vote = |term, node| VoteRequest {
            vote: Vote::new(term, node),
            last_log_id: None,
        };
        assert!(check_vote(&vote(5, 2), &members).is_ok());
        assert!(
            check_vote(&vote(u64::MAX, 2), &members).is_err(),
            "u64::MAX panicked openraft"
        );
        assert!(check_vote(&vote(MAX_TERM, 2), &members).is_err());
        assert!(check_vote(&vote(5, 9), &members).is_err(), "not a member");
        let fresh = Membership::new(vec![], BTreeMap::<u64, BasicNode>::new());
        assert!(
            check_vote(&vote(5, 9), &Members(&fresh)).is_ok(),
            "a node without a configuration waits to be contacted"
        );
        let ahead = VoteRequest {
            vote: Vote::new(5, 2),
            last_log_id: Some(log_id(6, 10)),
        };
        assert!(
            check_vote(&ahead, &members).is_err(),
            "a log term after its own vote"
        );
        assert!(check_append(&append(u64::MAX, None, vec![]), &members).is_err());
    }

    #[test]
    fn entries_must_follow_on_and_memberships_must_be_sane() {
        let m = three();
        let members = Members(&m);
        let normal = |t, i| entry(t, i, EntryPayload::Normal(Batch { commands: vec![] }));
        let ok = append(3, Some(log_id(2, 4)), vec![normal(2, 5), normal(3, 6)]);
        assert!(check_append(&ok, &members).is_ok());
        let gap = append(3, Some(log_id(2, 4)), vec![normal(3, 6)]);
        assert!(check_append(&gap, &members).is_err());
        let backwards = append(3, Some(log_id(3, 4)), vec![normal(2, 5)]);
        assert!(check_append(&backwards, &members).is_err());
        let future = append(3, None, vec![normal(4, 0)]);
        assert!(check_append(&future, &members).is_err());
        let empty_voters = entry(
            3,
            0,
            EntryPayload::Membership(Membership::new(
                vec![BTreeSet::new()],
                BTreeMap::<u64, BasicNode>::new(),
            )),
        );
        assert!(check_append(&append(3, None, vec![empty_voters]), &members).is_err());
        let bad_addr = entry(
            3,
            0,
            EntryPayload::Membership(Membership::new(
                vec![BTreeSet::from([1])],
                BTreeMap::from([(1, BasicNode::new("evil/../x\"<>"))]),
            )),
        );
        assert!(check_append(&append(3, None, vec![bad_addr]), &members).is_err());
        let good = entry(3, 0, EntryPayload::Membership(three()));
        assert!(check_append(&append(3, None, vec![good]), &members).is_ok());
    }

    fn snapshot(data: Vec<u8>, last: Option<LogId<u64>>) -> InstallSnapshotRequest<TypeConfig> {
        InstallSnapshotRequest {
            vote: Vote::new_committed(3, 1),
            meta: SnapshotMeta {
                last_log_id: last,
                last_membership: StoredMembership::new(Some(log_id(1, 1)), three()),
                snapshot_id: "s".into(),
            },
            offset: 0,
            data,
            done: true,
        }
    }

    fn body(last: Option<LogId<u64>>) -> Vec<u8> {
        serde_json::to_vec(&SnapshotBody {
            last_applied: last,
            last_membership: StoredMembership::new(Some(log_id(1, 1)), three()),
            state: State::default().persist(),
        })
        .expect("json")
    }

    #[test]
    fn a_snapshot_installs_only_whole_and_as_described() {
        let last = Some(log_id(2, 7));
        assert!(check_snapshot(&snapshot(body(last), last)).is_ok());
        assert!(
            check_snapshot(&snapshot(vec![1, 2, 3, 4], last)).is_err(),
            "4 bytes of data stopped openraft's core for good"
        );
        assert!(check_snapshot(&snapshot(body(last), None)).is_err());
        assert!(check_snapshot(&snapshot(body(Some(log_id(2, 6))), last)).is_err());
        let mut chunk = snapshot(body(last), last);
        chunk.done = false;
        assert!(check_snapshot(&chunk).is_err());
        let mut later = snapshot(body(last), last);
        later.offset = 10;
        assert!(check_snapshot(&later).is_err());
        let mut absurd = snapshot(body(last), last);
        absurd.vote = Vote::new_committed(u64::MAX, 1);
        assert!(check_snapshot(&absurd).is_err());
    }
}
