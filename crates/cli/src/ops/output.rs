//! How the operator's commands print: a table for people, JSON or YAML for scripts, colour
//! only when stdout is a terminal (and `NO_COLOR` is unset), and the exit codes scripts can
//! rely on.
//!
//! Everything here that renders is pure (data in, string out), so the tables are
//! snapshot-tested without a server.

use std::fmt;

use anyhow::Result;
use aws_sdk_ecs::primitives::{DateTime, DateTimeFormat};
use clap::ValueEnum;
use serde::Serialize;

/// The exit codes of the operator's commands, as `--help` lists them.
pub const EXIT_CODES: &str = exit_codes!();

/// An outcome a script must be able to tell apart from a failed request (exit 1).
#[derive(Debug)]
pub enum Exit {
    /// What was waited for failed (exit 3).
    Failed(String),
    /// What was waited for did not happen within the timeout (exit 4).
    TimedOut(String),
}

impl Exit {
    pub fn code(&self) -> i32 {
        match self {
            Exit::Failed(_) => 3,
            Exit::TimedOut(_) => 4,
        }
    }
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Exit::Failed(why) => write!(f, "failed: {why}"),
            Exit::TimedOut(what) => write!(f, "timed out: {what}"),
        }
    }
}

impl std::error::Error for Exit {}

/// `--output`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned columns for people.
    Table,
    /// One JSON document (for `watch`: one object per line).
    Json,
    /// One YAML document.
    Yaml,
}

/// Prints `value` as JSON or YAML, or the table `table` renders.
pub fn emit<T: Serialize>(format: Format, value: &T, table: impl FnOnce() -> String) -> Result<()> {
    match format {
        Format::Table => print!("{}", table()),
        Format::Json => println!("{}", serde_json::to_string_pretty(value)?),
        Format::Yaml => print!("{}", serde_yaml_ng::to_string(value)?),
    }
    Ok(())
}

/// Progress of a wait on stderr: on a terminal, a bar (done of all, when the wait has a count
/// to reach) or a spinner, with the latest line; elsewhere (CI logs, redirections) each new
/// line printed once, so the log still tells the story.
pub struct Progress {
    bar: indicatif::ProgressBar,
    last: String,
}

impl Progress {
    pub fn start() -> Progress {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        Progress {
            bar,
            last: String::new(),
        }
    }

    /// The current state, in one line, and how far it has come (done, of) when it counts.
    pub fn update(&mut self, line: String, done: Option<(u64, u64)>) {
        if self.bar.is_hidden() {
            if line != self.last {
                eprintln!("{line}");
            }
        } else {
            match done {
                Some((done, of)) if of > 0 => {
                    if self.bar.length() != Some(of) {
                        self.bar.set_style(bar_style());
                        self.bar.set_length(of);
                    }
                    self.bar.set_position(done.min(of));
                }
                _ => {
                    if self.bar.length().is_some() {
                        self.bar
                            .set_style(indicatif::ProgressStyle::default_spinner());
                        self.bar.unset_length();
                    }
                }
            }
            self.bar.set_message(line.clone());
        }
        self.last = line;
    }

    /// Something that happened (an event), above the spinner.
    pub fn println(&self, line: &str) {
        self.bar.suspend(|| eprintln!("{line}"));
    }

    /// Ends the spinner, leaving the last state printed.
    pub fn finish(self) {
        self.bar.finish_and_clear();
        if !self.bar.is_hidden() && !self.last.is_empty() {
            eprintln!("{}", self.last);
        }
    }
}

/// `⠋ [#########>------] 6/10 <line>`.
fn bar_style() -> indicatif::ProgressStyle {
    indicatif::ProgressStyle::with_template("{spinner} [{bar:30}] {pos}/{len} {msg}")
        .map(|s| s.progress_chars("#>-"))
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
}

/// Whether to colour: decided once, from stdout, so piped output is plain text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Paint(pub bool);

impl Paint {
    pub fn detect() -> Paint {
        Paint(
            std::io::IsTerminal::is_terminal(&std::io::stdout())
                && std::env::var_os("NO_COLOR").is_none(),
        )
    }

    pub fn tone(self, text: &str, tone: Tone) -> String {
        let code = match tone {
            Tone::Plain => return text.to_owned(),
            Tone::Good => "32",
            Tone::Warn => "33",
            Tone::Bad => "31",
            Tone::Dim => "2",
            Tone::Bold => "1",
        };
        if self.0 {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }
}

/// What a cell means, which its colour shows on a terminal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tone {
    Plain,
    Good,
    Warn,
    Bad,
    Dim,
    Bold,
}

