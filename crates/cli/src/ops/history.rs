//! `berth history ARN`: every retained version of a cluster, task definition, container
//! instance, task or service (`GET /v1/history/{arn}`), each with who changed it and when,
//! and what changed from the version before as field-by-field differences.

use anyhow::Result;
use clap::Args;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Common;
use super::output::{Paint, Tone, emit, time};

#[derive(Args)]
#[command(after_help = "Examples:
  berth history arn:aws:ecs:us-east-1:000000000000:task/default/5c1d7e0f
  berth history arn:aws:ecs:us-east-1:000000000000:service/default/web -o json")]
pub struct HistoryArgs {
    /// The resource's ARN (as `ls -o json` prints it).
    arn: String,
    #[command(flatten)]
    common: Common,
}

/// One retained version, as the server answers it.
#[derive(Clone, Debug, Deserialize)]
pub struct Version {
    pub index: u64,
    pub at: Option<f64>,
    pub deleted: bool,
    pub by: Option<String>,
    pub value: Option<Value>,
}

/// A version with what changed since the one before.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionView {
    pub index: u64,
    pub at: Option<i64>,
    pub by: Option<String>,
    pub deleted: bool,
    pub changes: Vec<Change>,
}

/// One field that differs between two versions; `path` as `containers[0].lastStatus`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Change {
    pub path: String,
    pub old: Option<Value>,
    pub new: Option<Value>,
}

/// The fields that differ between `old` and `new`, depth first in key order. Arrays of the
/// same length are compared element by element; otherwise the array changed as a whole.
pub fn diff(old: &Value, new: &Value) -> Vec<Change> {
    let mut out = Vec::new();
    walk(String::new(), Some(old), Some(new), &mut out);
    out
}

fn walk(path: String, old: Option<&Value>, new: Option<&Value>, out: &mut Vec<Change>) {
    let join = |key: &str| {
        if path.is_empty() {
            key.to_owned()
        } else {
            format!("{path}.{key}")
        }
    };
    match (old, new) {
        (Some(Value::Object(a)), Some(Value::Object(b))) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                walk(join(k), a.get(k), b.get(k), out);
            }
        }
        (Some(Value::Array(a)), Some(Value::Array(b))) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                walk(format!("{path}[{i}]"), Some(x), Some(y), out);
            }
        }
        (a, b) if a != b => out.push(Change {
            path,
            old: a.cloned(),
            new: b.cloned(),
        }),
        _ => {}
    }
}

/// Each version with its changes from the one before (the first: what it was created with).
pub fn versions(versions: &[Version]) -> Vec<VersionView> {
    let empty = Value::Object(Default::default());
    let mut before = &empty;
    versions
        .iter()
        .map(|v| {
            let now = v.value.as_ref().unwrap_or(&empty);
            let changes = diff(before, now);
            before = now;
            VersionView {
                index: v.index,
                at: v.at.map(|s| s as i64),
                by: v.by.clone(),
                deleted: v.deleted,
                changes,
            }
        })
        .collect()
}

/// A value in a line, cut at 80 characters.
fn brief(value: &Option<Value>) -> String {
    let Some(value) = value else {
        return "∅".into();
    };
    let text = value.to_string();
    if text.chars().count() > 80 {
        format!("{}…", text.chars().take(79).collect::<String>())
    } else {
        text
    }
}

pub fn render(arn: &str, versions: &[VersionView], paint: Paint) -> String {
    let mut out = format!("{}\n", paint.tone(arn, Tone::Bold));
    for (n, v) in versions.iter().enumerate() {
        let what = if v.deleted {
            "deleted"
        } else if n == 0 {
            "oldest retained version"
        } else {
            ""
        };
        let head = format!(
            "{}  {}  by {}  {what}",
            paint.tone(&format!("#{}", v.index), Tone::Bold),
            time(v.at),
            v.by.as_deref().unwrap_or("unknown"),
        );
        out.push_str(head.trim_end());
        out.push('\n');
        // The first version's "changes" are the whole value: only its size is worth a line.
        if n == 0 && !v.deleted {
            out.push_str(&format!("    ({} fields)\n", v.changes.len()));
            continue;
        }
        for c in &v.changes {
            let line = match (&c.old, &c.new) {
                (None, _) => {
                    paint.tone(&format!("    + {}: {}", c.path, brief(&c.new)), Tone::Good)
                }
                (_, None) => paint.tone(&format!("    - {}: {}", c.path, brief(&c.old)), Tone::Bad),
                _ => format!("    ~ {}: {} → {}", c.path, brief(&c.old), brief(&c.new)),
            };
            out.push_str(&line);
            out.push('\n');
        }
    }
    out
}

#[derive(Serialize)]
struct HistoryView<'a> {
    arn: &'a str,
    versions: &'a [VersionView],
}

pub async fn run(a: HistoryArgs) -> Result<()> {
    let client = a.common.clients()?.native;
    let answer =
        crate::admin::call(&client, "GET", &format!("/v1/history/{}", a.arn), None).await?;
    let arn = answer["arn"].as_str().unwrap_or(&a.arn).to_owned();
    let raw: Vec<Version> = serde_json::from_value(answer["versions"].clone())?;
    let versions = versions(&raw);
    let paint = Paint::detect();
    emit(
        a.common.output,
        &HistoryView {
            arn: &arn,
            versions: &versions,
        },
        || render(&arn, &versions, paint),
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_diff_names_each_changed_field_by_its_path() {
        let old = json!({"lastStatus": "PENDING", "containers": [{"name": "app", "exitCode": null}],
            "tags": [1]});
        let new = json!({"lastStatus": "RUNNING", "containers": [{"name": "app", "exitCode": 0}],
            "tags": [1, 2], "startedAt": 5});
        let paths: Vec<String> = diff(&old, &new).into_iter().map(|c| c.path).collect();
        assert_eq!(
            paths,
            ["containers[0].exitCode", "lastStatus", "startedAt", "tags"]
        );
        assert!(diff(&new, &new).is_empty());
    }

    #[test]
    fn a_history_shows_who_changed_what_and_when() {
        let raw = vec![
            Version {
                index: 7,
                at: Some(1_700_000_000.0),
                deleted: false,
                by: Some("user/admin".into()),
                value: Some(json!({"lastStatus": "PENDING", "desiredStatus": "RUNNING"})),
            },
            Version {
                index: 9,
                at: Some(1_700_000_004.0),
                deleted: false,
                by: Some("container-instance/default/0a1b".into()),
                value: Some(
                    json!({"lastStatus": "RUNNING", "desiredStatus": "RUNNING", "startedAt": 1_700_000_004}),
                ),
            },
            Version {
                index: 12,
                at: Some(1_700_000_060.0),
                deleted: false,
                by: Some("user/alice".into()),
                value: Some(
                    json!({"lastStatus": "RUNNING", "desiredStatus": "STOPPED", "startedAt": 1_700_000_004}),
                ),
            },
        ];
        let views = versions(&raw);
        assert_eq!(
            views[2].changes,
            vec![Change {
                path: "desiredStatus".into(),
                old: Some(json!("RUNNING")),
                new: Some(json!("STOPPED")),
            }]
        );
        insta::assert_snapshot!(render(
            "arn:aws:ecs:us-east-1:000000000000:task/default/5c1d",
            &views,
            Paint(false)
        ));
    }
}
