//! Capacity providers: created, updated, deleted; attached to clusters only while ACTIVE,
//! detached only when nothing uses them; and the commit check that keeps a provider's tasks on
//! its own instances.

use berth_api::types as api;
use berth_model::capacity::{
    CapacityProviderStatus, MAX_INACTIVE_PROVIDERS, PROVIDER_ATTRIBUTE, ProviderUpdateStatus,
    StrategyItem,
};
use berth_model::command::{
    CreateCapacityProvider, DeleteCapacityProvider, FailureReason, PutClusterCapacityProviders,
    UpdateCapacityProvider,
};
use berth_model::{Error, Millis};

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
    // Deleting it while a cluster has it is answered as ECS answers: still ACTIVE, the
    // deletion DELETE_FAILED with the reason.
    let kept = w.ok(delete("pool"));
    assert_eq!(kept.status, CapacityProviderStatus::Active);
    assert_eq!(kept.update_status, Some(ProviderUpdateStatus::DeleteFailed));
    assert_eq!(
        kept.update_status_reason.as_deref(),
        Some(
            "The capacity provider cannot be deleted because it is associated with cluster: prod. Remove the capacity provider from the cluster and try again."
        )
    );
    assert_eq!(kept.deleted_at, None);
    w.ok(attach("prod", &[], &[]));
    let gone = w.ok(delete("pool"));
    assert_eq!(gone.status, CapacityProviderStatus::Inactive);
    assert_eq!(
        gone.update_status,
        Some(ProviderUpdateStatus::DeleteComplete)
    );
    assert_eq!(gone.update_status_reason, None);
    assert_eq!(gone.deleted_at, Some(w.now));
    // An INACTIVE provider cannot be attached, updated or deleted again; its name is free.
    assert!(matches!(
        w.refused(attach("prod", &["pool"], &[])),
        Error::InvalidParameter(_)
    ));
    let missing = "The specified capacity provider does not exist. Specify a valid name or ARN and try again.";
    assert!(matches!(w.refused(delete("pool")), Error::Client(m) if m == missing));
    assert!(matches!(w.refused(delete("never")), Error::Client(m) if m == missing));
    assert!(matches!(
        w.refused(UpdateCapacityProvider {
            name: "pool".into(),
            managed_scaling: None,
            managed_termination_protection: None,
            managed_draining: Some("DISABLED".into()),
        }),
        Error::Client(m) if m == missing
    ));
    assert_eq!(w.ok(create("pool")).status, CapacityProviderStatus::Active);
}

fn update_scaling(name: &str, scaling: api::ManagedScaling) -> UpdateCapacityProvider {
    UpdateCapacityProvider {
        name: name.into(),
        managed_scaling: Some(scaling),
        managed_termination_protection: None,
        managed_draining: None,
    }
}

#[test]
fn an_update_changes_only_the_settings_it_gives() {
    let mut w = World::with_cluster("prod");
    w.ok(CreateCapacityProvider {
        auto_scaling_group: berth_model::capacity::auto_scaling_group(Some(
            &api::AutoScalingGroupProvider {
                auto_scaling_group_arn: Some("asg".into()),
                managed_scaling: Some(api::ManagedScaling {
                    status: Some("ENABLED".into()),
                    target_capacity: Some(80),
                    minimum_scaling_step_size: Some(2),
                    maximum_scaling_step_size: Some(50),
                    instance_warmup_period: Some(120),
                }),
                managed_termination_protection: Some("ENABLED".into()),
                managed_draining: Some("DISABLED".into()),
            },
        ))
        .unwrap(),
        ..create("pool")
    });
    // One member of managedScaling: the others keep their values, and so do the group's
    // other settings.
    let p = w.ok(update_scaling(
        "pool",
        api::ManagedScaling {
            target_capacity: Some(60),
            ..Default::default()
        },
    ));
    let group = &p.auto_scaling_group;
    assert_eq!(
        group.managed_scaling,
        Some(api::ManagedScaling {
            status: Some("ENABLED".into()),
            target_capacity: Some(60),
            minimum_scaling_step_size: Some(2),
            maximum_scaling_step_size: Some(50),
            instance_warmup_period: Some(120),
        })
    );
    assert_eq!(group.auto_scaling_group_arn.as_deref(), Some("asg"));
    assert_eq!(
        group.managed_termination_protection.as_deref(),
        Some("ENABLED")
    );
    assert_eq!(group.managed_draining.as_deref(), Some("DISABLED"));

    // managedDraining alone leaves managedScaling as it was.
    let p = w.ok(UpdateCapacityProvider {
        name: "pool".into(),
        managed_scaling: None,
        managed_termination_protection: None,
        managed_draining: Some("ENABLED".into()),
    });
    assert_eq!(
        p.auto_scaling_group.managed_draining.as_deref(),
        Some("ENABLED")
    );
    assert_eq!(p.target_capacity(), Some(60));

    // The merged settings are checked as a whole: a minimum step above the kept maximum, or
    // managed scaling turned off under managed termination protection, is refused.
    let e = w.refused(update_scaling(
        "pool",
        api::ManagedScaling {
            minimum_scaling_step_size: Some(51),
            ..Default::default()
        },
    ));
    assert!(
        matches!(&e, Error::InvalidParameter(m) if m.contains("minimumScalingStepSize")),
        "{e:?}"
    );
    let e = w.refused(update_scaling(
        "pool",
        api::ManagedScaling {
            status: Some("DISABLED".into()),
            ..Default::default()
        },
    ));
    assert!(
        matches!(&e, Error::InvalidParameter(m) if m.contains("managedTerminationProtection")),
        "{e:?}"
    );
}

#[test]
fn deleted_providers_are_forgotten_after_the_inactive_retention() {
    let mut w = World::with_cluster("prod");
    w.ok(create("old"));
    w.ok(create("new"));
    w.ok(create("live"));
    w.ok(delete("old"));
    let old_deleted = w.now;
    w.ok(delete("new"));
    // A cut-off after the first deletion only: the second is kept, and so is the live one.
    w.ok(expire(Millis(0), Millis(old_deleted.0 + 1)));
    assert!(w.state.capacity_provider("old").is_none());
    assert_eq!(
        w.state.capacity_provider("new").map(|p| p.status),
        Some(CapacityProviderStatus::Inactive)
    );
    w.ok(w.expire_everything());
    assert!(w.state.capacity_provider("new").is_none());
    assert_eq!(
        w.state.capacity_provider("live").map(|p| p.status),
        Some(CapacityProviderStatus::Active)
    );
}

#[test]
fn at_most_a_bounded_number_of_deleted_providers_is_kept() {
    let mut w = World::with_cluster("prod");
    let name = |n: usize| format!("pool-{n:03}");
    for n in 0..=MAX_INACTIVE_PROVIDERS + 1 {
        w.ok(create(&name(n)));
        w.ok(delete(&name(n)));
    }
    let inactive: Vec<String> = w
        .state
        .capacity_providers_after(None)
        .filter(|p| p.status == CapacityProviderStatus::Inactive)
        .map(|p| p.name.to_string())
        .collect();
    assert_eq!(inactive.len(), MAX_INACTIVE_PROVIDERS);
    // The two deleted first went.
    assert_eq!(inactive.first(), Some(&name(2)));
    assert!(w.state.capacity_provider(&name(0)).is_none());
    assert!(w.state.capacity_provider(&name(1)).is_none());
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
