//! How containers reach and are reached: `portMappings` and `containerPortRange` (normalized
//! per network mode: `hostPort` filled in for `host`/`awsvpc`, no ports in `none`), the
//! task-wide rules that a container port is exposed once per protocol, a static host port is
//! bound once and port names are unique, plus `links` (bridge mode only), `extraHosts` and
//! the App Mesh `proxyConfiguration`.

use std::collections::{HashMap, HashSet};

use berth_api::types::{self as api, enums};

use super::{At, MAX_PORT_RANGES, NAME_RULE, TaskCtx, is_name, list_names};
use crate::entity::NetworkMode;
use crate::error::Error;
use crate::validate::shorten;

/// A port mapping name: 1–64 lowercase letters, digits, `_` and `-`, not starting with `-`.
pub(super) fn is_port_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && !s.starts_with('-')
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// `"start-end"` of a `containerPortRange`.
pub(super) fn parse_port_range(s: &str) -> Option<(i32, i32)> {
    let (a, b) = s.split_once('-')?;
    let num = |t: &str| {
        let t = t.trim();
        (!t.is_empty() && t.len() <= 5 && t.bytes().all(|b| b.is_ascii_digit()))
            .then(|| t.parse::<i32>().ok())
            .flatten()
    };
    Some((num(a)?, num(b)?))
}

pub(super) fn port_mappings(
    at: &At,
    pms: &[api::PortMapping],
    mode: NetworkMode,
) -> Result<Vec<api::PortMapping>, Error> {
    if mode == NetworkMode::None && !pms.is_empty() {
        return Err(at.err(
            "portMappings are not allowed when networkMode is 'none'; remove them or use bridge, host or awsvpc",
        ));
    }
    let mut out = Vec::with_capacity(pms.len());
    let mut ranges = 0usize;
    for (i, pm) in pms.iter().enumerate() {
        let w = format!("portMappings[{i}]");
        let protocol = pm.protocol.as_deref().unwrap_or("tcp");
        at.one_of(
            protocol,
            enums::TRANSPORT_PROTOCOL,
            &format!("{w}.protocol"),
        )?;
        if let Some(p) = pm.app_protocol.as_deref() {
            at.one_of(p, enums::APPLICATION_PROTOCOL, &format!("{w}.appProtocol"))?;
        }
        if let Some(n) = pm.name.as_deref()
            && !is_port_name(n)
        {
            return Err(at.err(format!(
                "{w}.name '{}' is invalid: use 1 to 64 lowercase letters, numbers, underscores and hyphens, not starting with a hyphen",
                shorten(n)
            )));
        }
        if let Some(h) = pm.host_port {
            at.range(
                h,
                (0, 65535),
                &format!("{w}.hostPort"),
                " (0 or absent for a dynamic host port)",
            )?;
        }
        let mut n = pm.clone();
        n.protocol = Some(protocol.to_owned());
        match (pm.container_port, pm.container_port_range.as_deref()) {
            (Some(_), Some(_)) => {
                return Err(at.err(format!(
                    "{w}: give either containerPort or containerPortRange, not both"
                )));
            }
            (None, None) => {
                return Err(at.err(format!(
                    "{w}: containerPort is required (1 to 65535), or give a containerPortRange such as \"8000-8010\""
                )));
            }
            (Some(cp), None) => {
                if !(1..=65535).contains(&cp) {
                    return Err(at.err(format!(
                        "Invalid 'containerPort' setting: {w}.containerPort ({cp}) must be between 1 and 65535"
                    )));
                }
                match (mode, pm.host_port) {
                    (NetworkMode::Host, Some(h)) if h != 0 && h != cp => {
                        return Err(at.err(format!(
                            "{w}: with networkMode host, hostPort ({h}) must be omitted or equal to containerPort ({cp})"
                        )));
                    }
                    (NetworkMode::Awsvpc, Some(h)) if h != 0 && h != cp => {
                        return Err(at.err(format!(
                            "{w}: when networkMode=awsvpc, the host ports and container ports in port mappings must match; hostPort ({h}) must be omitted or equal to containerPort ({cp})"
                        )));
                    }
                    (NetworkMode::Host | NetworkMode::Awsvpc, _) => n.host_port = Some(cp),
                    _ => {}
                }
            }
            (None, Some(r)) => {
                let bad = || {
                    at.err(format!(
                        "{w}.containerPortRange '{}' is invalid: give \"start-end\" with 1 <= start < end <= 65535",
                        shorten(r)
                    ))
                };
                let (lo, hi) = parse_port_range(r).ok_or_else(bad)?;
                if !(1 <= lo && lo < hi && hi <= 65535) {
                    return Err(bad());
                }
                if !matches!(mode, NetworkMode::Bridge | NetworkMode::Awsvpc) {
                    return Err(at.err(format!(
                        "{w}: containerPortRange needs networkMode bridge or awsvpc; this task uses '{}'",
                        mode.as_str()
                    )));
                }
                if pm.host_port.is_some() {
                    return Err(at.err(format!(
                        "{w}: leave hostPort empty with a containerPortRange; the host ports are assigned for you"
                    )));
                }
                ranges += 1;
                if ranges > MAX_PORT_RANGES {
                    return Err(at.err(format!(
                        "at most {MAX_PORT_RANGES} containerPortRange mappings are allowed per container"
                    )));
                }
            }
        }
        out.push(n);
    }
    // A container port (or range) and protocol may appear in one mapping only.
    let mut spans: Vec<Span<'_>> = out.iter().filter_map(|pm| container_span(pm, "")).collect();
    if let Some((a, b)) = overlap(&mut spans) {
        return Err(at.err(format!(
            "container port {} is exposed by more than one port mapping (overlaps {}); each container port and protocol may appear in one mapping only",
            b.describe(),
            a.describe()
        )));
    }
    Ok(out)
}

