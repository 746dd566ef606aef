//! Account settings: ECS's named switches, set per principal or as the account's default.
//!
//! ```text
//!  in force for a principal, per setting name:
//!    its own setting ─ else ─► the account default (PutAccountSettingDefault, or the root
//!    user's own) ─ else ─► ECS's default for that name
//! ```
//! berth records them as ECS does (they are cluster state, replicated like everything else)
//! and answers ListAccountSettings with what is in force. Principals are kept by their IAM
//! name within the account (`user/alice`), never as an ARN, so the partition and account are
//! rendered per response like every other ARN.

use serde::{Deserialize, Serialize};

use crate::Error;
use crate::entity::wire_enum;

wire_enum!(
    /// The settings ECS has (botocore's `SettingName`).
    SettingName {
        ServiceLongArnFormat = "serviceLongArnFormat",
        TaskLongArnFormat = "taskLongArnFormat",
        ContainerInstanceLongArnFormat = "containerInstanceLongArnFormat",
        AwsvpcTrunking = "awsvpcTrunking",
        ContainerInsights = "containerInsights",
        FargateFipsMode = "fargateFIPSMode",
        TagResourceAuthorization = "tagResourceAuthorization",
        FargateTaskRetirementWaitPeriod = "fargateTaskRetirementWaitPeriod",
        GuardDutyActivate = "guardDutyActivate",
        DefaultLogDriverMode = "defaultLogDriverMode",
        FargateEventWindows = "fargateEventWindows",
    }
);

impl SettingName {
    /// The values ECS accepts for it.
    pub fn values(self) -> &'static [&'static str] {
        match self {
            SettingName::ContainerInsights => &["enabled", "disabled", "enhanced"],
            SettingName::TagResourceAuthorization => &["on", "off"],
            SettingName::FargateTaskRetirementWaitPeriod => &["0", "7", "14"],
            SettingName::DefaultLogDriverMode => &["blocking", "non-blocking"],
            _ => &["enabled", "disabled"],
        }
    }

    /// What is in force when neither the principal nor the account set it: ECS's defaults
    /// today (long ARNs are always on, tagging authorization is on, containers log
    /// non-blocking, Fargate retires tasks after 7 days).
    pub fn aws_default(self) -> &'static str {
        match self {
            SettingName::ServiceLongArnFormat
            | SettingName::TaskLongArnFormat
            | SettingName::ContainerInstanceLongArnFormat => "enabled",
            SettingName::TagResourceAuthorization => "on",
            SettingName::FargateTaskRetirementWaitPeriod => "7",
            SettingName::DefaultLogDriverMode => "non-blocking",
            _ => "disabled",
        }
    }

    /// ECS's `type`: `aws_managed` for the one setting AWS controls (read-only), `user` for
    /// the rest.
    pub fn kind(self) -> &'static str {
        match self {
            SettingName::GuardDutyActivate => "aws_managed",
            _ => "user",
        }
    }
}

/// Whose setting it is.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum SettingOwner {
    /// The account's default, for every principal that has no setting of its own (ECS's
    /// root user; PutAccountSettingDefault).
    Account,
    /// One principal, by its IAM name in the account (`user/alice`).
    Principal(String),
}

impl SettingOwner {
    /// The owner as an IAM ARN in `partition` and `account` (the account default is the root
    /// user's, as ECS shows it).
    pub fn arn(&self, partition: &str, account: &str) -> String {
        match self {
            SettingOwner::Account => format!("arn:{partition}:iam::{account}:root"),
            SettingOwner::Principal(name) => format!("arn:{partition}:iam::{account}:{name}"),
        }
    }

    /// Reads a `principalArn`: an IAM user, role or the root user of `account`.
    pub fn parse(arn: &str, account: &str) -> Result<SettingOwner, Error> {
        let invalid = || {
            Error::invalid(format!(
                "principalArn '{}' is not valid: give the ARN of a user, role or the root user \
                 of account {account} (arn:aws:iam::{account}:user/NAME)",
                arn.chars().take(200).collect::<String>()
            ))
        };
        let mut parts = arn.splitn(6, ':');
        let (Some("arn"), Some(partition), Some("iam"), Some(""), Some(acct), Some(resource)) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(invalid());
        };
        if partition.is_empty() {
            return Err(invalid());
        }
        if acct != account {
            return Err(Error::invalid(format!(
                "principalArn '{arn}' is in account {acct}; this cluster's account is {account}"
            )));
        }
        if resource == "root" {
            return Ok(SettingOwner::Account);
        }
        let owner = SettingOwner::Principal(resource.to_owned());
        if owner.is_valid() {
            Ok(owner)
        } else {
            Err(invalid())
        }
    }

    /// A principal's name is an IAM user or role path (`user/NAME`, `role/NAME`).
    pub fn is_valid(&self) -> bool {
        let SettingOwner::Principal(resource) = self else {
            return true;
        };
        match resource.split_once('/') {
            Some(("user" | "role", name)) => {
                !name.is_empty()
                    && name.len() <= 512
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-/".contains(&b))
            }
            _ => false,
        }
    }
}

