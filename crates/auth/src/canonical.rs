//! SigV4 signatures computed straight from the received request, for the shape nearly every
//! request has: a plain path, no query string, each signed header once with a tidy value.
//!
//! ```text
//!  method, path, signed headers, payload hash ──► SHA-256 (streamed, no canonical string)
//!          │ canonicalization is the identity here: nothing to encode, normalize or trim
//!          ▼
//!  "AWS4-HMAC-SHA256" date scope hash ──► HMAC under the derived signing key ──► hex
//! ```
//! Why: verifying through `aws-sigv4` builds a header map, a canonical request string, a
//! string to sign and an `Authorization` header it then throws away; on a read such as
//! DescribeTasks that was a fifth of the server's CPU. When canonicalization has nothing to
//! do (the path needs no encoding or dot-segment removal, there is no query, every signed
//! header appears once with a value that needs no trimming), the canonical request is just
//! the request's bytes in order, and they are fed to SHA-256 as they are.
//!
//! Anything else answers `None` and [`crate::sigv4::verify`] asks `aws-sigv4`, which stays
//! the definition of the algorithm: a property test (`tests/properties.rs`) checks that
//! both give the same signature on every request this path accepts.

use std::sync::Mutex;

use ring::{digest, hmac};

use crate::secret::SecretKey;

/// A credential's secret as the verifier holds it: the secret, and the signing key last
/// derived from it. SigV4 narrows a secret to a day, a region and a service with four HMACs
/// (each with its own key schedule), which cost as much as the rest of a verification; a
/// caller signs with one scope all day, so the key is derived once per scope, not once per
/// request.
pub struct VerifyingKey {
    secret: SecretKey,
    /// `(date, region, service)` and the key derived for it.
    derived: Mutex<Option<(Scope, hmac::Key)>>,
}

#[derive(PartialEq, Eq)]
struct Scope {
    date: String,
    region: String,
    service: String,
}

impl VerifyingKey {
    pub fn new(secret: SecretKey) -> VerifyingKey {
        VerifyingKey {
            secret,
            derived: Mutex::new(None),
        }
    }

    /// The secret itself (for aws-sigv4, which derives its own key, and for Basic auth).
    pub fn secret(&self) -> &SecretKey {
        &self.secret
    }

    /// The signing key for `date` (`YYYYMMDD`), `region` and `service`.
    fn signing_key(&self, date: &str, region: &str, service: &str) -> hmac::Key {
        let mut derived = self.derived.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((scope, key)) = derived.as_ref()
            && scope.date == date
            && scope.region == region
            && scope.service == service
        {
            return key.clone();
        }
        let key = signing_key(self.secret.expose(), date, region, service);
        let scope = Scope {
            date: date.to_owned(),
            region: region.to_owned(),
            service: service.to_owned(),
        };
        *derived = Some((scope, key.clone()));
        key
    }
}

impl std::fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("VerifyingKey(** redacted **)")
    }
}

/// What the signature is made of, after [`crate::sigv4::verify`]'s checks.
pub(crate) struct Signed<'a> {
    pub method: &'a str,
    pub path_and_query: &'a str,
    /// The signed headers in the order of the `SignedHeaders` list (sorted, lowercase), each
    /// with the values received, `x-amz-date` included.
    pub headers: &'a [(&'a str, &'a str)],
    /// The `SignedHeaders` list as signed.
    pub signed_headers: &'a [&'a str],
    /// Lowercase hex SHA-256 of the body.
    pub payload_hash: &'a [u8; 64],
    /// `YYYYMMDDTHHMMSSZ`.
    pub amz_date: &'a str,
    pub region: &'a str,
    pub service: &'a str,
}

