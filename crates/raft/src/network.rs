//! Raft RPCs between berth servers over HTTP/1.1 (or TLS) with JSON bodies.
//!
//! Each server exposes `POST /v1/raft/{append,vote,snapshot}` (served by `berth-server`, which
//! checks the request and hands it to [`openraft::Raft`]); the reply body is the JSON of
//! `Result<Response, RaftError>`. A transport failure is `Unreachable`, a refusal from the
//! peer's Raft is a `RemoteError`, as openraft expects.
//!
//! Every request is SigV4-signed with the peer key (derived from the cluster secret), body
//! hash included as a signed header, so a server accepts Raft traffic from its peers only
//! and checks who is calling before it reads a large body.
//!
//! Every Raft call's outcome goes to `reach`, which says in the log when a peer stops
//! answering and when it is back, instead of openraft's lines on every retry.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use berth_client::{Client, Credentials, Transport};
use bytes::Bytes;
use http_body_util::BodyExt;
use openraft::BasicNode;
use openraft::error::{InstallSnapshotError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{Backoff, RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use berth_model::Stamped;

use crate::election::{ElectionTimer, Since};
use crate::lease::{Contact, Contacts};
use crate::reach::{self, PeerReach, Seen};
use crate::transfer::{StandRequest, TransferError, TransferRequest, Transferred};
use crate::{Member, MembershipChange, MembershipError, TypeConfig, WriteError, Written};

type NodeId = u64;

/// Paths of the Raft RPC endpoints.
pub const APPEND_PATH: &str = "/v1/raft/append";
pub const VOTE_PATH: &str = "/v1/raft/vote";
pub const SNAPSHOT_PATH: &str = "/v1/raft/snapshot";
/// Where a follower forwards a client write to the leader.
pub const WRITE_PATH: &str = "/v1/raft/write";
/// Where a membership change is carried out: at the leader (a follower forwards it there).
pub const MEMBERSHIP_PATH: &str = "/v1/raft/membership";
/// Where a follower asks the leader for a read index (a linearizable read's barrier).
pub const READ_INDEX_PATH: &str = "/v1/raft/read-index";
/// Where a joining server asks any server of the group to be added; that server carries the
/// change to the leader.
pub const JOIN_PATH: &str = "/v1/raft/join";
/// Where a leadership transfer is carried out: at the leader (a follower forwards it there).
pub const TRANSFER_PATH: &str = "/v1/raft/transfer";
/// Where a leader tells the target of a transfer to stand for election now (TimeoutNow).
pub const STAND_PATH: &str = "/v1/raft/stand";

/// How a server reaches its peers: one connection pool, the peer key, and the scheme
/// (`https` when the servers speak TLS).
#[derive(Clone)]
pub struct PeerAccess {
    pub transport: Transport,
    pub credentials: Credentials,
    pub scheme: &'static str,
}

impl std::fmt::Debug for PeerAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerAccess")
            .field("access_key_id", &self.credentials.access_key_id)
            .field("scheme", &self.scheme)
            .finish_non_exhaustive()
    }
}

impl PeerAccess {
    /// A signed client of the peer at `addr` (`host:port`).
    pub fn client(&self, addr: &str) -> Client {
        Client::new(
            self.transport.clone(),
            &format!("{}://{addr}", self.scheme),
            &self.credentials,
            "us-east-1",
            "berth",
        )
    }
}

/// Makes a [`Peer`] per target node; all share one connection pool.
#[derive(Clone)]
pub struct Network {
    access: PeerAccess,
    retry_every: Duration,
    election: Arc<ElectionTimer>,
    /// Whether each peer answers (`reach`), kept across the `Peer`s openraft makes for it.
    reach: Arc<Mutex<HashMap<NodeId, PeerReach>>>,
    /// The calls that renew each peer's leader lease (`lease`), for a leadership transfer.
    contacts: Arc<Contacts>,
}

impl Network {
    /// Peers reached through `access`; one that does not answer is tried again every
    /// `retry_every` (the heartbeat interval). A vote refused for this node's shorter log
    /// defers its next candidacy on `election`.
    pub(crate) fn new(
        access: PeerAccess,
        retry_every: Duration,
        election: Arc<ElectionTimer>,
    ) -> Network {
        Network {
            access,
            retry_every,
            election,
            reach: Arc::default(),
            contacts: Arc::default(),
        }
    }

    pub fn access(&self) -> &PeerAccess {
        &self.access
    }

    /// The lease-renewing calls this node made to `peer` as a leader.
    pub(crate) fn contact(&self, peer: NodeId) -> Contact {
        self.contacts.get(peer)
    }
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Peer;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> Peer {
        Peer {
            target,
            addr: node.addr.clone(),
            client: self.access.client(&node.addr),
            retry_every: self.retry_every,
            election: self.election.clone(),
            reach: self.reach.clone(),
            contacts: self.contacts.clone(),
        }
    }
}

