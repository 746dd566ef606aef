use jiff::Timestamp;
use proptest::prelude::*;

use super::*;

/// Milliseconds of an RFC 3339 instant.
fn ms(text: &str) -> i64 {
    text.parse::<Timestamp>().unwrap().as_millisecond()
}

fn show(ms: i64) -> String {
    Timestamp::from_millisecond(ms).unwrap().to_string()
}

fn schedule(expression: &str, zone: Option<&str>) -> Schedule {
    Schedule::new(Spec {
        expression,
        time_zone: zone,
        start: None,
        end: None,
        created: ms("2026-12-07T12:29:41Z"),
    })
    .unwrap()
}

/// The first `n` due times after `after`, as RFC 3339 strings.
fn runs(s: &Schedule, after: &str, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut at = ms(after);
    while out.len() < n {
        let Some(next) = s.next_due(at) else { break };
        out.push(show(next));
        at = next;
    }
    out
}

#[test]
fn cron_runs_in_its_time_zone() {
    let noon_paris = schedule("cron(0 12 * * ? *)", Some("Europe/Paris"));
    assert_eq!(
        runs(&noon_paris, "2026-12-07T12:29:41Z", 2),
        ["2026-12-08T11:00:00Z", "2026-12-09T11:00:00Z"],
        "noon in Paris is 11:00 UTC in winter"
    );
    assert_eq!(
        runs(&noon_paris, "2027-07-01T00:00:00Z", 1),
        ["2027-07-01T10:00:00Z"],
        "and 10:00 UTC in summer"
    );
    let utc = schedule("cron(0 12 * * ? *)", None);
    assert_eq!(
        runs(&utc, "2026-12-07T12:29:41Z", 1),
        ["2026-12-08T12:00:00Z"]
    );
}

#[test]
fn a_skipped_hour_is_skipped_and_a_repeated_one_runs_once() {
    // New York: 2027-03-14 02:00 → 03:00 (02:30 does not exist); 2027-11-07 02:00 → 01:00.
    let s = schedule("cron(30 2 * * ? *)", Some("America/New_York"));
    assert_eq!(
        runs(&s, "2027-03-13T00:00:00Z", 2),
        ["2027-03-13T07:30:00Z", "2027-03-15T06:30:00Z"],
        "the 14th has no 02:30"
    );
    let s = schedule("cron(30 1 * * ? *)", Some("America/New_York"));
    assert_eq!(
        runs(&s, "2027-11-06T12:00:00Z", 2),
        ["2027-11-07T05:30:00Z", "2027-11-08T06:30:00Z"],
        "01:30 happens twice on the 7th; it runs at the first"
    );
    let every_quarter = schedule("cron(0/15 * * * ? *)", Some("America/New_York"));
    let fall_back = runs(&every_quarter, "2027-11-07T05:40:00Z", 6);
    assert_eq!(
        fall_back,
        [
            "2027-11-07T05:45:00Z",
            "2027-11-07T07:00:00Z",
            "2027-11-07T07:15:00Z",
            "2027-11-07T07:30:00Z",
            "2027-11-07T07:45:00Z",
            "2027-11-07T08:00:00Z"
        ],
        "01:45 EDT, then the repeated 01:xx EST quarter hours (06:00–06:45 UTC) are not run again"
    );
}

#[test]
fn rates_count_fixed_durations_from_start_or_creation() {
    let s = schedule("rate(5 minutes)", None);
    assert_eq!(
        runs(&s, "2026-12-07T00:00:00Z", 3),
        [
            "2026-12-07T12:29:41Z",
            "2026-12-07T12:34:41Z",
            "2026-12-07T12:39:41Z"
        ],
        "from creation, first run at once"
    );
    assert_eq!(
        runs(&s, "2026-12-07T13:00:00Z", 1),
        ["2026-12-07T13:04:41Z"],
        "after an outage the next run is on the grid, not relative to the outage"
    );
    let daily = Schedule::new(Spec {
        expression: "rate(1 day)",
        time_zone: Some("America/New_York"),
        start: Some(ms("2027-03-13T12:00:00Z")),
        end: Some(ms("2027-03-15T12:00:00Z")),
        created: ms("2026-12-07T00:00:00Z"),
    })
    .unwrap();
    assert_eq!(
        runs(&daily, "2027-01-01T00:00:00Z", 5),
        [
            "2027-03-13T12:00:00Z",
            "2027-03-14T12:00:00Z",
            "2027-03-15T12:00:00Z"
        ],
        "24 hours across the clock change; the end date is inclusive"
    );
}

