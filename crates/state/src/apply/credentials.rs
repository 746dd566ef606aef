//! Credentials and join tokens: made, removed, and forgotten once useless; web UI sessions
//! revoked until they would have expired anyway.

use std::sync::Arc;

use berth_model::command::{Bootstrap, CreateCredential, DeleteCredential, RevokeSession};
use berth_model::credential::{Credential, CredentialKind, valid_principal_name};
use berth_model::{Error, InstanceId, Millis};

use super::Apply;
use crate::{Entity, EntityKey, State};

impl State {
    /// A credential by access key id.
    pub fn credential(&self, access_key_id: &str) -> Option<&Arc<Credential>> {
        self.credentials.get(access_key_id)
    }

    /// The credential of the agent of container instance `instance`, if it has one (an
    /// instance has at most one).
    pub fn agent_credential(&self, instance: InstanceId) -> Option<&Arc<Credential>> {
        self.agent_credentials
            .get(&instance)
            .and_then(|id| self.credentials.get(id))
    }

    /// Every credential and join token, by access key id.
    pub fn credentials(&self) -> impl Iterator<Item = &Arc<Credential>> {
        self.credentials.values()
    }

    /// The bootstrap admin credential, once bootstrapped and while it exists.
    pub fn bootstrap_admin(&self) -> Option<&Arc<Credential>> {
        self.bootstrapped
            .as_deref()
            .and_then(|id| self.credentials.get(id))
    }

    /// Whether the web UI session `id` was signed out (and has not expired since).
    pub fn session_revoked(&self, id: &str) -> bool {
        self.revoked_sessions.contains_key(id)
    }

    /// Forgets revoked sessions that have expired by `now`: their tokens are refused anyway.
    pub(crate) fn expire_revoked_sessions(&mut self, now: Millis) {
        let expired: Vec<String> = self
            .revoked_sessions
            .iter()
            .filter(|(_, expires)| **expires <= now)
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            self.revoked_sessions.remove(&id);
        }
    }

    /// Whether the cluster has been bootstrapped (its first admin made).
    pub fn is_bootstrapped(&self) -> bool {
        self.bootstrapped.is_some()
    }

    fn store_credential(&mut self, at: Millis, credential: &Credential) -> Arc<Credential> {
        let stored = Arc::new(Credential {
            version: self.index,
            ..credential.clone()
        });
        let old = self.credentials.get(&stored.access_key_id).cloned();
        self.credential_changed(old.as_ref(), Some(&stored));
        self.record(
            EntityKey::Credential(stored.access_key_id.clone()),
            at,
            Some(Entity::Credential(stored.clone())),
        );
        stored
    }

    fn check_new_credential(&self, credential: &Credential) -> Result<(), Error> {
        let id = &credential.access_key_id;
        if id.is_empty() || id.len() > 128 || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(Error::invalid(
                "An access key id is 1 to 128 letters and digits",
            ));
        }
        if !valid_principal_name(&credential.name)
            && !matches!(credential.kind, CredentialKind::Agent { .. })
        {
            return Err(Error::invalid(format!(
                "'{}' is not a principal name",
                credential.name.chars().take(64).collect::<String>()
            )));
        }
        if self.credentials.contains_key(id) {
            return Err(Error::Conflict(format!("The access key id {id} is taken")));
        }
        credential
            .policy
            .check()
            .map_err(|e| Error::invalid(e.to_string()))
    }

    /// Forgets join tokens that expired before `before`, and agents' credentials whose
    /// container instance has been forgotten.
    pub(crate) fn expire_credentials(&mut self, before: Millis) {
        let gone: Vec<Arc<Credential>> = self
            .credentials
            .values()
            .filter(|c| match &c.kind {
                CredentialKind::Agent { instance, .. } => {
                    !self.instances.contains_key(instance) && c.created_at < before
                }
                CredentialKind::AgentJoinToken { .. } | CredentialKind::ServerJoinToken => {
                    c.expires_at.is_some_and(|e| e < before)
                }
                CredentialKind::User => false,
            })
            .cloned()
            .collect();
        for c in gone {
            self.credential_changed(Some(&c), None);
            self.forget(&EntityKey::Credential(c.access_key_id.clone()));
        }
    }
}

