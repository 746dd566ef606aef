//! `berth watch`: changes to the cluster state as they commit, one line each, from the
//! long-poll `GET /v1/watch?index=N` (each answer names what changed after N and the new
//! index to ask from); with `--diff`, what each changed, from the entity's history.

use std::time::{Duration, Instant};

use anyhow::Result;
use clap::Args;
use serde::{Deserialize, Serialize};

use super::output::{Format, Paint, Tone};
use super::{Common, history};

#[derive(Args)]
#[command(after_help = "Examples:
  berth watch
  berth watch --kind task --kind service
  berth watch --index 0 --limit 20 -o json    # from the oldest retained change, as JSON lines")]
pub struct WatchArgs {
    /// Start after this log index (default: now, so only new changes show).
    #[arg(long)]
    index: Option<u64>,
    /// Only these kinds: cluster, task, task-definition, container-instance, service.
    #[arg(long = "kind")]
    kinds: Vec<String>,
    /// Exit after this many changes.
    #[arg(long)]
    limit: Option<usize>,
    /// Exit after this many seconds.
    #[arg(long, value_name = "SECONDS")]
    duration: Option<u64>,
    /// Show what changed in each (its fields, old → new): one history lookup per change.
    #[arg(long)]
    diff: bool,
    #[command(flatten)]
    common: Common,
}

#[derive(Deserialize)]
struct Answer {
    index: u64,
    truncated: bool,
    changes: Vec<RawChange>,
}

#[derive(Deserialize)]
struct RawChange {
    index: u64,
    arn: String,
}

/// One change as `berth watch` prints it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Change {
    pub index: u64,
    /// The resource type from the ARN: task, service, container-instance, ...
    pub kind: String,
    /// What follows the type in the ARN: `cluster/id`, `family:revision`, a name.
    pub name: String,
    pub arn: String,
    /// With --diff: the fields this change set, old → new (a new entity: all of them).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fields: Option<Vec<history::Change>>,
}

impl Change {
    fn of(index: u64, arn: String) -> Change {
        let resource = arn.splitn(6, ':').nth(5).unwrap_or(&arn);
        let (kind, name) = resource.split_once('/').unwrap_or((resource, ""));
        Change {
            index,
            kind: kind.to_owned(),
            name: name.to_owned(),
            arn: arn.clone(),
            fields: None,
        }
    }
}

/// The fields of a change in a line: the first few `path: old → new`, and how many more.
/// The version counter changes every time and says nothing, so it is left out.
pub fn summary(fields: &[history::Change]) -> String {
    const SHOWN: usize = 4;
    let fields: Vec<&history::Change> = fields.iter().filter(|c| c.path != "version").collect();
    let brief = |v: &Option<serde_json::Value>| match v {
        None => "∅".to_owned(),
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(v) => {
            let text = v.to_string();
            if text.chars().count() > 40 {
                format!("{}…", text.chars().take(39).collect::<String>())
            } else {
                text
            }
        }
    };
    let mut parts: Vec<String> = fields
        .iter()
        .take(SHOWN)
        .map(|c| format!("{}: {} → {}", c.path, brief(&c.old), brief(&c.new)))
        .collect();
    if fields.len() > SHOWN {
        parts.push(format!("(+{} more)", fields.len() - SHOWN));
    }
    parts.join(", ")
}

/// What the change at `change.index` set, from the entity's history (none when that version
/// is no longer retained).
async fn fields_of(client: &berth_client::Client, change: &Change) -> Option<Vec<history::Change>> {
    let path = format!("/v1/history/{}", change.arn);
    let answer = crate::admin::call(client, "GET", &path, None).await.ok()?;
    let raw: Vec<history::Version> = serde_json::from_value(answer["versions"].clone()).ok()?;
    history::versions(&raw)
        .into_iter()
        .find(|v| v.index == change.index)
        .map(|v| v.changes)
}

