//! Capacity providers: named pools of container instances, and the strategies that split a
//! launch between them.
//!
//! ECS ties a provider to an Auto Scaling group; berth has none, so an instance belongs to a
//! provider by the attribute [`PROVIDER_ATTRIBUTE`] it registered with (the agent's
//! `--capacity-provider NAME` sets it). `autoScalingGroupProvider` is still required by ECS's
//! shape: berth validates and records it (the ARN may be any string, naming whatever group an
//! external autoscaler manages) and echoes it; `managedScaling.targetCapacity` is the target an
//! autoscaler reading berth's reservation gauge aims for.
//!
//! ```text
//!  CreateCapacityProvider ─► ACTIVE ──PutClusterCapacityProviders──► attached to clusters
//!        │                     ├─ UpdateCapacityProvider: the settings given merged in
//!        │                     └─ DeleteCapacityProvider
//!        │                          ├─ a cluster has it: still ACTIVE, DELETE_FAILED and why
//!        │                          └─ else INACTIVE, DELETE_COMPLETE (name free again);
//!        │                             forgotten after the inactive retention, or beyond
//!        │                             MAX_INACTIVE_PROVIDERS INACTIVE ones
//!  RunTask / services: strategy [{A, base 2, weight 1}, {B, weight 3}] ─► split ─► A 4, B 6
//! ```

use berth_api::types::{self as api};
use serde::{Deserialize, Serialize};

use crate::command::UpdateCapacityProvider;
use crate::entity::{Name, Tag, wire_enum};
use crate::error::Error;
use crate::time::Millis;

/// The container-instance attribute naming the capacity provider an instance belongs to.
pub use berth_api::agent::CAPACITY_PROVIDER_ATTRIBUTE as PROVIDER_ATTRIBUTE;

/// Most items a capacity provider strategy may hold, as in ECS.
pub const MAX_STRATEGY_ITEMS: usize = 20;
/// ECS's bounds on an item's `base` and `weight`.
pub const MAX_BASE: u32 = 100_000;
pub const MAX_WEIGHT: u32 = 1_000;

wire_enum!(
    /// A capacity provider's status: INACTIVE once deleted.
    CapacityProviderStatus { Active = "ACTIVE", Inactive = "INACTIVE" }
);

/// INACTIVE providers kept describable at most; a deletion past it forgets the oldest
/// deleted ones. ECS keeps deleted providers "discoverable for a period of time" without
/// saying how long; berth keeps them for the server's inactive retention (the `Expire`
/// command) and never more than this many, so deletions cannot grow the state without bound.
pub const MAX_INACTIVE_PROVIDERS: usize = 100;

wire_enum!(
    /// The outcome of the provider's last update or deletion (ECS `updateStatus`); berth's
    /// changes complete as they commit, so no IN_PROGRESS value occurs. A deletion refused
    /// because a cluster has the provider attached is DELETE_FAILED, as in ECS.
    ProviderUpdateStatus {
        UpdateComplete = "UPDATE_COMPLETE",
        DeleteComplete = "DELETE_COMPLETE",
        DeleteFailed = "DELETE_FAILED",
    }
);

/// A capacity provider: a named pool of the container instances whose
/// [`PROVIDER_ATTRIBUTE`] names it, in any cluster that has the provider attached.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CapacityProvider {
    pub name: Name,
    pub status: CapacityProviderStatus,
    /// As given (defaults filled in): recorded and echoed; berth launches no machines.
    pub auto_scaling_group: api::AutoScalingGroupProvider,
    pub update_status: Option<ProviderUpdateStatus>,
    /// Why the last update or deletion ended as it did (ECS `updateStatusReason`): set for
    /// DELETE_FAILED.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_status_reason: Option<String>,
    pub tags: Vec<Tag>,
    pub created_at: Millis,
    /// When it was deleted (INACTIVE), which is what its retention counts from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<Millis>,
    pub version: u64,
}

impl CapacityProvider {
    /// `managedScaling.targetCapacity` when managed scaling is ENABLED.
    pub fn target_capacity(&self) -> Option<u32> {
        let scaling = self.auto_scaling_group.managed_scaling.as_ref()?;
        (scaling.status.as_deref() == Some("ENABLED"))
            .then(|| scaling.target_capacity.unwrap_or(100).clamp(1, 100) as u32)
    }
}

/// One item of a capacity provider strategy, validated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StrategyItem {
    pub provider: Name,
    pub base: u32,
    pub weight: u32,
}

