//! ARNs: rendering for responses and parsing of "short name or ARN" references.
//!
//! State stores names and ids only; an ARN is rendered per response from the request's
//! context (region from the SigV4 scope, the server's account id). Every ECS operation that
//! takes a cluster, task, container instance, task definition or service accepts either the
//! short form or the full ARN, so every reference goes through one of the `parse_*` functions.
//!
//! ```text
//! arn:aws:ecs:{region}:{account}:cluster/{name}
//! arn:aws:ecs:{region}:{account}:task/{cluster}/{id}
//! arn:aws:ecs:{region}:{account}:container-instance/{cluster}/{id}
//! arn:aws:ecs:{region}:{account}:task-definition/{family}:{revision}
//! arn:aws:ecs:{region}:{account}:service/{cluster}/{name}
//! arn:aws:ecs:{region}:{account}:task-set/{cluster}/{service}/{id}   (id: ecs-svc/…)
//! arn:aws:ecs:{region}:{account}:service-deployment/{cluster}/{service}/{digits}
//! arn:aws:ecs:{region}:{account}:service-revision/{cluster}/{service}/{digits}
//! ```
//! A berth deployment is both a service deployment and the service revision it deploys, so
//! both ARNs carry the digits of its `ecs-svc/` id.

use std::fmt;

use crate::id::{InstanceId, TaskId};

/// What a response's ARNs are rendered with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArnContext {
    pub partition: String,
    pub region: String,
    pub account: String,
}

impl ArnContext {
    pub fn new(region: impl Into<String>, account: impl Into<String>) -> Self {
        Self {
            partition: "aws".into(),
            region: region.into(),
            account: account.into(),
        }
    }

    fn prefix(&self) -> String {
        format!(
            "arn:{}:ecs:{}:{}:",
            self.partition, self.region, self.account
        )
    }

    pub fn cluster(&self, name: &str) -> String {
        format!("{}cluster/{name}", self.prefix())
    }

    pub fn task(&self, cluster: &str, id: TaskId) -> String {
        format!("{}task/{cluster}/{id}", self.prefix())
    }

    pub fn container_instance(&self, cluster: &str, id: InstanceId) -> String {
        format!("{}container-instance/{cluster}/{id}", self.prefix())
    }

    pub fn task_definition(&self, family: &str, revision: u32) -> String {
        format!("{}task-definition/{family}:{revision}", self.prefix())
    }

    pub fn service(&self, cluster: &str, name: &str) -> String {
        format!("{}service/{cluster}/{name}", self.prefix())
    }

    /// A task set's ARN; its id (`ecs-svc/…`) keeps its slash.
    pub fn task_set(&self, cluster: &str, service: &str, id: &str) -> String {
        format!("{}task-set/{cluster}/{service}/{id}", self.prefix())
    }

    /// A service deployment's ARN, from the deployment's `ecs-svc/` id.
    pub fn service_deployment(&self, cluster: &str, service: &str, deployment: &str) -> String {
        let digits = deployment.trim_start_matches("ecs-svc/");
        format!(
            "{}service-deployment/{cluster}/{service}/{digits}",
            self.prefix()
        )
    }

    /// The ARN of the service revision a deployment deploys.
    pub fn service_revision(&self, cluster: &str, service: &str, deployment: &str) -> String {
        let digits = deployment.trim_start_matches("ecs-svc/");
        format!(
            "{}service-revision/{cluster}/{service}/{digits}",
            self.prefix()
        )
    }

    pub fn capacity_provider(&self, name: &str) -> String {
        format!("{}capacity-provider/{name}", self.prefix())
    }

    /// A container's ARN: `container/{cluster}/{task id}/{container name}`. ECS puts a UUID
    /// last; berth's containers are identified by task and name, which is unique per task.
    pub fn container(&self, cluster: &str, task: TaskId, name: &str) -> String {
        format!("{}container/{cluster}/{task}/{name}", self.prefix())
    }
}

