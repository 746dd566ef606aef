//! AWS Signature Version 4, as berth verifies it and as berth's own clients make it.
//!
//! ```text
//!  Authorization: AWS4-HMAC-SHA256 Credential=KEY/DATE/REGION/SERVICE/aws4_request,
//!                 SignedHeaders=h1;h2;..., Signature=HEX
//!        │ parse_authorization (no secret needed: who claims to be calling, for what)
//!        ▼
//!  secret of KEY ──► verify: the AWS SDK's own signer (aws-sigv4) over exactly the signed
//!                    headers, the X-Amz-Date time and the body hash ──► compare, constant time
//! ```
//! Verification does not re-implement the algorithm: it asks `aws-sigv4`, the signer inside
//! the AWS Rust SDK, to sign the request berth received with the secret berth holds, and
//! compares the two signatures. Canonicalization (header value trimming, path
//! normalization, query ordering, double encoding) therefore cannot drift from what the
//! SDKs, aws-cli and boto3 do.
//!
//! Time is an input (`now`), so every rule here is testable without a clock.

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_smithy_runtime_api::client::identity::Identity;
use subtle::ConstantTimeEq;
use time::OffsetDateTime;
use time::macros::format_description;

use crate::canonical;
pub use crate::canonical::VerifyingKey;
use crate::secret::SecretKey;

/// The only algorithm berth accepts.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// How far a request's `X-Amz-Date` may be from the server's clock, either way.
pub const MAX_SKEW: Duration = Duration::from_secs(5 * 60);

/// Longest `Authorization` header worth parsing.
const MAX_HEADER_LEN: usize = 4096;
/// Most headers a request may sign.
const MAX_SIGNED_HEADERS: usize = 64;

/// Why a request's signature was not accepted. Each maps to the exception AWS answers with
/// ([`SigV4Error::exception`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigV4Error {
    /// The request carries no `Authorization` header at all.
    #[error("Missing Authentication Token")]
    Missing,
    /// The header is not a well-formed SigV4 header: a part is missing or malformed.
    #[error("{0}")]
    Incomplete(String),
    /// The request was signed with a session token; berth issues none.
    #[error("The security token included in the request is invalid.")]
    SessionToken,
    /// The scope names another service than the API called.
    #[error(
        "Credential should be scoped to correct service: '{expected}'. (The request was signed for '{got}'.)"
    )]
    WrongService { expected: String, got: String },
    /// `X-Amz-Date` is older than [`MAX_SKEW`].
    #[error("Signature expired: {date} is now earlier than {limit} ({now} - 5 min.)")]
    Expired {
        date: String,
        limit: String,
        now: String,
    },
    /// `X-Amz-Date` is later than [`MAX_SKEW`] ahead.
    #[error("Signature not yet current: {date} is still later than {limit} ({now} + 5 min.)")]
    NotYetCurrent {
        date: String,
        limit: String,
        now: String,
    },
    /// The signature differs from the one made with the key's secret.
    #[error(
        "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
    )]
    Mismatch,
}

impl SigV4Error {
    /// The AWS exception name for this error.
    pub fn exception(&self) -> &'static str {
        match self {
            SigV4Error::Missing => "MissingAuthenticationTokenException",
            SigV4Error::Incomplete(_) => "IncompleteSignatureException",
            SigV4Error::SessionToken => "UnrecognizedClientException",
            SigV4Error::WrongService { .. }
            | SigV4Error::Expired { .. }
            | SigV4Error::NotYetCurrent { .. }
            | SigV4Error::Mismatch => "InvalidSignatureException",
        }
    }
}

fn incomplete(message: impl Into<String>) -> SigV4Error {
    SigV4Error::Incomplete(message.into())
}

/// The parts of a SigV4 `Authorization` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization<'a> {
    pub access_key_id: &'a str,
    /// `YYYYMMDD`, the scope's date.
    pub date: &'a str,
    pub region: &'a str,
    /// The signing name of the API the caller meant (`ecs`, `berth`, ...).
    pub service: &'a str,
    /// Lowercase, sorted, unique.
    pub signed_headers: Vec<&'a str>,
    /// 64 lowercase hex digits.
    pub signature: &'a str,
}