#[test]
fn start_and_end_bound_cron_but_not_at() {
    let bounded = Schedule::new(Spec {
        expression: "cron(0 * * * ? *)",
        time_zone: None,
        start: Some(ms("2027-01-01T05:00:00Z")),
        end: Some(ms("2027-01-01T07:00:00Z")),
        created: 0,
    })
    .unwrap();
    assert_eq!(
        runs(&bounded, "2026-12-31T00:00:00Z", 5),
        [
            "2027-01-01T05:00:00Z",
            "2027-01-01T06:00:00Z",
            "2027-01-01T07:00:00Z"
        ]
    );
    let once = Schedule::new(Spec {
        expression: "at(2027-01-01T09:00:00)",
        time_zone: Some("Asia/Tokyo"),
        start: Some(ms("2028-01-01T00:00:00Z")),
        end: None,
        created: 0,
    })
    .unwrap();
    assert!(once.is_one_time());
    assert_eq!(
        runs(&once, "2026-12-07T00:00:00Z", 3),
        ["2027-01-01T00:00:00Z"],
        "once, 09:00 in Tokyo, start date ignored"
    );
    assert_eq!(once.next_due(ms("2027-01-01T00:00:00Z")), None);
    assert_eq!(
        once.local_time(ms("2027-01-01T00:00:00Z")).unwrap(),
        "2027-01-01T09:00:00+09:00[Asia/Tokyo]"
    );
    assert_eq!(
        parse_instant("2027-01-01T10:00:00+01:00"),
        Ok(ms("2027-01-01T09:00:00Z"))
    );
    assert!(parse_instant("tomorrow").is_err());
    assert_eq!(
        format_utc(ms("2027-01-01T00:00:00Z")).unwrap(),
        "2027-01-01T00:00:00Z"
    );
    let in_the_gap = schedule("at(2027-03-14T02:30:00)", Some("America/New_York"));
    assert_eq!(
        runs(&in_the_gap, "2027-01-01T00:00:00Z", 1),
        ["2027-03-14T07:30:00Z"],
        "a time skipped by the clock change runs just after it (03:30 EDT)"
    );
}

#[test]
fn bad_schedules_say_what_is_wrong() {
    let spec = |expression, time_zone| Spec {
        expression,
        time_zone,
        start: None,
        end: None,
        created: 0,
    };
    for (expression, zone, says) in [
        ("every day", None, "use at("),
        ("cron(0 12 * * ?)", None, "six fields"),
        ("cron 0 12 * * ? *", None, "use at("),
        ("rate(0 minutes)", None, "positive whole number"),
        ("rate(-5 minutes)", None, "positive whole number"),
        ("rate(5 weeks)", None, "minute(s), hour(s) or day(s)"),
        ("rate(1 minutes)", None, "singular"),
        ("rate(2 hour)", None, "plural"),
        ("rate(5  minutes)", None, "positive whole number"),
        ("rate(4294967295 days)", None, "longer than berth can count"),
        ("at(2027-01-01 09:00:00)", None, "at(yyyy-mm-ddThh:mm:ss)"),
        ("at(2027-02-30T09:00:00)", None, "not a date and time"),
        (
            "cron(0 12 * * ? *)",
            Some("Mars/Olympus_Mons"),
            "ScheduleExpressionTimezone",
        ),
    ] {
        let err = Schedule::new(spec(expression, zone)).expect_err(expression);
        assert!(err.to_string().contains(says), "{expression}: {err}");
    }
    let long = format!("cron({})", "0 ".repeat(200));
    assert!(
        Expression::parse(&long)
            .unwrap_err()
            .to_string()
            .contains("longer than 256")
    );
    let backwards = Schedule::new(Spec {
        expression: "rate(1 hour)",
        time_zone: None,
        start: Some(10),
        end: Some(10),
        created: 0,
    });
    assert_eq!(
        backwards.unwrap_err().to_string(),
        "EndDate must be after StartDate"
    );
}

