//! `berth schedule preview EXPRESSION`: when a schedule expression in EventBridge Scheduler's
//! syntax (`cron(...)`, `rate(...)`, `at(...)`) would run, in its time zone, computed here with
//! the same code the server's schedules use (`berth-schedule`), so a person can check a cron
//! line, a daylight-saving edge or a start/end window before creating anything. It needs no
//! server.

use anyhow::{Result, anyhow};
use berth_model::Millis;
use berth_schedule::{Schedule, Spec, format_utc, parse_instant};
use clap::{Args, Subcommand};
use serde::Serialize;

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
    }
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