/// Parses an `Authorization` header. Needs no secret: this tells who claims to be calling.
pub fn parse_authorization(header: &str) -> Result<Authorization<'_>, SigV4Error> {
    if header.len() > MAX_HEADER_LEN {
        return Err(incomplete(format!(
            "The Authorization header is longer than {MAX_HEADER_LEN} characters"
        )));
    }
    let rest = header
        .strip_prefix(ALGORITHM)
        .and_then(|r| r.strip_prefix(' '))
        .ok_or_else(|| {
            incomplete(format!(
                "Authorization header requires the {ALGORITHM} algorithm followed by \
                 'Credential', 'SignedHeaders' and 'Signature' parameters"
            ))
        })?;
    let (mut credential, mut signed_headers, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let part = part.trim();
        let (key, value) = part.split_once('=').ok_or_else(|| {
            incomplete(format!(
                "Authorization header parameter '{}' is not KEY=VALUE",
                shorten(part)
            ))
        })?;
        let slot = match key {
            "Credential" => &mut credential,
            "SignedHeaders" => &mut signed_headers,
            "Signature" => &mut signature,
            other => {
                return Err(incomplete(format!(
                    "Authorization header has an unknown parameter '{}'",
                    shorten(other)
                )));
            }
        };
        if slot.replace(value).is_some() {
            return Err(incomplete(format!(
                "Authorization header has '{key}' more than once"
            )));
        }
    }
    let missing =
        |name: &str| incomplete(format!("Authorization header requires '{name}' parameter."));
    let credential = credential.ok_or_else(|| missing("Credential"))?;
    let signed_headers = signed_headers.ok_or_else(|| missing("SignedHeaders"))?;
    let signature = signature.ok_or_else(|| missing("Signature"))?;

    let scope: Vec<&str> = credential.split('/').collect();
    let [access_key_id, date, region, service, terminator] = scope[..] else {
        return Err(incomplete(format!(
            "Credential should be KEY/YYYYMMDD/REGION/SERVICE/aws4_request, got '{}'",
            shorten(credential)
        )));
    };
    if access_key_id.is_empty()
        || access_key_id.len() > 128
        || !access_key_id.bytes().all(|b| b.is_ascii_alphanumeric())
    {
        return Err(incomplete("The Credential's access key id is malformed"));
    }
    if date.len() != 8 || !date.bytes().all(|b| b.is_ascii_digit()) {
        return Err(incomplete(format!(
            "The Credential's date '{}' is not YYYYMMDD",
            shorten(date)
        )));
    }
    let name_ok = |s: &str| {
        !s.is_empty()
            && s.len() <= 64
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    };
    if !name_ok(region) {
        return Err(incomplete(format!(
            "The Credential's region '{}' is malformed",
            shorten(region)
        )));
    }
    if !name_ok(service) {
        return Err(incomplete(format!(
            "The Credential's service '{}' is malformed",
            shorten(service)
        )));
    }
    if terminator != "aws4_request" {
        return Err(incomplete(
            "Credential should be scoped with a valid terminator: 'aws4_request'",
        ));
    }

    let headers: Vec<&str> = signed_headers.split(';').collect();
    if headers.len() > MAX_SIGNED_HEADERS {
        return Err(incomplete(format!(
            "SignedHeaders lists more than {MAX_SIGNED_HEADERS} headers"
        )));
    }
    for h in &headers {
        let token = !h.is_empty()
            && h.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.!#$%&'*+^`|~".contains(&b)
            });
        if !token {
            return Err(incomplete(format!(
                "SignedHeaders entry '{}' is not a lowercase header name",
                shorten(h)
            )));
        }
    }
    if headers.windows(2).any(|w| w[0] >= w[1]) {
        return Err(incomplete(
            "SignedHeaders must be sorted and list each header once",
        ));
    }
    if signature.len() != 64
        || !signature
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(incomplete(
            "Signature must be 64 lowercase hexadecimal digits",
        ));
    }
    Ok(Authorization {
        access_key_id,
        date,
        region,
        service,
        signed_headers: headers,
        signature,
    })
}

