//! Service discovery: namespaces and the discovery services in them, AWS Cloud Map's model,
//! which is what an ECS service's `serviceRegistries` point at.
//!
//! ```text
//!  Namespace "prod.berth" (ns-…) ─┬─ DiscoveryService "web" (srv-…, DNS: SRV ttl 5)
//!                                 │      ▲ registryArn
//!                                 │  ECS service "web" { serviceRegistries: [srv-…, container
//!                                 │      "web", port 80] } ─► its RUNNING, healthy tasks are
//!                                 │      the service's instances: `<task-id>.web.prod.berth`
//!                                 └─ …
//! ```
//! Nothing about instances is stored: which tasks answer for a discovery service is read from
//! the tasks themselves (`berth_state::discovery`), so a task that stops, turns unhealthy or
//! is being drained leaves the answers at the commit that changed it, and there is no second
//! copy to fall out of step. Only the names and their DNS settings are stored here.

use serde::{Deserialize, Serialize};

use crate::arn::ArnContext;
use crate::entity::{Name, Tag, wire_enum};
use crate::error::Error;
use crate::time::Millis;

/// Longest namespace name (a DNS name, as Cloud Map allows).
pub const MAX_NAMESPACE_NAME_LEN: usize = 253;
/// Longest discovery service name (one DNS label).
pub const MAX_SERVICE_NAME_LEN: usize = 63;
/// Namespaces an account may hold (Cloud Map's default quota is 50).
pub const MAX_NAMESPACES: usize = 50;
/// Discovery services per namespace.
pub const MAX_SERVICES_PER_NAMESPACE: usize = 1_000;
/// Longest TTL a DNS record may ask for: Cloud Map allows a day, but an answer berth hands
/// out must leave the resolvers' caches soon after its task stops.
pub const MAX_TTL: u32 = 86_400;

wire_enum!(
    /// What a namespace answers: DNS inside the cluster's hosts, or the HTTP API only.
    NamespaceType { DnsPrivate = "DNS_PRIVATE", Http = "HTTP" }
);

wire_enum!(
    /// The kind of a DNS record a discovery service answers.
    RecordType {
        /// The address of each instance's host (host-network tasks).
        A = "A",
        /// Each instance's host and port (bridge- and host-network tasks).
        Srv = "SRV",
    }
);

wire_enum!(
    /// How several instances are answered: all of them (MULTIVALUE), or one chosen per query
    /// (WEIGHTED). berth answers every healthy instance for both; the setting is kept as
    /// given.
    RoutingPolicy { Multivalue = "MULTIVALUE", Weighted = "WEIGHTED" }
);

/// A namespace: a DNS domain (`prod.berth`) whose names are discovery services.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Namespace {
    /// `ns-` and 16 lowercase letters and digits, chosen by the proposer.
    pub id: Name,
    /// Lowercase, without a trailing dot.
    pub name: Name,
    pub kind: NamespaceType,
    pub description: Option<String>,
    /// The caller's idempotency token: a retry with it answers with this namespace.
    pub creator_request_id: Option<String>,
    pub tags: Vec<Tag>,
    pub created_at: Millis,
    pub version: u64,
}

/// One DNS record a discovery service answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsRecord {
    pub kind: RecordType,
    /// Seconds.
    pub ttl: u32,
}

/// A discovery service's DNS settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsConfig {
    pub routing_policy: RoutingPolicy,
    pub records: Vec<DnsRecord>,
}

impl DnsConfig {
    /// The TTL of records of `kind`, if the service answers them.
    pub fn ttl(&self, kind: RecordType) -> Option<u32> {
        self.records.iter().find(|r| r.kind == kind).map(|r| r.ttl)
    }
}

/// A discovery service: one name in a namespace, answered with the instances of the ECS
/// services that register in it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiscoveryService {
    /// `srv-` and 16 lowercase letters and digits, chosen by the proposer.
    pub id: Name,
    /// One DNS label, lowercase.
    pub name: Name,
    pub namespace_id: Name,
    pub description: Option<String>,
    /// DNS settings; `None` in an HTTP namespace.
    pub dns: Option<DnsConfig>,
    pub creator_request_id: Option<String>,
    pub tags: Vec<Tag>,
    pub created_at: Millis,
    pub version: u64,
}

/// Where an ECS service registers its tasks (one of its `serviceRegistries`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceRegistry {
    /// The discovery service's id (`srv-…`).
    pub registry_id: Name,
    /// The container whose port is registered (bridge and host network modes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_port: Option<u16>,
    /// ECS `port`: for awsvpc tasks only, kept as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
}

/// What a namespace id starts with.
pub const NAMESPACE_ID_PREFIX: &str = "ns-";
/// What a discovery service id starts with.
pub const SERVICE_ID_PREFIX: &str = "srv-";

/// Checks an id: `prefix` and 1 to 64 lowercase letters and digits.
pub fn check_id(prefix: &str, id: &str) -> Result<(), Error> {
    let valid = id.strip_prefix(prefix).is_some_and(|rest| {
        (1..=64).contains(&rest.len())
            && rest
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    });
    if valid {
        Ok(())
    } else {
        Err(Error::InvalidParameter(format!(
            "{} is not an id of the form {prefix}…",
            shown(id)
        )))
    }
}

