//! The schedule runner's decision in virtual time: when a run is due, what a late leader
//! does with missed due times, the concurrency policies, retries, and the compare-and-set
//! that keeps two leaders from running one due time twice.

mod common;

use berth_api::types::RunTaskRequest;
use berth_model::command::*;
use berth_model::entity::TaskStatus;
use berth_model::schedule::*;
use berth_model::{Error, Millis};
use berth_scheduler::timetable::{Step, client_token, decide, retry_at};
use common::*;

const MINUTE: i64 = 60_000;

fn spec(expression: &str) -> ScheduleSpec {
    ScheduleSpec {
        expression: expression.into(),
        time_zone: None,
        start: None,
        end: None,
        description: None,
        state: ScheduleState::Enabled,
        flexible_window_minutes: None,
        after_completion: AfterCompletion::None,
        kms_key_arn: None,
        target: ScheduleTarget {
            arn: format!("arn:aws:ecs:us-east-1:000000000000:cluster/{CLUSTER}"),
            cluster: CLUSTER.into(),
            role_arn: "arn:aws:iam::000000000000:role/run".into(),
            input: None,
            retry: RetryPolicy::default(),
            dead_letter_arn: None,
            run_task: RunTaskRequest::default(),
        },
        creator: Creator {
            access_key_id: "BKTEST".into(),
            actor: "user/test".into(),
        },
    }
}

/// A world with schedule `nightly` of `expression`, created at a whole minute.
fn world_with(expression: &str) -> (World, Millis) {
    let mut w = World::new();
    let created = Millis((w.now().0 / MINUTE + 10) * MINUTE);
    w.advance_to(created);
    let s = w.ok(CreateSchedule {
        group: DEFAULT_GROUP.into(),
        name: "nightly".into(),
        spec: spec(expression),
    });
    assert_eq!(s.created_at, created);
    (w, created)
}

/// Ends the pending run due at `due` as started with `tasks`.
fn finish(w: &mut World, due: Millis, tasks: Vec<berth_model::TaskId>) {
    w.ok(EndScheduleAttempt {
        group: DEFAULT_GROUP.into(),
        name: "nightly".into(),
        due,
        attempt: 1,
        tasks,
        outcome: Some(RunOutcome::Started {
            failures: Vec::new(),
        }),
        retry_at: due,
        delete: false,
    });
}

/// [`world_with`], its first run (at creation, for a rate) already done.
fn world_after_first_run(expression: &str) -> (World, Millis) {
    let (mut w, created) = world_with(expression);
    let (t, _) = take(step_at(&w, created));
    assert_eq!(t.start, Some(created), "a rate runs first at creation");
    w.ok(t);
    finish(&mut w, created, Vec::new());
    (w, created)
}

fn schedule(w: &World) -> std::sync::Arc<Schedule> {
    w.state.schedule(DEFAULT_GROUP, "nightly").unwrap().clone()
}

fn timing(s: &Schedule) -> berth_schedule::Schedule {
    berth_schedule::Schedule::new(berth_schedule::Spec {
        expression: &s.spec.expression,
        time_zone: s.spec.time_zone.as_deref(),
        start: s.spec.start.map(|m| m.0),
        end: s.spec.end.map(|m| m.0),
        created: s.created_at.0,
    })
    .unwrap()
}

fn step_at(w: &World, now: Millis) -> Step {
    let s = schedule(w);
    decide(&w.state, &s, &timing(&s), now)
}

fn take(step: Step) -> (TakeDueTimes, Vec<berth_model::TaskId>) {
    match step {
        Step::Take { take, stop } => (take, stop),
        other => panic!("expected due times to take, got {other:?}"),
    }
}

#[test]
fn a_rate_schedule_runs_first_at_creation_then_every_period() {
    let (mut w, created) = world_with("rate(5 minutes)");
    let (t, _) = take(step_at(&w, created));
    assert_eq!(
        (t.after, t.through, t.start),
        (None, created, Some(created))
    );
    w.ok(t);
    finish(&mut w, created, Vec::new());
    let first = Millis(created.0 + 5 * MINUTE);
    assert_eq!(
        step_at(&w, Millis(first.0 - 1)),
        Step::Wait { until: Some(first) }
    );
    let (t, stop) = take(step_at(&w, first));
    assert_eq!(t.after, Some(created));
    assert_eq!(t.through, first);
    assert_eq!(t.start, Some(first));
    assert!(t.records.is_empty() && stop.is_empty());
}