/// The body of a request, or its SHA-256 (lowercase hex) when the caller signed
/// `x-amz-content-sha256` and the body is checked against it while it is read.
#[derive(Debug, Clone, Copy)]
pub enum Payload<'a> {
    Bytes(&'a [u8]),
    Sha256Hex(&'a str),
}

/// What verification needs of a received request.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub method: &'a str,
    /// The request target as received (still percent-encoded), e.g. `/v1/watch?index=3`.
    pub path_and_query: &'a str,
    /// Every header received; names in any case.
    pub headers: &'a [(&'a str, &'a str)],
    pub payload: Payload<'a>,
}

impl<'a> Request<'a> {
    fn values<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'a str> + 's {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    }
}

const AMZ_DATE: &[time::format_description::BorrowedFormatItem<'static>] =
    format_description!("[year][month][day]T[hour][minute][second]Z");

/// Formats a time as SigV4's `YYYYMMDDTHHMMSSZ`.
pub fn format_amz_date(t: SystemTime) -> String {
    OffsetDateTime::from(t)
        .format(AMZ_DATE)
        .unwrap_or_else(|_| "00000000T000000Z".into())
}

/// Parses exactly `YYYYMMDDTHHMMSSZ` (fixed width, digits only), so the signed string is the
/// one re-created.
fn parse_amz_date(value: &str) -> Option<SystemTime> {
    let b = value.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let number = |range: std::ops::Range<usize>| -> Option<u16> {
        b[range].iter().try_fold(0u16, |n, d| {
            d.is_ascii_digit().then(|| n * 10 + u16::from(d - b'0'))
        })
    };
    let month = time::Month::try_from(u8::try_from(number(4..6)?).ok()?).ok()?;
    let date = time::Date::from_calendar_date(
        i32::from(number(0..4)?),
        month,
        u8::try_from(number(6..8)?).ok()?,
    )
    .ok()?;
    let at = time::Time::from_hms(
        u8::try_from(number(9..11)?).ok()?,
        u8::try_from(number(11..13)?).ok()?,
        u8::try_from(number(13..15)?).ok()?,
    )
    .ok()?;
    Some(time::PrimitiveDateTime::new(date, at).assume_utc().into())
}

/// Checks that `auth` (parsed from `request`'s `Authorization` header) is a valid signature
/// of `request` for the API whose signing name is `service`, made with `key`'s secret at a
/// time within [`MAX_SKEW`] of `now`.
pub fn verify(
    auth: &Authorization<'_>,
    request: &Request<'_>,
    service: &str,
    key: &VerifyingKey,
    now: SystemTime,
) -> Result<(), SigV4Error> {
    if auth.service != service {
        return Err(SigV4Error::WrongService {
            expected: service.to_owned(),
            got: auth.service.to_owned(),
        });
    }
    if request.values("x-amz-security-token").next().is_some() {
        return Err(SigV4Error::SessionToken);
    }
    for required in ["host", "x-amz-date"] {
        if !auth.signed_headers.contains(&required) {
            return Err(incomplete(format!(
                "SignedHeaders must include '{required}'"
            )));
        }
    }
    let mut dates = request.values("x-amz-date");
    let (Some(date), None) = (dates.next(), dates.next()) else {
        return Err(incomplete(
            "The request needs exactly one X-Amz-Date header",
        ));
    };
    let signed_at = parse_amz_date(date).ok_or_else(|| {
        incomplete(format!(
            "X-Amz-Date '{}' is not YYYYMMDDTHHMMSSZ",
            shorten(date)
        ))
    })?;
    if !date.starts_with(auth.date) {
        return Err(incomplete(format!(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{}' != '{}'",
            auth.date,
            &date[..8]
        )));
    }
    if signed_at + MAX_SKEW < now {
        return Err(SigV4Error::Expired {
            date: date.to_owned(),
            limit: format_amz_date(now - MAX_SKEW),
            now: format_amz_date(now),
        });
    }
    if signed_at > now + MAX_SKEW {
        return Err(SigV4Error::NotYetCurrent {
            date: date.to_owned(),
            limit: format_amz_date(now + MAX_SKEW),
            now: format_amz_date(now),
        });
    }

    // Exactly the signed headers, in the order they were listed (sorted).
    let mut headers: Vec<(&str, &str)> = Vec::with_capacity(auth.signed_headers.len());
    for name in &auth.signed_headers {
        let before = headers.len();
        headers.extend(request.values(name).map(|v| (*name, v)));
        if headers.len() == before {
            return Err(incomplete(format!(
                "The signed header '{name}' is missing from the request"
            )));
        }
    }
    let payload_hash = match request.payload {
        Payload::Bytes(b) => {
            canonical::hex(ring::digest::digest(&ring::digest::SHA256, b).as_ref())
        }
        Payload::Sha256Hex(h) => {
            let h = h.as_bytes();
            if h.len() != 64 || !h.iter().all(u8::is_ascii_hexdigit) {
                return Err(incomplete("x-amz-content-sha256 must be a SHA-256 in hex"));
            }
            let mut lower = [0u8; 64];
            for (l, b) in lower.iter_mut().zip(h) {
                *l = b.to_ascii_lowercase();
            }
            lower
        }
    };
    let signed = canonical::Signed {
        method: request.method,
        path_and_query: request.path_and_query,
        headers: &headers,
        signed_headers: &auth.signed_headers,
        payload_hash: &payload_hash,
        amz_date: date,
        region: auth.region,
        service,
    };
    let expected = match canonical::signature(&signed, key) {
        Some(fast) => fast.to_vec(),
        None => sdk_signature(auth.access_key_id, key.secret(), &signed, signed_at)?.into_bytes(),
    };
    if bool::from(expected.as_slice().ct_eq(auth.signature.as_bytes())) {
        Ok(())
    } else {
        Err(SigV4Error::Mismatch)
    }
}

/// The signature as `aws-sigv4` makes it: the definition the fast path is checked against,
/// and the answer for every request that needs real canonicalization.
pub(crate) fn sdk_signature(
    access_key_id: &str,
    secret: &SecretKey,
    signed: &canonical::Signed<'_>,
    signed_at: SystemTime,
) -> Result<String, SigV4Error> {
    // The signer adds x-amz-date itself, from `signed_at`.
    let headers = signed
        .headers
        .iter()
        .filter(|(name, _)| *name != "x-amz-date")
        .copied();
    let hash = std::str::from_utf8(signed.payload_hash)
        .map_err(|_| incomplete("x-amz-content-sha256 must be a SHA-256 in hex"))?;
    signature(
        access_key_id,
        secret,
        signed.region,
        signed.service,
        signed_at,
        signed.method,
        signed.path_and_query,
        headers,
        SignableBody::Precomputed(hash.to_owned()),
        verification_settings(),
    )
}

/// Verification signs exactly the headers the caller listed: none is excluded.
fn verification_settings() -> SigningSettings {
    let mut settings = SigningSettings::default();
    settings.excluded_headers = None;
    settings
}

#[allow(clippy::too_many_arguments)]
fn signature<'a>(
    access_key_id: &str,
    secret: &SecretKey,
    region: &str,
    service: &str,
    at: SystemTime,
    method: &'a str,
    uri: &'a str,
    headers: impl Iterator<Item = (&'a str, &'a str)>,
    body: SignableBody<'a>,
    settings: SigningSettings,
) -> Result<String, SigV4Error> {
    let identity: Identity =
        Credentials::new(access_key_id, secret.expose(), None, None, "berth").into();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(at)
        .settings(settings)
        .build()
        .map_err(|e| incomplete(format!("cannot check the signature: {e}")))?
        .into();
    let request = SignableRequest::new(method, uri, headers, body)
        .map_err(|e| incomplete(format!("the request cannot be canonicalized: {e}")))?;
    let output = sign(request, &params)
        .map_err(|e| incomplete(format!("the request cannot be canonicalized: {e}")))?;
    Ok(output.signature().to_owned())
}