/// A span of ports of one protocol, claimed by a container.
#[derive(Debug, Clone)]
pub(super) struct Span<'a> {
    protocol: &'a str,
    lo: i32,
    hi: i32,
    container: &'a str,
}

impl Span<'_> {
    fn describe(&self) -> String {
        if self.lo == self.hi {
            format!("{}/{}", self.lo, self.protocol)
        } else {
            format!("{}-{}/{}", self.lo, self.hi, self.protocol)
        }
    }
}

/// The container-side ports of a normalized mapping.
pub(super) fn container_span<'a>(pm: &'a api::PortMapping, container: &'a str) -> Option<Span<'a>> {
    let protocol = pm.protocol.as_deref().unwrap_or("tcp");
    let (lo, hi) = match (pm.container_port, pm.container_port_range.as_deref()) {
        (Some(p), _) => (p, p),
        (None, Some(r)) => parse_port_range(r)?,
        (None, None) => return None,
    };
    Some(Span {
        protocol,
        lo,
        hi,
        container,
    })
}

/// The first two overlapping spans of the same protocol, if any.
pub(super) fn overlap<'s, 'a>(spans: &'s mut [Span<'a>]) -> Option<(&'s Span<'a>, &'s Span<'a>)> {
    spans.sort_by(|a, b| (a.protocol, a.lo, a.hi).cmp(&(b.protocol, b.lo, b.hi)));
    let mut widest: Option<usize> = None;
    let mut hit = None;
    for i in 0..spans.len() {
        if let Some(w) = widest
            && spans[w].protocol == spans[i].protocol
        {
            if spans[i].lo <= spans[w].hi {
                hit = Some((w, i));
                break;
            }
            if spans[i].hi > spans[w].hi {
                widest = Some(i);
            }
        } else {
            widest = Some(i);
        }
    }
    hit.map(|(a, b)| (&spans[a], &spans[b]))
}

pub(super) fn links(at: &At, me: &str, links: &[String], t: &TaskCtx<'_>) -> Result<(), Error> {
    if links.is_empty() {
        return Ok(());
    }
    if t.mode != NetworkMode::Bridge {
        return Err(at.err(format!(
            "links are only supported with the bridge network mode; this task uses '{}', where containers reach each other without links",
            t.mode.as_str()
        )));
    }
    for l in links {
        let (target, alias) = match l.split_once(':') {
            Some((t, a)) => (t, Some(a)),
            None => (l.as_str(), None),
        };
        if target == me {
            return Err(at.err(format!(
                "link '{}' points at the container itself; link to another container",
                shorten(l)
            )));
        }
        if !t.names.contains(&target) {
            return Err(at.err(format!(
                "link '{}' names container '{}', which is not in this task definition; use 'name' or 'name:alias' with one of {}",
                shorten(l),
                shorten(target),
                list_names(t.names)
            )));
        }
        if let Some(a) = alias
            && !is_name(a)
        {
            return Err(at.err(format!(
                "link alias '{}' is invalid: {NAME_RULE}",
                shorten(a)
            )));
        }
    }
    Ok(())
}

