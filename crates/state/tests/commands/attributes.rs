//! PutAttributes and DeleteAttributes, and the limit of ten custom attributes.

use berth_model::Error;

use crate::common::*;

fn customs(
    instance: u128,
    range: std::ops::Range<usize>,
) -> Vec<berth_model::command::AttributeChange> {
    range
        .map(|k| attribute(instance, &format!("custom{k}"), Some("v")))
        .collect()
}

#[test]
fn put_sets_and_replaces_values_across_instances() {
    let mut w = World::with_cluster("prod");
    w.ok(instance("prod", 1).build());
    w.ok(instance("prod", 2).build());
    let changes = vec![
        attribute(1, "team", Some("a")),
        attribute(2, "team", Some("b")),
        attribute(1, "flag", None),
        attribute(1, "team", Some("c")),
    ];
    assert_eq!(w.ok(put_attributes("prod", changes.clone())), changes);
    let one = w.instance(1);
    assert_eq!(one.attribute("team"), Some("c"), "the last change wins");
    assert_eq!(one.attributes.get("flag"), Some(&None));
    assert_eq!(one.version, w.index);
    assert_eq!(w.instance(2).attribute("team"), Some("b"));
    let history = w
        .state
        .history(&berth_state::EntityKey::Instance(one.id))
        .unwrap();
    assert_eq!(history.len(), 2, "one version per instance per command");
}

#[test]
fn put_refuses_unknown_or_foreign_targets_without_touching_the_others() {
    let mut w = World::with_cluster("prod");
    w.ok(create_cluster("test"));
    w.ok(instance("prod", 1).build());
    w.ok(instance("test", 2).build());
    for target in [2, 3] {
        let e = w.refused(put_attributes(
            "prod",
            vec![
                attribute(1, "team", Some("a")),
                attribute(target, "team", None),
            ],
        ));
        assert!(matches!(e, Error::TargetNotFound(_)), "{e:?}");
    }
    assert_eq!(
        w.refused(put_attributes("nope", vec![attribute(1, "a", None)])),
        Error::ClusterNotFound("nope".into())
    );
}

#[test]
fn at_most_ten_custom_attributes() {
    let mut w = World::with_cluster("prod");
    w.ok(instance("prod", 1).build());
    w.ok(instance("prod", 2).build());
    w.ok(put_attributes("prod", customs(1, 0..9)));
    // Replacing one, and built-in names, do not count against the limit.
    w.ok(put_attributes(
        "prod",
        vec![
            attribute(1, "custom0", Some("w")),
            attribute(1, "ecs.extra", Some("x")),
        ],
    ));
    w.ok(put_attributes("prod", customs(1, 9..10)));
    // The eleventh is refused, and so is the whole command, including the other instance.
    let mut changes = customs(2, 0..1);
    changes.extend(customs(1, 10..11));
    assert!(matches!(
        w.refused(put_attributes("prod", changes)),
        Error::AttributeLimitExceeded(_)
    ));
    assert_eq!(w.instance(1).attributes.len(), 2 + 10 + 1);
    assert!(w.instance(2).attribute("custom0").is_none());

    // After a delete there is room again.
    w.ok(delete_attributes(
        "prod",
        vec![attribute(1, "custom3", None)],
    ));
    w.ok(put_attributes("prod", customs(1, 10..11)));
}

#[test]
fn delete_removes_and_skips_absent_names() {
    let mut w = World::with_cluster("prod");
    w.ok(instance("prod", 1).build());
    w.ok(put_attributes(
        "prod",
        vec![attribute(1, "team", Some("a"))],
    ));
    let version = w.instance(1).version;
    // An absent name: answered, nothing written.
    w.ok(delete_attributes("prod", vec![attribute(1, "nope", None)]));
    assert_eq!(w.instance(1).version, version);
    w.ok(delete_attributes("prod", vec![attribute(1, "team", None)]));
    let i = w.instance(1);
    assert!(!i.attributes.contains_key("team"));
    assert_eq!(i.version, w.index);
    assert!(matches!(
        w.refused(delete_attributes("prod", vec![attribute(9, "team", None)])),
        Error::TargetNotFound(_)
    ));
}
