//! Every way a command can be refused, applied to one busy state: each must answer its error
//! and leave the state exactly as it was (only the log index moves). Handlers check
//! everything before writing anything; this is the test of that rule.

mod common;

use berth_model::Command;
use berth_model::arn::ResourceArn;
use berth_model::entity::{InstanceStatus, TaskStatus};
use berth_model::{Error, Millis};

use common::*;

/// Clusters `prod` (busy) and `gone` (deleted); in `prod`: instances 1 and 2 (1 at ten
/// custom attributes and running tasks 10 and 11, 2 DRAINING) and 3 (deregistered); task 12
/// stopped; `web` revisions 1 (ACTIVE), 2 (INACTIVE), 3 (DELETE_IN_PROGRESS); a client token;
/// a task with fifty tags.
fn busy() -> World {
    let mut w = World::with_cluster("prod");
    w.ok(create_cluster("gone"));
    w.ok(delete_cluster("gone"));
    w.ok(register_task_definition("web"));
    w.ok(register_task_definition("web"));
    w.ok(deregister_task_definition("web", 2));
    w.ok(deregister_task_definition("web", 3));
    w.ok(delete_task_definitions(&[("web", 3)]));
    w.ok(instance("prod", 1).build());
    w.ok(instance("prod", 2).build());
    w.ok(instance("prod", 3).build());
    w.ok(put_attributes(
        "prod",
        (0..10)
            .map(|k| attribute(1, &format!("custom{k}"), Some("v")))
            .collect(),
    ));
    w.place(place_with_token(
        "prod",
        vec![
            task("prod", 10, 1).tcp(&[80]),
            task("prod", 11, 1).tags((0..50).map(|k| tag(&format!("k{k}"), "v")).collect()),
            task("prod", 12, 2),
        ],
        "tok",
        7,
        false,
    ));
    w.ok(report("prod", 10, Some(TaskStatus::Running)).build());
    w.ok(report("prod", 12, Some(TaskStatus::Stopped)).build());
    w.ok(set_instances_state("prod", &[2], InstanceStatus::Draining));
    w.ok(deregister_instance("prod", 3, false));
    w
}

fn is_invalid(e: &Error) -> bool {
    matches!(e, Error::InvalidParameter(_))
}
fn is_client(e: &Error) -> bool {
    matches!(e, Error::Client(_))
}
fn is_not_found(e: &Error) -> bool {
    matches!(e, Error::ClusterNotFound(_))
}
fn is_inactive(e: &Error) -> bool {
    matches!(e, Error::ClusterInactive(_))
}
fn is_resource_not_found(e: &Error) -> bool {
    matches!(e, Error::ResourceNotFound(_))
}
fn is_target_not_found(e: &Error) -> bool {
    matches!(e, Error::TargetNotFound(_))
}
fn is_attribute_limit(e: &Error) -> bool {
    matches!(e, Error::AttributeLimitExceeded(_))
}

/// Every command naming a cluster, aimed at `cluster`.
fn on_cluster(cluster: &str) -> Vec<Command> {
    vec![
        delete_cluster(cluster).into(),
        update_cluster(cluster, None).into(),
        instance(cluster, 9).build().into(),
        instance(cluster, 1).reregister().build().into(),
        deregister_instance(cluster, 1, true).into(),
        set_instances_state(cluster, &[1], InstanceStatus::Draining).into(),
        put_attributes(cluster, vec![attribute(1, "a", None)]).into(),
        delete_attributes(cluster, vec![attribute(1, "custom0", None)]).into(),
        place(cluster, vec![task(cluster, 20, 1)]).into(),
        place_with_token(cluster, vec![task(cluster, 20, 1)], "tok", 7, false).into(),
        stop_task(cluster, 10).into(),
        report(cluster, 10, Some(TaskStatus::Stopped))
            .build()
            .into(),
    ]
}

