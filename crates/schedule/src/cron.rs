//! `cron(minutes hours day-of-month month day-of-week year)`: EventBridge's six fields and
//! wildcards, parsed into sets and matched against civil (wall-clock) time.
//!
//! | field | values | wildcards |
//! |---|---|---|
//! | minutes | 0-59 | `, - * /` |
//! | hours | 0-23 | `, - * /` |
//! | day-of-month | 1-31 | `, - * ? / L W` |
//! | month | 1-12, JAN-DEC | `, - * /` |
//! | day-of-week | 1-7, SUN-SAT (1 is Sunday) | `, - * ? / L #` |
//! | year | 1970-2199 | `, - * /` |
//!
//! Exactly one of day-of-month and day-of-week is `?`: a schedule names days one way. `L` is
//! the last day of the month (day-of-month) or of the week, Saturday (day-of-week); `5L` the
//! month's last Thursday; `15W` the weekday nearest the 15th, never leaving the month (`LW` the
//! month's last weekday); `3#2` its second Tuesday, and alone in its field. A range may wrap
//! where the field is a cycle (`FRI-MON`, `NOV-FEB`); `a/n` runs from `a` to the field's end.
//!
//! Nothing here knows time zones: [`Cron::next_match`] answers in civil time and the caller
//! maps that onto its zone, where daylight-saving rules apply (`crate`'s docs).

use jiff::civil::{Date, DateTime, Time, Weekday};

use crate::Invalid;

fn invalid<T>(why: String) -> Result<T, Invalid> {
    Err(Invalid(why))
}

const FIRST_YEAR: i16 = 1970;
const LAST_YEAR: i16 = 2199;

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const WEEKDAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/// One field's shape: its name (for messages), bounds, names for its values, and whether a
/// range may wrap past its end.
struct Field {
    name: &'static str,
    min: u16,
    max: u16,
    names: &'static [&'static str],
    wraps: bool,
}

const MINUTES: Field = Field {
    name: "minutes",
    min: 0,
    max: 59,
    names: &[],
    wraps: false,
};
const HOURS: Field = Field {
    name: "hours",
    min: 0,
    max: 23,
    names: &[],
    wraps: false,
};
const DAY_OF_MONTH: Field = Field {
    name: "day-of-month",
    min: 1,
    max: 31,
    names: &[],
    wraps: false,
};
const MONTH: Field = Field {
    name: "month",
    min: 1,
    max: 12,
    names: &MONTHS,
    wraps: true,
};
const DAY_OF_WEEK: Field = Field {
    name: "day-of-week",
    min: 1,
    max: 7,
    names: &WEEKDAYS,
    wraps: true,
};
const YEAR: Field = Field {
    name: "year",
    min: FIRST_YEAR as u16,
    max: LAST_YEAR as u16,
    names: &[],
    wraps: false,
};

/// The values a field allows, as bits offset from the field's minimum (years span 230).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Values([u64; 4]);

impl Values {
    fn insert(&mut self, offset: u16) {
        self.0[usize::from(offset / 64)] |= 1 << (offset % 64);
    }

    fn contains(&self, offset: u16) -> bool {
        offset < 256 && self.0[usize::from(offset / 64)] & (1 << (offset % 64)) != 0
    }

    /// The smallest allowed offset in `from..=to`.
    fn first_in(&self, from: u16, to: u16) -> Option<u16> {
        (from..=to).find(|&v| self.contains(v))
    }
}

/// How the day-of-month field chooses days.
#[derive(Debug, Clone, PartialEq, Eq)]
enum MonthDays {
    Days(Values),
    Last,
    LastWeekday,
    NearestWeekday(i8),
}

/// How the day-of-week field chooses days (weekdays 1 = Sunday … 7 = Saturday).
#[derive(Debug, Clone, PartialEq, Eq)]
enum WeekDays {
    Days(Values),
    LastOfMonth(u16),
    Nth(u16, i8),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Days {
    OfMonth(MonthDays),
    OfWeek(WeekDays),
}

/// A parsed, valid cron expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    minutes: Values,
    hours: Values,
    days: Days,
    months: Values,
    years: Values,
}

