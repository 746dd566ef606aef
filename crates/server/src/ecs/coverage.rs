//! Which ECS operations berth answers, and why it refuses the others.
//!
//! ```text
//!  botocore's model (types::model::OPERATIONS, generated)
//!      ├─ dispatched by ecs/mod.rs (IMPLEMENTED, from the dispatch list itself)
//!      ├─ REFUSED here, each with the reason a caller reads in UnsupportedFeatureException
//!      └─ NOTES (in the tests): what to know of an implemented one (a choice the reference leaves open)
//!  ─► docs/ecs-coverage.md (rendered by `table`, kept current by the tests below)
//! ```
//! ECS grew operations that only mean something on AWS (gateways, Express Mode, SSM sessions,
//! ENI attachments, managed daemons); a client calling one of them gets an answer that says so
//! rather than "unknown operation", and an operation berth has not built yet says that. The
//! tests fail when the model (the botocore release the Python tests pin) has an operation that
//! is neither dispatched nor refused, and when the table in the repository is stale.

use berth_api::{EcsError, ErrorCode};

/// Why berth does not answer an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// It needs something only AWS runs.
    AwsOnly(&'static str),
}

impl Refusal {
    fn reason(self) -> &'static str {
        match self {
            Refusal::AwsOnly(why) => why,
        }
    }
}

const GATEWAY: Refusal = Refusal::AwsOnly(
    "ECS gateways route traffic to services through AWS-managed load balancing and VPC \
     networking, which berth does not run",
);
const EXPRESS: Refusal = Refusal::AwsOnly(
    "Express Mode services are provisioned with AWS load balancers, VPC networking and Fargate \
     capacity, none of which berth has",
);
const DAEMON: Refusal = Refusal::AwsOnly(
    "ECS daemons run on ECS Managed Instances capacity that AWS provisions; on berth, a service \
     with schedulingStrategy DAEMON runs one task on every instance",
);

/// Every operation of the model that berth does not dispatch, and why.
pub(crate) const REFUSED: &[(&str, Refusal)] = &[
    ("AssociateGatewayWithCluster", GATEWAY),
    (
        "ContinueServiceDeployment",
        Refusal::AwsOnly(
            "it resumes a deployment paused at a lifecycle hook, which AWS runs as a Lambda \
             function; berth's deployments have no hooks",
        ),
    ),
    ("CreateDaemon", DAEMON),
    ("CreateExpressGatewayService", EXPRESS),
    ("CreateGateway", GATEWAY),
    ("DeleteDaemon", DAEMON),
    ("DeleteDaemonTaskDefinition", DAEMON),
    ("DeleteExpressGatewayService", EXPRESS),
    ("DeleteGateway", GATEWAY),
    ("DescribeDaemon", DAEMON),
    ("DescribeDaemonDeployments", DAEMON),
    ("DescribeDaemonRevisions", DAEMON),
    ("DescribeDaemonTaskDefinition", DAEMON),
    ("DescribeExpressGatewayService", EXPRESS),
    ("DescribeGateway", GATEWAY),
    ("DescribeGatewayResources", GATEWAY),
    ("DescribeGatewayRoute", GATEWAY),
    ("DisassociateGatewayFromCluster", GATEWAY),
    (
        "ExecuteCommand",
        Refusal::AwsOnly(
            "ECS Exec opens an AWS Systems Manager (SSM) session into the container; berth has \
             no SSM (its task logs are served by GET /v1/tasks/{id}/logs)",
        ),
    ),
    ("ListDaemonDeployments", DAEMON),
    ("ListDaemonTaskDefinitions", DAEMON),
    ("ListDaemons", DAEMON),
    ("ListGatewayClusterAssociations", GATEWAY),
    ("ListGatewayRoutes", GATEWAY),
    ("ListGateways", GATEWAY),
    (
        "ListServicesByNamespace",
        Refusal::AwsOnly(
            "namespaces are AWS Cloud Map namespaces (Service Connect), which berth does not run",
        ),
    ),
    ("RegisterDaemonTaskDefinition", DAEMON),
    (
        "SubmitAttachmentStateChanges",
        Refusal::AwsOnly(
            "it reports elastic network interface attachments (awsvpc networking in an AWS VPC); \
             berth's agents attach none",
        ),
    ),
    (
        "UpdateContainerAgent",
        Refusal::AwsOnly(
            "it updates the Amazon ECS container agent through AWS Systems Manager; a berth \
             agent is updated by replacing the berth binary and restarting it (its tasks keep \
             running)",
        ),
    ),
    ("UpdateDaemon", DAEMON),
    ("UpdateExpressGatewayService", EXPRESS),
    ("UpdateGateway", GATEWAY),
];