impl StrategyItem {
    pub fn render(&self) -> api::CapacityProviderStrategyItem {
        api::CapacityProviderStrategyItem {
            capacity_provider: Some(self.provider.to_string()),
            weight: Some(self.weight as i32),
            base: Some(self.base as i32),
        }
    }
}

/// A capacity provider name: 1 to 255 letters, digits, hyphens and underscores, not starting
/// with `aws`, `ecs` or `fargate` (reserved by ECS).
pub fn provider_name(name: Option<&str>) -> Result<&str, Error> {
    let name = name.unwrap_or_default();
    let valid = !name.is_empty()
        && name.len() <= 255
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !valid {
        return Err(Error::invalid(format!(
            "Capacity provider name '{}' is invalid: use 1 to 255 letters, numbers, hyphens and underscores",
            name.chars().take(300).collect::<String>()
        )));
    }
    let lower = name.to_ascii_lowercase();
    if let Some(prefix) = ["aws", "ecs", "fargate"]
        .into_iter()
        .find(|p| lower.starts_with(p))
    {
        return Err(Error::invalid(format!(
            "Capacity provider name '{name}' is invalid: names cannot start with '{prefix}' (reserved)"
        )));
    }
    Ok(name)
}

/// A capacity provider reference: a short name, or the name at the end of a
/// `arn:…:capacity-provider/NAME` ARN.
pub fn provider_ref(reference: &str) -> &str {
    match reference.split_once(":capacity-provider/") {
        Some((prefix, name)) if prefix.starts_with("arn:") => name,
        _ => reference,
    }
}

fn enabled_or_disabled(value: &Option<String>, name: &str) -> Result<(), Error> {
    match value.as_deref() {
        None | Some("ENABLED") | Some("DISABLED") => Ok(()),
        Some(other) => Err(Error::invalid(format!(
            "{name} must be ENABLED or DISABLED; got '{other}'"
        ))),
    }
}

fn within(value: Option<i32>, name: &str, lo: i32, hi: i32) -> Result<(), Error> {
    match value {
        Some(v) if !(lo..=hi).contains(&v) => Err(Error::invalid(format!(
            "{name} must be between {lo} and {hi}; got {v}"
        ))),
        _ => Ok(()),
    }
}

/// `managedScaling` checked against ECS's ranges, with ECS's defaults filled in: given without
/// a status it is ENABLED; not given at all, DISABLED.
pub fn managed_scaling(given: Option<&api::ManagedScaling>) -> Result<api::ManagedScaling, Error> {
    let Some(s) = given else {
        return Ok(api::ManagedScaling {
            status: Some("DISABLED".into()),
            target_capacity: Some(100),
            minimum_scaling_step_size: Some(1),
            maximum_scaling_step_size: Some(10_000),
            instance_warmup_period: Some(300),
        });
    };
    // Within their ranges, a default step size can never be out of order with a given one.
    check_scaling(s)?;
    Ok(api::ManagedScaling {
        status: Some(s.status.clone().unwrap_or_else(|| "ENABLED".into())),
        target_capacity: Some(s.target_capacity.unwrap_or(100)),
        minimum_scaling_step_size: Some(s.minimum_scaling_step_size.unwrap_or(1)),
        maximum_scaling_step_size: Some(s.maximum_scaling_step_size.unwrap_or(10_000)),
        instance_warmup_period: Some(s.instance_warmup_period.unwrap_or(300)),
    })
}

fn step_sizes(min: i32, max: i32) -> Error {
    Error::invalid(format!(
        "managedScaling.minimumScalingStepSize ({min}) cannot exceed maximumScalingStepSize ({max})"
    ))
}

/// The members of `s` that are given, each within ECS's range, and the step sizes in order
/// when both are given.
fn check_scaling(s: &api::ManagedScaling) -> Result<(), Error> {
    enabled_or_disabled(&s.status, "managedScaling.status")?;
    within(s.target_capacity, "managedScaling.targetCapacity", 1, 100)?;
    within(
        s.minimum_scaling_step_size,
        "managedScaling.minimumScalingStepSize",
        1,
        10_000,
    )?;
    within(
        s.maximum_scaling_step_size,
        "managedScaling.maximumScalingStepSize",
        1,
        10_000,
    )?;
    within(
        s.instance_warmup_period,
        "managedScaling.instanceWarmupPeriod",
        0,
        10_000,
    )?;
    match (s.minimum_scaling_step_size, s.maximum_scaling_step_size) {
        (Some(min), Some(max)) if min > max => Err(step_sizes(min, max)),
        _ => Ok(()),
    }
}

