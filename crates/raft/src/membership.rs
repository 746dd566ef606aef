//! Who is in the group, changed at run time: a new server joins as a learner, catches up (from
//! a snapshot when the log it needs was purged), and only then becomes a voter; a voter is
//! removed by an operator. Both go through openraft's joint consensus.
//!
//! What may change is decided here, purely, over the current configuration and the voters
//! that are caught up ([`check`]); [`crate::Node::change_membership`] is the thin shell that
//! gathers those facts on the leader and calls openraft. The rules:
//!
//! - a server joins under an id and an address of its own: an id that is already a voter is
//!   refused (a voter that lost its disk must be removed and join again under a new id, or it
//!   could vote twice in one term), and so is an address another member uses;
//! - the last voter cannot be removed;
//! - removing a voter must leave a quorum of the remaining voters caught up, or the group
//!   would stop taking writes the moment the change commits — unless the operator forces it.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// A change to the group's membership.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "camelCase")]
pub enum MembershipChange {
    /// A server joins: added as a learner, caught up, then promoted to voter. A learner that
    /// is already a member (a join that stopped half way) is promoted.
    #[serde(rename_all = "camelCase")]
    AddVoter { id: u64, addr: String },
    /// A voter leaves the group. `force` skips the check that a quorum of the remaining
    /// voters is caught up.
    #[serde(rename_all = "camelCase")]
    RemoveVoter {
        id: u64,
        #[serde(default)]
        force: bool,
    },
}

/// One server of the group as this node sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    pub id: u64,
    pub addr: String,
    /// A voter (else a learner, which receives the log but does not vote).
    pub voter: bool,
    pub leader: bool,
    /// The last log index the leader knows this member holds (on the leader only).
    pub matched: Option<u64>,
}

/// Why a membership change was not made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum MembershipError {
    /// The change breaks a rule (see the module docs); nothing was changed.
    #[error("{0}")]
    Refused(String),
    /// No leader is known to carry it out.
    #[error("no leader is known; retry once one is elected")]
    NoLeader,
    /// The change was started but did not finish (the leader lost its quorum or leadership,
    /// or the new server did not catch up in time); the configuration may be in between.
    #[error("the membership change did not complete: {0}")]
    Failed(String),
}

/// The configuration a change is checked against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Configuration {
    /// Every member (voters and learners) and its address.
    pub nodes: BTreeMap<u64, String>,
    pub voters: BTreeSet<u64>,
}

/// Whether `change` may be made to `config`, given the voters that are caught up with the
/// leader (`caught_up`, the leader included). `Ok(false)` means there is nothing to do.
pub fn check(
    config: &Configuration,
    caught_up: &BTreeSet<u64>,
    change: &MembershipChange,
) -> Result<bool, MembershipError> {
    let refuse = |why: String| Err(MembershipError::Refused(why));
    match change {
        MembershipChange::AddVoter { id, addr } => {
            if !is_host_port(addr) {
                return refuse(format!("'{addr}' is not HOST:PORT"));
            }
            if let Some((other, _)) = config.nodes.iter().find(|(i, a)| *a == addr && *i != id) {
                return refuse(format!("node {other} already uses the address {addr}"));
            }
            if config.voters.contains(id) {
                return refuse(format!(
                    "node {id} is already a voter; a server that lost its disk must be removed \
                     (remove-peer {id}) and join under a new id"
                ));
            }
            match config.nodes.get(id) {
                Some(known) if known != addr => refuse(format!(
                    "node {id} is a learner at {known}, not {addr}; remove it first"
                )),
                _ => Ok(true),
            }
        }
        MembershipChange::RemoveVoter { id, force } => {
            if !config.voters.contains(id) {
                return refuse(format!("node {id} is not a voter"));
            }
            if config.voters.len() == 1 {
                return refuse(format!("node {id} is the last voter"));
            }
            let remaining: BTreeSet<u64> =
                config.voters.iter().copied().filter(|v| v != id).collect();
            let healthy = remaining.intersection(caught_up).count();
            let quorum = remaining.len() / 2 + 1;
            if healthy < quorum && !force {
                return refuse(format!(
                    "removing node {id} leaves {} voters of which {healthy} are caught up, and \
                     a quorum of them is {quorum}: writes would stop; force it if the others \
                     are coming back",
                    remaining.len()
                ));
            }
            Ok(true)
        }
    }
}