/// Why a request to a peer has no answer: whether it may have been acted on decides whether a
/// write can be sent again.
#[derive(Debug)]
pub(crate) enum Forwarded {
    /// It never left: no connection could be made (or it could not be built).
    Unsent(String),
    /// It may have arrived: the connection failed afterwards, or the answer was unreadable.
    Unanswered(String),
}

impl Forwarded {
    pub(crate) fn reason(self) -> String {
        match self {
            Forwarded::Unsent(why) | Forwarded::Unanswered(why) => why,
        }
    }
}

/// Posts `body` (JSON) to `path` on a peer, signed with its hash, and reads the answer.
async fn post(client: &Client, path: &str, body: Vec<u8>) -> Result<(u16, Bytes), Forwarded> {
    let request = client
        .signed(
            "POST",
            path,
            &[("content-type", "application/json")],
            Bytes::from(body),
            true,
        )
        .map_err(|e| Forwarded::Unsent(e.to_string()))?;
    let response = client
        .transport()
        .request(request)
        .await
        .map_err(|e| match e {
            berth_client::ClientError::Unconnected(why) => Forwarded::Unsent(why),
            other => Forwarded::Unanswered(other.to_string()),
        })?;
    let status = response.status().as_u16();
    let bytes = response
        .into_body()
        .collect()
        .await
        .map_err(|e| Forwarded::Unanswered(e.to_string()))?
        .to_bytes();
    Ok((status, bytes))
}

/// Sends a write to the leader at `addr`: `Ok` carries the leader's answer.
pub(crate) async fn forward(
    network: &Network,
    addr: &str,
    command: &Stamped,
) -> Result<Result<Written, WriteError>, Forwarded> {
    let body = serde_json::to_vec(command).map_err(|e| Forwarded::Unsent(e.to_string()))?;
    let (status, bytes) = post(&network.access.client(addr), WRITE_PATH, body).await?;
    if !(200..300).contains(&status) {
        // Refused before it was proposed (authentication, validation): nothing was applied.
        return Ok(Err(WriteError::Unavailable(format!(
            "{addr} answered {status}: {}",
            String::from_utf8_lossy(&bytes)
        ))));
    }
    serde_json::from_slice(&bytes).map_err(|e| Forwarded::Unanswered(e.to_string()))
}

/// Sends a membership change to `path` (`MEMBERSHIP_PATH` or `JOIN_PATH`) at the server at
/// `addr`: `Ok` carries its answer.
pub(crate) async fn change_membership(
    network: &Network,
    addr: &str,
    path: &str,
    change: &MembershipChange,
) -> Result<Result<Vec<Member>, MembershipError>, Forwarded> {
    let body = serde_json::to_vec(change).map_err(|e| Forwarded::Unsent(e.to_string()))?;
    let (status, bytes) = post(&network.access.client(addr), path, body).await?;
    if !(200..300).contains(&status) {
        return Ok(Err(MembershipError::Refused(format!(
            "{addr} answered {status}: {}",
            String::from_utf8_lossy(&bytes)
        ))));
    }
    serde_json::from_slice(&bytes).map_err(|e| Forwarded::Unanswered(e.to_string()))
}

/// Asks the leader at `addr` for its read index: `Ok` carries the leader's answer.
pub(crate) async fn read_index(
    network: &Network,
    addr: &str,
) -> Result<Result<u64, WriteError>, Forwarded> {
    let (status, bytes) = post(
        &network.access.client(addr),
        READ_INDEX_PATH,
        b"{}".to_vec(),
    )
    .await?;
    if !(200..300).contains(&status) {
        return Ok(Err(WriteError::Unavailable(format!(
            "{addr} answered {status}: {}",
            String::from_utf8_lossy(&bytes)
        ))));
    }
    serde_json::from_slice(&bytes).map_err(|e| Forwarded::Unanswered(e.to_string()))
}

/// Posts `body` to `path` at the server at `addr` and reads its JSON answer, or `refused`
/// made from the status and body of a non-2xx answer.
async fn ask<B: Serialize, A: DeserializeOwned>(
    network: &Network,
    addr: &str,
    path: &str,
    body: &B,
    refused: impl FnOnce(String) -> A,
) -> Result<A, Forwarded> {
    let body = serde_json::to_vec(body).map_err(|e| Forwarded::Unsent(e.to_string()))?;
    let (status, bytes) = post(&network.access.client(addr), path, body).await?;
    if !(200..300).contains(&status) {
        return Ok(refused(format!(
            "{addr} answered {status}: {}",
            String::from_utf8_lossy(&bytes)
        )));
    }
    serde_json::from_slice(&bytes).map_err(|e| Forwarded::Unanswered(e.to_string()))
}