/// UpdateCapacityProvider's `autoScalingGroupProvider` (required) as the command for provider
/// `name`: only the members given, each checked as ECS checks it; nothing is defaulted, since
/// an update leaves what it omits as it was ([`merge_scaling`]).
pub fn update(
    name: Name,
    given: Option<&api::AutoScalingGroupProviderUpdate>,
) -> Result<UpdateCapacityProvider, Error> {
    let given = given.ok_or_else(|| {
        Error::invalid(
            "Missing required parameter 'autoScalingGroupProvider': give the managedScaling, managedTerminationProtection or managedDraining settings to change",
        )
    })?;
    enabled_or_disabled(
        &given.managed_termination_protection,
        "managedTerminationProtection",
    )?;
    enabled_or_disabled(&given.managed_draining, "managedDraining")?;
    if let Some(s) = &given.managed_scaling {
        check_scaling(s)?;
    }
    Ok(UpdateCapacityProvider {
        name,
        managed_scaling: given.managed_scaling.clone(),
        managed_termination_protection: given.managed_termination_protection.clone(),
        managed_draining: given.managed_draining.clone(),
    })
}

/// An update's `managedScaling` applied to a provider's current settings: every member the
/// update gives replaces the current one, every member it omits keeps its value (a provider
/// recorded without settings starts from ECS's defaults). The result must still have its
/// minimum step no larger than its maximum.
pub fn merge_scaling(
    current: Option<&api::ManagedScaling>,
    update: &api::ManagedScaling,
) -> Result<api::ManagedScaling, Error> {
    let base = match current {
        Some(c) => c.clone(),
        None => managed_scaling(None)?,
    };
    let merged = api::ManagedScaling {
        status: update.status.clone().or(base.status),
        target_capacity: update.target_capacity.or(base.target_capacity),
        minimum_scaling_step_size: update
            .minimum_scaling_step_size
            .or(base.minimum_scaling_step_size),
        maximum_scaling_step_size: update
            .maximum_scaling_step_size
            .or(base.maximum_scaling_step_size),
        instance_warmup_period: update
            .instance_warmup_period
            .or(base.instance_warmup_period),
    };
    check_scaling(&merged)?;
    Ok(merged)
}

/// CreateCapacityProvider's `autoScalingGroupProvider`: required, its ARN any non-empty
/// string (berth has no Auto Scaling groups to look it up in), the rest as ECS validates it.
pub fn auto_scaling_group(
    given: Option<&api::AutoScalingGroupProvider>,
) -> Result<api::AutoScalingGroupProvider, Error> {
    let given = given.ok_or_else(|| {
        Error::invalid(
            "Missing required parameter 'autoScalingGroupProvider': berth records its \
             autoScalingGroupArn (any name of the group an external autoscaler manages); \
             instances join the provider with the ecs.capacity-provider attribute",
        )
    })?;
    let arn = given.auto_scaling_group_arn.as_deref().unwrap_or_default();
    if arn.is_empty() || arn.len() > 1600 {
        return Err(Error::invalid(
            "autoScalingGroupProvider.autoScalingGroupArn must be 1 to 1600 characters",
        ));
    }
    enabled_or_disabled(
        &given.managed_termination_protection,
        "managedTerminationProtection",
    )?;
    enabled_or_disabled(&given.managed_draining, "managedDraining")?;
    let scaling = managed_scaling(given.managed_scaling.as_ref())?;
    if given.managed_termination_protection.as_deref() == Some("ENABLED")
        && scaling.status.as_deref() != Some("ENABLED")
    {
        return Err(Error::invalid(
            "managedTerminationProtection can only be ENABLED when managedScaling is ENABLED",
        ));
    }
    Ok(api::AutoScalingGroupProvider {
        auto_scaling_group_arn: Some(arn.to_owned()),
        managed_scaling: Some(scaling),
        managed_termination_protection: Some(
            given
                .managed_termination_protection
                .clone()
                .unwrap_or_else(|| "DISABLED".into()),
        ),
        managed_draining: Some(
            given
                .managed_draining
                .clone()
                .unwrap_or_else(|| "ENABLED".into()),
        ),
    })
}