#[test]
fn flexible_starts_are_spread_and_the_same_everywhere() {
    let due = ms("2027-01-01T00:00:00Z");
    assert_eq!(flexible_start(due, 0, "a"), due);
    let starts: Vec<i64> = (0..200)
        .map(|k| flexible_start(due, 15, &format!("schedule-{k}")))
        .collect();
    assert!(starts.iter().all(|s| (due..due + 15 * 60_000).contains(s)));
    assert!(starts.iter().all(|s| s % 1000 == 0), "whole seconds");
    let distinct: std::collections::BTreeSet<_> = starts.iter().collect();
    assert!(
        distinct.len() > 150,
        "spread, not bunched: {}",
        distinct.len()
    );
    assert_eq!(flexible_start(due, 15, "schedule-7"), starts[7], "stable");
    assert_ne!(
        flexible_start(due + 60_000, 15, "schedule-7") - 60_000,
        starts[7],
        "each due time draws again"
    );
}

const ZONES: [&str; 5] = [
    "UTC",
    "Europe/Paris",
    "America/New_York",
    "Australia/Lord_Howe",
    "Asia/Kolkata",
];

/// A random field: `*`, a value, a range or a step of numbers in `lo..=hi`.
fn field(lo: u16, hi: u16) -> impl Strategy<Value = String> {
    prop_oneof![
        Just("*".to_owned()),
        (lo..=hi).prop_map(|v| v.to_string()),
        (lo..=hi, lo..=hi).prop_map(|(a, b)| format!("{}-{}", a.min(b), a.max(b))),
        (lo..=hi, 1..=(hi - lo + 1)).prop_map(|(a, s)| format!("{a}/{s}")),
        (lo..=hi, lo..=hi).prop_map(|(a, b)| format!("{a},{b}")),
    ]
}

/// A cron expression that matches at least once a week, so a brute-force scan can check it.
fn frequent_cron() -> impl Strategy<Value = String> {
    (
        field(0, 59),
        field(0, 23),
        prop_oneof![field(1, 7), Just("L".to_owned())],
    )
        .prop_map(|(m, h, dow)| format!("cron({m} {h} ? * {dow} *)"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// `next_due` is strictly after its argument, is a time the expression names in the
    /// schedule's zone, and no such time lies between the two (checked minute by minute).
    #[test]
    fn the_next_cron_run_is_the_first_matching_minute(
        expression in frequent_cron(),
        zone in 0..ZONES.len(),
        after in ms("2026-01-01T00:00:00Z")..ms("2030-01-01T00:00:00Z"),
    ) {
        let s = schedule(&expression, Some(ZONES[zone]));
        let Expression::Cron(cron) = s.expression().clone() else { unreachable!() };
        let tz = TimeZone::get(ZONES[zone]).unwrap();
        let matches = |t: i64| {
            let local = tz.to_datetime(Timestamp::from_millisecond(t).unwrap());
            cron.next_match(local) == Some(local)
        };
        let due = s.next_due(after).expect("a weekly expression runs again");
        prop_assert!(due > after);
        prop_assert!(matches(due), "{} is not a {} time", show(due), expression);
        // Every whole UTC minute in between (zones here are whole-minute offsets) that the
        // expression names must be the repeat of a time already run (a fold) or not exist.
        let mut t = (after / 60_000 + 1) * 60_000;
        while t < due {
            if matches(t) {
                let local = tz.to_datetime(Timestamp::from_millisecond(t).unwrap());
                let first = tz.to_ambiguous_timestamp(local).earlier().unwrap();
                prop_assert!(
                    first.as_millisecond() < t,
                    "{} matches {} and comes before {}", show(t), expression, show(due)
                );
            }
            t += 60_000;
        }
    }

    /// Rates are a fixed grid from their anchor: consecutive runs are exactly one period
    /// apart, and asking from any moment between two runs gives the second.
    #[test]
    fn rates_are_a_fixed_grid(
        value in 1u32..500,
        unit in 0usize..3,
        anchor in 0i64..4_000_000_000_000,
        offset in 0i64..10_000_000_000,
    ) {
        let unit_name = ["minute", "hour", "day"][unit];
        let plural = if value == 1 { "" } else { "s" };
        let expression = format!("rate({value} {unit_name}{plural})");
        let s = Schedule::new(Spec {
            expression: &expression,
            time_zone: None,
            start: Some(anchor),
            end: None,
            created: 0,
        })
        .unwrap();
        let period = i64::from(value) * [60_000, 3_600_000, 86_400_000][unit];
        prop_assert_eq!(s.next_due(anchor - 1), Some(anchor));
        let after = anchor + offset;
        let due = s.next_due(after).unwrap();
        prop_assert!(due > after && due - after <= period);
        prop_assert_eq!((due - anchor) % period, 0);
        prop_assert_eq!(s.next_due(due - 1), Some(due));
        prop_assert_eq!(s.next_due(due), Some(due + period));
    }
}