/// Who signs, for what: berth's own clients (agents, the CLI, peers, tests) sign with this.
#[derive(Debug, Clone)]
pub struct Signer {
    pub access_key_id: String,
    pub secret: SecretKey,
    pub region: String,
    /// The signing name of the API called.
    pub service: String,
}

/// Why a request could not be signed.
#[derive(Debug, thiserror::Error)]
#[error("cannot sign the request: {0}")]
pub struct SignError(String);

impl Signer {
    /// The headers to add to a request to `uri` (absolute, with its authority) with
    /// `headers` and `body`: `authorization` and `x-amz-date`, plus `x-amz-content-sha256`
    /// when `content_sha256` (which lets a server check the signature before reading a
    /// large body).
    pub fn sign(
        &self,
        method: &str,
        uri: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        content_sha256: bool,
        now: SystemTime,
    ) -> Result<Vec<(&'static str, String)>, SignError> {
        let identity: Identity = Credentials::new(
            &self.access_key_id,
            self.secret.expose(),
            None,
            None,
            "berth",
        )
        .into();
        let mut settings = SigningSettings::default();
        if content_sha256 {
            settings.payload_checksum_kind =
                aws_sigv4::http_request::PayloadChecksumKind::XAmzSha256;
        }
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name(&self.service)
            .time(now)
            .settings(settings)
            .build()
            .map_err(|e| SignError(e.to_string()))?
            .into();
        let request = SignableRequest::new(
            method,
            uri,
            headers.iter().copied(),
            SignableBody::Bytes(body),
        )
        .map_err(|e| SignError(e.to_string()))?;
        let (instructions, _) = sign(request, &params)
            .map_err(|e| SignError(e.to_string()))?
            .into_parts();
        let (headers, _) = instructions.into_parts();
        Ok(headers
            .into_iter()
            .map(|h| (h.name(), h.value().to_owned()))
            .collect())
    }
}