impl Cron {
    /// Parses the six fields inside `cron(...)`; the error says which field is wrong and why.
    pub fn parse(fields: &str) -> Result<Cron, Invalid> {
        let parts: Vec<&str> = fields.split_whitespace().collect();
        let [minutes, hours, dom, month, dow, year] = parts[..] else {
            return invalid(format!(
                "a cron expression has six fields (minutes hours day-of-month month day-of-week year), not {}",
                parts.len()
            ));
        };
        let dom = month_days(dom)?;
        let dow = week_days(dow)?;
        let days = match (dom, dow) {
            (Some(d), None) => Days::OfMonth(d),
            (None, Some(w)) => Days::OfWeek(w),
            (Some(_), Some(_)) => {
                return invalid(
                    "day-of-month and day-of-week cannot both be given: use ? in one of them"
                        .into(),
                );
            }
            (None, None) => {
                return invalid("day-of-month and day-of-week cannot both be ?: give one".into());
            }
        };
        Ok(Cron {
            minutes: values(minutes, &MINUTES)?,
            hours: values(hours, &HOURS)?,
            days,
            months: values(month, &MONTH)?,
            years: values(year, &YEAR)?,
        })
    }

    /// The first whole minute at or after `from` that the expression matches, in civil time;
    /// `None` when there is none before 2200.
    pub fn next_match(&self, from: DateTime) -> Option<DateTime> {
        let from = ceil_minute(from)?;
        let mut date = from.date();
        let mut not_before = Some(from.time());
        loop {
            let year = date.year();
            if year > LAST_YEAR {
                return None;
            }
            if year < FIRST_YEAR {
                (date, not_before) = (Date::new(FIRST_YEAR, 1, 1).ok()?, None);
                continue;
            }
            let offset = (year - FIRST_YEAR) as u16;
            if !self.years.contains(offset) {
                let next = self.years.first_in(offset + 1, YEAR.max - YEAR.min)?;
                let next = FIRST_YEAR + next as i16;
                (date, not_before) = (Date::new(next, 1, 1).ok()?, None);
                continue;
            }
            if !self.months.contains(date.month() as u16 - 1) {
                let next_month = date.last_of_month().tomorrow().ok()?;
                (date, not_before) = (next_month, None);
                continue;
            }
            if self.day_matches(date)
                && let Some(time) = self.first_time(not_before)
            {
                return Some(date.to_datetime(time));
            }
            (date, not_before) = (date.tomorrow().ok()?, None);
        }
    }

    /// The first allowed time of a matching day, not before `not_before`.
    fn first_time(&self, not_before: Option<Time>) -> Option<Time> {
        let (h0, m0) = not_before.map_or((0, 0), |t| (t.hour() as u16, t.minute() as u16));
        (h0..=HOURS.max)
            .filter(|&h| self.hours.contains(h))
            .find_map(|h| {
                let m = self
                    .minutes
                    .first_in(if h == h0 { m0 } else { 0 }, MINUTES.max)?;
                Time::new(h as i8, m as i8, 0, 0).ok()
            })
    }

    fn day_matches(&self, date: Date) -> bool {
        let weekday = sunday_one(date.weekday());
        match &self.days {
            Days::OfMonth(MonthDays::Days(days)) => days.contains(date.day() as u16 - 1),
            Days::OfMonth(MonthDays::Last) => date == date.last_of_month(),
            Days::OfMonth(MonthDays::LastWeekday) => date == last_weekday(date),
            Days::OfMonth(MonthDays::NearestWeekday(n)) => nearest_weekday(date, *n) == Some(date),
            Days::OfWeek(WeekDays::Days(days)) => days.contains(weekday - 1),
            Days::OfWeek(WeekDays::LastOfMonth(w)) => {
                weekday == *w && date.day() + 7 > date.days_in_month()
            }
            Days::OfWeek(WeekDays::Nth(w, n)) => weekday == *w && (date.day() - 1) / 7 + 1 == *n,
        }
    }
}

