//! Credentials: who may call berth, as cluster state.
//!
//! ```text
//!  bootstrap ──► admin (User, role admin) ──► creates users (a role or a policy document)
//!                                        └──► creates join tokens ──► an agent joins:
//!                                               Agent credential bound to one container instance
//! ```
//! A credential is an access key id, a sealed secret (SigV4 needs the secret itself, so it is
//! sealed with the cluster's key rather than hashed), a principal name and a policy. They are
//! replicated through Raft like everything else, so every server can verify every caller;
//! the secret is never rendered after creation and never logged (`Sealed` prints only its
//! length).

use std::sync::Arc;

use berth_auth::{Policy, Sealed};
use serde::{Deserialize, Serialize};

use crate::entity::Name;
use crate::id::InstanceId;
use crate::time::Millis;

/// What a credential is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CredentialKind {
    /// A person or a tool.
    User,
    /// The agent of one container instance: it may act for that instance only.
    Agent { cluster: Name, instance: InstanceId },
    /// A token agents exchange for their own credential; limited to one cluster if named.
    AgentJoinToken { cluster: Option<Name> },
    /// A token a new server exchanges for the cluster secret (for `--join`).
    ServerJoinToken,
}

impl CredentialKind {
    pub fn is_join_token(&self) -> bool {
        matches!(
            self,
            CredentialKind::AgentJoinToken { .. } | CredentialKind::ServerJoinToken
        )
    }
}

/// One credential.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Credential {
    pub access_key_id: String,
    /// The principal's name (`admin`, `alice`, ...); agents are named after their instance.
    pub name: String,
    pub kind: CredentialKind,
    pub policy: Arc<Policy>,
    /// The ready-made role the policy came from, if it did (`admin`, `operator:prod`, ...).
    pub role: Option<String>,
    pub sealed_secret: Sealed,
    pub created_at: Millis,
    /// Who created it (an actor, see [`crate::command::Stamped::by`]).
    pub created_by: Option<String>,
    /// After this it no longer authenticates (join tokens).
    pub expires_at: Option<Millis>,
    /// Log index of its last change.
    #[serde(default)]
    pub version: u64,
}

impl Credential {
    /// Whether it still authenticates at `now`.
    pub fn valid_at(&self, now: Millis) -> bool {
        self.expires_at.is_none_or(|e| now < e)
    }

    /// The actor string this credential's writes are recorded under.
    pub fn actor(&self) -> String {
        match &self.kind {
            CredentialKind::User => format!("user/{}", self.name),
            CredentialKind::Agent { cluster, instance } => {
                format!("container-instance/{cluster}/{instance}")
            }
            CredentialKind::AgentJoinToken { .. } | CredentialKind::ServerJoinToken => {
                format!("join-token/{}", self.access_key_id)
            }
        }
    }
}

/// Principal names: what IAM allows in a user name.
pub fn valid_principal_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b))
}
