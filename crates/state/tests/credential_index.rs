//! The agents' credentials by instance: the index behind "one credential per instance" (each
//! join checks it, so it must not be a scan of every credential) and `State::agent_credential`.
//! It must agree with a scan of the credentials after every create, delete and expiry, and a
//! state restored from a snapshot must rebuild it — else a second server, or a restarted one,
//! would let two agents share an instance.

mod common;

use berth_model::command::{CreateCredential, DeleteCredential};
use berth_model::credential::{Credential, CredentialKind};
use berth_model::{Error, InstanceId, Millis};
use berth_state::State;
use serde_json::json;

use common::*;

/// A credential as a join makes it: an agent's, bound to `instance` in cluster `prod`.
fn agent_credential(key: &str, instance: u128) -> CreateCredential {
    credential(
        key,
        json!({ "Agent": { "cluster": "prod", "instance": InstanceId(instance) } }),
    )
}

/// A user's credential: it binds no instance.
fn user_credential(key: &str) -> CreateCredential {
    credential(key, json!("User"))
}

fn credential(key: &str, kind: serde_json::Value) -> CreateCredential {
    let credential: Credential = serde_json::from_value(json!({
        "access_key_id": key,
        "name": key.to_lowercase(),
        "kind": kind,
        "policy": { "Statement": [{ "Effect": "Allow", "Action": "ecs:*", "Resource": "*" }] },
        "role": null,
        "sealed_secret": { "nonce": "AAAAAAAAAAAAAAAA", "ciphertext": "AAAA" },
        "created_at": EPOCH,
        "created_by": null,
        "expires_at": null,
    }))
    .expect("a credential deserializes");
    CreateCredential { credential }
}

fn delete(key: &str) -> DeleteCredential {
    DeleteCredential {
        access_key_id: key.into(),
    }
}

/// The access key of instance `id`'s credential, as the index answers.
fn indexed(state: &State, id: u128) -> Option<String> {
    state
        .agent_credential(InstanceId(id))
        .map(|c| c.access_key_id.clone())
}

/// The same, by a scan of every credential.
fn scanned(state: &State, id: u128) -> Option<String> {
    state
        .credentials()
        .find(|c| {
            matches!(&c.kind, CredentialKind::Agent { instance, .. } if *instance == InstanceId(id))
        })
        .map(|c| c.access_key_id.clone())
}

/// The index agrees with the scan for instances 1 to 5, on the state and on one restored from
/// a serde round trip of its snapshot; returns what it says.
fn agreed(state: &State) -> Vec<Option<String>> {
    let json = serde_json::to_string(&state.persist()).expect("a snapshot serializes");
    let restored = State::restore(
        serde_json::from_str(&json).expect("a snapshot deserializes"),
        state.config().clone(),
    );
    (1..=5)
        .map(|id| {
            let found = indexed(state, id);
            assert_eq!(found, scanned(state, id), "instance {id}, live state");
            assert_eq!(indexed(&restored, id), found, "instance {id}, restored");
            found
        })
        .collect()
}

#[test]
fn the_index_follows_creates_and_deletes() {
    let mut w = World::with_cluster("prod");
    assert_eq!(agreed(&w.state), [None, None, None, None, None]);

    w.ok(agent_credential("AKA1", 1));
    w.ok(agent_credential("AKA2", 2));
    w.ok(user_credential("AKUSER"));
    assert_eq!(
        agreed(&w.state),
        [Some("AKA1".into()), Some("AKA2".into()), None, None, None]
    );

    // One credential per instance.
    assert!(matches!(
        w.refused(agent_credential("AKB1", 1)),
        Error::Conflict(_)
    ));

    // Deleted, the instance may be joined again (the index forgot it); the user's key is no
    // agent's and leaves it alone.
    w.ok(delete("AKA1"));
    w.ok(delete("AKUSER"));
    assert_eq!(
        agreed(&w.state),
        [None, Some("AKA2".into()), None, None, None]
    );
    w.ok(agent_credential("AKB1", 1));
    assert_eq!(
        agreed(&w.state),
        [Some("AKB1".into()), Some("AKA2".into()), None, None, None]
    );
}

#[test]
fn a_restored_state_refuses_a_second_credential_for_an_instance() {
    let mut w = World::with_cluster("prod");
    w.ok(agent_credential("AKA1", 1));
    w.ok(agent_credential("AKA2", 2));
    w.ok(delete("AKA2"));

    let json = serde_json::to_string(&w.state.persist()).unwrap();
    w.state = State::restore(
        serde_json::from_str(&json).unwrap(),
        w.state.config().clone(),
    );
    assert_eq!(
        agreed(&w.state),
        [Some("AKA1".into()), None, None, None, None]
    );
    assert!(matches!(
        w.refused(agent_credential("AKB1", 1)),
        Error::Conflict(_)
    ));
    w.ok(agent_credential("AKB2", 2));
    assert_eq!(
        agreed(&w.state),
        [Some("AKA1".into()), Some("AKB2".into()), None, None, None]
    );
}

#[test]
fn an_expired_agent_credential_leaves_the_index() {
    let mut w = World::with_cluster("prod");
    w.ok(agent_credential("AKA1", 1));
    w.ok(agent_credential("AKA3", 3));
    // Instance 3 registers: its credential stays while the instance does.
    w.ok(instance("prod", 3).build());

    w.ok(expire(Millis(0), Millis(w.now.0 + 1)));
    assert_eq!(
        agreed(&w.state),
        [None, None, Some("AKA3".into()), None, None]
    );
    w.ok(agent_credential("AKB1", 1));
    assert_eq!(
        agreed(&w.state),
        [Some("AKB1".into()), None, Some("AKA3".into()), None, None]
    );
}
