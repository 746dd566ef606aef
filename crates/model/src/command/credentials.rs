//! Credential commands: the bootstrap admin, credentials and join tokens made and removed, and
//! web UI sessions ended.

use serde::{Deserialize, Serialize};

use crate::credential::Credential;
use crate::time::Millis;

/// A fresh cluster's first admin credential. Applied once: refused (a conflict) ever after, so
/// two servers that both think they lead a new cluster cannot make two admins.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bootstrap {
    pub admin: Credential,
}

/// A new credential or join token (its secret sealed). Refused if its access key id exists.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreateCredential {
    pub credential: Credential,
}

/// Removes a credential or join token: requests signed with it are refused from the index
/// that applies this on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeleteCredential {
    pub access_key_id: String,
}

/// Ends one web UI session (signing out): the session id is refused by every server until
/// `expires`, the session's own expiry, after which the token is refused anyway and the entry
/// is forgotten. Other sessions of the same principal are untouched.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RevokeSession {
    /// The session's id (`berth_auth::session_id`).
    pub session: String,
    pub expires: Millis,
}