/// A reference that is neither a valid short form nor a valid ARN of the expected kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct RefError {
    pub kind: &'static str,
    pub value: String,
}

impl fmt::Display for RefError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown: String = self.value.chars().take(200).collect();
        write!(
            f,
            "'{shown}' is not a valid {} identifier or ARN",
            self.kind
        )
    }
}

fn err(kind: &'static str, value: &str) -> RefError {
    RefError {
        kind,
        value: value.to_owned(),
    }
}

/// The resource part of an ECS ARN (`cluster/x`, `task/c/id`, ...), or `None` when `s` is not
/// an ARN at all. An ARN of another service is an error.
fn resource_part<'a>(s: &'a str, kind: &'static str) -> Result<Option<&'a str>, RefError> {
    if !s.starts_with("arn:") {
        return Ok(None);
    }
    let mut parts = s.splitn(6, ':');
    let (_arn, partition, service, _region, _account, resource) = (
        parts.next(),
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
        parts.next(),
        parts.next(),
        parts.next(),
    );
    match resource {
        Some(r) if !partition.is_empty() && service == "ecs" => Ok(Some(r)),
        _ => Err(err(kind, s)),
    }
}

/// A cluster name: letters, digits, hyphens and underscores, 1 to 255 characters.
pub fn valid_cluster_name(name: &str) -> bool {
    valid_name(name)
}