/// A capacity provider strategy, checked as ECS checks one: at most 20 distinct providers,
/// `base` 0–100,000 on at most one of them, `weight` 0–1,000, and some weight above zero when
/// there are several. `None` and `[]` are both no strategy.
pub fn strategy(
    given: Option<&[api::CapacityProviderStrategyItem]>,
) -> Result<Vec<StrategyItem>, Error> {
    let given = given.unwrap_or_default();
    if given.len() > MAX_STRATEGY_ITEMS {
        return Err(Error::invalid(format!(
            "A capacity provider strategy can contain at most {MAX_STRATEGY_ITEMS} capacity providers; got {}",
            given.len()
        )));
    }
    let mut out: Vec<StrategyItem> = Vec::with_capacity(given.len());
    for item in given {
        let name = item.capacity_provider.as_deref().unwrap_or_default();
        if name.is_empty() {
            return Err(Error::invalid(
                "Missing required parameter 'capacityProviderStrategy.capacityProvider'",
            ));
        }
        let base = item.base.unwrap_or(0);
        let weight = item.weight.unwrap_or(0);
        if !(0..=MAX_BASE as i32).contains(&base) {
            return Err(Error::invalid(format!(
                "The base of capacity provider {name} must be between 0 and {MAX_BASE}; got {base}"
            )));
        }
        if !(0..=MAX_WEIGHT as i32).contains(&weight) {
            return Err(Error::invalid(format!(
                "The weight of capacity provider {name} must be between 0 and {MAX_WEIGHT}; got {weight}"
            )));
        }
        if out.iter().any(|o| *o.provider == *name) {
            return Err(Error::invalid(format!(
                "Capacity provider {name} appears more than once in the capacity provider strategy"
            )));
        }
        out.push(StrategyItem {
            provider: name.into(),
            base: base as u32,
            weight: weight as u32,
        });
    }
    if out.iter().filter(|i| i.base > 0).count() > 1 {
        return Err(Error::invalid(
            "Only one capacity provider in a capacity provider strategy can have a base",
        ));
    }
    if out.len() > 1 && out.iter().all(|i| i.weight == 0) {
        return Err(Error::invalid(
            "At least one capacity provider in a capacity provider strategy must have a weight greater than zero",
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(
        name: &str,
        base: Option<i32>,
        weight: Option<i32>,
    ) -> api::CapacityProviderStrategyItem {
        api::CapacityProviderStrategyItem {
            capacity_provider: Some(name.into()),
            weight,
            base,
        }
    }

    #[test]
    fn names_follow_ecs_rules() {
        assert_eq!(provider_name(Some("pool-a_1")), Ok("pool-a_1"));
        assert!(provider_name(Some("")).is_err());
        assert!(provider_name(None).is_err());
        assert!(provider_name(Some("has space")).is_err());
        assert!(provider_name(Some(&"x".repeat(256))).is_err());
        for reserved in ["aws-pool", "ECS1", "FargateX"] {
            let e = provider_name(Some(reserved)).unwrap_err();
            assert!(e.to_string().contains("reserved"), "{e}");
        }
        assert_eq!(
            provider_ref("arn:aws:ecs:us-east-1:1:capacity-provider/pool"),
            "pool"
        );
        assert_eq!(provider_ref("pool"), "pool");
    }

    #[test]
    fn strategies_are_checked_as_ecs_checks_them() {
        let ok = strategy(Some(&[
            item("a", Some(2), Some(1)),
            item("b", None, Some(3)),
        ]))
        .unwrap();
        assert_eq!(
            ok,
            [
                StrategyItem {
                    provider: "a".into(),
                    base: 2,
                    weight: 1
                },
                StrategyItem {
                    provider: "b".into(),
                    base: 0,
                    weight: 3
                }
            ]
        );
        assert_eq!(strategy(None), Ok(Vec::new()));
        // One provider may have weight 0: every task goes to it.
        assert!(strategy(Some(&[item("a", None, None)])).is_ok());
        let err = |items: &[api::CapacityProviderStrategyItem]| {
            strategy(Some(items)).unwrap_err().to_string()
        };
        assert!(err(&[item("a", Some(1), Some(1)), item("b", Some(1), Some(1))]).contains("base"));
        assert!(err(&[item("a", None, None), item("b", None, Some(0))]).contains("weight"));
        assert!(
            err(&[item("a", None, Some(1)), item("a", None, Some(1))]).contains("more than once")
        );
        assert!(err(&[item("a", Some(100_001), None)]).contains("between 0 and 100000"));
        assert!(err(&[item("a", None, Some(1001))]).contains("between 0 and 1000"));
        assert!(err(&[item("a", None, Some(-1))]).contains("weight"));
        assert!(err(&[item("", None, Some(1))]).contains("capacityProvider"));
        let many: Vec<_> = (0..21)
            .map(|n| item(&format!("p{n}"), None, Some(1)))
            .collect();
        assert!(err(&many).contains("at most 20"));
    }

    #[test]
    fn auto_scaling_group_gets_ecs_defaults() {
        assert!(auto_scaling_group(None).is_err());
        let given = api::AutoScalingGroupProvider {
            auto_scaling_group_arn: Some("my-group".into()),
            ..Default::default()
        };
        let filled = auto_scaling_group(Some(&given)).unwrap();
        let scaling = filled.managed_scaling.clone().unwrap();
        assert_eq!(scaling.status.as_deref(), Some("DISABLED"));
        assert_eq!(scaling.target_capacity, Some(100));
        assert_eq!(filled.managed_draining.as_deref(), Some("ENABLED"));
        let scaled = api::AutoScalingGroupProvider {
            managed_scaling: Some(api::ManagedScaling {
                target_capacity: Some(80),
                ..Default::default()
            }),
            ..given.clone()
        };
        let filled = auto_scaling_group(Some(&scaled)).unwrap();
        assert_eq!(
            filled.managed_scaling.unwrap().status.as_deref(),
            Some("ENABLED")
        );
        let bad = api::AutoScalingGroupProvider {
            managed_scaling: Some(api::ManagedScaling {
                target_capacity: Some(0),
                ..Default::default()
            }),
            ..given.clone()
        };
        assert!(auto_scaling_group(Some(&bad)).is_err());
        let protection_alone = api::AutoScalingGroupProvider {
            managed_termination_protection: Some("ENABLED".into()),
            ..given
        };
        assert!(auto_scaling_group(Some(&protection_alone)).is_err());
    }

    #[test]
    fn an_update_gives_only_what_it_changes_and_merges_member_by_member() {
        assert!(update("p".into(), None).is_err());
        let given = api::AutoScalingGroupProviderUpdate {
            managed_scaling: Some(api::ManagedScaling {
                target_capacity: Some(70),
                ..Default::default()
            }),
            ..Default::default()
        };
        let command = update("p".into(), Some(&given)).unwrap();
        // Nothing defaulted: what is left out stays as it was.
        assert_eq!(command.managed_scaling, given.managed_scaling);
        assert_eq!(command.managed_draining, None);
        assert_eq!(command.managed_termination_protection, None);
        for bad in [
            api::AutoScalingGroupProviderUpdate {
                managed_draining: Some("ON".into()),
                ..Default::default()
            },
            api::AutoScalingGroupProviderUpdate {
                managed_scaling: Some(api::ManagedScaling {
                    target_capacity: Some(101),
                    ..Default::default()
                }),
                ..Default::default()
            },
            api::AutoScalingGroupProviderUpdate {
                managed_scaling: Some(api::ManagedScaling {
                    minimum_scaling_step_size: Some(5),
                    maximum_scaling_step_size: Some(4),
                    ..Default::default()
                }),
                ..Default::default()
            },
        ] {
            assert!(update("p".into(), Some(&bad)).is_err(), "{bad:?}");
        }

        let current = api::ManagedScaling {
            status: Some("ENABLED".into()),
            target_capacity: Some(80),
            minimum_scaling_step_size: Some(2),
            maximum_scaling_step_size: Some(20),
            instance_warmup_period: Some(60),
        };
        let merged = merge_scaling(Some(&current), given.managed_scaling.as_ref().unwrap());
        assert_eq!(
            merged,
            Ok(api::ManagedScaling {
                target_capacity: Some(70),
                ..current.clone()
            })
        );
        // Nothing recorded yet: ECS's defaults, then the update.
        let fresh = merge_scaling(None, given.managed_scaling.as_ref().unwrap()).unwrap();
        assert_eq!(fresh.status.as_deref(), Some("DISABLED"));
        assert_eq!(fresh.target_capacity, Some(70));
        // A maximum below the kept minimum is refused once merged.
        let lower = api::ManagedScaling {
            maximum_scaling_step_size: Some(1),
            ..Default::default()
        };
        assert!(merge_scaling(Some(&current), &lower).is_err());
    }
}
