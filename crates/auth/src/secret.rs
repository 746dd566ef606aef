//! Access keys, secrets, the cluster secret and sealing.
//!
//! ```text
//!  cluster secret (a file every server is given, or made at a single server's first start)
//!     ├─ HKDF "berth seal v1" ──► seal key: credential secrets are stored sealed (AEAD,
//!     │                            bound to their access key id), in the log and snapshots
//!     ├─ HKDF "berth peer v1" ──► the peers' SigV4 secret: servers sign Raft RPCs with it
//!     └─ HKDF "berth ca v1"   ──► the cluster CA's key (Ed25519): the same CA on every server
//! ```
//! SigV4 needs the secret itself to check a signature, so secrets cannot be hashed; sealing
//! keeps them out of the log, snapshots and backups in the clear. Randomness is an input:
//! callers pass the random bytes, so everything here is deterministic under test.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::aead::{self, Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};
use ring::hkdf;
use serde::{Deserialize, Serialize};

/// A secret access key (or a join token's secret). Never printed: `Debug` redacts it.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretKey(String);

impl SecretKey {
    pub fn new(secret: impl Into<String>) -> SecretKey {
        SecretKey(secret.into())
    }

    /// A new secret of 40 characters from 30 random bytes.
    pub fn from_random(bytes: [u8; 30]) -> SecretKey {
        SecretKey(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// The secret itself, for signing, verifying and the one response that hands it out.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(** redacted **)")
    }
}

/// What a key is for; its access key id's prefix says it, so logs and audits read clearly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// A person's or a tool's credential.
    User,
    /// A container instance's own credential, issued when its agent joins.
    Agent,
    /// A join token (agents or servers exchange it for what they need).
    JoinToken,
}

impl KeyKind {
    pub fn prefix(self) -> &'static str {
        match self {
            KeyKind::User => "BKIA",
            KeyKind::Agent => "BKAG",
            KeyKind::JoinToken => "BKJT",
        }
    }
}

const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// A new access key id: the kind's prefix and 16 base32 characters from 10 random bytes
/// (20 characters in all, as AWS's are).
pub fn new_access_key_id(kind: KeyKind, random: [u8; 10]) -> String {
    let mut bits: u128 = 0;
    for b in random {
        bits = (bits << 8) | u128::from(b);
    }
    let mut id = String::with_capacity(20);
    id.push_str(kind.prefix());
    for i in (0..16).rev() {
        id.push(BASE32[((bits >> (i * 5)) & 31) as usize] as char);
    }
    id
}

/// Why a secret could not be unsealed or a cluster secret read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// The sealed value was made with another cluster secret, or was altered.
    #[error("the sealed secret of {0} cannot be opened with this cluster's secret")]
    Unseal(String),
    /// A cluster secret file that is not base64 of at least 32 bytes.
    #[error("a cluster secret must be base64 of at least 32 random bytes ({0})")]
    ClusterSecret(String),
}

/// The secret every server of one cluster shares. Everything else that servers must agree
/// on without talking (the seal key, the peer signing secret) derives from it.
#[derive(Clone, PartialEq, Eq)]
pub struct ClusterSecret(Vec<u8>);

impl std::fmt::Debug for ClusterSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterSecret(** redacted **)")
    }
}

impl ClusterSecret {
    pub fn from_random(bytes: [u8; 32]) -> ClusterSecret {
        ClusterSecret(bytes.to_vec())
    }

    /// Reads the text form (base64, surrounding whitespace ignored).
    pub fn parse(text: &str) -> Result<ClusterSecret, SecretError> {
        let bytes = STANDARD
            .decode(text.trim())
            .map_err(|e| SecretError::ClusterSecret(e.to_string()))?;
        if bytes.len() < 32 {
            return Err(SecretError::ClusterSecret(format!(
                "it holds {} bytes",
                bytes.len()
            )));
        }
        Ok(ClusterSecret(bytes))
    }

    /// The text form, as written to a cluster secret file.
    pub fn render(&self) -> String {
        STANDARD.encode(&self.0)
    }

    fn derive(&self, info: &'static [u8]) -> [u8; 32] {
        struct Len;
        impl hkdf::KeyType for Len {
            fn len(&self) -> usize {
                32
            }
        }
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, b"berth").extract(&self.0);
        let mut out = [0u8; 32];
        prk.expand(&[info], Len)
            .and_then(|okm| okm.fill(&mut out))
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        out
    }

    /// The key credential secrets are sealed with.
    pub fn seal_key(&self) -> SealKey {
        let key = UnboundKey::new(&CHACHA20_POLY1305, &self.derive(b"berth seal v1"))
            .expect("32 bytes is a ChaCha20-Poly1305 key");
        SealKey(LessSafeKey::new(key))
    }

    /// The seed of the cluster CA's Ed25519 key: every server derives the same CA, so servers
    /// that were given only the cluster secret trust each other's certificates.
    pub fn ca_seed(&self) -> [u8; 32] {
        self.derive(b"berth ca v1")
    }

    /// The keys web UI sessions and their CSRF tokens are signed with: the same on every
    /// server, so a session made on one is good on all.
    pub fn session_key(&self) -> crate::SessionKey {
        crate::SessionKey::new(
            self.derive(b"berth ui session v1"),
            self.derive(b"berth ui csrf v1"),
        )
    }

    /// The SigV4 secret servers sign their requests to each other with.
    pub fn peer_secret(&self) -> SecretKey {
        SecretKey(URL_SAFE_NO_PAD.encode(self.derive(b"berth peer v1")))
    }
}

