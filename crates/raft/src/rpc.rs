//! The serving side of the calls between servers (`network` is the calling side): Raft's
//! own RPCs, forwarded writes, read barriers and membership changes, each a JSON body in and
//! a JSON body out. The HTTP server only authenticates the caller as a peer and hands the
//! path and body here, so everything that knows openraft's types stays in this crate.
//!
//! Every request is decoded whole and checked (`rpc_check`, the API's validation for a
//! forwarded command) before openraft sees it; anything off is refused with a 400 and
//! changes nothing.

use serde::Serialize;
use serde::de::DeserializeOwned;

use berth_model::Stamped;
use openraft::raft::AppendEntriesResponse;

use crate::election::Since;

use crate::network::{
    APPEND_PATH, JOIN_PATH, MEMBERSHIP_PATH, READ_INDEX_PATH, SNAPSHOT_PATH, STAND_PATH,
    TRANSFER_PATH, VOTE_PATH, WRITE_PATH,
};
use crate::transfer::TransferRequest;
use crate::{MembershipChange, MembershipError, Node};

/// Every path [`Node::serve_peer`] answers.
pub const PATHS: [&str; 9] = [
    APPEND_PATH,
    VOTE_PATH,
    SNAPSHOT_PATH,
    WRITE_PATH,
    READ_INDEX_PATH,
    MEMBERSHIP_PATH,
    JOIN_PATH,
    TRANSFER_PATH,
    STAND_PATH,
];

/// An answer to a peer: an HTTP status and a JSON body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerAnswer {
    pub status: u16,
    pub body: Vec<u8>,
}

impl PeerAnswer {
    fn json<T: Serialize>(value: &T) -> PeerAnswer {
        match serde_json::to_vec(value) {
            Ok(body) => PeerAnswer { status: 200, body },
            Err(e) => PeerAnswer::refused(500, format!("could not encode the answer: {e}")),
        }
    }

    fn refused(status: u16, message: impl std::fmt::Display) -> PeerAnswer {
        PeerAnswer {
            status,
            body: serde_json::json!({ "message": message.to_string() })
                .to_string()
                .into_bytes(),
        }
    }
}

fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, PeerAnswer> {
    serde_json::from_slice(body).map_err(|e| PeerAnswer::refused(400, format!("unreadable: {e}")))
}

impl Node {
    /// Answers a call from a peer to `path` (one of [`PATHS`]; anything else is a 404).
    pub async fn serve_peer(&self, path: &str, body: &[u8]) -> PeerAnswer {
        self.serve(path, body)
            .await
            .unwrap_or_else(|refused| refused)
    }

    async fn serve(&self, path: &str, body: &[u8]) -> Result<PeerAnswer, PeerAnswer> {
        let refuse = |e: &dyn std::fmt::Display| PeerAnswer::refused(400, e);
        Ok(match path {
            APPEND_PATH => {
                let req = decode(body)?;
                self.check_append(&req).map_err(|e| refuse(&e))?;
                let answer = self.raft.append_entries(req).await;
                if matches!(answer, Ok(ref a) if !matches!(a, AppendEntriesResponse::HigherVote(_)))
                {
                    self.election.rearm(Since::Leader);
                }
                PeerAnswer::json(&answer)
            }
            VOTE_PATH => {
                let req = decode(body)?;
                self.check_vote(&req).map_err(|e| refuse(&e))?;
                let answer = self.raft.vote(req).await;
                if matches!(answer, Ok(ref granted) if granted.vote_granted) {
                    self.election.rearm(Since::Election);
                }
                PeerAnswer::json(&answer)
            }
            SNAPSHOT_PATH => {
                let req = decode(body)?;
                crate::rpc_check::check_snapshot(&req).map_err(|e| refuse(&e))?;
                let from = req.vote;
                let answer = self.raft.install_snapshot(req).await;
                if matches!(answer, Ok(ref accepted) if accepted.vote == from) {
                    self.election.rearm(Since::Leader);
                }
                PeerAnswer::json(&answer)
            }
            // A write forwarded by a follower: checked as the API would, and proposed here
            // only (never forwarded again).
            WRITE_PATH => {
                let command: Stamped = decode(body)?;
                berth_model::validate::command::check(&command.command).map_err(|e| refuse(&e))?;
                PeerAnswer::json(&self.write_local(command).await)
            }
            // A follower's read barrier: this leader's read index, confirmed with a quorum.
            READ_INDEX_PATH => PeerAnswer::json(&self.leader_read_index().await),
            // A change forwarded by a follower: carried out here, never forwarded again.
            MEMBERSHIP_PATH => {
                let change = decode(body)?;
                PeerAnswer::json(&self.change_membership_here(change).await)
            }
            // A joining server asks to be added (only that), carried to the leader.
            JOIN_PATH => PeerAnswer::json(&match decode(body)? {
                add @ MembershipChange::AddVoter { .. } => self.change_membership(add).await,
                MembershipChange::RemoveVoter { .. } => Err(MembershipError::Refused(
                    "a joining server can only ask to be added".into(),
                )),
            }),
            // A transfer forwarded by a follower: carried out here, never forwarded again.
            TRANSFER_PATH => {
                let TransferRequest { to } = decode(body)?;
                PeerAnswer::json(&self.transfer_leadership_here(to).await)
            }
            // The leader's TimeoutNow: stand at once, if the request is its own leader's.
            STAND_PATH => PeerAnswer::json(&self.stand(decode(body)?).await),
            other => PeerAnswer::refused(404, format!("no peer call at {other}")),
        })
    }
}
