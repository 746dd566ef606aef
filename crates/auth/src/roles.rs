//! berth's own action names, the host privileges, and the ready-made roles.
//!
//! ECS operations are authorized as `ecs:<Operation>`, EventBridge Scheduler's as
//! `scheduler:<Operation>`, Cloud Map's as `servicediscovery:<Operation>` (the discovery feed
//! and `/v1/discover` as `servicediscovery:DiscoverInstances`), Mesos scheduler calls as
//! `mesos:<Call>`; what berth adds beyond these is named here, once, so the server and the
//! roles cannot disagree on a spelling.
//!
//! Host privileges are separate actions: a task definition that asks for any of them is
//! refused unless the caller's policy allows each one it asks for. Only `admin` has them.

use std::fmt;

use crate::policy::{Effect, OneOrMany, Policy, Statement};

/// Actions of berth's native API (`/v1/...`).
pub mod action {
    pub const GET_HISTORY: &str = "berth:GetHistory";
    pub const WATCH: &str = "berth:Watch";
    pub const DRY_RUN_PLACEMENT: &str = "berth:DryRunPlacement";
    pub const GET_TASK_LOGS: &str = "berth:GetTaskLogs";
    pub const CREATE_CREDENTIAL: &str = "berth:CreateCredential";
    pub const LIST_CREDENTIALS: &str = "berth:ListCredentials";
    pub const DELETE_CREDENTIAL: &str = "berth:DeleteCredential";
    pub const CREATE_JOIN_TOKEN: &str = "berth:CreateJoinToken";
    pub const LIST_JOIN_TOKENS: &str = "berth:ListJoinTokens";
    pub const DELETE_JOIN_TOKEN: &str = "berth:DeleteJoinToken";
    /// An agent exchanging a join token for its instance's credential.
    pub const JOIN_AGENT: &str = "berth:JoinAgent";
    /// A server exchanging a server join token for the cluster's secret.
    pub const JOIN_SERVER: &str = "berth:JoinServer";
    /// An agent's long-poll for its assignments (also its heartbeat).
    pub const POLL_ASSIGNMENTS: &str = "berth:PollAssignments";
    /// An agent's container health report.
    pub const REPORT_HEALTH: &str = "berth:ReportHealth";
    /// The servers of the Raft group, who leads, how far each has replicated.
    pub const LIST_RAFT_PEERS: &str = "berth:ListRaftPeers";
    /// Taking a server out of the Raft group.
    pub const REMOVE_RAFT_PEER: &str = "berth:RemoveRaftPeer";
    /// Handing the Raft group's leadership to another server.
    pub const TRANSFER_RAFT_LEADERSHIP: &str = "berth:TransferRaftLeadership";
    /// Reading or changing another principal's account settings, or the root user's (the
    /// account default), with `principalArn` (ECS allows that to the root user only).
    pub const MANAGE_ACCOUNT_SETTINGS: &str = "berth:ManageAccountSettings";
    /// Scraping a server's Prometheus metrics (`GET /metrics`).
    pub const GET_METRICS: &str = "berth:GetMetrics";
}

/// What a task can ask of its host beyond an ordinary container. Each is its own action, so a
/// policy can grant one without the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Privilege {
    /// `privileged: true`, or security profiles turned off (`dockerSecurityOptions`).
    PrivilegedContainer,
    /// Host paths as volumes (`host.sourcePath`, or a local-driver volume bound to a device
    /// or path).
    HostPath,
    /// The host's network, PID or IPC namespace.
    HostNamespaces,
    /// Linux capabilities beyond Docker's default set.
    AddCapabilities,
    /// Host devices in the container.
    HostDevices,
    /// Running as a plain host process (berth's process runtime), outside any container.
    HostProcess,
}

impl Privilege {
    pub const ALL: [Privilege; 6] = [
        Privilege::PrivilegedContainer,
        Privilege::HostPath,
        Privilege::HostNamespaces,
        Privilege::AddCapabilities,
        Privilege::HostDevices,
        Privilege::HostProcess,
    ];

