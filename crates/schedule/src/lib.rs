//! Schedule expressions as EventBridge Scheduler writes them, and the one question a schedule
//! runner asks of them: when is the next run due after this moment?
//!
//! ```text
//!  "cron(0 12 ? * MON-FRI *)" ─┐
//!  "rate(5 minutes)"          ─┼─ Schedule::new(Spec { time zone, start, end, created }) ─► Schedule
//!  "at(2027-01-01T09:00:00)"  ─┘        (every error says what is wrong)                      │
//!                                                         next_due(after) ─► Option<due time>
//! ```
//!
//! Pure: no clock, no I/O; times are milliseconds since the epoch, as in berth's state. The
//! runner keeps the last due time it ran (inside the Raft command that records the run), so a
//! new leader asks `next_due(last)` and never repeats a due time.
//!
//! The rules are EventBridge Scheduler's, where its documentation states them:
//! - `cron` and `at` are wall-clock times in the schedule's time zone (IANA name, default UTC;
//!   berth carries its own copy of the tz database, so every server agrees whatever its host
//!   has installed). A cron time that does not exist that day (the hour skipped when daylight
//!   saving starts) is skipped; one that exists twice (the hour repeated when it ends) runs
//!   once, at its first occurrence.
//! - `rate(value unit)` (minute(s), hour(s), day(s); singular for 1, plural otherwise) counts
//!   fixed durations from the start date, or from creation when there is none: a day is 24
//!   hours whatever the clock does.
//! - Start and end dates bound recurring schedules (both inclusive) and are ignored by `at`.
//! - Precision is a minute: cron times are whole minutes.
//!
//! [`flexible_start`] spreads a run inside a flexible time window the same way on every
//! server, so a leader change does not move it.

mod cron;

use jiff::civil::DateTime;
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::{SignedDuration, Timestamp};

pub use cron::Cron;

/// The longest expression the API accepts.
pub const MAX_EXPRESSION_LEN: usize = 256;

/// Why an expression, time zone or date range cannot be a schedule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(String);

impl Invalid {
    /// `why`, as the message of an expression that does not parse.
    fn expression(text: &str, why: Invalid) -> Invalid {
        let shown: String = text.chars().take(80).collect();
        Invalid(format!("Invalid Schedule Expression '{shown}': {}", why.0))
    }
}

/// When a schedule runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expression {
    /// Once, at this wall-clock time.
    At(DateTime),
    /// Every this many minutes.
    Rate {
        minutes: u32,
    },
    Cron(Cron),
}

impl Expression {
    /// Parses `at(yyyy-mm-ddThh:mm:ss)`, `rate(value unit)` or `cron(six fields)`.
    pub fn parse(text: &str) -> Result<Expression, Invalid> {
        let fail = |why: Invalid| Invalid::expression(text, why);
        if text.len() > MAX_EXPRESSION_LEN {
            return Err(fail(Invalid(format!(
                "longer than {MAX_EXPRESSION_LEN} characters"
            ))));
        }
        let inner = |prefix: &str| {
            text.strip_prefix(prefix)
                .and_then(|rest| rest.strip_prefix('('))
                .and_then(|rest| rest.strip_suffix(')'))
        };
        if let Some(at) = inner("at") {
            at_time(at).map(Expression::At).map_err(fail)
        } else if let Some(rate) = inner("rate") {
            rate_minutes(rate)
                .map(|minutes| Expression::Rate { minutes })
                .map_err(fail)
        } else if let Some(fields) = inner("cron") {
            Cron::parse(fields).map(Expression::Cron).map_err(fail)
        } else {
            Err(fail(Invalid(
                "use at(yyyy-mm-ddThh:mm:ss), rate(value unit) or cron(minutes hours day-of-month month day-of-week year)".into(),
            )))
        }
    }
}