/// One recorded setting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountSetting {
    pub owner: SettingOwner,
    pub name: SettingName,
    pub value: String,
    /// The log index of its last change.
    pub version: u64,
}

/// Checks a setting about to be written by a caller: a known name, a value ECS accepts for
/// it, and the owners ECS allows (the Fargate retirement period is the account's alone;
/// guardDutyActivate is AWS's).
pub fn valid_setting(
    name: Option<&str>,
    value: Option<&str>,
    owner: &SettingOwner,
) -> Result<(SettingName, String), Error> {
    let name = setting_name(name)?;
    if name == SettingName::GuardDutyActivate {
        return Err(Error::invalid(
            "guardDutyActivate is managed by AWS (read-only): it cannot be set",
        ));
    }
    let value = match value {
        Some(v) if !v.is_empty() => v,
        _ => return Err(Error::invalid("value is required")),
    };
    if !name.values().contains(&value) {
        return Err(Error::invalid(format!(
            "'{}' is not a valid value for {name}; valid values are {}",
            value.chars().take(100).collect::<String>(),
            name.values().join(", ")
        )));
    }
    if name == SettingName::FargateTaskRetirementWaitPeriod && *owner != SettingOwner::Account {
        return Err(Error::invalid(
            "fargateTaskRetirementWaitPeriod can only be set for the account (the root user, or \
             PutAccountSettingDefault)",
        ));
    }
    Ok((name, value.to_owned()))
}

/// A required setting name.
pub fn setting_name(name: Option<&str>) -> Result<SettingName, Error> {
    match name {
        None | Some("") => Err(Error::invalid("name is required")),
        Some(n) => SettingName::parse(n).ok_or_else(|| {
            Error::invalid(format!(
                "'{}' is not an account setting; valid names are {}",
                n.chars().take(100).collect::<String>(),
                SettingName::ALL
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ACCOUNT: &str = "000000000000";

    #[test]
    fn principals_are_users_roles_or_the_account() {
        assert_eq!(
            SettingOwner::parse("arn:aws:iam::000000000000:user/alice", ACCOUNT),
            Ok(SettingOwner::Principal("user/alice".into()))
        );
        assert_eq!(
            SettingOwner::parse("arn:aws:iam::000000000000:role/deploy", ACCOUNT),
            Ok(SettingOwner::Principal("role/deploy".into()))
        );
        assert_eq!(
            SettingOwner::parse("arn:aws:iam::000000000000:root", ACCOUNT),
            Ok(SettingOwner::Account)
        );
        for bad in [
            "alice",
            "arn:aws:iam::000000000000:group/ops",
            "arn:aws:iam::000000000000:user/",
            "arn:aws:ecs:us-east-1:000000000000:cluster/x",
            "arn:aws:iam::111111111111:user/alice",
        ] {
            assert!(SettingOwner::parse(bad, ACCOUNT).is_err(), "{bad}");
        }
        assert_eq!(
            SettingOwner::Principal("user/alice".into()).arn("aws", ACCOUNT),
            "arn:aws:iam::000000000000:user/alice"
        );
    }

    #[test]
    fn values_are_checked_per_name() {
        let alice = SettingOwner::Principal("user/alice".into());
        assert_eq!(
            valid_setting(Some("containerInsights"), Some("enhanced"), &alice),
            Ok((SettingName::ContainerInsights, "enhanced".into()))
        );
        for (name, value) in [
            ("containerInsights", "on"),
            ("tagResourceAuthorization", "enabled"),
            ("fargateTaskRetirementWaitPeriod", "3"),
            ("awsvpcTrunking", ""),
            ("nope", "enabled"),
            ("guardDutyActivate", "enabled"),
        ] {
            assert!(
                valid_setting(Some(name), Some(value), &SettingOwner::Account).is_err(),
                "{name}={value}"
            );
        }
        assert!(
            valid_setting(Some("fargateTaskRetirementWaitPeriod"), Some("14"), &alice).is_err(),
            "only the account sets the retirement period"
        );
        assert!(
            valid_setting(
                Some("fargateTaskRetirementWaitPeriod"),
                Some("14"),
                &SettingOwner::Account
            )
            .is_ok()
        );
    }

    #[test]
    fn the_names_are_the_models() {
        let names: Vec<&str> = SettingName::ALL.iter().map(|n| n.as_str()).collect();
        assert_eq!(names, berth_api::types::enums::SETTING_NAME);
    }

    #[test]
    fn every_name_has_a_default_it_accepts() {
        for name in SettingName::ALL {
            assert!(name.values().contains(&name.aws_default()), "{name}");
        }
        assert_eq!(SettingName::GuardDutyActivate.kind(), "aws_managed");
    }
}
