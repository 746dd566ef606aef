//! Property tests (the fuzz targets of the trust layer): the SigV4 header parser, the verifier
//! and the policy evaluator must never panic, whatever a caller sends; signatures made by
//! berth's signer always verify and any change to what was signed never does; the wildcard
//! matcher agrees with a plain recursive oracle.

use std::time::{Duration, SystemTime};

use berth_auth::policy::{Decision, Policy, arn_like, glob};
use berth_auth::sigv4::{self, Payload, Request, VerifyingKey};
use berth_auth::{JoinToken, Role, SecretKey, Signer};
use proptest::prelude::*;

/// Strings that look like Authorization headers often enough to reach the inner checks.
fn authorization_like() -> impl Strategy<Value = String> {
    let part = prop_oneof![
        Just("AWS4-HMAC-SHA256 ".to_owned()),
        Just("Credential=".to_owned()),
        Just("SignedHeaders=".to_owned()),
        Just("Signature=".to_owned()),
        Just("/".to_owned()),
        Just(", ".to_owned()),
        Just(";".to_owned()),
        Just("=".to_owned()),
        Just("aws4_request".to_owned()),
        Just("20261201".to_owned()),
        "[a-z0-9-]{0,12}",
        "[A-Z0-9]{0,20}",
        "[0-9a-f]{64}",
        any::<String>(),
    ];
    prop::collection::vec(part, 0..16).prop_map(|parts| parts.concat())
}