/// `yyyy-mm-ddThh:mm:ss`, exactly.
fn at_time(text: &str) -> Result<DateTime, Invalid> {
    let shape = "dddd-dd-ddTdd:dd:dd";
    let well_formed = text.len() == shape.len()
        && text.bytes().zip(shape.bytes()).all(|(b, s)| match s {
            b'd' => b.is_ascii_digit(),
            _ => b == s,
        });
    if !well_formed {
        return Err(Invalid(
            "an at expression is at(yyyy-mm-ddThh:mm:ss)".into(),
        ));
    }
    text.parse::<DateTime>()
        .map_err(|e| Invalid(format!("'{text}' is not a date and time: {e}")))
}

fn rate_minutes(text: &str) -> Result<u32, Invalid> {
    const SHAPE: &str = "a rate expression is rate(value unit): a positive whole number and minute(s), hour(s) or day(s)";
    let shape = || Invalid(SHAPE.into());
    let (value, unit) = text.split_once(' ').ok_or_else(shape)?;
    let value: u32 = match value.parse() {
        Ok(v @ 1..) if value.bytes().all(|b| b.is_ascii_digit()) => v,
        _ => return Err(shape()),
    };
    let (per, singular) = match unit {
        "minute" => (1, true),
        "minutes" => (1, false),
        "hour" => (60, true),
        "hours" => (60, false),
        "day" => (24 * 60, true),
        "days" => (24 * 60, false),
        _ => return Err(shape()),
    };
    if singular != (value == 1) {
        return Err(Invalid(format!(
            "the unit is singular for a value of 1 and plural otherwise ('{unit}' with {value})"
        )));
    }
    value
        .checked_mul(per)
        .ok_or_else(|| Invalid(format!("rate({text}) is longer than berth can count")))
}

/// A schedule's timing, as CreateSchedule gives it.
#[derive(Debug, Clone, Copy)]
pub struct Spec<'a> {
    pub expression: &'a str,
    /// IANA name; `None` is UTC.
    pub time_zone: Option<&'a str>,
    pub start: Option<i64>,
    pub end: Option<i64>,
    /// When the schedule was created: a rate without a start date counts from here.
    pub created: i64,
}

/// A valid schedule's timing.
#[derive(Debug, Clone)]
pub struct Schedule {
    expression: Expression,
    zone: TimeZone,
    start: Option<Timestamp>,
    end: Option<Timestamp>,
    created: Timestamp,
}

impl Schedule {
    pub fn new(spec: Spec<'_>) -> Result<Schedule, Invalid> {
        let expression = Expression::parse(spec.expression)?;
        let zone = match spec.time_zone {
            None => TimeZone::UTC,
            Some(name) => TimeZone::get(name).map_err(|_| {
                let shown: String = name.chars().take(80).collect();
                Invalid(format!(
                    "Invalid ScheduleExpressionTimezone '{shown}': use an IANA time zone name such as UTC or Europe/Paris"
                ))
            })?,
        };
        let moment = |ms: i64, what: &str| {
            Timestamp::from_millisecond(ms).map_err(|_| Invalid(format!("{what} is out of range")))
        };
        let start = spec.start.map(|s| moment(s, "StartDate")).transpose()?;
        let end = spec.end.map(|e| moment(e, "EndDate")).transpose()?;
        if let (Some(s), Some(e)) = (start, end)
            && e <= s
        {
            return Err(Invalid("EndDate must be after StartDate".into()));
        }
        Ok(Schedule {
            expression,
            zone,
            start,
            end,
            created: moment(spec.created, "the creation time")?,
        })
    }

    /// `at` (ms) as a wall-clock time in the schedule's zone, with its offset and zone name
    /// (`2027-01-01T09:00:00+09:00[Asia/Tokyo]`).
    pub fn local_time(&self, at: i64) -> Option<String> {
        let moment = Timestamp::from_millisecond(at).ok()?;
        Some(moment.to_zoned(self.zone.clone()).to_string())
    }

    pub fn expression(&self) -> &Expression {
        &self.expression
    }