pub(super) fn extra_hosts(
    at: &At,
    hosts: &[api::HostEntry],
    mode: NetworkMode,
) -> Result<(), Error> {
    if hosts.is_empty() {
        return Ok(());
    }
    if mode == NetworkMode::Awsvpc {
        return Err(at.err("extraHosts is not supported when networkMode is awsvpc"));
    }
    for (i, h) in hosts.iter().enumerate() {
        at.required_str(&h.hostname, &format!("extraHosts[{i}].hostname"))?;
        at.required_str(&h.ip_address, &format!("extraHosts[{i}].ipAddress"))?;
    }
    Ok(())
}

pub(super) fn proxy_configuration(
    p: &api::ProxyConfiguration,
    names: &[&str],
) -> Result<api::ProxyConfiguration, Error> {
    let at = At::task();
    let ty = p.r#type.as_deref().unwrap_or("APPMESH");
    at.one_of(
        ty,
        enums::PROXY_CONFIGURATION_TYPE,
        "proxyConfiguration.type",
    )?;
    let container = at.required_str(&p.container_name, "proxyConfiguration.containerName")?;
    if !names.contains(&container) {
        return Err(at.err(format!(
            "proxyConfiguration.containerName '{}' is not a container of this task definition; use one of {}",
            shorten(container),
            list_names(names)
        )));
    }
    let mut seen: HashSet<&str> = HashSet::new();
    for (i, kv) in p
        .properties
        .as_deref()
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let name = at.required_str(
            &kv.name,
            &format!("proxyConfiguration.properties[{i}].name"),
        )?;
        if !seen.insert(name) {
            return Err(at.err(format!(
                "proxyConfiguration property '{}' is given more than once",
                shorten(name)
            )));
        }
    }
    let mut out = p.clone();
    out.r#type = Some(ty.to_owned());
    Ok(out)
}