pub fn render(change: &Change, paint: Paint) -> String {
    let tone = match change.kind.as_str() {
        "task" => Tone::Good,
        "service" => Tone::Warn,
        _ => Tone::Plain,
    };
    let line = format!(
        "{:>8}  {}  {}",
        format!("#{}", change.index),
        paint.tone(&format!("{:<18}", change.kind), tone),
        change.name
    );
    match &change.fields {
        Some(fields) => format!("{line}  {}", paint.tone(&summary(fields), Tone::Dim)),
        None => line,
    }
}

pub async fn run(a: WatchArgs) -> Result<()> {
    let client = a.common.clients()?.native;
    let mut index = match a.index {
        Some(i) => i,
        None => crate::admin::call(&client, "GET", "/v1/health", None).await?["index"]
            .as_u64()
            .unwrap_or(0),
    };
    let deadline = a.duration.map(|s| Instant::now() + Duration::from_secs(s));
    let paint = Paint::detect();
    let mut shown = 0;
    loop {
        let wait = deadline.map_or(30, |d| {
            d.saturating_duration_since(Instant::now())
                .as_secs()
                .clamp(1, 30)
        });
        let path = format!("/v1/watch?index={index}&timeout={wait}");
        let answer: Answer =
            serde_json::from_value(crate::admin::call(&client, "GET", &path, None).await?)?;
        if answer.truncated {
            eprintln!("(changes after #{index} are no longer all retained; showing what is)");
        }
        for raw in answer.changes {
            let mut change = Change::of(raw.index, raw.arn);
            if !a.kinds.is_empty() && !a.kinds.contains(&change.kind) {
                continue;
            }
            if a.diff {
                change.fields = fields_of(&client, &change).await;
            }
            match a.common.output {
                Format::Table => println!("{}", render(&change, paint)),
                Format::Json => println!("{}", serde_json::to_string(&change)?),
                Format::Yaml => print!("---\n{}", serde_yaml_ng::to_string(&change)?),
            }
            shown += 1;
            if a.limit.is_some_and(|l| shown >= l) {
                return Ok(());
            }
        }
        index = answer.index.max(index);
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_is_named_by_the_kind_and_name_in_its_arn() {
        let task = Change::of(
            42,
            "arn:aws:ecs:us-east-1:000000000000:task/default/5c1d".into(),
        );
        assert_eq!(
            (task.kind.as_str(), task.name.as_str()),
            ("task", "default/5c1d")
        );
        let def = Change::of(
            7,
            "arn:aws:ecs:us-east-1:000000000000:task-definition/web:3".into(),
        );
        assert_eq!(
            (def.kind.as_str(), def.name.as_str()),
            ("task-definition", "web:3")
        );
        insta::assert_snapshot!(render(&task, Paint(false)), @"     #42  task                default/5c1d");
    }

    #[test]
    fn a_diffed_change_sums_up_its_fields_without_the_version_counter() {
        let field = |path: &str, old: Option<serde_json::Value>, new| history::Change {
            path: path.into(),
            old,
            new: Some(new),
        };
        let mut change = Change::of(9, "arn:aws:ecs:us-east-1:0:task/default/5c1d".into());
        change.fields = Some(vec![
            field("lastStatus", Some("PENDING".into()), "RUNNING".into()),
            field("startedAt", None, 1_700_000_004.into()),
            field("version", Some(7.into()), 9.into()),
        ]);
        insta::assert_snapshot!(
            render(&change, Paint(false)),
            @"      #9  task                default/5c1d  lastStatus: PENDING → RUNNING, startedAt: ∅ → 1700000004"
        );
        let many: Vec<history::Change> = (0..6)
            .map(|i| field(&format!("f{i}"), None, i.into()))
            .collect();
        assert!(
            summary(&many).ends_with("f3: ∅ → 3, (+2 more)"),
            "{}",
            summary(&many)
        );
    }
}