fn sunday_one(w: Weekday) -> u16 {
    w.to_sunday_one_offset() as u16
}

/// `t` rounded up to a whole minute.
fn ceil_minute(t: DateTime) -> Option<DateTime> {
    let whole = t.with().second(0).subsec_nanosecond(0).build().ok()?;
    if whole == t {
        Some(whole)
    } else {
        whole.checked_add(jiff::SignedDuration::from_mins(1)).ok()
    }
}

/// The month's last Monday-to-Friday.
fn last_weekday(date: Date) -> Date {
    let last = date.last_of_month();
    let back = match last.weekday() {
        Weekday::Saturday => 1,
        Weekday::Sunday => 2,
        _ => 0,
    };
    last.checked_sub(jiff::Span::new().days(back))
        .unwrap_or(last)
}

/// The weekday nearest day `n` of `date`'s month, without leaving the month (Quartz's `W`);
/// `None` when the month has no day `n`.
fn nearest_weekday(date: Date, n: i8) -> Option<Date> {
    if n > date.days_in_month() {
        return None;
    }
    let target = date.with().day(n).build().ok()?;
    let shift: i64 = match target.weekday() {
        Weekday::Saturday if n == 1 => 2,
        Weekday::Saturday => -1,
        Weekday::Sunday if n == date.days_in_month() => -2,
        Weekday::Sunday => 1,
        _ => 0,
    };
    target.checked_add(jiff::Span::new().days(shift)).ok()
}

fn month_days(text: &str) -> Result<Option<MonthDays>, Invalid> {
    Ok(Some(match text {
        "?" => return Ok(None),
        "L" => MonthDays::Last,
        "LW" => MonthDays::LastWeekday,
        _ => match text.strip_suffix('W') {
            Some(n) => {
                let n = value(n, &DAY_OF_MONTH)?;
                MonthDays::NearestWeekday(n as i8)
            }
            None => {
                if text.contains(['L', 'W']) {
                    return invalid(format!(
                        "day-of-month '{text}': L and W stand alone (L, LW, 15W), not in lists or ranges"
                    ));
                }
                MonthDays::Days(values(text, &DAY_OF_MONTH)?)
            }
        },
    }))
}

fn week_days(text: &str) -> Result<Option<WeekDays>, Invalid> {
    if text == "?" {
        return Ok(None);
    }
    if text == "L" {
        let mut saturday = Values::default();
        saturday.insert(6);
        return Ok(Some(WeekDays::Days(saturday)));
    }
    if let Some((day, nth)) = text.split_once('#') {
        if text.contains([',', '-', '/', '*']) {
            return invalid(format!(
                "day-of-week '{text}': # takes one day and one number (3#2 is the second Tuesday), alone in the field"
            ));
        }
        let day = value(day, &DAY_OF_WEEK)?;
        let nth = match nth.parse::<i8>() {
            Ok(n @ 1..=5) => n,
            _ => {
                return invalid(format!(
                    "day-of-week '{text}': the number after # is 1 to 5"
                ));
            }
        };
        return Ok(Some(WeekDays::Nth(day, nth)));
    }
    if let Some(day) = text.strip_suffix('L') {
        return Ok(Some(WeekDays::LastOfMonth(value(day, &DAY_OF_WEEK)?)));
    }
    Ok(Some(WeekDays::Days(values(text, &DAY_OF_WEEK)?)))
}

/// One value of `field`: a number in its bounds or one of its names (any case).
fn value(text: &str, field: &Field) -> Result<u16, Invalid> {
    let named = field
        .names
        .iter()
        .position(|n| n.eq_ignore_ascii_case(text))
        .map(|i| field.min + i as u16);
    let number = (!text.is_empty() && text.len() <= 4 && text.bytes().all(|b| b.is_ascii_digit()))
        .then(|| text.parse::<u16>().ok())
        .flatten();
    match named.or(number) {
        Some(v) if (field.min..=field.max).contains(&v) => Ok(v),
        Some(v) => invalid(format!(
            "{}: {v} is outside {}-{}",
            field.name, field.min, field.max
        )),
        None => invalid(format!(
            "{}: '{}' is not a value",
            field.name,
            text.chars().take(20).collect::<String>()
        )),
    }
}