/// A task definition family: same alphabet and length as a cluster name.
pub fn valid_family(name: &str) -> bool {
    valid_name(name)
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A cluster reference: `name` or a cluster ARN. Returns the name.
pub fn parse_cluster(s: &str) -> Result<String, RefError> {
    let name = match resource_part(s, "cluster")? {
        Some(r) => r
            .strip_prefix("cluster/")
            .ok_or_else(|| err("cluster", s))?,
        None => s,
    };
    if valid_cluster_name(name) {
        Ok(name.to_owned())
    } else {
        Err(err("cluster", s))
    }
}

/// A task reference: an id, or a task ARN in the long (`task/cluster/id`) or old (`task/id`)
/// format. Returns the cluster when the ARN names one.
pub fn parse_task(s: &str) -> Result<(Option<String>, TaskId), RefError> {
    parse_scoped_id(s, "task", "task").map(|(c, n)| (c, TaskId(n)))
}

/// A container-instance reference, like [`parse_task`].
pub fn parse_container_instance(s: &str) -> Result<(Option<String>, InstanceId), RefError> {
    parse_scoped_id(s, "container-instance", "container instance").map(|(c, n)| (c, InstanceId(n)))
}

fn parse_scoped_id(
    s: &str,
    prefix: &str,
    kind: &'static str,
) -> Result<(Option<String>, u128), RefError> {
    let (cluster, id) = match resource_part(s, kind)? {
        None => (None, s),
        Some(r) => {
            let rest = r
                .strip_prefix(prefix)
                .and_then(|r| r.strip_prefix('/'))
                .ok_or_else(|| err(kind, s))?;
            match rest.split_once('/') {
                Some((cluster, id)) if valid_cluster_name(cluster) => {
                    (Some(cluster.to_owned()), id)
                }
                Some(_) => return Err(err(kind, s)),
                None => (None, rest),
            }
        }
    };
    let id = id.parse::<TaskId>().map_err(|_| err(kind, s))?;
    Ok((cluster, id.0))
}

/// A task definition reference: `family`, `family:revision` or a task-definition ARN.
/// `revision` is `None` for a bare family (meaning its latest ACTIVE revision).
pub fn parse_task_definition(s: &str) -> Result<(String, Option<u32>), RefError> {
    const KIND: &str = "task definition";
    let text = match resource_part(s, KIND)? {
        Some(r) => r
            .strip_prefix("task-definition/")
            .ok_or_else(|| err(KIND, s))?,
        None => s,
    };
    let (family, revision) = match text.split_once(':') {
        Some((family, rev)) => {
            let rev: u32 = rev
                .parse()
                .ok()
                .filter(|r| *r > 0)
                .ok_or_else(|| err(KIND, s))?;
            (family, Some(rev))
        }
        None => (text, None),
    };
    if valid_family(family) {
        Ok((family.to_owned(), revision))
    } else {
        Err(err(KIND, s))
    }
}

/// A service reference: `name` or a service ARN (`service/cluster/name` or `service/name`).
pub fn parse_service(s: &str) -> Result<(Option<String>, String), RefError> {
    const KIND: &str = "service";
    let (cluster, name) = match resource_part(s, KIND)? {
        None => (None, s),
        Some(r) => {
            let rest = r.strip_prefix("service/").ok_or_else(|| err(KIND, s))?;
            match rest.split_once('/') {
                Some((c, n)) if valid_cluster_name(c) => (Some(c.to_owned()), n),
                Some(_) => return Err(err(KIND, s)),
                None => (None, rest),
            }
        }
    };
    if valid_name(name) {
        Ok((cluster, name.to_owned()))
    } else {
        Err(err(KIND, s))
    }
}

/// A task set reference: its id (`ecs-svc/` and digits) or its ARN. Returns the cluster and
/// service when the ARN names them.
pub fn parse_task_set(s: &str) -> Result<(Option<(String, String)>, String), RefError> {
    const KIND: &str = "task set";
    let (owner, id) = match resource_part(s, KIND)? {
        None => (None, s),
        Some(r) => {
            let rest = r.strip_prefix("task-set/").ok_or_else(|| err(KIND, s))?;
            let mut parts = rest.splitn(3, '/');
            match (parts.next(), parts.next(), parts.next()) {
                (Some(c), Some(n), Some(id)) if valid_cluster_name(c) && valid_name(n) => {
                    (Some((c.to_owned(), n.to_owned())), id)
                }
                _ => return Err(err(KIND, s)),
            }
        }
    };
    let digits = id.strip_prefix("ecs-svc/").ok_or_else(|| err(KIND, s))?;
    if !digits.is_empty() && digits.len() <= 20 && digits.bytes().all(|b| b.is_ascii_digit()) {
        Ok((owner, id.to_owned()))
    } else {
        Err(err(KIND, s))
    }
}

/// A service deployment (`kind` "service-deployment") or service revision
/// ("service-revision") ARN: its cluster, service and deployment id (`ecs-svc/…`).
pub fn parse_deployment_arn(s: &str, kind: &str) -> Result<(String, String, String), RefError> {
    const KIND: &str = "service deployment or revision";
    let r = resource_part(s, KIND)?.ok_or_else(|| err(KIND, s))?;
    let rest = r
        .strip_prefix(kind)
        .and_then(|r| r.strip_prefix('/'))
        .ok_or_else(|| err(KIND, s))?;
    let mut parts = rest.splitn(3, '/');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(c), Some(n), Some(digits))
            if valid_cluster_name(c)
                && valid_name(n)
                && !digits.is_empty()
                && digits.len() <= 20
                && digits.bytes().all(|b| b.is_ascii_digit()) =>
        {
            Ok((c.to_owned(), n.to_owned(), format!("ecs-svc/{digits}")))
        }
        _ => Err(err(KIND, s)),
    }
}

/// Any taggable or historied resource, from its full ARN.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum ResourceArn {
    Cluster(String),
    TaskDefinition(String, u32),
    ContainerInstance(String, InstanceId),
    Task(String, TaskId),
    Service(String, String),
    /// Account-wide, like a task definition.
    CapacityProvider(String),
    /// Cluster, service and task set id (`ecs-svc/…`).
    TaskSet(String, String, String),
}

