//! `berth schedule`: the schedules a cluster runs, and expressions before there is one.
//!
//! - `preview EXPRESSION`: when a schedule expression in EventBridge Scheduler's syntax
//!   (`cron(...)`, `rate(...)`, `at(...)`) would run, in its time zone, computed here with the
//!   same code the server's schedules use (`berth-schedule`), so a person can check a cron
//!   line, a daylight-saving edge or a start/end window before creating anything. It needs no
//!   server.
//! - `ls`, `runs NAME`: the schedules (through the Scheduler API, `GET /schedules`) with
//!   their next due time, and one schedule's recorded runs (berth's
//!   `GET /v1/schedules/{group}/{name}/runs`: what the Scheduler API has no operation for).
//! - `policy NAME --concurrency ... --missed-runs ...`: the run policies the Scheduler API
//!   has no field for.
//!
//! Schedules are created, updated and deleted with `aws scheduler` (or any SDK), pointed at
//! berth with `--endpoint-url`.

use anyhow::{Result, anyhow};
use berth_model::Millis;
use berth_schedule::{Schedule, Spec, format_utc, parse_instant};
use clap::{Args, Subcommand};
use serde::Serialize;
use serde_json::Value;

use super::Common;
use super::output::{self, Cell, Paint};

/// Schedule expressions.
#[derive(Subcommand)]
pub enum ScheduleCmd {
    /// The next times an expression is due, in UTC and in its time zone.
    #[command(after_help = "Examples:
  berth schedule preview 'cron(0 9 ? * MON-FRI *)' --time-zone Europe/Paris
  berth schedule preview 'rate(90 minutes)' --start 2027-01-01T00:00:00Z --count 3
  berth schedule preview 'cron(30 1 * * ? *)' --time-zone America/New_York --after 2027-11-06T00:00:00Z")]
    Preview(PreviewArgs),
    /// The schedules, their state, expression and next due time.
    #[command(after_help = "Examples:
  berth schedule ls
  berth schedule ls -o json")]
    Ls(LsArgs),
    /// A schedule's recorded runs (newest last): when due, when decided, the outcome and its
    /// tasks or reason; and the run in progress, if any.
    #[command(after_help = "Examples:
  berth schedule runs nightly-report
  berth schedule runs nightly-report -o json")]
    Runs(NameArgs),
    /// Sets the run policies the Scheduler API has no field for.
    #[command(after_help = "Examples:
  berth schedule policy nightly-report --concurrency REPLACE
  berth schedule policy nightly-report --missed-runs CATCH_UP_ONCE

Concurrency, when the previous run's tasks are still running at a due time:
  SKIP_IF_RUNNING (default)  record the run as skipped
  ALLOW                      start it anyway
  REPLACE                    stop the previous run's tasks, then start it
Missed runs, due times that passed while no leader could run them (an outage):
  SKIP (default)             record them as missed
  CATCH_UP_ONCE              run the latest of them once")]
    Policy(PolicyArgs),
}

#[derive(Args)]
pub struct LsArgs {
    #[command(flatten)]
    common: Common,
}

#[derive(Args)]
pub struct NameArgs {
    /// The schedule's name (in the default group).
    name: String,
    #[command(flatten)]
    common: Common,
}

#[derive(Args)]
pub struct PolicyArgs {
    /// The schedule's name (in the default group).
    name: String,
    /// ALLOW, SKIP_IF_RUNNING or REPLACE.
    #[arg(long)]
    concurrency: Option<String>,
    /// SKIP or CATCH_UP_ONCE.
    #[arg(long)]
    missed_runs: Option<String>,
    #[command(flatten)]
    common: Common,
}

/// One schedule, as `ls` shows it.
#[derive(Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleRow {
    pub name: String,
    pub state: String,
    pub expression: String,
    pub time_zone: String,
    pub cluster: String,
    pub next_due: Option<String>,
    pub concurrency: String,
}

#[derive(Args)]
pub struct PreviewArgs {
    /// at(yyyy-mm-ddThh:mm:ss), rate(value unit) or cron(minutes hours day-of-month month
    /// day-of-week year).
    expression: String,
    /// The IANA time zone the expression is read in.
    #[arg(long, default_value = "UTC")]
    time_zone: String,
    /// The schedule's start date (RFC 3339); a rate counts from it.
    #[arg(long)]
    start: Option<String>,
    /// The schedule's end date (RFC 3339).
    #[arg(long)]
    end: Option<String>,
    /// Show the runs due after this moment (RFC 3339; default now).
    #[arg(long)]
    after: Option<String>,
    /// How many runs to show.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(1..=1000))]
    count: u16,
    /// table for people; json or yaml for scripts.
    #[arg(long, short, value_enum, default_value_t = output::Format::Table)]
    output: output::Format,
}

