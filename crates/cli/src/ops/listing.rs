//! Tables for the native API's listings — credentials, join tokens, the servers' Raft group —
//! read from the JSON the server answers (the same JSON `-o json` prints), so a person sees
//! one line per entry and a script keeps the whole answer. Pure: a value in, text out.

use serde_json::Value;

use super::output::{self, Cell, Paint, Tone};

fn text(v: &Value) -> String {
    output::or_dash(v.as_str())
}

fn when(v: &Value) -> String {
    output::time(v.as_f64().map(|s| s as i64))
}

/// What a credential may do: its role, or that a policy document says.
fn grants(c: &Value) -> String {
    match c["role"].as_str() {
        Some(role) => role.to_owned(),
        None if c["policy"].is_object() => "(policy)".into(),
        None => "-".into(),
    }
}

/// `GET /v1/credentials`: one line per key, never a secret (the server sends none).
pub fn credentials(listed: &Value, paint: Paint) -> String {
    let rows: Vec<Vec<Cell>> = entries(listed, "credentials")
        .map(|c| {
            let scope = match (c["cluster"].as_str(), c["containerInstanceId"].as_str()) {
                (Some(cluster), Some(instance)) => format!("{cluster}/{instance}"),
                (Some(cluster), None) => cluster.to_owned(),
                _ => "-".into(),
            };
            vec![
                Cell::from(text(&c["accessKeyId"])),
                Cell::from(text(&c["name"])),
                Cell::from(text(&c["kind"])),
                Cell::from(grants(c)),
                Cell::from(scope),
                Cell::from(when(&c["createdAt"])),
                Cell::from(when(&c["expiresAt"])),
            ]
        })
        .collect();
    let headers = [
        "ACCESS KEY",
        "NAME",
        "KIND",
        "ROLE",
        "CLUSTER/INSTANCE",
        "CREATED",
        "EXPIRES",
    ];
    output::table(&headers, &rows, paint, "")
}

/// `GET /v1/join-tokens`: one line per token; an expired one says so.
pub fn join_tokens(listed: &Value, paint: Paint) -> String {
    let rows: Vec<Vec<Cell>> = entries(listed, "joinTokens")
        .map(|t| {
            let (state, tone) = if t["expired"] == true {
                ("expired", Tone::Bad)
            } else {
                ("valid", Tone::Good)
            };
            vec![
                Cell::from(text(&t["accessKeyId"])),
                Cell::from(text(&t["kind"])),
                Cell::from(text(&t["cluster"])),
                Cell::from(when(&t["createdAt"])),
                Cell::from(when(&t["expiresAt"])),
                Cell {
                    text: state.into(),
                    tone,
                },
            ]
        })
        .collect();
    let headers = ["ID", "KIND", "CLUSTER", "CREATED", "EXPIRES", "STATE"];
    output::table(&headers, &rows, paint, "")
}

/// `GET /v1/operator/raft/peers`: the group's members, the leader marked; how far each has
/// replicated is known on the leader only.
pub fn peers(answer: &Value, paint: Paint) -> String {
    let rows: Vec<Vec<Cell>> = entries(answer, "members")
        .map(|m| {
            let role = if m["voter"] == true {
                "voter"
            } else {
                "learner"
            };
            let leads = if m["leader"] == true {
                Cell {
                    text: "leader".into(),
                    tone: Tone::Good,
                }
            } else {
                Cell::from("-")
            };
            let matched = m["matched"]
                .as_u64()
                .map_or_else(|| "-".into(), |i| i.to_string());
            vec![
                Cell::from(m["id"].as_u64().map_or("-".into(), |i| i.to_string())),
                Cell::from(text(&m["addr"])),
                Cell::from(role),
                leads,
                Cell::from(matched),
            ]
        })
        .collect();
    let mut out = output::table(
        &["ID", "ADDRESS", "ROLE", "LEADER", "MATCHED INDEX"],
        &rows,
        paint,
        "",
    );
    if answer["leader"].is_null() {
        out.push_str("no leader is known: the group has no quorum, or is electing one\n");
    }
    out
}

fn entries<'a>(v: &'a Value, key: &str) -> impl Iterator<Item = &'a Value> {
    v[key].as_array().into_iter().flatten()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn credentials_list_as_one_line_each() {
        let listed = json!({ "credentials": [
            { "accessKeyId": "BKADMIN", "name": "admin", "kind": "user", "role": "admin",
              "createdAt": 1_800_000_000.5, "expiresAt": null },
            { "accessKeyId": "BKAGENT", "name": "agent-1", "kind": "agent", "role": null,
              "policy": { "Statement": [] }, "cluster": "prod",
              "containerInstanceId": "0123abcd", "createdAt": 1_800_000_100.0 },
        ]});
        insta::assert_snapshot!(credentials(&listed, Paint(false)), @r"
        ACCESS KEY  NAME     KIND   ROLE      CLUSTER/INSTANCE  CREATED               EXPIRES
        BKADMIN     admin    user   admin     -                 2027-01-15T08:00:00Z  -
        BKAGENT     agent-1  agent  (policy)  prod/0123abcd     2027-01-15T08:01:40Z  -
        ");
    }

    #[test]
    fn join_tokens_say_whether_they_still_work() {
        let listed = json!({ "joinTokens": [
            { "accessKeyId": "BKJ1", "kind": "agent-join-token", "cluster": "prod",
              "createdAt": 1_800_000_000.0, "expiresAt": 1_800_086_400.0, "expired": false },
            { "accessKeyId": "BKJ2", "kind": "server-join-token", "cluster": null,
              "createdAt": 1_700_000_000.0, "expiresAt": 1_700_000_060.0, "expired": true },
        ]});
        insta::assert_snapshot!(join_tokens(&listed, Paint(false)), @r"
        ID    KIND               CLUSTER  CREATED               EXPIRES               STATE
        BKJ1  agent-join-token   prod     2027-01-15T08:00:00Z  2027-01-16T08:00:00Z  valid
        BKJ2  server-join-token  -        2023-11-14T22:13:20Z  2023-11-14T22:14:20Z  expired
        ");
    }

    #[test]
    fn peers_mark_the_leader_and_say_when_there_is_none() {
        let answer = json!({ "leader": 1, "members": [
            { "id": 1, "addr": "10.0.0.1:8642", "voter": true, "leader": true, "matched": 42 },
            { "id": 4, "addr": "10.0.0.4:8642", "voter": false, "leader": false, "matched": null },
        ]});
        insta::assert_snapshot!(peers(&answer, Paint(false)), @r"
        ID  ADDRESS        ROLE     LEADER  MATCHED INDEX
        1   10.0.0.1:8642  voter    leader  42
        4   10.0.0.4:8642  learner  -       -
        ");
        let leaderless = json!({ "leader": null, "members": [] });
        assert!(peers(&leaderless, Paint(false)).contains("no leader is known"));
    }
}
