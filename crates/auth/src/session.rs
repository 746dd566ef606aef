//! Web UI sessions: what a browser holds instead of a secret.
//!
//! A person logs in to the UI with an access key id and its secret once; the server answers
//! with a session token in a cookie and the secret is never stored by the browser. The token
//! is stateless, so every server of the cluster accepts it without sharing a session table:
//!
//! ```text
//!  bs1.<access key id>.<credential version>.<expires, unix seconds>.<HMAC-SHA256, hex>
//!        └──────────────── signed with a key derived from the cluster secret ─┘
//! ```
//! It names the credential's version, so deleting the credential (or replacing it) ends every
//! session made with it. Writes from the UI also carry a CSRF token derived from the session
//! token with a second key: a page of another site can make the browser send the cookie, but
//! cannot read the page that holds the CSRF token.
//!
//! Time is an input: `now` is given to [`SessionKey::verify`].

use ring::hmac;
use subtle::ConstantTimeEq;

use crate::token::{decode_hex, encode_hex};

const PREFIX: &str = "bs1";

/// Why a session token is not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    #[error("the session token is malformed")]
    Malformed,
    #[error("the session token's signature is not valid")]
    Forged,
    #[error("the session has expired; log in again")]
    Expired,
}

/// What a valid session token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub access_key_id: String,
    /// The version of the credential the session was made with.
    pub credential_version: u64,
    /// Unix seconds after which the token is refused.
    pub expires: u64,
}

/// The keys sessions and CSRF tokens are signed with (derived from the cluster secret).
pub struct SessionKey {
    session: hmac::Key,
    csrf: hmac::Key,
}

impl std::fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKey(** redacted **)")
    }
}

impl SessionKey {
    /// From 32 secret bytes for sessions and 32 for CSRF tokens.
    pub fn new(session: [u8; 32], csrf: [u8; 32]) -> SessionKey {
        SessionKey {
            session: hmac::Key::new(hmac::HMAC_SHA256, &session),
            csrf: hmac::Key::new(hmac::HMAC_SHA256, &csrf),
        }
    }

    /// A token for `session`.
    pub fn issue(&self, session: &Session) -> String {
        let body = format!(
            "{PREFIX}.{}.{}.{}",
            session.access_key_id, session.credential_version, session.expires
        );
        let tag = hmac::sign(&self.session, body.as_bytes());
        format!("{body}.{}", encode_hex(tag.as_ref()))
    }

    /// The session `token` stands for, if it was issued by this key and has not expired at
    /// `now` (unix seconds).
    pub fn verify(&self, token: &str, now: u64) -> Result<Session, SessionError> {
        let (body, tag) = token.rsplit_once('.').ok_or(SessionError::Malformed)?;
        let mut fields = body.split('.');
        let (Some(PREFIX), Some(id), Some(version), Some(expires), None) = (
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
        ) else {
            return Err(SessionError::Malformed);
        };
        let tag = decode_hex(tag).ok_or(SessionError::Malformed)?;
        let expected = hmac::sign(&self.session, body.as_bytes());
        if !bool::from(expected.as_ref().ct_eq(&tag)) {
            return Err(SessionError::Forged);
        }
        let session = Session {
            access_key_id: id.to_owned(),
            credential_version: version.parse().map_err(|_| SessionError::Malformed)?,
            expires: expires.parse().map_err(|_| SessionError::Malformed)?,
        };
        if now >= session.expires {
            return Err(SessionError::Expired);
        }
        Ok(session)
    }

    /// The CSRF token that goes with session token `token`.
    pub fn csrf(&self, token: &str) -> String {
        encode_hex(hmac::sign(&self.csrf, token.as_bytes()).as_ref())
    }

    /// Whether `given` is the CSRF token of session token `token`.
    pub fn csrf_matches(&self, token: &str, given: &str) -> bool {
        bool::from(self.csrf(token).as_bytes().ct_eq(given.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key() -> SessionKey {
        SessionKey::new([1; 32], [2; 32])
    }

    fn alice() -> Session {
        Session {
            access_key_id: "BKUSERALICE".into(),
            credential_version: 7,
            expires: 1_000,
        }
    }

    #[test]
    fn a_token_stands_for_its_session_until_it_expires() {
        let token = key().issue(&alice());
        assert!(token.starts_with("bs1.BKUSERALICE.7.1000."), "{token}");
        assert_eq!(key().verify(&token, 999), Ok(alice()));
        assert_eq!(key().verify(&token, 1_000), Err(SessionError::Expired));
    }

    #[test]
    fn a_changed_or_foreign_token_is_refused() {
        let token = key().issue(&alice());
        let longer = token.replace(".1000.", ".9999.");
        assert_eq!(key().verify(&longer, 0), Err(SessionError::Forged));
        let other = SessionKey::new([3; 32], [2; 32]);
        assert_eq!(other.verify(&token, 0), Err(SessionError::Forged));
        for malformed in ["", "bs1", "bs1.a.b.c.d", "bs2.A.1.2.00", "bs1.A.1.2.3.zz"] {
            assert_eq!(
                key().verify(malformed, 0),
                Err(SessionError::Malformed),
                "{malformed}"
            );
        }
    }

    #[test]
    fn the_csrf_token_belongs_to_one_session() {
        let a = key().issue(&alice());
        let b = key().issue(&Session {
            expires: 2_000,
            ..alice()
        });
        let csrf = key().csrf(&a);
        assert!(key().csrf_matches(&a, &csrf));
        assert!(!key().csrf_matches(&b, &csrf));
        assert!(!key().csrf_matches(&a, ""));
        assert_ne!(
            csrf,
            encode_hex(hmac::sign(&key().session, a.as_bytes()).as_ref())
        );
    }

    proptest! {
        #[test]
        fn no_input_panics_the_verifier(token in ".{0,200}") {
            let _ = key().verify(&token, 0);
        }
    }
}