/// The lowercase hex SHA-256 of `bytes`, as `x-amz-content-sha256` carries it.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    canonical::hex(digest.as_ref())
        .iter()
        .map(|b| char::from(*b))
        .collect()
}

fn shorten(s: &str) -> String {
    s.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> SystemTime {
        parse_amz_date(s).expect("date")
    }

    const EXAMPLE_SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

    /// Vectors from the AWS SigV4 test suite (service `service`, us-east-1, 2015-08-30).
    fn vector(
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        authorization: &str,
    ) -> Result<(), SigV4Error> {
        let mut all: Vec<(&str, &str)> = headers.to_vec();
        all.push(("X-Amz-Date", "20150830T123600Z"));
        all.push(("Authorization", authorization));
        let auth = parse_authorization(authorization)?;
        let request = Request {
            method,
            path_and_query: path,
            headers: &all,
            payload: Payload::Bytes(body),
        };
        verify(
            &auth,
            &request,
            "service",
            &VerifyingKey::new(SecretKey::new(EXAMPLE_SECRET)),
            at("20150830T123900Z"),
        )
    }

    #[test]
    fn aws_test_suite_vectors_verify() {
        vector(
            "POST",
            "/",
            &[("Host", "example.amazonaws.com")],
            b"",
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
        )
        .expect("post-vanilla");
        vector(
            "GET",
            "/",
            &[
                ("Host", "example.amazonaws.com"),
                ("My-Header1", "value1"),
                ("My-Header2", "\"a   b   c\""),
            ],
            b"",
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;my-header1;my-header2;x-amz-date, Signature=acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736",
        )
        .expect("get-header-value-trim");
        vector(
            "POST",
            "/",
            &[
                ("Content-Type", "application/x-www-form-urlencoded"),
                ("Host", "example.amazonaws.com"),
                ("Content-Length", "13"),
                (
                    "x-amz-content-sha256",
                    "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e",
                ),
            ],
            b"Param1=value1",
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=content-length;content-type;host;x-amz-content-sha256;x-amz-date, Signature=d3875051da38690788ef43de4db0d8f280229d82040bfac253562e56c3f20e0b",
        )
        .expect("post-x-www-form-urlencoded");
    }

    #[test]
    fn a_changed_body_header_or_secret_is_a_mismatch() {
        let auth = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=content-length;content-type;host;x-amz-content-sha256;x-amz-date, Signature=d3875051da38690788ef43de4db0d8f280229d82040bfac253562e56c3f20e0b";
        let headers = [
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Host", "example.amazonaws.com"),
            ("Content-Length", "13"),
            (
                "x-amz-content-sha256",
                "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e",
            ),
        ];
        assert_eq!(
            vector("POST", "/", &headers, b"Param1=value2", auth),
            Err(SigV4Error::Mismatch)
        );
        let mut other_host = headers;
        other_host[1] = ("Host", "evil.example.com");
        assert_eq!(
            vector("POST", "/", &other_host, b"Param1=value1", auth),
            Err(SigV4Error::Mismatch)
        );
        assert_eq!(
            vector("POST", "/x", &headers, b"Param1=value1", auth),
            Err(SigV4Error::Mismatch)
        );
    }

    fn signer(service: &str) -> Signer {
        Signer {
            access_key_id: "BKIATESTKEY".into(),
            secret: SecretKey::new("s3cr3t-s3cr3t-s3cr3t"),
            region: "eu-west-1".into(),
            service: service.into(),
        }
    }

    /// Signs like a client, then verifies like the server.
    fn round_trip(
        signer: &Signer,
        secret: &SecretKey,
        signed_at: SystemTime,
        now: SystemTime,
        service: &str,
        content_sha256: bool,
    ) -> Result<(), SigV4Error> {
        let body = br#"{"cluster":"default"}"#;
        let base = [
            ("content-type", "application/x-amz-json-1.1"),
            (
                "x-amz-target",
                "AmazonEC2ContainerServiceV20141113.ListTasks",
            ),
            ("host", "127.0.0.1:8642"),
        ];
        let added = signer
            .sign(
                "POST",
                "http://127.0.0.1:8642/v1/watch?index=3&timeout=1",
                &base,
                body,
                content_sha256,
                signed_at,
            )
            .expect("sign");
        let mut headers: Vec<(&str, &str)> = base.to_vec();
        headers.extend(added.iter().map(|(k, v)| (*k, v.as_str())));
        headers.push(("user-agent", "anything, not signed"));
        let authorization = headers
            .iter()
            .find(|(k, _)| *k == "authorization")
            .expect("authorization")
            .1;
        let auth = parse_authorization(authorization)?;
        let hash = sha256_hex(body);
        let payload = if content_sha256 {
            Payload::Sha256Hex(&hash)
        } else {
            Payload::Bytes(body)
        };
        verify(
            &auth,
            &Request {
                method: "POST",
                path_and_query: "/v1/watch?index=3&timeout=1",
                headers: &headers,
                payload,
            },
            service,
            &VerifyingKey::new(secret.clone()),
            now,
        )
    }

    #[test]
    fn signed_by_berth_clients_verifies() {
        let s = signer("berth");
        let t = at("20261201T120000Z");
        round_trip(&s, &s.secret, t, t, "berth", false).expect("body");
        round_trip(&s, &s.secret, t, t, "berth", true).expect("content sha256");
        assert_eq!(
            round_trip(&s, &SecretKey::new("wrong"), t, t, "berth", false),
            Err(SigV4Error::Mismatch)
        );
        assert!(matches!(
            round_trip(&s, &s.secret, t, t, "ecs", false),
            Err(SigV4Error::WrongService { .. })
        ));
    }

    #[test]
    fn the_date_must_be_within_five_minutes() {
        let s = signer("berth");
        let t = at("20261201T120000Z");
        let ok = [-300i64, 0, 300];
        for skew in ok {
            let now = t.checked_add(Duration::from_secs(skew.unsigned_abs()));
            let now = if skew < 0 {
                t - Duration::from_secs(skew.unsigned_abs())
            } else {
                now.expect("time")
            };
            round_trip(&s, &s.secret, t, now, "berth", false).expect("within skew");
        }
        let late = round_trip(
            &s,
            &s.secret,
            t,
            t + Duration::from_secs(301),
            "berth",
            false,
        );
        assert!(matches!(late, Err(SigV4Error::Expired { .. })), "{late:?}");
        assert_eq!(late.unwrap_err().exception(), "InvalidSignatureException");
        let early = round_trip(
            &s,
            &s.secret,
            t,
            t - Duration::from_secs(301),
            "berth",
            false,
        );
        assert!(
            matches!(early, Err(SigV4Error::NotYetCurrent { .. })),
            "{early:?}"
        );
    }

    #[test]
    fn malformed_headers_are_incomplete() {
        let good = "AWS4-HMAC-SHA256 Credential=AK/20261201/us-east-1/ecs/aws4_request, SignedHeaders=host;x-amz-date, Signature=0000000000000000000000000000000000000000000000000000000000000000";
        let parsed = parse_authorization(good).expect("good");
        assert_eq!(parsed.access_key_id, "AK");
        assert_eq!(parsed.region, "us-east-1");
        assert_eq!(parsed.service, "ecs");
        assert_eq!(parsed.signed_headers, ["host", "x-amz-date"]);
        for bad in [
            "",
            "Bearer xyz",
            "AWS4-HMAC-SHA256",
            "AWS4-HMAC-SHA256 Credential=AK/20261201/us-east-1/ecs/aws4_request",
            "AWS4-HMAC-SHA256 Credential=AK/2026/us-east-1/ecs/aws4_request, SignedHeaders=host, Signature=00",
            "AWS4-HMAC-SHA256 Credential=AK/20261201/us-east-1/ecs/aws4, SignedHeaders=host;x-amz-date, Signature=0000000000000000000000000000000000000000000000000000000000000000",
            "AWS4-HMAC-SHA256 Credential=AK/20261201/us-east-1/ecs/aws4_request, SignedHeaders=x-amz-date;host, Signature=0000000000000000000000000000000000000000000000000000000000000000",
            "AWS4-HMAC-SHA256 Credential=AK/20261201/US/ecs/aws4_request, SignedHeaders=host, Signature=0000000000000000000000000000000000000000000000000000000000000000",
            "AWS4-HMAC-SHA256 Credential=A K/20261201/us-east-1/ecs/aws4_request, SignedHeaders=host, Signature=0000000000000000000000000000000000000000000000000000000000000000",
            "AWS4-HMAC-SHA256 Credential=AK/20261201/us-east-1/ecs/aws4_request, Credential=AK/20261201/us-east-1/ecs/aws4_request, SignedHeaders=host, Signature=0000000000000000000000000000000000000000000000000000000000000000",
            "AWS4-HMAC-SHA256 Credential=AK/20261201/us-east-1/ecs/aws4_request, SignedHeaders=host, Signature=ZZZZ000000000000000000000000000000000000000000000000000000000000",
        ] {
            let err = parse_authorization(bad).expect_err(bad);
            assert_eq!(err.exception(), "IncompleteSignatureException", "{bad}");
        }
    }

    #[test]
    fn session_tokens_and_unsigned_host_are_refused() {
        let s = signer("berth");
        let key = VerifyingKey::new(s.secret.clone());
        let t = at("20261201T120000Z");
        let added = s
            .sign(
                "GET",
                "http://h:1/v1/health",
                &[("host", "h:1")],
                b"",
                false,
                t,
            )
            .expect("sign");
        let auth_value = added
            .iter()
            .find(|(k, _)| *k == "authorization")
            .expect("authorization")
            .1
            .clone();
        let auth = parse_authorization(&auth_value).expect("parse");
        let date = added
            .iter()
            .find(|(k, _)| *k == "x-amz-date")
            .expect("date")
            .1
            .clone();
        let headers = [
            ("host", "h:1"),
            ("x-amz-date", date.as_str()),
            ("x-amz-security-token", "FQoG..."),
        ];
        let request = Request {
            method: "GET",
            path_and_query: "/v1/health",
            headers: &headers,
            payload: Payload::Bytes(b""),
        };
        assert_eq!(
            verify(&auth, &request, "berth", &key, t),
            Err(SigV4Error::SessionToken)
        );
        let no_host = Authorization {
            signed_headers: vec!["x-amz-date"],
            ..auth.clone()
        };
        let request = Request {
            headers: &headers[..2],
            ..request
        };
        assert_eq!(
            verify(&no_host, &request, "berth", &key, t)
                .unwrap_err()
                .exception(),
            "IncompleteSignatureException"
        );
        verify(&auth, &request, "berth", &key, t).expect("the real request verifies");
    }

    #[test]
    fn amz_dates_are_strict() {
        assert!(parse_amz_date("20261201T120000Z").is_some());
        for bad in [
            "2026-12-01T12:00:00Z",
            "20261301T120000Z",
            "20261201T120000",
            "+20261201T120000Z",
            "",
        ] {
            assert!(parse_amz_date(bad).is_none(), "{bad}");
        }
        assert_eq!(format_amz_date(at("20261201T120000Z")), "20261201T120000Z");
    }
}
