//! Join tokens: what an agent (or a server) is given to join a cluster.
//!
//! ```text
//!  bj1.<token id>.<secret>[.<sha256 of the server CA certificate, hex>]
//! ```
//! The id and secret are a SigV4 credential whose policy allows only joining, so even the
//! join request is signed and nothing secret crosses the wire. The CA hash pins the server's
//! certificate authority, as kubeadm's discovery hash does: an agent given a token trusts
//! exactly the CA whose certificate hashes to it, and learns that certificate from the TLS
//! handshake itself.

use crate::secret::SecretKey;

const PREFIX: &str = "bj1";

/// A parsed join token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinToken {
    /// The token's access key id.
    pub id: String,
    pub secret: SecretKey,
    /// SHA-256 of the server CA certificate (DER), when the servers speak TLS.
    pub ca_sha256: Option<[u8; 32]>,
}

/// Why a join token was not understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a berth join token ({0}); it looks like bj1.ID.SECRET[.CA-HASH]")]
pub struct TokenError(&'static str);

impl JoinToken {
    pub fn parse(text: &str) -> Result<JoinToken, TokenError> {
        let parts: Vec<&str> = text.trim().split('.').collect();
        let (id, secret, ca) = match parts[..] {
            [PREFIX, id, secret] => (id, secret, None),
            [PREFIX, id, secret, ca] => (id, secret, Some(ca)),
            _ => return Err(TokenError("wrong shape")),
        };
        if id.is_empty() || id.len() > 128 || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(TokenError("malformed id"));
        }
        if secret.len() < 16
            || secret.len() > 128
            || !secret
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(TokenError("malformed secret"));
        }
        let ca_sha256 = ca
            .map(|hex| {
                let bytes = decode_hex(hex).ok_or(TokenError("malformed CA hash"))?;
                bytes
                    .try_into()
                    .map_err(|_| TokenError("malformed CA hash"))
            })
            .transpose()?;
        Ok(JoinToken {
            id: id.to_owned(),
            secret: SecretKey::new(secret),
            ca_sha256,
        })
    }

    /// The token as handed to an operator. It contains the secret: show it once.
    pub fn render(&self) -> String {
        let mut out = format!("{PREFIX}.{}.{}", self.id, self.secret.expose());
        if let Some(ca) = &self.ca_sha256 {
            out.push('.');
            out.push_str(&encode_hex(ca));
        }
        out
    }
}

pub fn encode_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) || !hex.is_ascii() {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip() {
        let t = JoinToken {
            id: "BKJTABCDEFGHIJKLMNOP".into(),
            secret: SecretKey::from_random([3; 30]),
            ca_sha256: Some([0xab; 32]),
        };
        let text = t.render();
        assert!(text.starts_with("bj1.BKJTABCDEFGHIJKLMNOP."));
        assert_eq!(JoinToken::parse(&text), Ok(t.clone()));
        let plain = JoinToken {
            ca_sha256: None,
            ..t
        };
        assert_eq!(JoinToken::parse(&plain.render()), Ok(plain));
    }

    #[test]
    fn malformed_tokens_are_refused() {
        for bad in [
            "",
            "bj1",
            "bj2.ID.0123456789abcdef",
            "bj1.ID.short",
            "bj1.I D.0123456789abcdef",
            "bj1.ID.0123456789abcdef.zz",
            "bj1.ID.0123456789abcdef.abcd",
            "bj1.ID.0123456789abcdef.ab.cd",
        ] {
            assert!(JoinToken::parse(bad).is_err(), "{bad}");
        }
    }
}