#[test]
fn a_due_time_is_taken_once_even_by_two_leaders_deciding_on_the_same_snapshot() {
    let (mut w, created) = world_after_first_run("rate(1 minute)");
    let due = Millis(created.0 + MINUTE);
    let (t1, _) = take(step_at(&w, due));
    let (t2, _) = take(step_at(&w, Millis(due.0 + 500)));
    assert_eq!(t1, t2, "both leaders decide the same take");
    assert_eq!(t1.after, Some(created));
    w.advance_to(due);
    w.ok(t1);
    let refused = w.apply(t2).unwrap_err();
    assert!(
        matches!(refused, Error::Conflict(ref m) if m.contains("already taken")),
        "{refused:?}"
    );
    // The run is pending: the next decision attempts it, it does not take the due time again.
    assert_eq!(
        step_at(&w, Millis(due.0 + 1_000)),
        Step::Attempt { due, attempt: 1 }
    );
    // Two attempts ended for the same attempt number: one wins.
    let end = EndScheduleAttempt {
        group: DEFAULT_GROUP.into(),
        name: "nightly".into(),
        due,
        attempt: 1,
        tasks: Vec::new(),
        outcome: Some(RunOutcome::Started {
            failures: Vec::new(),
        }),
        retry_at: due,
        delete: false,
    };
    w.ok(end.clone());
    assert!(matches!(w.apply(end), Err(Error::Conflict(_))));
    let s = schedule(&w);
    assert_eq!(s.runs.len(), 2, "the creation run and this one");
    assert_eq!(s.last_due, Some(due));
    // The next decision is about the next due time.
    let next = Millis(due.0 + MINUTE);
    assert_eq!(
        step_at(&w, Millis(due.0 + 2_000)),
        Step::Wait { until: Some(next) }
    );
}

#[test]
fn a_leader_late_by_less_than_the_missed_bound_still_runs_the_due_time() {
    let (w, created) = world_after_first_run("rate(10 minutes)");
    let due = Millis(created.0 + 10 * MINUTE);
    let (t, _) = take(step_at(&w, Millis(due.0 + MISSED_AFTER_MS)));
    assert_eq!(t.start, Some(due));
    assert!(t.records.is_empty());
}

#[test]
fn missed_due_times_are_recorded_once_and_skip_runs_only_a_recent_latest() {
    let (w, created) = world_after_first_run("rate(5 minutes)");
    // An outage: the leader comes back an hour and two minutes in. Twelve due times passed;
    // the latest (at 60 min) is two minutes old.
    let now = Millis(created.0 + 62 * MINUTE);
    let (t, _) = take(step_at(&w, now));
    assert_eq!(t.through, Millis(created.0 + 60 * MINUTE));
    assert_eq!(
        t.start, None,
        "SKIP does not run a due time two minutes old"
    );
    assert_eq!(t.records.len(), 1);
    assert_eq!(t.records[0].due, Millis(created.0 + 5 * MINUTE));
    assert_eq!(
        t.records[0].outcome,
        RunOutcome::Missed {
            count: 12,
            last: Millis(created.0 + 60 * MINUTE)
        }
    );
    // Back within the bound of the latest due time: that one runs, the eleven before are
    // missed.
    let (t, _) = take(step_at(&w, Millis(created.0 + 60 * MINUTE + 30_000)));
    assert_eq!(t.start, Some(Millis(created.0 + 60 * MINUTE)));
    assert_eq!(
        t.records[0].outcome,
        RunOutcome::Missed {
            count: 11,
            last: Millis(created.0 + 55 * MINUTE)
        }
    );
}

#[test]
fn catch_up_once_runs_the_latest_missed_due_time_once() {
    let (mut w, created) = world_after_first_run("rate(5 minutes)");
    w.ok(SetSchedulePolicy {
        group: DEFAULT_GROUP.into(),
        name: "nightly".into(),
        policy: RunPolicy {
            concurrency: Concurrency::Allow,
            missed: MissedRuns::CatchUpOnce,
        },
    });
    let now = Millis(created.0 + 62 * MINUTE);
    let (t, _) = take(step_at(&w, now));
    assert_eq!(t.start, Some(Millis(created.0 + 60 * MINUTE)));
    assert_eq!(
        t.records[0].outcome,
        RunOutcome::Missed {
            count: 11,
            last: Millis(created.0 + 55 * MINUTE)
        }
    );
    w.advance_to(now);
    w.ok(t);
    // Caught up: the next is the 65-minute due time.
    let s = schedule(&w);
    assert_eq!(s.last_due, Some(Millis(created.0 + 60 * MINUTE)));
}

#[test]
fn a_year_long_outage_of_a_minutely_schedule_is_decided_without_walking_every_minute() {
    let (w, created) = world_after_first_run("rate(1 minute)");
    let now = Millis(created.0 + 366 * 24 * 60 * MINUTE + 30_000);
    let (t, _) = take(step_at(&w, now));
    assert_eq!(t.through, Millis(created.0 + 366 * 24 * 60 * MINUTE));
    assert_eq!(
        t.start,
        Some(t.through),
        "the latest is 30 s old: SKIP runs it"
    );
    assert!(matches!(
        t.records[0].outcome,
        RunOutcome::Missed { count: 999, .. } | RunOutcome::Missed { count: 1000, .. }
    ));
}

