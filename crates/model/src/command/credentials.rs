//! Credential commands: the bootstrap admin, credentials and join tokens made and removed.

use serde::{Deserialize, Serialize};

use crate::credential::Credential;

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