/// A list of `*`, values, ranges and steps, as the set of offsets from `field.min` it allows.
fn values(text: &str, field: &Field) -> Result<Values, Invalid> {
    let mut set = Values::default();
    let size = field.max - field.min + 1;
    for item in text.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((range, step)) => match step.parse::<u16>() {
                Ok(s @ 1..) if s <= size => (range, Some(s)),
                _ => {
                    return invalid(format!(
                        "{}: the step in '{item}' is a number from 1 to {size}",
                        field.name
                    ));
                }
            },
            None => (item, None),
        };
        let (low, high) = match range {
            "*" => (field.min, field.max),
            _ => match range.split_once('-') {
                Some((a, b)) => (value(a, field)?, value(b, field)?),
                None => {
                    let v = value(range, field)?;
                    (v, if step.is_some() { field.max } else { v })
                }
            },
        };
        if low > high && !field.wraps {
            return invalid(format!(
                "{}: the range '{range}' runs backwards",
                field.name
            ));
        }
        let span = if low <= high {
            high - low
        } else {
            high + size - low
        };
        for k in (0..=span).step_by(usize::from(step.unwrap_or(1))) {
            set.insert((low - field.min + k) % size);
        }
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    fn next(expr: &str, from: DateTime) -> Option<DateTime> {
        Cron::parse(expr).unwrap().next_match(from)
    }

    fn at(y: i16, mo: i8, d: i8, h: i8, mi: i8) -> DateTime {
        date(y, mo, d).at(h, mi, 0, 0)
    }

    #[test]
    fn daily_and_stepped_times() {
        let from = at(2026, 12, 7, 12, 29);
        assert_eq!(next("0 12 * * ? *", from), Some(at(2026, 12, 8, 12, 0)));
        assert_eq!(next("30 12 * * ? *", from), Some(at(2026, 12, 7, 12, 30)));
        assert_eq!(next("*/15 * * * ? *", from), Some(at(2026, 12, 7, 12, 30)));
        assert_eq!(next("1/10 * * * ? *", from), Some(at(2026, 12, 7, 12, 31)));
        assert_eq!(next("29 12 * * ? *", from), Some(from), "at or after");
        let mid_minute = from.with().second(1).build().unwrap();
        assert_eq!(
            next("29 12 * * ? *", mid_minute),
            Some(at(2026, 12, 8, 12, 29))
        );
        assert_eq!(
            next("0 8 ? * MON-FRI *", at(2026, 12, 5, 9, 0)),
            Some(at(2026, 12, 7, 8, 0)),
            "Saturday → Monday"
        );
        assert_eq!(next("0 0 1 JAN,jul ? *", from), Some(at(2027, 1, 1, 0, 0)));
    }

    #[test]
    fn last_nearest_and_nth_days() {
        let from = at(2027, 2, 1, 0, 0);
        assert_eq!(next("0 5 L * ? *", from), Some(at(2027, 2, 28, 5, 0)));
        assert_eq!(
            next("0 5 L * ? *", at(2028, 2, 1, 0, 0)),
            Some(at(2028, 2, 29, 5, 0)),
            "leap year"
        );
        // 2027-05-15 is a Saturday: the nearest weekday is Friday the 14th.
        assert_eq!(
            next("0 0 15W * ? *", at(2027, 5, 1, 0, 0)),
            Some(at(2027, 5, 14, 0, 0))
        );
        // 2027-05-01 is a Saturday: 1W does not leave May, so Monday the 3rd.
        assert_eq!(
            next("0 0 1W * ? *", at(2027, 5, 1, 0, 0)),
            Some(at(2027, 5, 3, 0, 0))
        );
        // 2027-10-31 is a Sunday: LW is Friday the 29th.
        assert_eq!(
            next("0 0 LW * ? *", at(2027, 10, 1, 0, 0)),
            Some(at(2027, 10, 29, 0, 0))
        );
        // The second Tuesday of December 2026 is the 8th; the last Friday the 25th.
        assert_eq!(
            next("0 9 ? * 3#2 *", from_dec()),
            Some(at(2026, 12, 8, 9, 0))
        );
        assert_eq!(
            next("0 9 ? * 6L *", from_dec()),
            Some(at(2026, 12, 25, 9, 0))
        );
        assert_eq!(
            next("0 9 ? * L *", from_dec()),
            Some(at(2026, 12, 5, 9, 0)),
            "L alone is Saturday"
        );
        assert_eq!(
            next("0 0 31 * ? *", at(2027, 4, 1, 0, 0)),
            Some(at(2027, 5, 31, 0, 0)),
            "months without the day are passed over"
        );
    }

    fn from_dec() -> DateTime {
        at(2026, 12, 1, 0, 0)
    }

    #[test]
    fn years_bound_the_search() {
        assert_eq!(
            next("0 0 1 1 ? 2030", from_dec()),
            Some(at(2030, 1, 1, 0, 0))
        );
        assert_eq!(next("0 0 1 1 ? 2020", from_dec()), None, "in the past");
        assert_eq!(next("0 0 30 2 ? *", from_dec()), None, "never exists");
        assert_eq!(
            next("0 0 1 1 ? 2030/5", at(2031, 1, 1, 0, 0)),
            Some(at(2035, 1, 1, 0, 0))
        );
        assert_eq!(
            next("* * * * ? *", at(2199, 12, 31, 23, 59)),
            Some(at(2199, 12, 31, 23, 59))
        );
        assert_eq!(next("* * * * ? *", at(2200, 1, 1, 0, 0)), None);
    }

    #[test]
    fn ranges_wrap_where_the_field_is_a_cycle() {
        // FRI-MON: Friday, Saturday, Sunday, Monday; 2026-12-08 is a Tuesday.
        assert_eq!(
            next("0 0 ? * FRI-MON *", at(2026, 12, 8, 0, 1)),
            Some(at(2026, 12, 11, 0, 0))
        );
        assert_eq!(
            next("0 0 1 NOV-FEB ? *", at(2027, 3, 1, 0, 0)),
            Some(at(2027, 11, 1, 0, 0))
        );
        assert!(
            Cron::parse("30-10 * * * ? *").is_err(),
            "minutes do not wrap"
        );
    }

    #[test]
    fn bad_expressions_say_which_field_and_why() {
        for (expr, says) in [
            ("0 12 * * ?", "six fields"),
            ("0 12 * * ? * *", "six fields"),
            ("60 12 * * ? *", "minutes: 60 is outside 0-59"),
            ("0 24 * * ? *", "hours"),
            ("0 0 0 * ? *", "day-of-month: 0"),
            ("0 0 * 13 ? *", "month: 13"),
            ("0 0 ? * 8 *", "day-of-week: 8"),
            ("0 0 * * ? 1969", "year: 1969"),
            ("0 0 * * ? 2200", "year"),
            ("0 0 * * MON *", "cannot both be given"),
            ("0 0 ? * ? *", "cannot both be ?"),
            ("0 0 ? * 3#6 *", "1 to 5"),
            ("0 0 ? * 3#1,6#3 *", "alone"),
            ("0 0 1,L * ? *", "stand alone"),
            ("*/0 * * * ? *", "step"),
            ("*/61 * * * ? *", "step"),
            ("0 0 * FOO ? *", "'FOO' is not a value"),
            ("a * * * ? *", "minutes: 'a'"),
            ("0 0 * * ? 99999", "year: '99999'"),
            ("0 0 1, * ? *", "day-of-month: '' is not a value"),
        ] {
            let err = Cron::parse(expr).expect_err(expr).to_string();
            assert!(err.contains(says), "{expr}: {err}");
        }
    }
}