/// A started run whose one task is placed on an instance of the world.
fn with_running_run(w: &mut World, created: Millis) -> (Millis, berth_model::TaskId) {
    let instance = w.add(host(1024, 1024));
    let task = w.run(instance, "family:web", needs(0, 128));
    w.report(task, TaskStatus::Running);
    let due = Millis(created.0 + 5 * MINUTE);
    let (t, _) = take(step_at(w, due));
    w.advance_to(due);
    w.ok(t);
    w.ok(EndScheduleAttempt {
        group: DEFAULT_GROUP.into(),
        name: "nightly".into(),
        due,
        attempt: 1,
        tasks: vec![task],
        outcome: Some(RunOutcome::Started {
            failures: Vec::new(),
        }),
        retry_at: due,
        delete: false,
    });
    (Millis(due.0 + 5 * MINUTE), task)
}

fn set_concurrency(w: &mut World, concurrency: Concurrency) {
    w.ok(SetSchedulePolicy {
        group: DEFAULT_GROUP.into(),
        name: "nightly".into(),
        policy: RunPolicy {
            concurrency,
            missed: MissedRuns::Skip,
        },
    });
}

#[test]
fn skip_if_running_records_a_skipped_run_while_the_previous_run_runs() {
    let (mut w, created) = world_after_first_run("rate(5 minutes)");
    let (next, task) = with_running_run(&mut w, created);
    let (t, stop) = take(step_at(&w, next));
    assert_eq!(t.start, None);
    assert!(stop.is_empty());
    assert!(
        matches!(&t.records[..], [ScheduleRun { due, outcome: RunOutcome::Skipped { reason }, .. }]
            if *due == next && reason.contains("still running")),
        "{:?}",
        t.records
    );
    // Once the previous run's task stops, the next due time starts.
    w.report(task, TaskStatus::Stopped);
    let (t, _) = take(step_at(&w, next));
    assert_eq!(t.start, Some(next));
}

#[test]
fn replace_stops_the_previous_runs_tasks_and_allow_runs_beside_them() {
    let (mut w, created) = world_after_first_run("rate(5 minutes)");
    let (next, task) = with_running_run(&mut w, created);
    set_concurrency(&mut w, Concurrency::Replace);
    let (t, stop) = take(step_at(&w, next));
    assert_eq!((t.start, stop), (Some(next), vec![task]));
    set_concurrency(&mut w, Concurrency::Allow);
    let (t, stop) = take(step_at(&w, next));
    assert_eq!((t.start, stop.len()), (Some(next), 0));
}

#[test]
fn a_disabled_schedule_waits_and_an_update_starts_the_timetable_afresh() {
    let (mut w, created) = world_after_first_run("rate(5 minutes)");
    let mut off = spec("rate(5 minutes)");
    off.state = ScheduleState::Disabled;
    w.advance_to(Millis(created.0 + 3 * MINUTE));
    w.ok(UpdateSchedule {
        group: DEFAULT_GROUP.into(),
        name: "nightly".into(),
        spec: off,
    });
    assert_eq!(
        step_at(&w, Millis(created.0 + 30 * MINUTE)),
        Step::Wait { until: None }
    );
    // Enabled again at 30 min: the due times while it was off are not run or missed.
    w.advance_to(Millis(created.0 + 30 * MINUTE));
    w.ok(UpdateSchedule {
        group: DEFAULT_GROUP.into(),
        name: "nightly".into(),
        spec: spec("rate(5 minutes)"),
    });
    let s = schedule(&w);
    let updated = s.last_due.unwrap();
    let (t, _) = take(step_at(&w, Millis(created.0 + 35 * MINUTE)));
    assert!(t.records.is_empty(), "{:?}", t.records);
    assert_eq!(t.after, Some(updated));
    assert_eq!(t.start, Some(Millis(created.0 + 35 * MINUTE)));
}

#[test]
fn a_flexible_window_starts_the_run_inside_the_window_the_same_way_every_time() {
    let (mut w, created) = world_after_first_run("rate(1 hour)");
    let mut flexible = spec("rate(1 hour)");
    flexible.flexible_window_minutes = Some(15);
    w.ok(UpdateSchedule {
        group: DEFAULT_GROUP.into(),
        name: "nightly".into(),
        spec: flexible,
    });
    let s = schedule(&w);
    let due = timing(&s).next_due(s.due_after().0).unwrap();
    let Step::Wait { until: Some(start) } = step_at(&w, Millis(due)) else {
        panic!("a flexible start is after the due time (or exactly at it)")
    };
    assert!(start.0 >= due && start.0 < due + 15 * MINUTE, "{start:?}");
    assert_eq!(step_at(&w, Millis(due)), Step::Wait { until: Some(start) });
    let (t, _) = take(step_at(&w, start));
    assert_eq!(t.start, Some(Millis(due)), "the run is for its due time");
    let _ = created;
}

