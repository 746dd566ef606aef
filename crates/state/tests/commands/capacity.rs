//! Capacity providers: created, updated, deleted; attached to clusters only while ACTIVE,
//! detached only when nothing uses them; and the commit check that keeps a provider's tasks on
//! its own instances.

use berth_api::types as api;
use berth_model::Error;
use berth_model::capacity::{
    CapacityProviderStatus, PROVIDER_ATTRIBUTE, ProviderUpdateStatus, StrategyItem,
};
use berth_model::command::{
    CreateCapacityProvider, DeleteCapacityProvider, FailureReason, PutClusterCapacityProviders,
    UpdateCapacityProvider,
};

use crate::common::*;

pub(crate) fn create(name: &str) -> CreateCapacityProvider {
    CreateCapacityProvider {
        name: name.into(),
        auto_scaling_group: api::AutoScalingGroupProvider {
            auto_scaling_group_arn: Some(format!("asg-{name}")),
            ..Default::default()
        },
        tags: Vec::new(),
    }
}

fn attach(
    cluster: &str,
    providers: &[&str],
    strategy: &[(&str, u32, u32)],
) -> PutClusterCapacityProviders {
    PutClusterCapacityProviders {
        cluster: cluster.into(),
        providers: providers.iter().map(|p| (*p).into()).collect(),
        default_strategy: strategy
            .iter()
            .map(|(p, base, weight)| StrategyItem {
                provider: (*p).into(),
                base: *base,
                weight: *weight,
            })
            .collect(),
    }
}

fn delete(name: &str) -> DeleteCapacityProvider {
    DeleteCapacityProvider { name: name.into() }
}

#[test]
fn a_provider_is_created_once_updated_and_deleted_when_detached() {
    let mut w = World::with_cluster("prod");
    let p = w.ok(create("pool"));
    assert_eq!(p.status, CapacityProviderStatus::Active);
    assert_eq!(p.version, w.index);
    assert!(matches!(w.refused(create("pool")), Error::Client(_)));

    let updated = w.ok(UpdateCapacityProvider {
        name: "pool".into(),
        managed_scaling: Some(api::ManagedScaling {
            status: Some("ENABLED".into()),
            target_capacity: Some(75),
            ..Default::default()
        }),
        managed_termination_protection: None,
        managed_draining: None,
    });
    assert_eq!(
        updated.update_status,
        Some(ProviderUpdateStatus::UpdateComplete)
    );
    assert_eq!(updated.target_capacity(), Some(75));

    let cluster = w.ok(attach("prod", &["pool"], &[("pool", 1, 1)]));
    assert_eq!(&*cluster.capacity_providers[0], "pool");
    assert!(matches!(w.refused(delete("pool")), Error::Client(m) if m.contains("prod")));
    w.ok(attach("prod", &[], &[]));
    let gone = w.ok(delete("pool"));
    assert_eq!(gone.status, CapacityProviderStatus::Inactive);
    assert_eq!(
        gone.update_status,
        Some(ProviderUpdateStatus::DeleteComplete)
    );
    // An INACTIVE provider cannot be attached, updated or deleted again; its name is free.
    assert!(matches!(
        w.refused(attach("prod", &["pool"], &[])),
        Error::InvalidParameter(_)
    ));
    assert!(matches!(
        w.refused(delete("pool")),
        Error::InvalidParameter(_)
    ));
    assert_eq!(w.ok(create("pool")).status, CapacityProviderStatus::Active);
}

#[test]
fn a_cluster_attaches_existing_providers_and_defaults_to_attached_ones_only() {
    let mut w = World::with_cluster("prod");
    w.ok(create("a"));
    w.ok(create("b"));
    assert!(matches!(
        w.refused(attach("prod", &["a", "nope"], &[])),
        Error::InvalidParameter(_)
    ));
    assert!(matches!(
        w.refused(attach("prod", &["a", "a"], &[])),
        Error::InvalidParameter(_)
    ));
    assert!(matches!(
        w.refused(attach("prod", &["a"], &[("b", 0, 1)])),
        Error::InvalidParameter(_)
    ));
    let c = w.ok(attach("prod", &["a", "b"], &[("b", 0, 1)]));
    assert_eq!(c.default_strategy[0].provider.as_ref(), "b");
    let mut new = create_cluster("other");
    new.capacity_providers = vec!["missing".into()];
    assert!(matches!(w.refused(new), Error::InvalidParameter(_)));
}

#[test]
fn a_provider_in_use_by_a_live_task_cannot_leave_its_cluster() {
    let mut w = World::with_cluster("prod");
    w.ok(create("a"));
    w.ok(attach("prod", &["a"], &[]));
    w.ok(instance("prod", 1)
        .attribute(PROVIDER_ATTRIBUTE, Some("a"))
        .build());
    let t = task("prod", 10, 1)
        .cpu(10)
        .memory(10)
        .capacity_provider("a");
    let (placed, rejected) = w.place(place("prod", vec![t]));
    assert!(rejected.is_empty(), "{rejected:?}");
    assert_eq!(placed[0].capacity_provider.as_deref(), Some("a"));
    assert!(
        matches!(w.refused(attach("prod", &[], &[])), Error::ResourceInUse(m) if m.contains("a"))
    );
}

#[test]
fn a_task_of_a_provider_is_refused_at_commit_on_another_instance() {
    let mut w = World::with_cluster("prod");
    w.ok(instance("prod", 1)
        .attribute(PROVIDER_ATTRIBUTE, Some("b"))
        .build());
    w.ok(instance("prod", 2).build());
    for on in [1, 2] {
        let t = task("prod", 10 + on, on)
            .cpu(10)
            .memory(10)
            .capacity_provider("a");
        let (placed, rejected) = w.place(place("prod", vec![t]));
        assert!(placed.is_empty());
        assert_eq!(rejected[0].reason, FailureReason::Attribute);
        assert!(
            rejected[0].detail.contains("capacity provider a"),
            "{rejected:?}"
        );
    }
}