fn ts(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn the_header_parser_never_panics(header in authorization_like()) {
        let _ = sigv4::parse_authorization(&header);
    }

    #[test]
    fn verification_never_panics(
        header in authorization_like(),
        method in "[A-Z]{0,8}",
        path in "(/[ -~]{0,20}){0,3}(\\?[ -~]{0,20})?",
        names in prop::collection::vec("[a-zA-Z-]{1,12}", 0..6),
        values in prop::collection::vec(any::<String>(), 0..6),
        body in prop::collection::vec(any::<u8>(), 0..64),
        date in prop_oneof![Just("20261201T120000Z".to_owned()), "[0-9TZ]{0,18}"],
        now in 0u64..4_000_000_000,
    ) {
        let Ok(auth) = sigv4::parse_authorization(&header) else { return Ok(()); };
        let mut headers: Vec<(&str, &str)> =
            names.iter().map(String::as_str).zip(values.iter().map(String::as_str)).collect();
        headers.push(("x-amz-date", &date));
        headers.push(("host", "127.0.0.1:8642"));
        let request = Request {
            method: &method,
            path_and_query: &path,
            headers: &headers,
            payload: Payload::Bytes(&body),
        };
        let key = VerifyingKey::new(SecretKey::new("secret"));
        let _ = sigv4::verify(&auth, &request, "ecs", &key, ts(now));
    }

    #[test]
    fn what_berth_signs_verifies_and_any_change_does_not(
        body in prop::collection::vec(any::<u8>(), 0..256),
        target in "[A-Za-z]{1,20}",
        region in "[a-z]{2}-[a-z]{4,9}-[1-9]",
        path in "(/[a-zA-Z0-9._~-]{1,12}){0,3}",
        query in prop::option::of("[a-z]{1,6}=[a-zA-Z0-9]{0,8}(&[a-z]{1,6}=[a-zA-Z0-9]{0,8}){0,2}"),
        secret in "[A-Za-z0-9/+]{20,40}",
        flip in any::<prop::sample::Index>(),
        content_sha256 in any::<bool>(),
    ) {
        let signer = Signer {
            access_key_id: "BKIAPROPERTYTESTKEY0".into(),
            secret: SecretKey::new(secret.clone()),
            region,
            service: "ecs".into(),
        };
        let path = if path.is_empty() { "/".to_owned() } else { path };
        let target_path = match &query {
            Some(q) => format!("{path}?{q}"),
            None => path.clone(),
        };
        let now = ts(1_796_126_400);
        let base = [("host", "127.0.0.1:8642"), ("x-amz-target", target.as_str())];
        let added = signer
            .sign("POST", &format!("http://127.0.0.1:8642{target_path}"), &base, &body, content_sha256, now)
            .expect("sign");
        let mut headers: Vec<(&str, &str)> = base.to_vec();
        headers.extend(added.iter().map(|(k, v)| (*k, v.as_str())));
        let authorization = added.iter().find(|(k, _)| *k == "authorization").expect("auth").1.clone();
        let auth = sigv4::parse_authorization(&authorization).expect("berth's own header parses");
        let verify = |body: &[u8], secret: &str| {
            sigv4::verify(
                &auth,
                &Request { method: "POST", path_and_query: &target_path, headers: &headers, payload: Payload::Bytes(body) },
                "ecs",
                &VerifyingKey::new(SecretKey::new(secret)),
                now,
            )
        };
        prop_assert_eq!(verify(&body, &secret), Ok(()));
        let mut changed = body.clone();
        if changed.is_empty() {
            changed.push(0);
        } else {
            let i = flip.index(changed.len());
            changed[i] ^= 1;
        }
        prop_assert_eq!(verify(&changed, &secret), Err(sigv4::SigV4Error::Mismatch));
        prop_assert_eq!(verify(&body, &format!("{secret}x")), Err(sigv4::SigV4Error::Mismatch));
    }

    #[test]
    fn the_policy_parser_never_panics(doc in any::<String>()) {
        let _ = Policy::parse(&doc);
    }

    #[test]
    fn generated_policies_evaluate_without_panicking(
        statements in prop::collection::vec(
            (
                prop::bool::ANY,
                prop::collection::vec("(\\*|ecs:[A-Za-z*?]{1,12}|berth:[A-Za-z*]{1,10})", 1..4),
                prop::collection::vec("(\\*|arn:aws:ecs:[a-z*?-]{0,10}:[0-9*]{0,12}:[a-z/*?:-]{0,20})", 1..4),
                prop::option::of((
                    prop_oneof![
                        Just("StringEquals"), Just("StringNotEquals"), Just("StringLike"),
                        Just("StringNotLike"), Just("ArnLike"), Just("ArnNotLike"),
                        Just("ArnLikeIfExists"), Just("StringEqualsIgnoreCase"),
                    ],
                    "[a-z*?:/-]{1,20}",
                )),
            ),
            1..6,
        ),
        action in "(ecs|berth|mesos):[A-Za-z]{0,16}",
        resource in "(\\*|arn:[ -~]{0,40})",
        cluster in prop::option::of("[ -~]{0,40}"),
    ) {
        let statements: Vec<serde_json::Value> = statements
            .into_iter()
            .map(|(allow, actions, resources, condition)| {
                let mut s = serde_json::json!({
                    "Effect": if allow { "Allow" } else { "Deny" },
                    "Action": actions,
                    "Resource": resources,
                });
                if let Some((op, value)) = condition {
                    s["Condition"] = serde_json::json!({ op: { "ecs:cluster": value } });
                }
                s
            })
            .collect();
        let doc = serde_json::json!({ "Version": "2012-10-17", "Statement": statements }).to_string();
        let policy = Policy::parse(&doc).expect("generated policies are well formed");
        let context: Vec<(&str, &str)> = cluster.iter().map(|c| ("ecs:cluster", c.as_str())).collect();
        let decision = policy.evaluate(&action, &resource, &context);
        // Any statement that matches with Deny must win: adding an unconditional deny of
        // everything turns every decision into an explicit deny.
        let mut with_deny: serde_json::Value = serde_json::from_str(&doc).expect("json");
        with_deny["Statement"].as_array_mut().expect("array").push(
            serde_json::json!({"Effect": "Deny", "Action": "*", "Resource": "*"}),
        );
        let denied = Policy::parse(&with_deny.to_string()).expect("still well formed");
        prop_assert!(matches!(denied.evaluate(&action, &resource, &context), Decision::ExplicitDeny(_)));
        // And admin allows everything that is not denied.
        prop_assert_eq!(Role::Admin.policy().evaluate(&action, &resource, &context), Decision::Allow);
        // The shortcut callers take before working out resources never allows what the
        // evaluation would refuse.
        if policy.allows_everywhere(&action) {
            prop_assert_eq!(decision, Decision::Allow);
            prop_assert_eq!(policy.authorize(&action, &[resource.as_str()], &context), Ok(()));
        }
        prop_assert!(!denied.allows_everywhere(&action));
    }

    #[test]
    fn glob_agrees_with_the_recursive_oracle(pattern in "[ab*?]{0,8}", value in "[ab]{0,8}") {
        prop_assert_eq!(glob(&pattern, &value, false), oracle(pattern.as_bytes(), value.as_bytes()));
    }

    #[test]
    fn arn_like_never_panics(pattern in "[ -~]{0,60}", arn in "[ -~]{0,60}") {
        let _ = arn_like(&pattern, &arn);
    }

    #[test]
    fn join_tokens_never_panic_and_round_trip(text in any::<String>()) {
        if let Ok(t) = JoinToken::parse(&text) {
            prop_assert_eq!(JoinToken::parse(&t.render()), Ok(t));
        }
    }
}

fn oracle(p: &[u8], v: &[u8]) -> bool {
    match (p.first(), v.first()) {
        (None, None) => true,
        (Some(b'*'), _) => oracle(&p[1..], v) || (!v.is_empty() && oracle(p, &v[1..])),
        (Some(b'?'), Some(_)) => oracle(&p[1..], &v[1..]),
        (Some(a), Some(b)) if a == b => oracle(&p[1..], &v[1..]),
        _ => false,
    }
}

#[test]
fn a_pathological_wildcard_is_cheap() {
    // Exponential backtracking would never finish this; the linear matcher answers at once.
    let pattern = format!("{}b", "*a".repeat(200));
    let value = "a".repeat(2000);
    assert!(!glob(&pattern, &value, false));
}