/// The signature (lowercase hex) of `signed` with `key`, or `None` when the request needs
/// real canonicalization.
pub(crate) fn signature(signed: &Signed<'_>, key: &VerifyingKey) -> Option<[u8; 64]> {
    if !plain_path(signed.path_and_query) {
        return None;
    }
    if signed.headers.len() != signed.signed_headers.len()
        || signed
            .headers
            .iter()
            .zip(signed.signed_headers)
            .any(|((name, value), listed)| name != listed || !tidy_value(value))
    {
        return None;
    }

    let mut request = digest::Context::new(&digest::SHA256);
    for part in [signed.method, "\n", signed.path_and_query, "\n", "\n"] {
        request.update(part.as_bytes());
    }
    for (name, value) in signed.headers {
        for part in [name, ":", value, "\n"] {
            request.update(part.as_bytes());
        }
    }
    request.update(b"\n");
    for (i, name) in signed.signed_headers.iter().enumerate() {
        if i > 0 {
            request.update(b";");
        }
        request.update(name.as_bytes());
    }
    request.update(b"\n");
    request.update(signed.payload_hash);
    let request_hash = hex(request.finish().as_ref());

    let date = signed.amz_date.get(..8)?;
    let key = key.signing_key(date, signed.region, signed.service);
    let mut to_sign = hmac::Context::with_key(&key);
    for part in [
        crate::sigv4::ALGORITHM,
        "\n",
        signed.amz_date,
        "\n",
        date,
        "/",
        signed.region,
        "/",
        signed.service,
        "/aws4_request\n",
    ] {
        to_sign.update(part.as_bytes());
    }
    to_sign.update(&request_hash);
    Some(hex(to_sign.sign().as_ref()))
}

/// SigV4's key derivation: the secret, narrowed to a day, a region, a service.
fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> hmac::Key {
    let mut key = Vec::with_capacity(4 + secret.len());
    key.extend_from_slice(b"AWS4");
    key.extend_from_slice(secret.as_bytes());
    let mut tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &key), date.as_bytes());
    for part in [region, service, "aws4_request"] {
        tag = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, tag.as_ref()),
            part.as_bytes(),
        );
    }
    hmac::Key::new(hmac::HMAC_SHA256, tag.as_ref())
}

/// A path that canonicalizes to itself: absolute, no query, no empty or dot segments and
/// nothing to percent-encode.
fn plain_path(path: &str) -> bool {
    path.starts_with('/')
        && !path.contains("//")
        && path
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'/' || b == b'-' || b == b'_' || b == b'~')
}

/// A header value that canonicalizes to itself: visible ASCII with single inner spaces.
fn tidy_value(value: &str) -> bool {
    let bytes = value.as_bytes();
    !bytes.is_empty()
        && bytes[0] != b' '
        && bytes[bytes.len() - 1] != b' '
        && bytes.iter().all(|b| (b' '..=b'~').contains(b))
        && !value.contains("  ")
}