#[test]
fn a_pending_run_is_attempted_again_at_its_retry_time() {
    let (mut w, created) = world_after_first_run("rate(5 minutes)");
    let due = Millis(created.0 + 5 * MINUTE);
    let (t, _) = take(step_at(&w, due));
    w.advance_to(due);
    w.ok(t);
    let retry = Millis(due.0 + 4_000);
    w.ok(EndScheduleAttempt {
        group: DEFAULT_GROUP.into(),
        name: "nightly".into(),
        due,
        attempt: 1,
        tasks: Vec::new(),
        outcome: None,
        retry_at: retry,
        delete: false,
    });
    assert_eq!(
        step_at(&w, Millis(retry.0 - 1)),
        Step::Wait { until: Some(retry) }
    );
    assert_eq!(step_at(&w, retry), Step::Attempt { due, attempt: 2 });
}

#[test]
fn retries_back_off_and_stop_at_the_policy_limits() {
    let policy = RetryPolicy {
        maximum_event_age_seconds: 60,
        maximum_retry_attempts: 3,
    };
    let due = Millis(1_000_000);
    assert_eq!(retry_at(policy, due, 1, due), Some(Millis(due.0 + 1_000)));
    assert_eq!(retry_at(policy, due, 3, due), Some(Millis(due.0 + 4_000)));
    assert_eq!(
        retry_at(policy, due, 4, due),
        None,
        "3 retries after the first"
    );
    assert_eq!(
        retry_at(policy, due, 2, Millis(due.0 + 59_000)),
        None,
        "past the event's maximum age"
    );
    let long = RetryPolicy::default();
    assert_eq!(
        retry_at(long, due, 30, due),
        Some(Millis(due.0 + 300_000)),
        "the backoff is capped at 5 minutes"
    );
}

#[test]
fn client_tokens_differ_per_run_and_attempt_and_fit_runtask() {
    let (w, _) = world_after_first_run("rate(5 minutes)");
    let s = schedule(&w);
    let a = client_token(&s, Millis(1_700_000_300_000), 1);
    assert_eq!(a, client_token(&s, Millis(1_700_000_300_000), 1));
    assert_ne!(a, client_token(&s, Millis(1_700_000_300_000), 2));
    assert_ne!(a, client_token(&s, Millis(1_700_000_600_000), 1));
    assert!(
        a.len() <= 64 && a.bytes().all(|b| (33..=126).contains(&b)),
        "{a}"
    );
}

#[test]
fn a_one_time_schedule_runs_once_and_can_delete_itself() {
    let mut w = World::new();
    let created = Millis((w.now().0 / MINUTE + 10) * MINUTE);
    w.advance_to(created);
    let when = berth_schedule::format_utc(created.0 + 90_000).unwrap();
    let at = format!("at({})", when.trim_end_matches('Z'));
    let mut once = spec(&at);
    once.after_completion = AfterCompletion::Delete;
    w.ok(CreateSchedule {
        group: DEFAULT_GROUP.into(),
        name: "nightly".into(),
        spec: once,
    });
    let due = Millis(created.0 + 90_000);
    let (t, _) = take(step_at(&w, due));
    assert_eq!(t.start, Some(due));
    w.advance_to(due);
    w.ok(t);
    w.ok(EndScheduleAttempt {
        group: DEFAULT_GROUP.into(),
        name: "nightly".into(),
        due,
        attempt: 1,
        tasks: Vec::new(),
        outcome: Some(RunOutcome::Started {
            failures: Vec::new(),
        }),
        retry_at: due,
        delete: true,
    });
    assert!(w.state.schedule(DEFAULT_GROUP, "nightly").is_none());
}

#[test]
fn a_schedule_survives_a_snapshot_with_its_runs_and_pending_run() {
    let (mut w, created) = world_after_first_run("rate(5 minutes)");
    let due = Millis(created.0 + 5 * MINUTE);
    let (t, _) = take(step_at(&w, due));
    w.advance_to(due);
    w.ok(t);
    let restored = berth_state::State::restore(w.state.persist(), Default::default());
    assert_eq!(
        restored.schedule(DEFAULT_GROUP, "nightly"),
        w.state.schedule(DEFAULT_GROUP, "nightly")
    );
    assert!(
        restored
            .schedule(DEFAULT_GROUP, "nightly")
            .unwrap()
            .pending
            .is_some()
    );
}