#[test]
fn every_refusal_leaves_the_state_untouched() {
    type Check = fn(&Error) -> bool;
    let mut cases: Vec<(Command, Check)> = Vec::new();
    for c in on_cluster("nope") {
        cases.push((c, is_not_found));
    }
    for c in on_cluster("gone") {
        cases.push((c, is_inactive));
    }
    let custom = |n: usize, b: InstanceBuilder| {
        (0..n).fold(b, |b, k| b.attribute(&format!("x{k}"), Some("v")))
    };
    cases.extend::<[(Command, Check); 30]>([
        // Clusters.
        // (the busy cluster has live tasks, which are reported before its instances)
        (delete_cluster("prod").into(), |e| {
            *e == Error::ClusterContainsTasks
        }),
        // Task definitions.
        (deregister_task_definition("web", 9).into(), is_client),
        (deregister_task_definition("nope", 1).into(), is_client),
        (deregister_task_definition("web", 3).into(), is_client),
        // Instances.
        (
            custom(11, instance("prod", 9)).build().into(),
            is_attribute_limit,
        ),
        (instance("prod", 1).build().into(), is_client),
        (instance("prod", 3).build().into(), is_client),
        (instance("prod", 9).reregister().build().into(), is_invalid),
        (instance("prod", 3).reregister().build().into(), is_client),
        (
            custom(1, instance("prod", 1)).reregister().build().into(),
            is_attribute_limit,
        ),
        (deregister_instance("prod", 9, true).into(), is_invalid),
        (deregister_instance("prod", 1, false).into(), is_invalid),
        (
            set_instances_state("prod", &[1, 2], InstanceStatus::Inactive).into(),
            is_invalid,
        ),
        // Attributes: a good change first, then the bad one.
        (
            put_attributes(
                "prod",
                vec![attribute(2, "ok", None), attribute(1, "eleventh", None)],
            )
            .into(),
            is_attribute_limit,
        ),
        (
            put_attributes(
                "prod",
                vec![attribute(2, "ok", None), attribute(9, "a", None)],
            )
            .into(),
            is_target_not_found,
        ),
        (
            delete_attributes(
                "prod",
                vec![attribute(1, "custom0", None), attribute(9, "a", None)],
            )
            .into(),
            is_target_not_found,
        ),
        // Placement and tokens.
        (
            place_with_token("prod", vec![task("prod", 20, 2)], "tok", 8, false).into(),
            |e| matches!(e, Error::Conflict(_)),
        ),
        (
            place_with_token("prod", vec![task("prod", 20, 2)], "tok", 8, true).into(),
            |e| matches!(e, Error::Conflict(_)),
        ),
        // Tasks.
        (stop_task("prod", 99).into(), is_invalid),
        (
            report("prod", 99, Some(TaskStatus::Running)).build().into(),
            is_invalid,
        ),
        (
            report("prod", 10, Some(TaskStatus::Stopped))
                .container(container_status("app", TaskStatus::Stopped))
                .container(container_status("nope", TaskStatus::Stopped))
                .build()
                .into(),
            is_invalid,
        ),
        // Tags.
        (
            tag_resource(task_arn("prod", 11), vec![tag("one-more", "v")]).into(),
            is_invalid,
        ),
        (
            tag_resource(cluster_arn("nope"), vec![tag("a", "b")]).into(),
            is_resource_not_found,
        ),
        (
            tag_resource(
                ResourceArn::TaskDefinition("web".into(), 9),
                vec![tag("a", "b")],
            )
            .into(),
            is_resource_not_found,
        ),
        (
            tag_resource(instance_arn("gone", 1), vec![tag("a", "b")]).into(),
            is_resource_not_found,
        ),
        (
            tag_resource(task_arn("prod", 99), vec![tag("a", "b")]).into(),
            is_resource_not_found,
        ),
        (
            tag_resource(
                ResourceArn::Service("prod".into(), "s".into()),
                vec![tag("a", "b")],
            )
            .into(),
            is_resource_not_found,
        ),
        (
            untag_resource(task_arn("gone", 10), &["k0"]).into(),
            is_resource_not_found,
        ),
        (
            untag_resource(instance_arn("prod", 99), &["a"]).into(),
            is_resource_not_found,
        ),
        (
            untag_resource(ResourceArn::TaskDefinition("nope".into(), 1), &["a"]).into(),
            is_resource_not_found,
        ),
    ]);

    let w = busy();
    for (command, expected) in cases {
        let mut attempt = World {
            state: w.state.clone(),
            index: w.index,
            now: w.now,
        };
        let shown = format!("{command:?}");
        let error = attempt.refused(command);
        assert!(expected(&error), "{shown} was refused with {error:?}");
    }
}

#[test]
fn a_refusal_in_a_batch_leaves_the_entry_as_if_it_were_absent() {
    // Commands of one Raft entry share its index; a refused one among them changes nothing.
    let mut with = busy();
    let mut without = World {
        state: with.state.clone(),
        index: with.index,
        now: with.now,
    };
    let index = with.index + 1;
    let at = Millis(with.now.0 + 1000);
    let stamped = |command| berth_model::Stamped {
        at,
        command,
        by: None,
    };
    let good = [
        stamped(stop_task("prod", 10).into()),
        stamped(report("prod", 11, Some(TaskStatus::Running)).build().into()),
    ];
    let bad = stamped(tag_resource(task_arn("prod", 11), vec![tag("x", "y")]).into());
    with.state.apply(index, &good[0]).unwrap();
    with.state.apply(index, &bad).unwrap_err();
    with.state.apply(index, &good[1]).unwrap();
    for g in &good {
        without.state.apply(index, g).unwrap();
    }
    assert_eq!(with.state.persist(), without.state.persist());
    check(&with.state);
}