/// A namespace's ARN: `arn:aws:servicediscovery:<region>:<account>:namespace/ns-…`.
pub fn namespace_arn(ctx: &ArnContext, id: &str) -> String {
    format!(
        "arn:{}:servicediscovery:{}:{}:namespace/{id}",
        ctx.partition, ctx.region, ctx.account
    )
}

/// A discovery service's ARN: `arn:aws:servicediscovery:<region>:<account>:service/srv-…`.
pub fn service_arn(ctx: &ArnContext, id: &str) -> String {
    format!(
        "arn:{}:servicediscovery:{}:{}:service/{id}",
        ctx.partition, ctx.region, ctx.account
    )
}

/// The discovery service id in a registry ARN (`…:servicediscovery:…:service/srv-…`), in any
/// region and account: berth has one registry of its own.
pub fn parse_service_arn(arn: &str) -> Result<&str, Error> {
    let id = arn
        .strip_prefix("arn:")
        .and_then(|rest| {
            let mut parts = rest.splitn(5, ':');
            let (_partition, service) = (parts.next()?, parts.next()?);
            let (_region, _account, resource) = (parts.next()?, parts.next()?, parts.next()?);
            (service == "servicediscovery").then_some(resource)
        })
        .and_then(|resource| resource.strip_prefix("service/"))
        .ok_or_else(|| {
            Error::InvalidParameter(format!(
                "registryArn {} is not a service discovery service ARN \
                 (arn:aws:servicediscovery:REGION:ACCOUNT:service/srv-…)",
                shown(arn)
            ))
        })?;
    check_id(SERVICE_ID_PREFIX, id)?;
    Ok(id)
}

/// Checks a namespace name: a DNS name of letters, digits and hyphens in dot-separated labels
/// of at most 63, not starting or ending with a hyphen; the answer is its lowercase form.
pub fn check_namespace_name(name: &str) -> Result<String, Error> {
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() || name.len() > MAX_NAMESPACE_NAME_LEN {
        return Err(Error::InvalidParameter(format!(
            "Namespace name must be 1 to {MAX_NAMESPACE_NAME_LEN} characters"
        )));
    }
    for label in name.split('.') {
        check_label(label).map_err(|why| {
            Error::InvalidParameter(format!(
                "Namespace name {} is not a DNS name: {why}",
                shown(name)
            ))
        })?;
    }
    Ok(name.to_ascii_lowercase())
}

/// Checks a discovery service name: one DNS label; the answer is its lowercase form.
pub fn check_service_name(name: &str) -> Result<String, Error> {
    check_label(name).map_err(|why| {
        Error::InvalidParameter(format!(
            "Service name {} is not a DNS label: {why}",
            shown(name)
        ))
    })?;
    Ok(name.to_ascii_lowercase())
}

fn check_label(label: &str) -> Result<(), &'static str> {
    if label.is_empty() {
        return Err("a label is empty");
    }
    if label.len() > MAX_SERVICE_NAME_LEN {
        return Err("a label is longer than 63 characters");
    }
    if !label
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err("only letters, digits, hyphens and underscores are allowed");
    }
    if label.starts_with('-') || label.ends_with('-') {
        return Err("a label may not start or end with a hyphen");
    }
    Ok(())
}

/// A name as an error message shows it: at most 100 characters, quoted.
fn shown(name: &str) -> String {
    format!("'{}'", name.chars().take(100).collect::<String>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_names_are_dns_names_in_lowercase() {
        assert_eq!(check_namespace_name("Prod.Berth.").unwrap(), "prod.berth");
        assert_eq!(check_namespace_name("a-1.b_2").unwrap(), "a-1.b_2");
        for bad in [
            "",
            ".",
            "a..b",
            "-a.b",
            "a-.b",
            "a b",
            "a/b",
            &"x".repeat(64),
        ] {
            assert!(check_namespace_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_namespace_name(&["a"; 130].join(".")).is_err());
    }

    #[test]
    fn ids_have_their_prefix_and_lowercase_alphanumerics() {
        assert!(check_id(NAMESPACE_ID_PREFIX, "ns-abc123").is_ok());
        for bad in ["ns-", "srv-abc", "ns-ABC", "ns-a/b", "abc"] {
            assert!(check_id(NAMESPACE_ID_PREFIX, bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn registry_arns_name_a_discovery_service() {
        let ctx = ArnContext::new("eu-west-1", "123456789012");
        let arn = service_arn(&ctx, "srv-abc");
        assert_eq!(
            arn,
            "arn:aws:servicediscovery:eu-west-1:123456789012:service/srv-abc"
        );
        assert_eq!(parse_service_arn(&arn).unwrap(), "srv-abc");
        for bad in [
            "srv-abc",
            "arn:aws:ecs:eu-west-1:1:service/srv-abc",
            "arn:aws:servicediscovery:eu-west-1:1:namespace/ns-abc",
            "arn:aws:servicediscovery:eu-west-1:1:service/srv-",
        ] {
            assert!(parse_service_arn(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn service_names_are_one_label() {
        assert_eq!(check_service_name("Web").unwrap(), "web");
        for bad in ["", "a.b", "-web", "we b", &"x".repeat(64)] {
            assert!(check_service_name(bad).is_err(), "{bad:?}");
        }
    }
}