/// Asks the leader at `addr` to hand leadership over: `Ok` carries its answer.
pub(crate) async fn transfer(
    network: &Network,
    addr: &str,
    req: &TransferRequest,
) -> Result<Result<Transferred, TransferError>, Forwarded> {
    ask(network, addr, TRANSFER_PATH, req, |why| {
        Err(TransferError::Failed(why))
    })
    .await
}

/// Tells the server at `addr` to stand for election now: `Ok` carries its answer.
pub(crate) async fn stand(
    network: &Network,
    addr: &str,
    req: &StandRequest,
) -> Result<Result<(), TransferError>, Forwarded> {
    ask(network, addr, STAND_PATH, req, |why| {
        Err(TransferError::Refused(why))
    })
    .await
}

/// The connection to one peer.
pub struct Peer {
    target: NodeId,
    addr: String,
    client: Client,
    retry_every: Duration,
    election: Arc<ElectionTimer>,
    reach: Arc<Mutex<HashMap<NodeId, PeerReach>>>,
    contacts: Arc<Contacts>,
}

/// One call to a peer, recorded when it ends. A call openraft gives up on (its timeout drops
/// the future) ends as a failure.
struct Attempt<'a> {
    peer: &'a Peer,
    seen: Option<Seen>,
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        let seen = self
            .seen
            .take()
            .unwrap_or_else(|| Seen::Failed("no answer in time".into()));
        self.peer.record(seen);
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct TransportError(String);

impl Peer {
    /// Notes what a call found, and logs it when it changes what is known of the peer.
    fn record(&self, seen: Seen) {
        let report = {
            let mut all = self.reach.lock().unwrap_or_else(|e| e.into_inner());
            reach::observe(all.entry(self.target).or_default(), seen, Instant::now())
        };
        let (peer, addr) = (self.target, &self.addr);
        match report {
            None => {}
            Some(reach::Report::Lost { error }) => tracing::warn!(
                peer,
                %addr,
                %error,
                "server {peer} does not answer; retrying every {:?}, reported again every {:?} \
                 while it does not",
                self.retry_every,
                reach::REMIND_EVERY
            ),
            Some(reach::Report::StillLost {
                error,
                failed,
                for_,
            }) => tracing::warn!(
                peer,
                %addr,
                %error,
                "server {peer} still does not answer after {}s ({failed} more attempts failed)",
                for_.as_secs()
            ),
            Some(reach::Report::Back { failed, after }) => tracing::info!(
                peer,
                %addr,
                "server {peer} answers again after {:.1}s ({failed} attempts failed)",
                after.as_secs_f64()
            ),
        }
    }

    async fn call<Req, Resp, E>(
        &self,
        path: &str,
        req: &Req,
    ) -> Result<Resp, RPCError<NodeId, BasicNode, E>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let unreachable = |e: String| RPCError::Unreachable(Unreachable::new(&TransportError(e)));
        let body = serde_json::to_vec(req).map_err(|e| unreachable(e.to_string()))?;
        let mut attempt = Attempt {
            peer: self,
            seen: None,
        };
        let answer = post(&self.client, path, body).await;
        attempt.seen = Some(match &answer {
            Ok(_) => Seen::Answered,
            Err(Forwarded::Unsent(why) | Forwarded::Unanswered(why)) => Seen::Failed(why.clone()),
        });
        drop(attempt);
        let (status, bytes) = answer.map_err(|e| unreachable(e.reason()))?;
        if !(200..300).contains(&status) {
            return Err(unreachable(format!(
                "{} answered {status}: {}",
                self.addr,
                String::from_utf8_lossy(&bytes)
            )));
        }
        let result: Result<Resp, E> =
            serde_json::from_slice(&bytes).map_err(|e| unreachable(e.to_string()))?;
        result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl RaftNetwork<TypeConfig> for Peer {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        let _renewing = self.contacts.call(self.target);
        self.call(APPEND_PATH, &rpc).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, BasicNode, RaftError<NodeId, InstallSnapshotError>>,
    > {
        let _renewing = self.contacts.call(self.target);
        self.call(SNAPSHOT_PATH, &rpc).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        _option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        let answer: Result<VoteResponse<NodeId>, _> = self.call(VOTE_PATH, &rpc).await;
        if let Ok(refused) = &answer
            && !refused.vote_granted
            && refused.last_log_id > rpc.last_log_id
        {
            self.election.defer(Since::RefusedForLog);
        }
        answer
    }

    /// A peer that did not answer is tried again after one heartbeat interval, not
    /// openraft's default 500 ms: a server restarted after a crash then hears from the leader
    /// before its own election timer runs out, instead of standing with a stale log and
    /// deposing a healthy leader with its higher term (measured: 16 of 20 restarts did that
    /// with 500 ms, BENCHMARKS.md).
    fn backoff(&self) -> Backoff {
        Backoff::new(std::iter::repeat(self.retry_every))
    }
}