/// Port names are unique in the task; a static host port and protocol is bound once.
pub(super) fn ports(
    containers: &[api::ContainerDefinition],
    names: &[&str],
    mode: NetworkMode,
) -> Result<(), Error> {
    let mut port_names: HashMap<&str, &str> = HashMap::new();
    let mut claims: Vec<Span<'_>> = Vec::new();
    for (c, name) in containers.iter().zip(names) {
        for pm in c.port_mappings.as_deref().unwrap_or_default() {
            if let Some(n) = pm.name.as_deref()
                && let Some(other) = port_names.insert(n, name)
            {
                return Err(Error::client(format!(
                    "Port mapping name '{n}' is used by container '{other}' and container '{name}'; port names must be unique within a task definition"
                )));
            }
            let protocol = pm.protocol.as_deref().unwrap_or("tcp");
            // Normalized: in host and awsvpc mode hostPort is the container port; a range is
            // static only in awsvpc mode (hostPort unset and no range mean dynamic in bridge).
            match (pm.host_port, pm.container_port_range.as_deref()) {
                (Some(h), _) if h > 0 => claims.push(Span {
                    protocol,
                    lo: h,
                    hi: h,
                    container: name,
                }),
                (None, Some(_)) if mode == NetworkMode::Awsvpc => {
                    if let Some(s) = container_span(pm, name) {
                        claims.push(s);
                    }
                }
                _ => {}
            }
        }
    }
    if let Some((a, b)) = overlap(&mut claims) {
        let who = if a.container == b.container {
            format!("twice by container '{}'", a.container)
        } else {
            format!(
                "by container '{}' and container '{}'",
                a.container, b.container
            )
        };
        return Err(Error::client(format!(
            "Host port {} (overlapping {}) is claimed {who}; a static host port and protocol can be bound only once per task. Use another hostPort, or 0 for a dynamic port in bridge mode.",
            b.describe(),
            a.describe()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use crate::validate::task_definition::tests::*;

    fn pm(v: Value) -> Value {
        json!({"portMappings": [v]})
    }

    #[test]
    fn port_mapping_values() {
        client(
            one(pm(json!({"containerPort": 0}))),
            &[
                "Container 'web'",
                "portMappings[0].containerPort (0)",
                "1 and 65535",
            ],
        );
        client(
            one(pm(json!({"containerPort": 65536}))),
            &["Invalid 'containerPort'", "65536"],
        );
        client(
            one(pm(json!({"containerPort": 80, "hostPort": -1}))),
            &["portMappings[0].hostPort (-1)", "0 and 65535"],
        );
        client(
            one(pm(json!({"containerPort": 80, "hostPort": 65536}))),
            &["hostPort (65536)"],
        );
        client(
            one(pm(json!({"containerPort": 80, "protocol": "sctp"}))),
            &["Container 'web'", "'sctp'", "protocol", "tcp, udp"],
        );
        client(
            one(pm(json!({"containerPort": 80, "appProtocol": "ftp"}))),
            &["appProtocol", "http, http2, grpc"],
        );
        client(
            one(pm(json!({"containerPort": 80, "name": "Web"}))),
            &["portMappings[0].name 'Web'", "lowercase"],
        );
        client(
            one(pm(json!({"containerPort": 80, "name": "-web"}))),
            &["not starting with a hyphen"],
        );
        client(
            one(pm(
                json!({"containerPort": 80, "containerPortRange": "81-82"}),
            )),
            &["not both"],
        );
        client(
            one(pm(json!({"hostPort": 80}))),
            &["Container 'web'", "containerPort is required"],
        );
        let t = ok(one(pm(
            json!({"containerPort": 80, "hostPort": 0, "name": "web_1", "appProtocol": "grpc"}),
        )));
        let p = &containers(&t)[0].port_mappings.as_deref().unwrap()[0];
        assert_eq!((p.protocol.as_deref(), p.host_port), (Some("tcp"), Some(0)));
    }

    #[test]
    fn host_mode_ports() {
        let host = |c: Value| task(vec![c], json!({"networkMode": "host"}));
        client(
            host(ctr(
                "web",
                pm(json!({"containerPort": 80, "hostPort": 8080})),
            )),
            &[
                "Container 'web'",
                "networkMode host",
                "hostPort (8080)",
                "containerPort (80)",
            ],
        );
        let t = ok(host(ctr("web", pm(json!({"containerPort": 80})))));
        assert_eq!(
            containers(&t)[0].port_mappings.as_deref().unwrap()[0].host_port,
            Some(80),
            "hostPort filled in"
        );
        ok(host(ctr(
            "web",
            pm(json!({"containerPort": 80, "hostPort": 80})),
        )));
        client(
            host(ctr("web", pm(json!({"containerPortRange": "80-90"})))),
            &["containerPortRange", "bridge or awsvpc", "'host'"],
        );
        client(
            task(
                vec![
                    ctr("a", pm(json!({"containerPort": 80}))),
                    ctr("b", pm(json!({"containerPort": 80}))),
                ],
                json!({"networkMode": "host"}),
            ),
            &["Host port 80/tcp", "container 'a' and container 'b'"],
        );
    }

    #[test]
    fn awsvpc_mode_ports() {
        let awsvpc = |cs: Vec<Value>| task(cs, json!({"networkMode": "awsvpc"}));
        client(
            awsvpc(vec![ctr(
                "web",
                pm(json!({"containerPort": 80, "hostPort": 8080})),
            )]),
            &["Container 'web'", "awsvpc", "must match", "hostPort (8080)"],
        );
        let t = ok(awsvpc(vec![ctr(
            "web",
            json!({"portMappings": [{"containerPort": 80}, {"containerPortRange": "9000-9010"}]}),
        )]));
        let pms = containers(&t)[0].port_mappings.clone().unwrap();
        assert_eq!(pms[0].host_port, Some(80));
        assert_eq!(pms[1].host_port, None);
        assert!(
            t.requirements.ports.is_empty(),
            "awsvpc binds no instance ports"
        );
        assert!(attribute_names(&t).contains(&"ecs.capability.task-eni"));
        client(
            awsvpc(vec![
                ctr("a", pm(json!({"containerPortRange": "9000-9010"}))),
                ctr("b", pm(json!({"containerPort": 9005}))),
            ]),
            &[
                "9005/tcp",
                "9000-9010/tcp",
                "container 'a' and container 'b'",
            ],
        );
    }

    #[test]
    fn none_mode_has_no_ports() {
        client(
            task(
                vec![ctr("web", pm(json!({"containerPort": 80})))],
                json!({"networkMode": "none"}),
            ),
            &["Container 'web'", "portMappings are not allowed", "'none'"],
        );
        ok(task(
            vec![ctr("web", json!({}))],
            json!({"networkMode": "none"}),
        ));
    }

    #[test]
    fn container_port_ranges() {
        let t = ok(one(pm(
            json!({"containerPortRange": "8000-8010", "protocol": "udp"}),
        )));
        assert!(
            t.requirements.ports.is_empty(),
            "bridge ranges get dynamic host ports"
        );
        assert!(attribute_names(&t).contains(&"ecs.capability.network.container-port-range"));
        for bad in [
            "8010-8000",
            "80-80",
            "0-10",
            "1-65536",
            "80",
            "a-b",
            "-80",
            "80-",
            " - ",
            "99999999999-1",
        ] {
            client(
                one(pm(json!({"containerPortRange": bad}))),
                &["Container 'web'", "containerPortRange", "start-end"],
            );
        }
        client(
            one(pm(
                json!({"containerPortRange": "8000-8010", "hostPort": 8000}),
            )),
            &["Container 'web'", "leave hostPort empty"],
        );
        let many: Vec<Value> = (0..101)
            .map(|i| json!({"containerPortRange": format!("{}-{}", 10000 + i * 2, 10001 + i * 2)}))
            .collect();
        client(
            one(json!({"portMappings": many})),
            &["at most 100 containerPortRange"],
        );
    }

    #[test]
    fn container_ports_are_exposed_once_per_protocol() {
        client(
            one(
                json!({"portMappings": [{"containerPort": 80}, {"containerPort": 80, "hostPort": 8080}]}),
            ),
            &[
                "Container 'web'",
                "container port 80/tcp",
                "more than one port mapping",
            ],
        );
        client(
            one(
                json!({"portMappings": [{"containerPortRange": "8000-8010"}, {"containerPort": 8005}]}),
            ),
            &["Container 'web'", "8005/tcp", "8000-8010/tcp"],
        );
        client(
            one(
                json!({"portMappings": [{"containerPortRange": "8000-8010"}, {"containerPortRange": "8010-8020"}]}),
            ),
            &["8010-8020/tcp"],
        );
        ok(one(
            json!({"portMappings": [{"containerPort": 53}, {"containerPort": 53, "protocol": "udp"}]}),
        ));
    }

    #[test]
    fn static_host_ports_are_bound_once_per_task() {
        client(
            task(
                vec![
                    ctr("a", pm(json!({"containerPort": 80, "hostPort": 8080}))),
                    ctr("b", pm(json!({"containerPort": 81, "hostPort": 8080}))),
                ],
                json!({}),
            ),
            &["Host port 8080/tcp", "container 'a' and container 'b'"],
        );
        client(
            one(
                json!({"portMappings": [{"containerPort": 80, "hostPort": 8080}, {"containerPort": 81, "hostPort": 8080}]}),
            ),
            &["Host port 8080/tcp", "twice by container 'web'"],
        );
        ok(task(
            vec![
                ctr("a", pm(json!({"containerPort": 80, "hostPort": 8080}))),
                ctr(
                    "b",
                    pm(json!({"containerPort": 80, "hostPort": 8080, "protocol": "udp"})),
                ),
                ctr("c", pm(json!({"containerPort": 80}))),
                ctr("d", pm(json!({"containerPort": 80, "hostPort": 0}))),
            ],
            json!({}),
        ));
    }

    #[test]
    fn port_names_are_unique_in_the_task() {
        client(
            task(
                vec![
                    ctr("a", pm(json!({"containerPort": 80, "name": "http"}))),
                    ctr("b", pm(json!({"containerPort": 81, "name": "http"}))),
                ],
                json!({}),
            ),
            &[
                "Port mapping name 'http'",
                "container 'a' and container 'b'",
            ],
        );
    }

    #[test]
    fn links_rules() {
        let two = |links: Value, extra: Value| {
            task(
                vec![ctr("web", json!({"links": links})), ctr("db", json!({}))],
                extra,
            )
        };
        ok(two(json!(["db", "db:database"]), json!({})));
        ok(two(json!(["db"]), json!({"networkMode": "bridge"})));
        client(
            two(json!(["db"]), json!({"networkMode": "awsvpc"})),
            &["Container 'web'", "links", "bridge", "'awsvpc'"],
        );
        client(
            two(json!(["db"]), json!({"networkMode": "host"})),
            &["'host'"],
        );
        client(
            two(json!(["cache"]), json!({})),
            &["Container 'web'", "link 'cache'", "'db'"],
        );
        client(
            two(json!(["web"]), json!({})),
            &["Container 'web'", "itself"],
        );
        client(
            two(json!(["db:bad alias"]), json!({})),
            &["Container 'web'", "alias 'bad alias'"],
        );
        client(two(json!(["db:"]), json!({})), &["alias ''"]);
        client(two(json!([":x"]), json!({})), &["link ':x'"]);
    }
}