/// The tone of a status word: RUNNING and ACTIVE are good, STOPPED and FAILED bad, the ones
/// on the way somewhere a warning.
pub fn status_tone(status: &str) -> Tone {
    match status {
        "RUNNING" | "ACTIVE" | "COMPLETED" | "HEALTHY" | "PRIMARY" | "steady" | "chosen" => {
            Tone::Good
        }
        "STOPPED" | "FAILED" | "UNHEALTHY" | "INACTIVE" | "failed" | "rejected" | "down" => {
            Tone::Bad
        }
        "" | "-" => Tone::Dim,
        _ => Tone::Warn,
    }
}

/// One cell: its text and what it means.
#[derive(Clone, Debug)]
pub struct Cell {
    pub text: String,
    pub tone: Tone,
}

impl Cell {
    pub fn status(text: impl Into<String>) -> Cell {
        let text = text.into();
        let tone = status_tone(&text);
        Cell { text, tone }
    }

    /// The same tone, showing `text` instead.
    pub fn with_text(self, text: &str) -> Cell {
        Cell {
            text: text.to_owned(),
            ..self
        }
    }
}

impl From<String> for Cell {
    fn from(text: String) -> Cell {
        Cell {
            text,
            tone: Tone::Plain,
        }
    }
}

impl From<&str> for Cell {
    fn from(text: &str) -> Cell {
        Cell::from(text.to_owned())
    }
}

/// Columns aligned on the widest cell, two spaces apart, headers in capitals as kubectl and
/// nomad print them; the last column is not padded. Every line is prefixed with `indent`.
pub fn table(headers: &[&str], rows: &[Vec<Cell>], paint: Paint, indent: &str) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.text.chars().count());
        }
    }
    let line = |cells: Vec<(String, Tone)>| {
        let last = cells.len().saturating_sub(1);
        let mut out = indent.to_owned();
        for (i, (text, tone)) in cells.into_iter().enumerate() {
            let pad = widths[i] - text.chars().count();
            out.push_str(&paint.tone(&text, tone));
            if i < last {
                out.push_str(&" ".repeat(pad + 2));
            }
        }
        out.push('\n');
        out
    };
    let mut out = line(
        headers
            .iter()
            .map(|h| (h.to_string(), Tone::Bold))
            .collect(),
    );
    for row in rows {
        out.push_str(&line(
            row.iter().map(|c| (c.text.clone(), c.tone)).collect(),
        ));
    }
    out
}

/// `key: value` lines with the keys aligned, for `describe`.
pub fn fields(pairs: &[(&str, String)], paint: Paint) -> String {
    let width = pairs.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    pairs
        .iter()
        .map(|(k, v)| {
            let key = paint.tone(&format!("{k}:"), Tone::Bold);
            format!("{key}{}{v}\n", " ".repeat(width - k.len() + 2))
        })
        .collect()
}

/// Epoch seconds as RFC 3339 UTC, or `-`.
pub fn time(seconds: Option<i64>) -> String {
    seconds
        .and_then(|s| DateTime::from_secs(s).fmt(DateTimeFormat::DateTime).ok())
        .unwrap_or_else(|| "-".into())
}

/// The last `/`-separated part of an ARN: a task's or instance's id, a cluster's name.
pub fn short(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

/// `family:revision` of a task definition ARN (or the text itself).
pub fn definition(arn: &str) -> &str {
    arn.split_once("task-definition/").map_or(arn, |(_, d)| d)
}

/// Text or `-` when there is none.
pub fn or_dash(text: Option<&str>) -> String {
    text.filter(|t| !t.is_empty()).unwrap_or("-").to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_on_their_widest_cell_and_colour_stays_out_of_the_width() {
        let rows = vec![
            vec![Cell::from("web"), Cell::status("RUNNING"), Cell::from("1")],
            vec![
                Cell::from("a-longer-name"),
                Cell::status("STOPPED"),
                Cell::from("22"),
            ],
        ];
        insta::assert_snapshot!(table(&["NAME", "STATUS", "N"], &rows, Paint(false), ""), @r"
        NAME           STATUS   N
        web            RUNNING  1
        a-longer-name  STOPPED  22
        ");
        let painted = table(&["NAME"], &[vec![Cell::status("RUNNING")]], Paint(true), "");
        assert_eq!(painted, "\x1b[1mNAME\x1b[0m\n\x1b[32mRUNNING\x1b[0m\n");
    }

    #[test]
    fn arns_shorten_to_what_people_type() {
        assert_eq!(short("arn:aws:ecs:us-east-1:0:task/c/abc"), "abc");
        assert_eq!(
            definition("arn:aws:ecs:us-east-1:0:task-definition/web:3"),
            "web:3"
        );
        assert_eq!(time(Some(0)), "1970-01-01T00:00:00Z");
        assert_eq!(time(None), "-");
    }
}