/// Parses a full ECS ARN of a cluster, task definition (with revision), container instance,
/// task, service, capacity provider or task set. Short forms are not accepted: TagResource and friends take ARNs only.
pub fn parse_resource_arn(s: &str) -> Result<ResourceArn, RefError> {
    const KIND: &str = "resource";
    let resource = resource_part(s, KIND)?.ok_or_else(|| err(KIND, s))?;
    let (kind, _) = resource.split_once('/').ok_or_else(|| err(KIND, s))?;
    let need_cluster = |c: Option<String>| c.ok_or_else(|| err(KIND, s));
    Ok(match kind {
        "cluster" => ResourceArn::Cluster(parse_cluster(s)?),
        "task-definition" => match parse_task_definition(s)? {
            (family, Some(rev)) => ResourceArn::TaskDefinition(family, rev),
            (_, None) => return Err(err(KIND, s)),
        },
        "container-instance" => {
            let (c, id) = parse_container_instance(s)?;
            ResourceArn::ContainerInstance(need_cluster(c)?, id)
        }
        "task" => {
            let (c, id) = parse_task(s)?;
            ResourceArn::Task(need_cluster(c)?, id)
        }
        "service" => {
            let (c, name) = parse_service(s)?;
            ResourceArn::Service(need_cluster(c)?, name)
        }
        "capacity-provider" => match resource.split_once('/') {
            Some((_, name)) if valid_name(name) => ResourceArn::CapacityProvider(name.to_owned()),
            _ => return Err(err(KIND, s)),
        },
        "task-set" => match parse_task_set(s)? {
            (Some((cluster, service)), id) => ResourceArn::TaskSet(cluster, service, id),
            (None, _) => return Err(err(KIND, s)),
        },
        _ => return Err(err(KIND, s)),
    })
}

impl ResourceArn {
    /// The cluster the resource lives in; `None` for account-wide ones.
    pub fn cluster(&self) -> Option<&str> {
        match self {
            ResourceArn::Cluster(c)
            | ResourceArn::ContainerInstance(c, _)
            | ResourceArn::Task(c, _)
            | ResourceArn::Service(c, _)
            | ResourceArn::TaskSet(c, _, _) => Some(c),
            ResourceArn::TaskDefinition(..) | ResourceArn::CapacityProvider(_) => None,
        }
    }