    /// The policy action that grants it.
    pub fn action(self) -> &'static str {
        match self {
            Privilege::PrivilegedContainer => "berth:RunPrivilegedContainer",
            Privilege::HostPath => "berth:MountHostPath",
            Privilege::HostNamespaces => "berth:UseHostNamespaces",
            Privilege::AddCapabilities => "berth:AddLinuxCapabilities",
            Privilege::HostDevices => "berth:MapHostDevices",
            Privilege::HostProcess => "berth:RunHostProcess",
        }
    }

    /// What asks for it, in words.
    pub fn describe(self) -> &'static str {
        match self {
            Privilege::PrivilegedContainer => {
                "privileged containers (privileged: true, or unconfined security options)"
            }
            Privilege::HostPath => "host path volumes",
            Privilege::HostNamespaces => "the host's network, PID or IPC namespace",
            Privilege::AddCapabilities => "added Linux capabilities",
            Privilege::HostDevices => "host devices",
            Privilege::HostProcess => "host processes (the process runtime)",
        }
    }
}

/// The ready-made policies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// Everything, host privileges included.
    Admin,
    /// Everything inside one cluster, and task definitions; no host privileges, no
    /// credentials.
    Operator { cluster: String },
    /// Describe, list, history, logs and dry runs everywhere; no writes.
    ReadOnly,
    /// A Mesos framework: the scheduler calls, and command tasks as host processes (as a
    /// Mesos agent runs them).
    Framework,
}

/// Why a role name was not understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "'{0}' is not a role; use admin, read-only, framework or operator:CLUSTER (or give a policy document)"
)]
pub struct RoleError(String);

impl Role {
    /// `admin`, `read-only`, `framework` or `operator:CLUSTER`.
    pub fn parse(name: &str) -> Result<Role, RoleError> {
        match name {
            "admin" => Ok(Role::Admin),
            "read-only" => Ok(Role::ReadOnly),
            "framework" => Ok(Role::Framework),
            other => match other.strip_prefix("operator:") {
                Some(cluster)
                    if !cluster.is_empty()
                        && cluster.len() <= 255
                        && cluster
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
                {
                    Ok(Role::Operator {
                        cluster: cluster.to_owned(),
                    })
                }
                _ => Err(RoleError(other.chars().take(64).collect())),
            },
        }
    }

    /// The role's policy.
    pub fn policy(&self) -> Policy {
        let statements = match self {
            Role::Admin => vec![allow(&["*"], &["*"])],
            Role::Operator { cluster } => vec![
                in_cluster(
                    &[
                        "ecs:*",
                        // Schedules whose target is the cluster.
                        "scheduler:*",
                        action::GET_HISTORY,
                        action::DRY_RUN_PLACEMENT,
                        action::GET_TASK_LOGS,
                    ],
                    cluster,
                ),
                allow(
                    &[
                        "ecs:DeregisterTaskDefinition",
                        "ecs:DeleteTaskDefinitions",
                        "ecs:DescribeTaskDefinition",
                        "ecs:TagResource",
                        "ecs:UntagResource",
                        "ecs:ListTagsForResource",
                        action::GET_HISTORY,
                    ],
                    &["arn:aws:ecs:*:*:task-definition/*"],
                ),
                // Actions on no particular resource.
                allow(
                    &[
                        "ecs:RegisterTaskDefinition",
                        "ecs:ListTaskDefinitions",
                        "ecs:ListTaskDefinitionFamilies",
                        "ecs:ListClusters",
                        // Account settings: the caller's own (others' need admin).
                        "ecs:PutAccountSetting",
                        "ecs:DeleteAccountSetting",
                        "ecs:ListAccountSettings",
                        // Lists only the schedules the caller may get.
                        "scheduler:ListSchedules",
                        // Namespaces are the account's, not a cluster's: an operator may
                        // make and read them; deleting one in use is refused for everyone.
                        "servicediscovery:*",
                        action::GET_METRICS,
                    ],
                    &["*"],
                ),
            ],
            Role::ReadOnly => vec![allow(
                &[
                    "ecs:Describe*",
                    "ecs:List*",
                    "scheduler:Get*",
                    "scheduler:List*",
                    "servicediscovery:Get*",
                    "servicediscovery:List*",
                    "servicediscovery:DiscoverInstances",
                    action::GET_HISTORY,
                    action::WATCH,
                    action::DRY_RUN_PLACEMENT,
                    action::GET_TASK_LOGS,
                    action::LIST_RAFT_PEERS,
                    action::GET_METRICS,
                ],
                &["*"],
            )],
            Role::Framework => vec![allow(&["mesos:*", Privilege::HostProcess.action()], &["*"])],
        };
        Policy {
            version: Some("2012-10-17".into()),
            id: None,
            statement: OneOrMany::Many(statements),
        }
    }
}

