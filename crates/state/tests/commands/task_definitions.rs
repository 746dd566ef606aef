//! RegisterTaskDefinition, DeregisterTaskDefinition, DeleteTaskDefinitions: revisions and
//! their ACTIVE → INACTIVE → DELETE_IN_PROGRESS → forgotten lifecycle.

use berth_model::Error;
use berth_model::Millis;
use berth_model::arn::ResourceArn;
use berth_model::command::Partial;
use berth_model::entity::{TaskDefinitionStatus, TaskStatus};
use berth_state::{EntityKey, Family};

use crate::common::*;

fn family(w: &World, name: &str) -> Family {
    w.state
        .families_after(None)
        .find(|(n, _)| &***n == name)
        .map(|(_, f)| *f)
        .unwrap()
}

#[test]
fn revisions_count_up_per_family() {
    let mut w = World::default();
    for expected in 1..=3 {
        let t = w.ok(register_task_definition("web"));
        assert_eq!(
            (t.revision, t.status),
            (expected, TaskDefinitionStatus::Active)
        );
        assert_eq!(t.registered_at, w.now);
        assert_eq!(t.version, w.index);
    }
    assert_eq!(w.ok(register_task_definition("db")).revision, 1);
    assert_eq!(
        family(&w, "web"),
        Family {
            last_revision: 3,
            active_revisions: 3
        }
    );
    assert_eq!(w.state.latest_active("web").unwrap().revision, 3);
    assert_eq!(w.state.latest_active("db").unwrap().revision, 1);
    assert!(w.state.latest_active("nope").is_none());
}

#[test]
fn deregister_marks_inactive_and_latest_active_skips_it() {
    let mut w = World::default();
    for _ in 0..3 {
        w.ok(register_task_definition("web"));
    }
    let t = w.ok(deregister_task_definition("web", 3));
    assert_eq!(t.status, TaskDefinitionStatus::Inactive);
    assert_eq!(t.deregistered_at, Some(w.now));
    assert_eq!(w.state.latest_active("web").unwrap().revision, 2);
    w.ok(deregister_task_definition("web", 1));
    assert_eq!(w.state.latest_active("web").unwrap().revision, 2);
    w.ok(deregister_task_definition("web", 2));
    assert!(w.state.latest_active("web").is_none());
    assert_eq!(
        family(&w, "web"),
        Family {
            last_revision: 3,
            active_revisions: 0
        }
    );
}

#[test]
fn deregister_twice_answers_unchanged() {
    let mut w = World::default();
    w.ok(register_task_definition("web"));
    let first = w.ok(deregister_task_definition("web", 1));
    let before = w.state.persist();
    let again = w.ok(deregister_task_definition("web", 1));
    assert_eq!(again, first);
    let mut after = w.state.persist();
    after.index = before.index;
    assert_eq!(after, before);
}

#[test]
fn deregister_refuses_unknown_and_deleting_revisions() {
    let mut w = World::default();
    w.ok(register_task_definition("web"));
    assert!(matches!(
        w.refused(deregister_task_definition("web", 2)),
        Error::Client(_)
    ));
    assert!(matches!(
        w.refused(deregister_task_definition("nope", 1)),
        Error::Client(_)
    ));
    w.ok(deregister_task_definition("web", 1));
    w.ok(delete_task_definitions(&[("web", 1)]));
    assert!(matches!(
        w.refused(deregister_task_definition("web", 1)),
        Error::Client(_)
    ));
}

#[test]
fn delete_reports_failures_per_revision() {
    let mut w = World::default();
    w.ok(register_task_definition("web"));
    w.ok(register_task_definition("web"));
    w.ok(deregister_task_definition("web", 2));
    let Partial { done, failures } = w.ok(delete_task_definitions(&[
        ("web", 1),
        ("web", 2),
        ("web", 9),
    ]));
    assert_eq!(done.len(), 1);
    assert_eq!(
        (done[0].revision, done[0].status),
        (2, TaskDefinitionStatus::DeleteInProgress)
    );
    assert_eq!(done[0].delete_requested_at, Some(w.now));
    let failed: Vec<_> = failures.iter().map(|f| f.resource.clone()).collect();
    assert_eq!(
        failed,
        vec![
            Some(ResourceArn::TaskDefinition("web".into(), 1)),
            Some(ResourceArn::TaskDefinition("web".into(), 9)),
        ]
    );
    assert!(failures[0].reason.contains("ACTIVE"));
    assert_eq!(
        w.state.task_definition("web", 1).unwrap().status,
        TaskDefinitionStatus::Active
    );

    // Deleting again answers the revision as it is.
    let at = w.state.task_definition("web", 2).unwrap().clone();
    let Partial { done, failures } = w.ok(delete_task_definitions(&[("web", 2)]));
    assert_eq!((done, failures.len()), (vec![at], 0));
}

#[test]
fn revision_numbers_are_never_reused_even_after_deletion() {
    let mut w = World::default();
    w.ok(register_task_definition("web"));
    w.ok(register_task_definition("web"));
    w.ok(deregister_task_definition("web", 2));
    w.ok(delete_task_definitions(&[("web", 2)]));
    w.ok(expire(Millis(0), Millis(0)));
    assert!(w.state.task_definition("web", 2).is_none(), "purged");
    assert!(
        w.state
            .history(&EntityKey::TaskDefinition("web".into(), 2))
            .is_none(),
        "history forgotten"
    );
    let t = w.ok(register_task_definition("web"));
    assert_eq!(t.revision, 3);
    assert_eq!(
        family(&w, "web"),
        Family {
            last_revision: 3,
            active_revisions: 2
        }
    );
}

#[test]
fn a_deleting_revision_stays_while_a_live_task_runs_it() {
    let mut w = World::with_cluster("prod");
    w.ok(instance("prod", 1).build());
    w.place(place("prod", vec![task("prod", 10, 1)]));
    w.ok(deregister_task_definition("web", 1));
    // INACTIVE revisions still take placements (services on an old revision scale).
    w.place(place("prod", vec![task("prod", 11, 1)]));
    w.ok(delete_task_definitions(&[("web", 1)]));
    w.ok(expire(Millis(0), Millis(0)));
    assert!(w.state.task_definition("web", 1).is_some());

    // New placements of a deleting revision are refused.
    let (placed, rejected) = w.place(place("prod", vec![task("prod", 12, 1)]));
    assert!(placed.is_empty());
    assert_eq!(
        rejected[0].reason,
        berth_model::command::FailureReason::Missing
    );

    w.ok(report("prod", 10, Some(TaskStatus::Stopped)).build());
    w.ok(expire(Millis(0), Millis(0)));
    assert!(
        w.state.task_definition("web", 1).is_some(),
        "task 11 still runs it"
    );
    w.ok(stop_task("prod", 11));
    w.ok(report("prod", 11, Some(TaskStatus::Stopped)).build());
    w.ok(expire(Millis(0), Millis(0)));
    assert!(w.state.task_definition("web", 1).is_none());
    assert_eq!(
        w.state.task(berth_model::TaskId(10)).unwrap().revision,
        1,
        "stopped tasks stay"
    );
}

#[test]
fn register_refuses_when_a_family_runs_out_of_revisions() {
    let mut w = World::default();
    w.ok(register_task_definition("web"));
    w.edit_snapshot(|s| s["families"][0][1]["last_revision"] = u32::MAX.into());
    assert!(matches!(
        w.refused(register_task_definition("web")),
        Error::Client(_)
    ));
}