impl Apply for Bootstrap {
    fn apply(&self, state: &mut State, at: Millis) -> Result<Arc<Credential>, Error> {
        if state.bootstrapped.is_some() {
            return Err(Error::Conflict(
                "The cluster has been bootstrapped already".into(),
            ));
        }
        if self.admin.kind != CredentialKind::User {
            return Err(Error::invalid("The bootstrap credential must be a user's"));
        }
        state.check_new_credential(&self.admin)?;
        let stored = state.store_credential(at, &self.admin);
        state.bootstrapped = Some(stored.access_key_id.clone());
        Ok(stored)
    }
}

/// Access keys a user may hold at once, as IAM allows: two, so a key can be rotated.
pub const KEYS_PER_USER: usize = 2;

impl Apply for CreateCredential {
    fn apply(&self, state: &mut State, at: Millis) -> Result<Arc<Credential>, Error> {
        state.check_new_credential(&self.credential)?;
        if self.credential.kind == CredentialKind::User {
            // A user name is one principal, recorded by name in the history: a second key
            // for it is a rotation, so it must carry the same permissions.
            let keys: Vec<&Arc<Credential>> = state
                .credentials
                .values()
                .filter(|c| c.kind == CredentialKind::User && c.name == self.credential.name)
                .collect();
            let name = &self.credential.name;
            if keys.iter().any(|c| c.policy != self.credential.policy) {
                return Err(Error::Conflict(format!(
                    "A user named {name} exists with other permissions: name the new credential \
                     differently, or give it the same role or policy to add a second key"
                )));
            }
            if keys.len() >= KEYS_PER_USER {
                return Err(Error::LimitExceeded(format!(
                    "User {name} has {KEYS_PER_USER} access keys already: delete one before \
                     making another"
                )));
            }
        }
        if let CredentialKind::Agent { cluster, instance } = &self.credential.kind {
            state.active_cluster(cluster)?;
            // One credential per instance, and never one for an instance that exists already:
            // an agent's key is made with its instance id, before it registers.
            let taken = state.instances.contains_key(instance)
                || state.agent_credentials.contains_key(instance);
            if taken {
                return Err(Error::Conflict(format!(
                    "Container instance id {instance} already has a credential"
                )));
            }
        }
        Ok(state.store_credential(at, &self.credential))
    }
}

impl Apply for DeleteCredential {
    fn apply(&self, state: &mut State, at: Millis) -> Result<Arc<Credential>, Error> {
        let removed = state
            .credentials
            .get(&self.access_key_id)
            .cloned()
            .ok_or_else(|| {
                Error::ResourceNotFound(format!(
                    "No credential has the access key id {}",
                    self.access_key_id.chars().take(128).collect::<String>()
                ))
            })?;
        state.credential_changed(Some(&removed), None);
        // Logged as a change (watchers see it go), then forgotten like any entity gone for
        // good: a deleted credential's history would otherwise stay for ever.
        let key = EntityKey::Credential(self.access_key_id.clone());
        state.record(key.clone(), at, None);
        state.forget(&key);
        Ok(removed)
    }
}

/// Sessions that may be revoked and not yet expired at once. A session lasts 12 hours and
/// each sign-out needs a sign-in with a secret, so this is far above any real use; past it,
/// signing out is refused (LimitExceeded) rather than the state growing without bound.
pub const MAX_REVOKED_SESSIONS: usize = 100_000;

impl Apply for RevokeSession {
    fn apply(&self, state: &mut State, at: Millis) -> Result<(), Error> {
        if self.expires <= at || state.revoked_sessions.contains_key(&self.session) {
            // Expired already (its token is refused anyway), or revoked before.
            return Ok(());
        }
        let live = state.revoked_sessions.values().filter(|e| **e > at).count();
        if live >= MAX_REVOKED_SESSIONS {
            return Err(Error::LimitExceeded(format!(
                "{MAX_REVOKED_SESSIONS} signed-out sessions have not expired yet; try again later"
            )));
        }
        state.expire_revoked_sessions(at);
        state
            .revoked_sessions
            .insert(self.session.clone(), self.expires);
        Ok(())
    }
}