/// The policy of an agent's own credential: the agent protocol, in its cluster. What it may
/// touch inside the cluster (its own instance and tasks only) the server checks against the
/// instance the credential is bound to.
///
/// It may also read every namespace's instances: the agent's DNS server answers for all of
/// them, since a task may call a service of another cluster.
pub fn agent_policy(cluster: &str) -> Policy {
    Policy {
        version: Some("2012-10-17".into()),
        id: None,
        statement: OneOrMany::Many(vec![
            in_cluster(
                &[
                    "ecs:RegisterContainerInstance",
                    "ecs:SubmitTaskStateChange",
                    "ecs:SubmitContainerStateChange",
                    "ecs:DiscoverPollEndpoint",
                    action::POLL_ASSIGNMENTS,
                    action::REPORT_HEALTH,
                ],
                cluster,
            ),
            allow(&["servicediscovery:DiscoverInstances"], &["*"]),
        ]),
    }
}

/// The policy of an agent join token: joining, in `cluster` if it names one.
pub fn agent_join_policy(cluster: Option<&str>) -> Policy {
    single(match cluster {
        Some(c) => in_cluster(&[action::JOIN_AGENT], c),
        None => allow(&[action::JOIN_AGENT], &["*"]),
    })
}

/// The policy of a server join token.
pub fn server_join_policy() -> Policy {
    single(allow(&[action::JOIN_SERVER], &["*"]))
}

fn single(statement: Statement) -> Policy {
    Policy {
        version: Some("2012-10-17".into()),
        id: None,
        statement: OneOrMany::Many(vec![statement]),
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Role::Admin => f.write_str("admin"),
            Role::ReadOnly => f.write_str("read-only"),
            Role::Framework => f.write_str("framework"),
            Role::Operator { cluster } => write!(f, "operator:{cluster}"),
        }
    }
}

fn list(values: &[&str]) -> OneOrMany<String> {
    match values {
        [one] => OneOrMany::One((*one).to_owned()),
        many => OneOrMany::Many(many.iter().map(|s| (*s).to_owned()).collect()),
    }
}

fn allow(actions: &[&str], resources: &[&str]) -> Statement {
    Statement {
        sid: None,
        effect: Effect::Allow,
        action: Some(list(actions)),
        not_action: None,
        resource: Some(list(resources)),
        not_resource: None,
        condition: None,
    }
}