/// What `preview` prints.
#[derive(Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Preview {
    pub expression: String,
    pub time_zone: String,
    pub runs: Vec<Run>,
}

#[derive(Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Run {
    pub utc: String,
    pub local: String,
}

pub async fn run(cmd: ScheduleCmd) -> Result<()> {
    match cmd {
        ScheduleCmd::Preview(a) => {
            // Whole seconds: the runs a rate counts from now read as times, not fractions.
            let now = Millis::now().0 / 1000 * 1000;
            let preview = preview(&a, now)?;
            output::emit(a.output, &preview, || render(&preview, Paint::detect()))
        }
        ScheduleCmd::Ls(a) => {
            let native = a.common.clients()?.native;
            let scheduler = native.for_service("scheduler");
            let mut rows = Vec::new();
            let mut token: Option<String> = None;
            loop {
                let path = match &token {
                    Some(t) => format!("/schedules?NextToken={t}"),
                    None => "/schedules".to_owned(),
                };
                let page = crate::admin::call(&scheduler, "GET", &path, None).await?;
                for summary in page["Schedules"].as_array().into_iter().flatten() {
                    let name = summary["Name"].as_str().unwrap_or_default();
                    let got =
                        crate::admin::call(&scheduler, "GET", &format!("/schedules/{name}"), None)
                            .await?;
                    let runs = crate::admin::call(
                        &native,
                        "GET",
                        &format!("/v1/schedules/default/{name}/runs"),
                        None,
                    )
                    .await?;
                    rows.push(row(&got, &runs));
                }
                token = page["NextToken"].as_str().map(str::to_owned);
                if token.is_none() {
                    break;
                }
            }
            output::emit(a.common.output, &rows, || render_ls(&rows, Paint::detect()))
        }
        ScheduleCmd::Runs(a) => {
            let native = a.common.clients()?.native;
            let runs = crate::admin::call(
                &native,
                "GET",
                &format!("/v1/schedules/default/{}/runs", a.name),
                None,
            )
            .await?;
            output::emit(a.common.output, &runs, || {
                render_runs(&runs, Paint::detect())
            })
        }
        ScheduleCmd::Policy(a) => {
            let native = a.common.clients()?.native;
            let body = serde_json::json!({
                "concurrency": a.concurrency,
                "missedRuns": a.missed_runs,
            });
            let policy = crate::admin::call(
                &native,
                "PUT",
                &format!("/v1/schedules/default/{}/policy", a.name),
                Some(body),
            )
            .await?;
            output::emit(a.common.output, &policy, || {
                format!(
                    "{}: concurrency {}, missed runs {}\n",
                    a.name,
                    policy["concurrency"].as_str().unwrap_or("-"),
                    policy["missedRuns"].as_str().unwrap_or("-")
                )
            })
        }
    }
}

/// `ls`'s row from GetSchedule's answer and the runs endpoint's.
fn row(got: &Value, runs: &Value) -> ScheduleRow {
    let text = |v: &Value| v.as_str().unwrap_or("-").to_owned();
    ScheduleRow {
        name: text(&got["Name"]),
        state: text(&got["State"]),
        expression: text(&got["ScheduleExpression"]),
        time_zone: text(&got["ScheduleExpressionTimezone"]),
        cluster: output::short(got["Target"]["Arn"].as_str().unwrap_or("-")).to_owned(),
        next_due: runs["nextDue"].as_str().map(str::to_owned),
        concurrency: text(&runs["policy"]["concurrency"]),
    }
}

fn render_ls(rows: &[ScheduleRow], paint: Paint) -> String {
    if rows.is_empty() {
        return "No schedules. Create one with `aws scheduler create-schedule --endpoint-url ...`.\n"
            .into();
    }
    let cells: Vec<Vec<Cell>> = rows
        .iter()
        .map(|r| {
            vec![
                Cell::from(r.name.as_str()),
                Cell::status(if r.state == "ENABLED" {
                    "ACTIVE"
                } else {
                    "INACTIVE"
                })
                .with_text(&r.state),
                Cell::from(r.expression.as_str()),
                Cell::from(r.time_zone.as_str()),
                Cell::from(r.cluster.as_str()),
                Cell::from(r.next_due.as_deref().unwrap_or("-")),
                Cell::from(r.concurrency.as_str()),
            ]
        })
        .collect();
    output::table(
        &[
            "NAME",
            "STATE",
            "EXPRESSION",
            "ZONE",
            "CLUSTER",
            "NEXT DUE",
            "CONCURRENCY",
        ],
        &cells,
        paint,
        "",
    )
}

