//! Web UI sessions: what a browser holds instead of a secret.
//!
//! A person logs in to the UI with an access key id and its secret once; the server answers
//! with a session token in a cookie and the secret is never stored by the browser. The token
//! is stateless, so every server of the cluster accepts it without sharing a session table:
//!
//! ```text
//!  bs2.<access key id>.<credential version>.<expires, unix seconds>.<session id>.<HMAC-SHA256>
//!        └──────────────── signed with a key derived from the cluster secret ───┘
//! ```
//! It names the credential's version, so deleting the credential (or replacing it) ends every
//! session made with it. The session id (128 random bits, hex) names one sign-in, so signing
//! out can end that session alone: the server records the id as revoked until the session's
//! own expiry (a Raft command, so every server refuses it), and other sessions of the same
//! principal go on. Writes from the UI also carry a CSRF token derived from the session
//! token with a second key: a page of another site can make the browser send the cookie, but
//! cannot read the page that holds the CSRF token.
//!
//! Time and randomness are inputs: `now` is given to [`SessionKey::verify`], the random bytes
//! of an id to [`session_id`].

use ring::hmac;
use subtle::ConstantTimeEq;

use crate::token::{decode_hex, encode_hex};

/// `bs2`: `bs1` tokens had no session id (they could not be revoked one by one).
const PREFIX: &str = "bs2";
/// Random bytes in a session id.
const ID_BYTES: usize = 16;

/// A new session id from `random` bytes: lowercase hex.
pub fn session_id(random: [u8; ID_BYTES]) -> String {
    encode_hex(&random)
}

/// Whether `id` is what [`session_id`] makes (a command naming anything else is refused).
pub fn valid_session_id(id: &str) -> bool {
    id.len() == ID_BYTES * 2 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

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
    /// This sign-in's id ([`session_id`]): what signing out revokes.
    pub id: String,
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
            "{PREFIX}.{}.{}.{}.{}",
            session.access_key_id, session.credential_version, session.expires, session.id
        );
        let tag = hmac::sign(&self.session, body.as_bytes());
        format!("{body}.{}", encode_hex(tag.as_ref()))
    }

    /// The session `token` stands for, if it was issued by this key and has not expired at
    /// `now` (unix seconds).
    pub fn verify(&self, token: &str, now: u64) -> Result<Session, SessionError> {
        let (body, tag) = token.rsplit_once('.').ok_or(SessionError::Malformed)?;
        let mut fields = body.split('.');
        let (Some(PREFIX), Some(key), Some(version), Some(expires), Some(id), None) = (
            fields.next(),
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
            access_key_id: key.to_owned(),
            credential_version: version.parse().map_err(|_| SessionError::Malformed)?,
            expires: expires.parse().map_err(|_| SessionError::Malformed)?,
            id: id.to_owned(),
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
            id: session_id([0xab; 16]),
        }
    }

    #[test]
    fn a_token_stands_for_its_session_until_it_expires() {
        let token = key().issue(&alice());
        assert!(
            token.starts_with(&format!("bs2.BKUSERALICE.7.1000.{}.", "ab".repeat(16))),
            "{token}"
        );
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
        let old = token.replacen("bs2.", "bs1.", 1);
        assert_ne!(key().verify(&old, 0).map(|_| ()), Ok(()), "a bs1 token");
        for malformed in ["", "bs2", "bs2.a.b.c.d", "bs1.A.1.2.00", "bs2.A.1.2.3.zz"] {
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

    #[test]
    fn two_sign_ins_of_one_principal_are_two_sessions() {
        let other = Session {
            id: session_id([0xcd; 16]),
            ..alice()
        };
        assert_ne!(key().issue(&alice()), key().issue(&other));
        assert!(valid_session_id(&alice().id));
        let bad = [
            String::new(),
            "AB".repeat(16),
            "ab".to_owned(),
            "ab".repeat(17),
            "zz".repeat(16),
        ];
        for bad in bad {
            assert!(!valid_session_id(&bad), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn no_input_panics_the_verifier(token in ".{0,200}") {
            let _ = key().verify(&token, 0);
        }
    }
}