    /// True for `at`: it runs once, and then the schedule is done.
    pub fn is_one_time(&self) -> bool {
        matches!(self.expression, Expression::At(_))
    }

    /// The first due time strictly after `after` (ms), or `None` when the schedule has no
    /// more: past its end date, its `at`, or the year 2199.
    pub fn next_due(&self, after: i64) -> Option<i64> {
        let after = Timestamp::from_millisecond(after).ok()?;
        let due = match &self.expression {
            Expression::At(when) => {
                // A time skipped by daylight saving moves forward across the gap, as jiff's
                // "compatible" disambiguation (and RFC 5545) does; a repeated one is its first.
                let due = self.zone.to_ambiguous_timestamp(*when).compatible().ok()?;
                return (due > after).then(|| due.as_millisecond());
            }
            Expression::Rate { minutes } => {
                let anchor = self.start.unwrap_or(self.created);
                let every = i64::from(*minutes) * 60_000;
                let (anchor_ms, after_ms) = (anchor.as_millisecond(), after.as_millisecond());
                let due = if after_ms < anchor_ms {
                    anchor_ms
                } else {
                    let runs = (after_ms - anchor_ms) / every + 1;
                    anchor_ms.checked_add(runs.checked_mul(every)?)?
                };
                Timestamp::from_millisecond(due).ok()?
            }
            Expression::Cron(cron) => {
                let from = match self.start {
                    Some(start) if start > after => start,
                    _ => after.checked_add(SignedDuration::from_millis(1)).ok()?,
                };
                self.cron_due(cron, from, after)?
            }
        };
        match self.end {
            Some(end) if due > end => None,
            _ => Some(due.as_millisecond()),
        }
    }

    /// The first cron time at or after `from` (and after `after`) in the schedule's zone.
    fn cron_due(&self, cron: &Cron, from: Timestamp, after: Timestamp) -> Option<Timestamp> {
        let mut local = self.zone.to_datetime(from);
        loop {
            let candidate = cron.next_match(local)?;
            let due = match self.zone.to_ambiguous_timestamp(candidate).offset() {
                AmbiguousOffset::Gap { .. } => None,
                AmbiguousOffset::Unambiguous { offset } => offset.to_timestamp(candidate).ok(),
                AmbiguousOffset::Fold { before, .. } => before.to_timestamp(candidate).ok(),
            };
            match due {
                Some(due) if due >= from && due > after => return Some(due),
                _ => local = candidate.checked_add(SignedDuration::from_mins(1)).ok()?,
            }
        }
    }
}

/// An RFC 3339 instant (`2027-01-01T09:00:00Z`, `2027-01-01T10:00:00+01:00`) in ms.
pub fn parse_instant(text: &str) -> Result<i64, Invalid> {
    text.parse::<Timestamp>()
        .map(Timestamp::as_millisecond)
        .map_err(|e| Invalid(format!("'{text}' is not an RFC 3339 time: {e}")))
}

/// `at` (ms) as an RFC 3339 UTC time (`2027-01-01T00:00:00Z`).
pub fn format_utc(at: i64) -> Option<String> {
    Timestamp::from_millisecond(at).ok().map(|t| t.to_string())
}

/// When a run due at `due` starts under a flexible time window of `window_minutes`: a moment
/// in `[due, due + window)`, whole seconds, chosen from `key` (the schedule's identity) and
/// `due` alone, so every server picks the same one and a new leader does not move it.
pub fn flexible_start(due: i64, window_minutes: u32, key: &str) -> i64 {
    let window_seconds = u64::from(window_minutes) * 60;
    if window_seconds == 0 {
        return due;
    }
    // FNV-1a over the key and the due time: stable across builds and platforms, which
    // std's hashers do not promise.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in key.bytes().chain(due.to_le_bytes()) {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
    }
    due.saturating_add(((hash % window_seconds) * 1000) as i64)
}

#[cfg(test)]
mod tests;
