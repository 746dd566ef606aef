//! TagResource and UntagResource on every kind of resource that has tags.

use berth_model::Error;
use berth_model::arn::ResourceArn;
use berth_model::entity::Tag;

use crate::common::*;

fn world() -> World {
    let mut w = World::with_cluster("prod");
    w.ok(create_cluster("test"));
    w.ok(instance("prod", 1).build());
    w.place(place("prod", vec![task("prod", 10, 1)]));
    w.ok(crate::capacity::create("pool"));
    w
}

fn tags_of(w: &World, r: &ResourceArn) -> (Vec<Tag>, u64) {
    match r {
        ResourceArn::Cluster(c) => {
            let c = w.state.cluster(c).unwrap();
            (c.tags.clone(), c.version)
        }
        ResourceArn::TaskDefinition(f, rev) => {
            let t = w.state.task_definition(f, *rev).unwrap();
            (t.tags.clone(), t.version)
        }
        ResourceArn::ContainerInstance(_, id) => {
            let i = w.state.instance(*id).unwrap();
            (i.tags.clone(), i.version)
        }
        ResourceArn::Task(_, id) => {
            let t = w.state.task(*id).unwrap();
            (t.tags.clone(), t.version)
        }
        ResourceArn::CapacityProvider(name) => {
            let p = w.state.capacity_provider(name).unwrap();
            (p.tags.clone(), p.version)
        }
        ResourceArn::Service(..) | ResourceArn::TaskSet(..) => unreachable!(),
    }
}

fn resources() -> [ResourceArn; 5] {
    [
        cluster_arn("prod"),
        ResourceArn::TaskDefinition("web".into(), 1),
        instance_arn("prod", 1),
        task_arn("prod", 10),
        ResourceArn::CapacityProvider("pool".into()),
    ]
}

#[test]
fn tags_merge_by_key_and_untag_removes() {
    for r in resources() {
        let mut w = world();
        w.ok(tag_resource(r.clone(), vec![tag("a", "1"), tag("b", "2")]));
        w.ok(tag_resource(r.clone(), vec![tag("b", "3"), tag("c", "4")]));
        let (tags, version) = tags_of(&w, &r);
        assert_eq!(tags, [tag("a", "1"), tag("b", "3"), tag("c", "4")], "{r:?}");
        assert_eq!(version, w.index, "{r:?}");

        w.ok(untag_resource(r.clone(), &["a", "c", "nope"]));
        assert_eq!(tags_of(&w, &r), (vec![tag("b", "3")], w.index), "{r:?}");

        // Untagging keys the resource does not have writes nothing.
        let before = w.state.persist();
        w.ok(untag_resource(r.clone(), &["nope"]));
        let mut after = w.state.persist();
        after.index = before.index;
        assert_eq!(after, before, "{r:?}");
    }
}

#[test]
fn at_most_fifty_tags_after_merging() {
    for r in resources() {
        let mut w = world();
        let fifty: Vec<Tag> = (0..50).map(|k| tag(&format!("k{k}"), "v")).collect();
        w.ok(tag_resource(r.clone(), fifty[..49].to_vec()));
        assert!(matches!(
            w.refused(tag_resource(r.clone(), vec![tag("x", "1"), tag("y", "2")])),
            Error::InvalidParameter(_)
        ));
        w.ok(tag_resource(r.clone(), vec![tag("x", "1")]));
        // Full: replacing values is still fine, a new key is not.
        w.ok(tag_resource(r.clone(), vec![tag("k0", "new")]));
        assert!(matches!(
            w.refused(tag_resource(r.clone(), vec![tag("y", "2")])),
            Error::InvalidParameter(_)
        ));
        assert_eq!(tags_of(&w, &r).0.len(), 50);
    }
}

#[test]
fn tagging_what_does_not_exist_is_resource_not_found() {
    let mut w = world();
    for r in [
        cluster_arn("nope"),
        ResourceArn::TaskDefinition("web".into(), 2),
        instance_arn("prod", 9),
        instance_arn("test", 1),
        task_arn("prod", 99),
        task_arn("test", 10),
        ResourceArn::Service("prod".into(), "svc".into()),
        ResourceArn::CapacityProvider("nope".into()),
        ResourceArn::TaskSet("prod".into(), "svc".into(), "ecs-svc/1".into()),
    ] {
        assert!(
            matches!(
                w.refused(tag_resource(r.clone(), vec![tag("a", "1")])),
                Error::ResourceNotFound(_)
            ),
            "{r:?}"
        );
        assert!(
            matches!(
                w.refused(untag_resource(r.clone(), &["a"])),
                Error::ResourceNotFound(_)
            ),
            "{r:?}"
        );
    }
}

#[test]
fn tagging_a_task_keeps_its_reservation() {
    let mut w = world();
    let usage = w.state.usage(berth_model::InstanceId(1)).cloned();
    w.ok(tag_resource(task_arn("prod", 10), vec![tag("a", "1")]));
    assert_eq!(w.state.usage(berth_model::InstanceId(1)).cloned(), usage);
}