/// The answer to an operation of the model that berth refuses, or `None` if it does not.
pub(crate) fn refusal(op: &str) -> Option<EcsError> {
    let (_, refusal) = REFUSED.iter().find(|(name, _)| *name == op)?;
    let why = refusal.reason();
    Some(EcsError::new(
        ErrorCode::UnsupportedFeatureException,
        format!("{op} is not supported by berth: {why}."),
    ))
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use berth_api::types::model;

    use super::*;
    use crate::ecs::IMPLEMENTED;

    /// What a caller of an implemented operation should know where berth's answer rests on a
    /// choice the API reference leaves open, or differs in extent from AWS's; shown in the
    /// coverage table.
    const NOTES: &[(&str, &str)] = &[
        (
            "DeleteCapacityProvider",
            "as in ECS, a provider a cluster still has is not deleted: the answer is the \
             provider, ACTIVE, `updateStatus` DELETE_FAILED with the reason (no error); a deleted \
             provider stays describable (INACTIVE) for the server's inactive retention (1 hour), \
             at most 100 of them, the longest-deleted forgotten first",
        ),
        (
            "DescribeServiceDeployments",
            "`lifecycleStage` of a rolling deployment: PRE_SCALE_UP (no task of the target yet; \
             RECONCILE_SERVICE when several source revisions still run tasks), SCALE_UP (the \
             target below its count), CLEAN_UP (the target at its count while old revisions \
             scale to 0, and once SUCCESSFUL); none for stopped or rolled-back deployments. The \
             traffic-shift and bake stages are blue/green's",
        ),
        (
            "DescribeTaskSets",
            "`tags` only with `include` TAGS; a deleted (INACTIVE) service is \
             ServiceNotActiveException",
        ),
        (
            "ListServiceDeployments",
            "a service's live deployments and its 20 most recently finished ones (ECS keeps 90 \
             days of history): the service's stored value holds them, and the bound keeps every \
             write of it small",
        ),
        (
            "UpdateCapacityProvider",
            "changes only the settings given; within `managedScaling` member by member, the \
             members left out keeping their values",
        ),
    ];

    /// The coverage table (docs/ecs-coverage.md) for the operations berth dispatches.
    fn table(implemented: &[&str]) -> String {
        let mut out = String::new();
        let refused = |op: &str| REFUSED.iter().find(|(name, _)| *name == op).map(|r| r.1);
        let count = |f: &dyn Fn(&str) -> bool| model::OPERATIONS.iter().filter(|op| f(op)).count();
        out.push_str("# ECS API coverage\n\n");
        out.push_str(&format!(
            "Every operation of botocore {}'s ECS model (the release the Python tests pin), and what \
             berth does with it. Generated by `crates/server/src/ecs/coverage.rs`; its tests fail \
             when this file is stale (`BERTH_UPDATE_COVERAGE=1 cargo nextest run -p berth-server \
             coverage` rewrites it). A refused operation is answered with \
             `UnsupportedFeatureException` and the reason below.\n\n",
            model::BOTOCORE_VERSION
        ));
        out.push_str(&format!(
            "{} operations: {} implemented, {} refused as AWS-only.\n\n",
            model::OPERATIONS.len(),
            count(&|op| implemented.contains(&op)),
            count(&|op| refused(op).is_some()),
        ));
        out.push_str("| Operation | berth | Why, or what to know |\n|---|---|---|\n");
        for op in model::OPERATIONS {
            let note = NOTES.iter().find(|(name, _)| name == op).map(|n| n.1);
            let (status, why) = match refused(op) {
                _ if implemented.contains(op) => ("implemented", note.unwrap_or_default()),
                Some(r @ Refusal::AwsOnly(_)) => ("refused: AWS-only", r.reason()),
                None => ("**neither implemented nor refused**", ""),
            };
            out.push_str(&format!("| {op} | {status} | {why} |\n"));
        }
        out
    }

    fn repo() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
    }

    #[test]
    fn the_model_is_the_pinned_botocore() {
        let requirements = std::fs::read_to_string(repo().join("tests/e2e/requirements.txt"))
            .expect("tests/e2e/requirements.txt");
        let pinned = requirements
            .lines()
            .find_map(|l| l.trim().strip_prefix("botocore=="))
            .expect("tests/e2e/requirements.txt pins botocore");
        assert_eq!(
            model::BOTOCORE_VERSION,
            pinned,
            "crates/api/src/types.rs was generated from botocore {}, but the tests pin {pinned}: \
             regenerate it with tools/gen-ecs-types.py from botocore {pinned}",
            model::BOTOCORE_VERSION
        );
    }

    #[test]
    fn every_operation_of_the_model_is_implemented_or_refused() {
        let mut neither = Vec::new();
        for op in model::OPERATIONS {
            let implemented = IMPLEMENTED.contains(op);
            let refused = REFUSED.iter().any(|(name, _)| name == op);
            assert!(
                !(implemented && refused),
                "{op} is both dispatched and refused: drop it from REFUSED"
            );
            if !implemented && !refused {
                neither.push(*op);
            }
        }
        assert!(
            neither.is_empty(),
            "operations in botocore {}'s ECS model that berth neither dispatches nor refuses with \
             a reason (add a handler in ecs/mod.rs, or an entry in coverage::REFUSED): {neither:?}",
            model::BOTOCORE_VERSION
        );
        for op in IMPLEMENTED
            .iter()
            .chain(REFUSED.iter().map(|(name, _)| name))
        {
            assert!(
                model::OPERATIONS.contains(op),
                "{op} is not an operation of the model"
            );
        }
        for (op, _) in NOTES {
            assert!(
                IMPLEMENTED.contains(op),
                "{op} has a note but is not dispatched"
            );
        }
    }

    #[test]
    fn a_refusal_says_why() {
        let e = refusal("ExecuteCommand").expect("refused");
        assert_eq!(e.code, ErrorCode::UnsupportedFeatureException);
        assert!(e.message.contains("Systems Manager"), "{}", e.message);
        let e = refusal("UpdateContainerAgent").expect("refused");
        assert!(
            e.message.contains("not supported by berth:"),
            "{}",
            e.message
        );
        assert!(refusal("RunTask").is_none());
        assert!(refusal("NoSuchOperation").is_none());
    }

    #[test]
    fn the_table_in_the_repo_is_current() {
        let path = repo().join("docs/ecs-coverage.md");
        let table = table(IMPLEMENTED);
        if std::env::var_os("BERTH_UPDATE_COVERAGE").is_some() {
            std::fs::create_dir_all(path.parent().expect("docs/")).expect("docs/");
            std::fs::write(&path, &table).expect("write docs/ecs-coverage.md");
        }
        let in_repo = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            in_repo == table,
            "docs/ecs-coverage.md is stale; rewrite it with \
             BERTH_UPDATE_COVERAGE=1 cargo nextest run -p berth-server coverage"
        );
    }
}