fn render_runs(status: &Value, paint: Paint) -> String {
    let text = |v: &Value| v.as_str().unwrap_or("-").to_owned();
    let mut out = output::fields(
        &[
            ("Schedule", text(&status["scheduleArn"])),
            ("State", text(&status["state"])),
            ("Next due", text(&status["nextDue"])),
            (
                "Policy",
                format!(
                    "concurrency {}, missed runs {}",
                    text(&status["policy"]["concurrency"]),
                    text(&status["policy"]["missedRuns"])
                ),
            ),
            (
                "In progress",
                match status["pending"].as_object() {
                    Some(p) => format!(
                        "due {} ({} attempt(s), next not before {})",
                        p["due"].as_str().unwrap_or("-"),
                        p["attempts"],
                        p["notBefore"].as_str().unwrap_or("-")
                    ),
                    None => "-".into(),
                },
            ),
        ],
        paint,
    );
    let rows: Vec<Vec<Cell>> = status["runs"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            let outcome = &r["outcome"];
            let kind = text(&outcome["kind"]);
            let detail = match kind.as_str() {
                "STARTED" => r["tasks"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .map(output::short)
                    .collect::<Vec<_>>()
                    .join(" "),
                "MISSED" => format!(
                    "{} due time(s), the last {}",
                    outcome["count"],
                    text(&outcome["last"])
                ),
                _ => text(&outcome["reason"]),
            };
            let tone = match kind.as_str() {
                "STARTED" => "RUNNING",
                "FAILED" => "FAILED",
                _ => "PENDING",
            };
            vec![
                Cell::from(text(&r["due"])),
                Cell::from(text(&r["at"])),
                Cell::status(tone).with_text(&kind),
                Cell::from(detail),
            ]
        })
        .collect();
    out.push('\n');
    if rows.is_empty() {
        out.push_str("No runs yet.\n");
    } else {
        out.push_str(&output::table(
            &["DUE", "DECIDED", "OUTCOME", "TASKS / WHY"],
            &rows,
            paint,
            "",
        ));
    }
    out
}

/// The preview of `a`, with `now` as the creation time and the default `--after`.
fn preview(a: &PreviewArgs, now: i64) -> Result<Preview> {
    let instant = |text: &Option<String>| text.as_deref().map(parse_instant).transpose();
    let schedule = Schedule::new(Spec {
        expression: &a.expression,
        time_zone: Some(&a.time_zone),
        start: instant(&a.start)?,
        end: instant(&a.end)?,
        created: now,
    })?;
    let mut after = instant(&a.after)?.unwrap_or(now);
    // A rate without a start date runs first at creation: as if created now, "now" is a run.
    if a.start.is_none() && a.after.is_none() {
        after -= 1;
    }
    let mut runs = Vec::new();
    while runs.len() < usize::from(a.count) {
        let Some(due) = schedule.next_due(after) else {
            break;
        };
        let out_of_range = || anyhow!("{due} is out of range");
        let utc = format_utc(due).ok_or_else(out_of_range)?;
        let local = schedule.local_time(due).ok_or_else(out_of_range)?;
        runs.push(Run { utc, local });
        after = due;
    }
    Ok(Preview {
        expression: a.expression.clone(),
        time_zone: a.time_zone.clone(),
        runs,
    })
}

