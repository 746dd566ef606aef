//! Opaque `nextToken`s: the last key a page returned, tagged with the operation it belongs to,
//! as URL-safe base64 of JSON. A token from another operation, or one that does not decode,
//! is an InvalidParameterException.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use berth_api::EcsError;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Token<K> {
    op: String,
    key: K,
}

/// Encodes `key` as the `nextToken` of operation `op`.
pub fn encode<K: Serialize>(op: &str, key: &K) -> String {
    let json = serde_json::to_vec(&Token {
        op: op.to_owned(),
        key,
    })
    .expect("keys serialize");
    URL_SAFE_NO_PAD.encode(json)
}

/// Decodes a `nextToken` that `encode` produced for the same operation.
pub fn decode<K: DeserializeOwned>(op: &str, token: Option<&str>) -> Result<Option<K>, EcsError> {
    let Some(token) = token else {
        return Ok(None);
    };
    let invalid = || {
        EcsError::invalid(
            "Invalid nextToken: pass the nextToken of a previous response to the same operation",
        )
    };
    let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid())?;
    let t: Token<K> = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    if t.op != op {
        return Err(invalid());
    }
    Ok(Some(t.key))
}

/// Takes up to `max` items; returns them and the token of the next page when there is one.
pub fn page<T, K: Serialize>(
    op: &str,
    items: impl Iterator<Item = T>,
    max: usize,
    key: impl Fn(&T) -> K,
) -> (Vec<T>, Option<String>) {
    let mut out: Vec<T> = items.take(max + 1).collect();
    if out.len() > max {
        out.truncate(max);
        let next = out.last().map(|last| encode(op, &key(last)));
        (out, next)
    } else {
        (out, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_are_bound_to_their_operation() {
        let t = encode("ListTasks", &"abc");
        assert_eq!(
            decode::<String>("ListTasks", Some(&t)).unwrap().unwrap(),
            "abc"
        );
        assert!(decode::<String>("ListClusters", Some(&t)).is_err());
        assert!(decode::<String>("ListTasks", Some("%%%")).is_err());
        assert!(decode::<String>("ListTasks", Some("e30")).is_err());
        assert_eq!(decode::<String>("ListTasks", None).unwrap(), None);
    }

    #[test]
    fn pages_report_a_next_token_only_when_more_remain() {
        let (items, next) = page("Op", 0..5, 5, |i| *i);
        assert_eq!(items.len(), 5);
        assert!(next.is_none());
        let (items, next) = page("Op", 0..6, 5, |i| *i);
        assert_eq!(items, vec![0, 1, 2, 3, 4]);
        assert_eq!(decode::<i32>("Op", next.as_deref()).unwrap(), Some(4));
    }
}