/// A secret as stored: ChaCha20-Poly1305 ciphertext, bound to its access key id.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealed {
    /// base64 of the 12-byte nonce.
    pub nonce: String,
    /// base64 of ciphertext and tag.
    pub ciphertext: String,
}

impl std::fmt::Debug for Sealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sealed({} bytes)", self.ciphertext.len())
    }
}

/// Seals and opens credential secrets.
pub struct SealKey(LessSafeKey);

impl std::fmt::Debug for SealKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealKey(** redacted **)")
    }
}

impl SealKey {
    /// Seals `secret` for `access_key_id` with a fresh random `nonce` (never reuse one).
    pub fn seal(&self, access_key_id: &str, secret: &SecretKey, nonce: [u8; 12]) -> Sealed {
        let mut buf = secret.0.as_bytes().to_vec();
        self.0
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(access_key_id.as_bytes()),
                &mut buf,
            )
            .expect("a short secret always seals");
        Sealed {
            nonce: STANDARD.encode(nonce),
            ciphertext: STANDARD.encode(buf),
        }
    }

    /// Opens a sealed secret; fails if it was sealed with another key, for another access
    /// key id, or altered.
    pub fn open(&self, access_key_id: &str, sealed: &Sealed) -> Result<SecretKey, SecretError> {
        let fail = || SecretError::Unseal(access_key_id.to_owned());
        let nonce: [u8; aead::NONCE_LEN] = STANDARD
            .decode(&sealed.nonce)
            .ok()
            .and_then(|n| n.try_into().ok())
            .ok_or_else(fail)?;
        let mut buf = STANDARD.decode(&sealed.ciphertext).map_err(|_| fail())?;
        let plain = self
            .0
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(access_key_id.as_bytes()),
                &mut buf,
            )
            .map_err(|_| fail())?;
        String::from_utf8(plain.to_vec())
            .map(SecretKey)
            .map_err(|_| fail())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_key_ids_look_like_aws_ones() {
        let id = new_access_key_id(KeyKind::User, [0xff; 10]);
        assert_eq!(id, "BKIA7777777777777777");
        let id = new_access_key_id(KeyKind::Agent, [0; 10]);
        assert_eq!(id, "BKAGAAAAAAAAAAAAAAAA");
        let id = new_access_key_id(KeyKind::JoinToken, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
        assert_eq!(id.len(), 20);
        assert!(
            id.bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        );
    }

    #[test]
    fn secrets_never_print() {
        let s = SecretKey::from_random([7; 30]);
        assert_eq!(s.expose().len(), 40);
        assert!(!format!("{s:?}").contains(s.expose()));
        let c = ClusterSecret::from_random([9; 32]);
        assert!(!format!("{c:?}").contains(&c.render()));
    }

    #[test]
    fn sealing_round_trips_and_binds_the_key_id() {
        let cluster = ClusterSecret::from_random([1; 32]);
        let key = cluster.seal_key();
        let secret = SecretKey::from_random([2; 30]);
        let sealed = key.seal("BKIAONE", &secret, [3; 12]);
        assert!(!sealed.ciphertext.contains(secret.expose()));
        assert_eq!(key.open("BKIAONE", &sealed).expect("open"), secret);
        assert!(key.open("BKIATWO", &sealed).is_err(), "bound to its key id");
        let other = ClusterSecret::from_random([4; 32]).seal_key();
        assert!(other.open("BKIAONE", &sealed).is_err(), "another cluster");
        let mut altered = sealed.clone();
        altered.ciphertext.replace_range(0..1, "Z");
        assert!(key.open("BKIAONE", &altered).is_err(), "altered");
        let garbage = Sealed {
            nonce: "!!".into(),
            ciphertext: "??".into(),
        };
        assert!(key.open("BKIAONE", &garbage).is_err());
    }

    #[test]
    fn cluster_secrets_parse_and_derive_distinct_keys() {
        let c = ClusterSecret::from_random([5; 32]);
        let again = ClusterSecret::parse(&format!("  {}\n", c.render())).expect("parse");
        assert_eq!(again, c);
        assert_eq!(again.peer_secret(), c.peer_secret());
        assert_ne!(
            c.peer_secret(),
            ClusterSecret::from_random([6; 32]).peer_secret()
        );
        assert!(ClusterSecret::parse("c2hvcnQ=").is_err(), "too short");
        assert!(ClusterSecret::parse("not base64 !").is_err());
    }
}