fn render(p: &Preview, paint: Paint) -> String {
    if p.runs.is_empty() {
        return format!(
            "{} in {}: no run is due (past its end date, its at(), or the year 2199)\n",
            p.expression, p.time_zone
        );
    }
    let rows: Vec<Vec<Cell>> = p
        .runs
        .iter()
        .enumerate()
        .map(|(i, r)| {
            vec![
                Cell::from((i + 1).to_string()),
                Cell::from(r.utc.as_str()),
                Cell::from(r.local.as_str()),
            ]
        })
        .collect();
    output::table(&["#", "UTC", "LOCAL"], &rows, paint, "")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(expression: &str, zone: &str, after: Option<&str>, count: u16) -> PreviewArgs {
        PreviewArgs {
            expression: expression.into(),
            time_zone: zone.into(),
            start: None,
            end: None,
            after: after.map(str::to_owned),
            count,
            output: output::Format::Table,
        }
    }

    #[test]
    fn a_preview_lists_runs_in_utc_and_in_the_zone() {
        let a = args(
            "cron(0 9 ? * MON-FRI *)",
            "Europe/Paris",
            Some("2026-12-04T12:00:00Z"),
            2,
        );
        let p = preview(&a, 0).unwrap();
        assert_eq!(
            p.runs,
            [
                Run {
                    utc: "2026-12-07T08:00:00Z".into(),
                    local: "2026-12-07T09:00:00+01:00[Europe/Paris]".into()
                },
                Run {
                    utc: "2026-12-08T08:00:00Z".into(),
                    local: "2026-12-08T09:00:00+01:00[Europe/Paris]".into()
                },
            ],
            "Friday noon → Monday 09:00 Paris"
        );
        insta::assert_snapshot!(render(&p, Paint(false)), @r"
        #  UTC                   LOCAL
        1  2026-12-07T08:00:00Z  2026-12-07T09:00:00+01:00[Europe/Paris]
        2  2026-12-08T08:00:00Z  2026-12-08T09:00:00+01:00[Europe/Paris]
        ");
    }

    #[test]
    fn runs_render_each_outcome_with_its_tasks_or_reason() {
        let status = serde_json::json!({
            "scheduleArn": "arn:aws:scheduler:us-east-1:000000000000:schedule/default/nightly",
            "state": "ENABLED",
            "nextDue": "2027-01-02T12:00:00Z",
            "policy": {"concurrency": "SKIP_IF_RUNNING", "missedRuns": "SKIP"},
            "pending": null,
            "runs": [
                {"due": "2027-01-01T09:00:00Z", "at": "2027-01-01T12:00:00Z", "attempts": 0,
                 "tasks": [], "outcome": {"kind": "MISSED", "count": 3, "last": "2027-01-01T11:00:00Z"}},
                {"due": "2027-01-01T12:00:00Z", "at": "2027-01-01T12:00:01Z", "attempts": 1,
                 "tasks": ["arn:aws:ecs:us-east-1:000000000000:task/prod/0a1b"],
                 "outcome": {"kind": "STARTED", "failures": []}},
                {"due": "2027-01-01T13:00:00Z", "at": "2027-01-01T13:00:00Z", "attempts": 0,
                 "tasks": [], "outcome": {"kind": "SKIPPED", "reason": "the previous run's 1 task(s) were still running"}},
            ],
        });
        insta::assert_snapshot!(render_runs(&status, Paint(false)), @r"
        Schedule:     arn:aws:scheduler:us-east-1:000000000000:schedule/default/nightly
        State:        ENABLED
        Next due:     2027-01-02T12:00:00Z
        Policy:       concurrency SKIP_IF_RUNNING, missed runs SKIP
        In progress:  -

        DUE                   DECIDED               OUTCOME  TASKS / WHY
        2027-01-01T09:00:00Z  2027-01-01T12:00:00Z  MISSED   3 due time(s), the last 2027-01-01T11:00:00Z
        2027-01-01T12:00:00Z  2027-01-01T12:00:01Z  STARTED  0a1b
        2027-01-01T13:00:00Z  2027-01-01T13:00:00Z  SKIPPED  the previous run's 1 task(s) were still running
        ");
    }

    #[test]
    fn ls_renders_one_row_per_schedule_and_says_when_there_is_none() {
        let got = serde_json::json!({
            "Name": "nightly", "State": "ENABLED", "ScheduleExpression": "cron(0 12 * * ? *)",
            "ScheduleExpressionTimezone": "Europe/Paris",
            "Target": {"Arn": "arn:aws:ecs:us-east-1:000000000000:cluster/prod"},
        });
        let runs = serde_json::json!({
            "nextDue": "2027-01-02T11:00:00Z", "policy": {"concurrency": "ALLOW"},
        });
        let rows = vec![row(&got, &runs)];
        insta::assert_snapshot!(render_ls(&rows, Paint(false)), @r"
        NAME     STATE    EXPRESSION          ZONE          CLUSTER  NEXT DUE              CONCURRENCY
        nightly  ENABLED  cron(0 12 * * ? *)  Europe/Paris  prod     2027-01-02T11:00:00Z  ALLOW
        ");
        assert!(render_ls(&[], Paint(false)).contains("No schedules"));
    }

    #[test]
    fn a_rate_without_start_runs_first_now() {
        let now = 1_800_000_000_000;
        let p = preview(&args("rate(1 hour)", "UTC", None, 2), now).unwrap();
        assert_eq!(p.runs[0].utc, "2027-01-15T08:00:00Z");
        assert_eq!(p.runs[1].utc, "2027-01-15T09:00:00Z");
    }

    #[test]
    fn nothing_due_says_so_and_bad_input_is_an_error() {
        let done = preview(
            &args(
                "at(2020-01-01T00:00:00)",
                "UTC",
                Some("2026-01-01T00:00:00Z"),
                3,
            ),
            0,
        )
        .unwrap();
        assert!(done.runs.is_empty());
        assert!(render(&done, Paint(false)).contains("no run is due"));
        let err = preview(&args("cron(0 9 * * MON *)", "UTC", None, 1), 0).unwrap_err();
        assert!(err.to_string().contains("cannot both be given"), "{err}");
        let err = preview(&args("rate(1 hour)", "UTC", Some("soon"), 1), 0).unwrap_err();
        assert!(err.to_string().contains("RFC 3339"), "{err}");
    }
}
