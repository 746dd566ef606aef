//! Raft RPCs between berth servers over HTTP/1.1 with JSON bodies.
//!
//! Each server exposes `POST /v1/raft/{append,vote,snapshot}` (served by `berth-server`, which
//! hands the request to [`openraft::Raft`]); the reply body is the JSON of
//! `Result<Response, RaftError>`. A transport failure is `Unreachable`, a refusal from the
//! peer's Raft is a `RemoteError`, as openraft expects.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use openraft::BasicNode;
use openraft::error::{InstallSnapshotError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use berth_model::Stamped;

use crate::{TypeConfig, WriteError, Written};

type NodeId = u64;

/// Paths of the Raft RPC endpoints.
pub const APPEND_PATH: &str = "/v1/raft/append";
pub const VOTE_PATH: &str = "/v1/raft/vote";
pub const SNAPSHOT_PATH: &str = "/v1/raft/snapshot";
/// Where a follower forwards a client write to the leader.
pub const WRITE_PATH: &str = "/v1/raft/write";

/// Makes a [`Peer`] per target node; all share one connection pool.
#[derive(Clone)]
pub struct Network {
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Default for Network {
    fn default() -> Self {
        Self {
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Peer;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> Peer {
        Peer {
            target,
            addr: node.addr.clone(),
            client: self.client.clone(),
        }
    }
}

/// Sends a write to the leader at `addr`: `Ok` carries the leader's answer, `Err` a
/// transport failure.
pub(crate) async fn forward(
    network: &Network,
    addr: &str,
    command: &Stamped,
) -> Result<Result<Written, WriteError>, String> {
    let body = serde_json::to_vec(command).map_err(|e| e.to_string())?;
    let request = hyper::Request::post(format!("http://{addr}{WRITE_PATH}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    let response = network
        .client
        .request(request)
        .await
        .map_err(|e| e.to_string())?;
    let bytes = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    serde_json::from_slice(&bytes).map_err(|e| e.to_string())
}

/// The connection to one peer.
pub struct Peer {
    target: NodeId,
    addr: String,
    client: Client<HttpConnector, Full<Bytes>>,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct TransportError(String);

impl Peer {
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
        let request = hyper::Request::post(format!("http://{}{path}", self.addr))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| unreachable(e.to_string()))?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| unreachable(e.to_string()))?
            .to_bytes();
        if !status.is_success() {
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
        self.call(SNAPSHOT_PATH, &rpc).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        _option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        self.call(VOTE_PATH, &rpc).await
    }
}
