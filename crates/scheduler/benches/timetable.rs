//! What the schedule runner's pass costs with 10,000 schedules: `timetable::decide` for every
//! schedule of a snapshot, on a second when none is due (the usual tick) and on one when all
//! are (a minute boundary of `rate(1 minute)` and `cron(* * * * ? *)` schedules), and parsing
//! the timings the runner caches per schedule version.
//!
//! `cargo bench -p berth-scheduler --bench timetable -- --warm-up-time 1 --measurement-time 3`

use std::sync::Arc;

use berth_api::types::RunTaskRequest;
use berth_model::command::{CreateSchedule, TakeDueTimes};
use berth_model::schedule::*;
use berth_model::{Millis, Stamped};
use berth_scheduler::timetable::{Step, decide};
use berth_state::State;
use criterion::{Criterion, criterion_group, criterion_main};

const SCHEDULES: usize = 10_000;
const CREATED: i64 = 1_800_000_000_000; // 2027-01-15T08:00:00Z, a whole minute

fn expression(i: usize) -> &'static str {
    match i % 4 {
        0 => "rate(1 minute)",
        1 => "cron(* * * * ? *)",
        2 => "rate(5 minutes)",
        _ => "cron(0/15 8-18 ? * MON-FRI *)",
    }
}

fn state() -> State {
    let mut state = State::default();
    for i in 0..SCHEDULES {
        let spec = ScheduleSpec {
            expression: expression(i).into(),
            time_zone: (i % 3 == 0).then(|| "Europe/Paris".to_owned()),
            start: None,
            end: None,
            description: None,
            state: ScheduleState::Enabled,
            flexible_window_minutes: None,
            after_completion: AfterCompletion::None,
            kms_key_arn: None,
            target: ScheduleTarget {
                arn: "arn:aws:ecs:us-east-1:000000000000:cluster/prod".into(),
                cluster: "prod".into(),
                role_arn: "arn:aws:iam::000000000000:role/run".into(),
                input: None,
                retry: RetryPolicy::default(),
                dead_letter_arn: None,
                run_task: RunTaskRequest::default(),
            },
            creator: Creator {
                access_key_id: "BKBENCH".into(),
                actor: "user/bench".into(),
            },
        };
        state
            .apply(
                i as u64 + 1,
                &Stamped {
                    at: Millis(CREATED),
                    command: CreateSchedule {
                        group: DEFAULT_GROUP.into(),
                        name: format!("s{i:05}").into(),
                        spec,
                    }
                    .into(),
                    by: None,
                },
            )
            .expect("a valid schedule");
    }
    state
}

fn timing(s: &Schedule) -> berth_schedule::Schedule {
    berth_schedule::Schedule::new(berth_schedule::Spec {
        expression: &s.spec.expression,
        time_zone: s.spec.time_zone.as_deref(),
        start: s.spec.start.map(|m| m.0),
        end: s.spec.end.map(|m| m.0),
        created: s.created_at.0,
    })
    .expect("parses")
}

/// `state` after every schedule's creation run was taken: the next are a minute or more away.
fn taken(mut state: State) -> State {
    let names: Vec<_> = state.schedules().map(|s| s.name.clone()).collect();
    let mut index = state.index();
    for name in names {
        index += 1;
        let take = TakeDueTimes {
            group: DEFAULT_GROUP.into(),
            name,
            after: None,
            through: Millis(CREATED),
            records: Vec::new(),
            start: None,
        };
        state
            .apply(
                index,
                &Stamped {
                    at: Millis(CREATED),
                    command: take.into(),
                    by: None,
                },
            )
            .expect("taken");
    }
    state
}

fn bench(c: &mut Criterion) {
    let state = state();
    let idle = taken(state.clone());
    let idle_parsed: Vec<(Arc<Schedule>, berth_schedule::Schedule)> =
        idle.schedules().map(|s| (s.clone(), timing(s))).collect();
    let idle_pass = |now: Millis| {
        idle_parsed
            .iter()
            .filter(|(s, t)| !matches!(decide(&idle, s, t, now), Step::Wait { .. }))
            .count()
    };
    assert_eq!(idle_pass(Millis(CREATED + 30_000)), 0);
    let parsed: Vec<(Arc<Schedule>, berth_schedule::Schedule)> =
        state.schedules().map(|s| (s.clone(), timing(s))).collect();
    let pass = |now: Millis| {
        parsed
            .iter()
            .filter(|(s, t)| !matches!(decide(&state, s, t, now), Step::Wait { .. }))
            .count()
    };
    // Every schedule's creation run is due at creation; 30 s later, none is.
    assert_eq!(pass(Millis(CREATED)), SCHEDULES);
    let mut group = c.benchmark_group("timetable_10k");
    group.bench_function("parse_timings", |b| {
        b.iter(|| state.schedules().map(|s| timing(s)).collect::<Vec<_>>())
    });
    group.bench_function("decide_none_due", |b| {
        b.iter(|| idle_pass(Millis(CREATED + 30_000)))
    });
    group.bench_function("decide_all_due", |b| b.iter(|| pass(Millis(CREATED))));
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