    /// The ARN of this resource in `ctx`.
    pub fn render(&self, ctx: &ArnContext) -> String {
        match self {
            ResourceArn::Cluster(name) => ctx.cluster(name),
            ResourceArn::TaskDefinition(family, rev) => ctx.task_definition(family, *rev),
            ResourceArn::ContainerInstance(cluster, id) => ctx.container_instance(cluster, *id),
            ResourceArn::Task(cluster, id) => ctx.task(cluster, *id),
            ResourceArn::Service(cluster, name) => ctx.service(cluster, name),
            ResourceArn::CapacityProvider(name) => ctx.capacity_provider(name),
            ResourceArn::TaskSet(cluster, service, id) => ctx.task_set(cluster, service, id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn clusters() {
        assert_eq!(parse_cluster("prod").unwrap(), "prod");
        assert_eq!(
            parse_cluster("arn:aws:ecs:us-east-1:000000000000:cluster/prod").unwrap(),
            "prod"
        );
        assert!(parse_cluster("arn:aws:s3:::bucket").is_err());
        assert!(parse_cluster("has space").is_err());
        assert!(parse_cluster("").is_err());
        assert!(parse_cluster(&"a".repeat(256)).is_err());
    }

    #[test]
    fn task_sets_by_id_or_arn() {
        let ctx = ArnContext::new("eu-west-1", "123456789012");
        let id = "ecs-svc/1234567890123456789";
        let arn = ctx.task_set("prod", "web", id);
        assert_eq!(
            arn,
            "arn:aws:ecs:eu-west-1:123456789012:task-set/prod/web/ecs-svc/1234567890123456789"
        );
        assert_eq!(
            parse_task_set(&arn).unwrap(),
            (Some(("prod".into(), "web".into())), id.to_owned())
        );
        assert_eq!(parse_task_set(id).unwrap(), (None, id.to_owned()));
        for bad in [
            "",
            "ecs-svc/",
            "ecs-svc/12a",
            "1234567890123456789",
            "arn:aws:ecs:eu-west-1:123456789012:task-set/prod/ecs-svc/1",
            "arn:aws:ecs:eu-west-1:123456789012:service/prod/web",
        ] {
            assert!(parse_task_set(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn deployments_and_revisions_by_arn() {
        let ctx = ArnContext::new("eu-west-1", "123456789012");
        let id = "ecs-svc/1234567890123456789";
        let d = ctx.service_deployment("prod", "web", id);
        assert_eq!(
            d,
            "arn:aws:ecs:eu-west-1:123456789012:service-deployment/prod/web/1234567890123456789"
        );
        let parsed = ("prod".to_owned(), "web".to_owned(), id.to_owned());
        assert_eq!(
            parse_deployment_arn(&d, "service-deployment").unwrap(),
            parsed
        );
        let r = ctx.service_revision("prod", "web", id);
        assert_eq!(
            parse_deployment_arn(&r, "service-revision").unwrap(),
            parsed
        );
        assert!(parse_deployment_arn(&r, "service-deployment").is_err());
        assert!(parse_deployment_arn("1234567890123456789", "service-deployment").is_err());
        let bad = "arn:aws:ecs:eu-west-1:123456789012:service-deployment/prod/web/abc";
        assert!(parse_deployment_arn(bad, "service-deployment").is_err());
    }

    #[test]
    fn tasks_long_and_old_format() {
        let ctx = ArnContext::new("eu-west-1", "123456789012");
        let id: TaskId = ID.parse().unwrap();
        let arn = ctx.task("prod", id);
        assert_eq!(parse_task(&arn).unwrap(), (Some("prod".into()), id));
        assert_eq!(parse_task(ID).unwrap(), (None, id));
        let old = format!("arn:aws:ecs:eu-west-1:123456789012:task/{ID}");
        assert_eq!(parse_task(&old).unwrap(), (None, id));
        assert!(parse_task("arn:aws:ecs:eu-west-1:1:cluster/prod").is_err());
        assert!(parse_task("nothex").is_err());
    }

    #[test]
    fn task_definitions() {
        assert_eq!(parse_task_definition("web").unwrap(), ("web".into(), None));
        assert_eq!(
            parse_task_definition("web:7").unwrap(),
            ("web".into(), Some(7))
        );
        let ctx = ArnContext::new("us-east-1", "000000000000");
        assert_eq!(
            parse_task_definition(&ctx.task_definition("web", 3)).unwrap(),
            ("web".into(), Some(3))
        );
        assert!(parse_task_definition("web:0").is_err());
        assert!(parse_task_definition("web:x").is_err());
        assert!(parse_task_definition("we b:1").is_err());
    }

    #[test]
    fn resource_arns_round_trip() {
        let ctx = ArnContext::new("us-east-1", "000000000000");
        let id: InstanceId = ID.parse().unwrap();
        for r in [
            ResourceArn::Cluster("c".into()),
            ResourceArn::TaskDefinition("f".into(), 2),
            ResourceArn::ContainerInstance("c".into(), id),
            ResourceArn::Task("c".into(), TaskId(id.0)),
            ResourceArn::Service("c".into(), "s".into()),
            ResourceArn::CapacityProvider("spot_pool-1".into()),
            ResourceArn::TaskSet("c".into(), "s".into(), "ecs-svc/42".into()),
        ] {
            assert_eq!(parse_resource_arn(&r.render(&ctx)).unwrap(), r);
        }
        for bad in [
            "c",
            "arn:aws:ecs:us-east-1:0:task-definition/f",
            "arn:aws:ecs:us-east-1:0:capacity-provider/",
            "arn:aws:ecs:us-east-1:0:capacity-provider/a/b",
            "arn:aws:ecs:us-east-1:0:task-set/ecs-svc/42",
        ] {
            assert!(parse_resource_arn(bad).is_err(), "{bad}");
        }
    }
}
