//! RunTask's client tokens on PlaceTasks: a retry with the same request gets the same tasks, a
//! different request is a conflict, and a continuation adds to what the token placed.

use berth_model::command::FailureReason;
use berth_model::{Error, Millis, TaskId};

use crate::common::*;

fn ids(tasks: &[std::sync::Arc<berth_model::entity::Task>]) -> Vec<u128> {
    tasks.iter().map(|t| t.id.0).collect()
}

fn world() -> World {
    let mut w = World::with_cluster("prod");
    w.ok(create_cluster("test"));
    w.ok(instance("prod", 1).build());
    w.ok(instance("test", 2).build());
    w
}

#[test]
fn the_same_request_again_gets_the_same_tasks_and_writes_nothing() {
    let mut w = world();
    let (first, _) = w.place(place_with_token(
        "prod",
        vec![task("prod", 10, 1), task("prod", 11, 1)],
        "tok",
        7,
        false,
    ));
    assert_eq!(ids(&first), [10, 11]);
    let record = w.state.client_token("prod", "tok").unwrap();
    assert_eq!(
        (record.request_digest, record.tasks.clone(), record.at),
        (7, vec![TaskId(10), TaskId(11)], w.now)
    );

    let before = w.state.persist();
    // The retry was planned anew (fresh ids); the token answers with the first tasks.
    let (again, rejected) = w.place(place_with_token(
        "prod",
        vec![task("prod", 20, 1), task("prod", 21, 1)],
        "tok",
        7,
        false,
    ));
    assert_eq!(again, first);
    assert!(rejected.is_empty());
    let mut after = w.state.persist();
    after.index = before.index;
    assert_eq!(after, before);
}

#[test]
fn a_different_request_with_the_token_is_a_conflict() {
    let mut w = world();
    w.place(place_with_token(
        "prod",
        vec![task("prod", 10, 1)],
        "tok",
        7,
        false,
    ));
    for continuation in [false, true] {
        assert!(matches!(
            w.refused(place_with_token(
                "prod",
                vec![task("prod", 20, 1)],
                "tok",
                8,
                continuation
            )),
            Error::Conflict(_)
        ));
    }
}

#[test]
fn a_continuation_adds_its_tasks_to_the_token() {
    let mut w = world();
    let (_, rejected) = w.place(place_with_token(
        "prod",
        vec![task("prod", 10, 1).cpu(1000), task("prod", 11, 1).cpu(1000)],
        "tok",
        7,
        false,
    ));
    assert_eq!(rejected[0].reason, FailureReason::ResourceCpu);
    w.ok(report("prod", 10, Some(berth_model::entity::TaskStatus::Stopped)).build());
    let (placed, _) = w.place(place_with_token(
        "prod",
        vec![task("prod", 11, 1).cpu(1000)],
        "tok",
        7,
        true,
    ));
    assert_eq!(ids(&placed), [11]);
    let record = w.state.client_token("prod", "tok").unwrap();
    assert_eq!(record.tasks, [TaskId(10), TaskId(11)]);
    assert_eq!(record.at, w.now);

    let (all, _) = w.place(place_with_token("prod", vec![], "tok", 7, false));
    assert_eq!(ids(&all), [10, 11]);
}

#[test]
fn a_token_that_placed_nothing_is_not_recorded() {
    let mut w = world();
    let (placed, _) = w.place(place_with_token(
        "prod",
        vec![task("prod", 10, 1).cpu(5000)],
        "tok",
        7,
        false,
    ));
    assert!(placed.is_empty());
    assert!(w.state.client_token("prod", "tok").is_none());
    let (placed, _) = w.place(place_with_token(
        "prod",
        vec![task("prod", 10, 1)],
        "tok",
        8,
        false,
    ));
    assert_eq!(ids(&placed), [10]);
}

#[test]
fn tokens_are_per_cluster() {
    let mut w = world();
    w.place(place_with_token(
        "prod",
        vec![task("prod", 10, 1)],
        "tok",
        7,
        false,
    ));
    let (placed, _) = w.place(place_with_token(
        "test",
        vec![task("test", 20, 2)],
        "tok",
        8,
        false,
    ));
    assert_eq!(ids(&placed), [20]);
    assert_eq!(
        w.state.client_token("test", "tok").unwrap().tasks,
        [TaskId(20)]
    );
    assert_eq!(
        w.state.client_token("prod", "tok").unwrap().tasks,
        [TaskId(10)]
    );
}

#[test]
fn expired_tasks_drop_out_of_the_answer_and_tokens_expire() {
    let mut w = world();
    w.place(place_with_token(
        "prod",
        vec![task("prod", 10, 1), task("prod", 11, 1)],
        "tok",
        7,
        false,
    ));
    w.ok(report("prod", 10, Some(berth_model::entity::TaskStatus::Stopped)).build());
    let stopped_at = w.now;
    // A continuation refreshes the token's time.
    w.place(place_with_token(
        "prod",
        vec![task("prod", 12, 1)],
        "tok",
        7,
        true,
    ));
    w.ok(expire(Millis(stopped_at.0 + 1), Millis(0)));
    assert!(w.state.task(TaskId(10)).is_none());
    let record = w.state.client_token("prod", "tok").unwrap();
    assert_eq!(record.tasks, [TaskId(10), TaskId(11), TaskId(12)]);
    let (answer, _) = w.place(place_with_token("prod", vec![], "tok", 7, false));
    assert_eq!(ids(&answer), [11, 12], "what is left of the token's tasks");

    w.ok(w.expire_everything());
    assert!(w.state.client_token("prod", "tok").is_none());
    assert!(
        w.state.task(TaskId(11)).is_some(),
        "live tasks are never expired"
    );
    // The token is free for a new request.
    let (placed, _) = w.place(place_with_token(
        "prod",
        vec![task("prod", 13, 1)],
        "tok",
        9,
        false,
    ));
    assert_eq!(ids(&placed), [13]);
}