fn is_host_port(addr: &str) -> bool {
    addr.len() <= 255
        && addr.rsplit_once(':').is_some_and(|(host, port)| {
            !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn three() -> Configuration {
        Configuration {
            nodes: (1..=3).map(|i| (i, format!("10.0.0.{i}:8642"))).collect(),
            voters: (1..=3).collect(),
        }
    }

    fn ids(of: &[u64]) -> BTreeSet<u64> {
        of.iter().copied().collect()
    }

    fn refused(result: Result<bool, MembershipError>) -> String {
        match result {
            Err(MembershipError::Refused(why)) => why,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    fn add(id: u64, addr: &str) -> MembershipChange {
        MembershipChange::AddVoter {
            id,
            addr: addr.into(),
        }
    }

    fn remove(id: u64, force: bool) -> MembershipChange {
        MembershipChange::RemoveVoter { id, force }
    }

    #[test]
    fn a_new_server_joins_under_its_own_id_and_address() {
        let all = ids(&[1, 2, 3]);
        assert_eq!(check(&three(), &all, &add(4, "10.0.0.4:8642")), Ok(true));
        let why = refused(check(&three(), &all, &add(3, "10.0.0.9:8642")));
        assert!(
            why.contains("already a voter") && why.contains("new id"),
            "{why}"
        );
        let why = refused(check(&three(), &all, &add(4, "10.0.0.2:8642")));
        assert!(why.contains("node 2 already uses"), "{why}");
        for bad in ["", "nohost", ":8642", "host:", "host:0", "host:99999"] {
            refused(check(&three(), &all, &add(4, bad)));
        }
    }

    #[test]
    fn a_learner_left_half_way_is_promoted_at_its_own_address_only() {
        let mut config = three();
        config.nodes.insert(4, "10.0.0.4:8642".into());
        let all = ids(&[1, 2, 3]);
        assert_eq!(check(&config, &all, &add(4, "10.0.0.4:8642")), Ok(true));
        let why = refused(check(&config, &all, &add(4, "10.0.0.5:8642")));
        assert!(why.contains("learner at 10.0.0.4:8642"), "{why}");
    }

    #[test]
    fn removal_keeps_a_caught_up_quorum_unless_forced() {
        // Node 3 is dead: removing it leaves {1, 2}, both caught up.
        let live = ids(&[1, 2]);
        assert_eq!(check(&three(), &live, &remove(3, false)), Ok(true));
        // Removing live node 2 instead leaves {1, 3} with only 1 caught up: no quorum.
        let why = refused(check(&three(), &live, &remove(2, false)));
        assert!(
            why.contains("1 are caught up") && why.contains("quorum"),
            "{why}"
        );
        assert_eq!(check(&three(), &live, &remove(2, true)), Ok(true));
    }

    #[test]
    fn the_last_voter_and_non_voters_cannot_be_removed() {
        let one = Configuration {
            nodes: BTreeMap::from([(1, "a:1".into())]),
            voters: ids(&[1]),
        };
        let why = refused(check(&one, &ids(&[1]), &remove(1, true)));
        assert!(why.contains("last voter"), "{why}");
        let why = refused(check(&three(), &ids(&[1, 2, 3]), &remove(7, false)));
        assert!(why.contains("not a voter"), "{why}");
    }

    #[test]
    fn changes_travel_as_tagged_json() {
        let json = serde_json::to_value(remove(3, true)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"change": "removeVoter", "id": 3, "force": true})
        );
        let back: MembershipChange =
            serde_json::from_str(r#"{"change":"addVoter","id":4,"addr":"h:1"}"#).unwrap();
        assert_eq!(back, add(4, "h:1"));
    }
}