/// Lowercase hex of a SHA-256 digest or HMAC tag.
pub(crate) fn hex(bytes: &[u8]) -> [u8; 64] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = [b'0'; 64];
    for (i, b) in bytes.iter().take(32).enumerate() {
        out[2 * i] = DIGITS[usize::from(b >> 4)];
        out[2 * i + 1] = DIGITS[usize::from(b & 0x0f)];
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use proptest::prelude::*;

    use super::*;
    use crate::SecretKey;
    use crate::sigv4::sdk_signature;

    /// Signs `headers` (name, value; names lowercase and sorted, `x-amz-date` among them) both
    /// ways: (fast path, aws-sigv4).
    fn both(
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        secret: &str,
    ) -> (Option<[u8; 64]>, String) {
        let mut names: Vec<&str> = headers.iter().map(|(n, _)| *n).collect();
        names.dedup();
        let payload_hash = hex(digest::digest(&digest::SHA256, b"{}").as_ref());
        let signed = Signed {
            method,
            path_and_query: path,
            headers,
            signed_headers: &names,
            payload_hash: &payload_hash,
            amz_date: "20261201T120000Z",
            region: "us-east-1",
            service: "ecs",
        };
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_126_400);
        let sdk = sdk_signature("BKIATEST", &SecretKey::new(secret), &signed, at).expect("sdk");
        let key = VerifyingKey::new(SecretKey::new(secret));
        (signature(&signed, &key), sdk)
    }

    /// Header values as clients send them, and as hostile ones do.
    fn value() -> impl Strategy<Value = String> {
        prop_oneof![
            "[!-~]{1,20}",
            "[!-~]{1,8}( [!-~]{1,8}){0,3}",
            "[ -~\\t]{0,20}",
            Just("application/x-amz-json-1.1".to_owned()),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        /// The fast path is aws-sigv4 made quicker, never different: wherever it answers, it
        /// answers what the SDK's signer does.
        #[test]
        fn the_fast_path_agrees_with_aws_sigv4(
            method in prop_oneof![Just("POST"), Just("GET"), Just("DELETE")],
            path in prop_oneof![
                Just("/".to_owned()),
                "(/[a-zA-Z0-9_~-]{1,10}){1,4}",
                "(/[a-zA-Z0-9._~%:=?-]{0,10}){1,4}",
            ],
            extra in prop::collection::btree_map("x-[a-z]{1,8}", value(), 0..4),
            repeat in any::<bool>(),
            secret in "[A-Za-z0-9/+]{20,40}",
        ) {
            let mut headers: Vec<(&str, &str)> = vec![
                ("content-type", "application/x-amz-json-1.1"),
                ("host", "127.0.0.1:8642"),
            ];
            headers.extend(extra.iter().map(|(n, v)| (n.as_str(), v.as_str())));
            headers.push(("x-amz-date", "20261201T120000Z"));
            if repeat {
                headers.insert(1, ("content-type", "text/plain"));
            }
            headers.sort_by_key(|(n, _)| *n);
            let (fast, sdk) = both(method, &path, &headers, &secret);
            if let Some(fast) = fast {
                prop_assert_eq!(std::str::from_utf8(&fast).expect("hex"), sdk.as_str());
            }
        }
    }

    #[test]
    fn what_sdks_send_takes_the_fast_path() {
        let headers = [
            ("content-type", "application/x-amz-json-1.1"),
            ("host", "127.0.0.1:8642"),
            ("x-amz-date", "20261201T120000Z"),
            (
                "x-amz-target",
                "AmazonEC2ContainerServiceV20141113.DescribeTasks",
            ),
        ];
        let (fast, sdk) = both("POST", "/", &headers, "s3cr3t");
        assert_eq!(
            fast.map(|f| String::from_utf8(f.to_vec()).expect("hex")),
            Some(sdk)
        );
        let (fast, _) = both("GET", "/v1/watch?index=3", &headers, "s3cr3t");
        assert!(
            fast.is_none(),
            "a query string is canonicalized by aws-sigv4"
        );
    }

    #[test]
    fn a_key_derived_for_one_scope_is_never_used_for_another() {
        let cached = VerifyingKey::new(SecretKey::new("s3cr3t"));
        let payload_hash = hex(digest::digest(&digest::SHA256, b"{}").as_ref());
        let headers = [("host", "h"), ("x-amz-date", "")];
        let names = ["host", "x-amz-date"];
        let sign = |key: &VerifyingKey, amz_date: &str, region: &str, service: &str| {
            let headers = [headers[0], ("x-amz-date", amz_date)];
            let signed = Signed {
                method: "POST",
                path_and_query: "/",
                headers: &headers,
                signed_headers: &names,
                payload_hash: &payload_hash,
                amz_date,
                region,
                service,
            };
            signature(&signed, key).expect("fast path")
        };
        for (date, region, service) in [
            ("20261201T120000Z", "us-east-1", "ecs"),
            ("20261201T235959Z", "us-east-1", "ecs"),
            ("20261202T000000Z", "us-east-1", "ecs"),
            ("20261202T000000Z", "eu-west-1", "ecs"),
            ("20261202T000000Z", "eu-west-1", "berth"),
            ("20261201T120000Z", "us-east-1", "ecs"),
        ] {
            let fresh = VerifyingKey::new(SecretKey::new("s3cr3t"));
            assert_eq!(
                sign(&cached, date, region, service),
                sign(&fresh, date, region, service),
                "{date} {region} {service}"
            );
        }
    }

    #[test]
    fn only_requests_that_need_no_canonicalization_take_this_path() {
        assert!(plain_path("/"));
        assert!(plain_path("/v1/credentials"));
        for path in [
            "",
            "v1",
            "/v1/../x",
            "/v1/./x",
            "/a//b",
            "/v1/tasks/arn%3Aaws",
            "/v1/watch?index=3",
            "/a b",
        ] {
            assert!(!plain_path(path), "{path}");
        }
        assert!(tidy_value("application/x-amz-json-1.1"));
        assert!(tidy_value("a b c"));
        for value in ["", " a", "a ", "a  b", "a\tb", "é"] {
            assert!(!tidy_value(value), "{value:?}");
        }
    }

    #[test]
    fn hex_is_lowercase_and_complete() {
        let mut bytes = [0u8; 32];
        bytes[0] = 0xab;
        bytes[31] = 0x0f;
        let h = hex(&bytes);
        assert_eq!(&h[..2], b"ab");
        assert_eq!(&h[62..], b"0f");
        assert!(h[2..62].iter().all(|b| *b == b'0'));
    }
}