fn in_cluster(actions: &[&str], cluster: &str) -> Statement {
    let condition = [(
        "ArnLike".to_owned(),
        [(
            "ecs:cluster".to_owned(),
            OneOrMany::One(format!("arn:aws:ecs:*:*:cluster/{cluster}")),
        )]
        .into_iter()
        .collect(),
    )]
    .into_iter()
    .collect();
    Statement {
        condition: Some(condition),
        ..allow(actions, &["*"])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Decision;

    const A: &str = "arn:aws:ecs:us-east-1:000000000000:cluster/a";
    const B: &str = "arn:aws:ecs:us-east-1:000000000000:cluster/b";
    const TD: &str = "arn:aws:ecs:us-east-1:000000000000:task-definition/web:1";

    #[test]
    fn every_role_policy_is_valid_and_round_trips() {
        for role in [
            Role::Admin,
            Role::ReadOnly,
            Role::Framework,
            Role::Operator {
                cluster: "a".into(),
            },
        ] {
            let p = role.policy();
            p.check().unwrap_or_else(|e| panic!("{role}: {e}"));
            let text = serde_json::to_string(&p).expect("json");
            assert_eq!(Policy::parse(&text).expect("parse"), p);
            assert_eq!(Role::parse(&role.to_string()), Ok(role));
        }
        assert!(Role::parse("root").is_err());
        assert!(Role::parse("operator:").is_err());
        assert!(Role::parse("operator:a/b").is_err());
    }

    #[test]
    fn only_admin_has_host_privileges() {
        for privilege in Privilege::ALL {
            let admin = Role::Admin.policy();
            assert_eq!(
                admin.evaluate(privilege.action(), "*", &[("ecs:cluster", A)]),
                Decision::Allow
            );
            for role in [
                Role::ReadOnly,
                Role::Operator {
                    cluster: "a".into(),
                },
            ] {
                assert_ne!(
                    role.policy()
                        .evaluate(privilege.action(), "*", &[("ecs:cluster", A)]),
                    Decision::Allow,
                    "{role} must not have {}",
                    privilege.action()
                );
            }
        }
    }

    #[test]
    fn an_operator_acts_in_its_cluster_only() {
        let op = Role::Operator {
            cluster: "a".into(),
        }
        .policy();
        assert!(
            op.authorize("ecs:RunTask", &[TD], &[("ecs:cluster", A)])
                .is_ok()
        );
        assert!(
            op.authorize("ecs:RunTask", &[TD], &[("ecs:cluster", B)])
                .is_err()
        );
        assert!(
            op.authorize("ecs:DeleteCluster", &[A], &[("ecs:cluster", A)])
                .is_ok()
        );
        assert!(
            op.authorize("ecs:DeleteCluster", &[B], &[("ecs:cluster", B)])
                .is_err()
        );
        assert!(
            op.authorize("ecs:RegisterTaskDefinition", &["*"], &[])
                .is_ok()
        );
        assert!(op.authorize("ecs:ListClusters", &["*"], &[]).is_ok());
        assert!(
            op.authorize(action::CREATE_CREDENTIAL, &["*"], &[])
                .is_err(),
            "operators do not manage credentials"
        );
        assert!(
            op.authorize(action::WATCH, &["*"], &[]).is_err(),
            "the watch spans clusters"
        );
    }

    #[test]
    fn agents_and_join_tokens_do_only_their_job() {
        let agent = agent_policy("a");
        assert!(
            agent
                .authorize("ecs:SubmitTaskStateChange", &["*"], &[("ecs:cluster", A)])
                .is_ok()
        );
        assert!(
            agent
                .authorize("ecs:SubmitTaskStateChange", &["*"], &[("ecs:cluster", B)])
                .is_err()
        );
        assert!(
            agent
                .authorize("ecs:RunTask", &[TD], &[("ecs:cluster", A)])
                .is_err()
        );
        let join = agent_join_policy(Some("a"));
        assert!(
            join.authorize(action::JOIN_AGENT, &["*"], &[("ecs:cluster", A)])
                .is_ok()
        );
        assert!(
            join.authorize(action::JOIN_AGENT, &["*"], &[("ecs:cluster", B)])
                .is_err()
        );
        assert!(join.authorize("ecs:ListClusters", &["*"], &[]).is_err());
        assert!(
            agent_join_policy(None)
                .authorize(action::JOIN_AGENT, &["*"], &[("ecs:cluster", B)])
                .is_ok()
        );
        assert!(
            server_join_policy()
                .authorize(action::JOIN_AGENT, &["*"], &[])
                .is_err()
        );
        for p in [agent, join, server_join_policy()] {
            p.check().expect("valid");
        }
    }

    #[test]
    fn people_who_watch_the_cluster_may_scrape_its_metrics() {
        for role in [
            Role::Admin,
            Role::ReadOnly,
            Role::Operator {
                cluster: "a".into(),
            },
        ] {
            assert!(
                role.policy()
                    .authorize(action::GET_METRICS, &["*"], &[])
                    .is_ok(),
                "{role} may scrape"
            );
        }
        for policy in [Role::Framework.policy(), agent_policy("a")] {
            assert!(
                policy
                    .authorize(action::GET_METRICS, &["*"], &[("ecs:cluster", A)])
                    .is_err()
            );
        }
    }

    #[test]
    fn account_settings_are_ones_own_unless_admin() {
        let op = Role::Operator {
            cluster: "a".into(),
        }
        .policy();
        for own in [
            "ecs:PutAccountSetting",
            "ecs:DeleteAccountSetting",
            "ecs:ListAccountSettings",
        ] {
            assert!(op.authorize(own, &["*"], &[]).is_ok(), "{own}");
        }
        for others in [
            "ecs:PutAccountSettingDefault",
            action::MANAGE_ACCOUNT_SETTINGS,
        ] {
            assert!(op.authorize(others, &["*"], &[]).is_err(), "{others}");
            assert!(
                Role::ReadOnly
                    .policy()
                    .authorize(others, &["*"], &[])
                    .is_err()
            );
            assert!(Role::Admin.policy().authorize(others, &["*"], &[]).is_ok());
        }
    }

    #[test]
    fn read_only_reads() {
        let ro = Role::ReadOnly.policy();
        assert!(
            ro.authorize("ecs:DescribeTasks", &["*"], &[("ecs:cluster", A)])
                .is_ok()
        );
        assert!(ro.authorize("ecs:ListClusters", &["*"], &[]).is_ok());
        assert!(
            ro.authorize("ecs:RunTask", &[TD], &[("ecs:cluster", A)])
                .is_err()
        );
        assert!(
            ro.authorize("ecs:RegisterTaskDefinition", &["*"], &[])
                .is_err()
        );
    }
}
