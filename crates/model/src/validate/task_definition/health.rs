//! When a container counts as started and healthy, and what it waits for: `healthCheck`
//! (Docker's timings, checked against ECS's ranges and defaulted), `dependsOn` (conditions
//! valid for their target) and the task-wide rule that links, volumesFrom and dependsOn form
//! no cycle, since each makes one container start after another.

use std::collections::HashSet;

use berth_api::types::{self as api, enums};

use super::{At, list_names};
use crate::error::Error;
use crate::validate::shorten;

/// Health check timings: (min, max, default) seconds or count.
pub(super) const HC_INTERVAL: (i32, i32, i32) = (5, 300, 30);
pub(super) const HC_TIMEOUT: (i32, i32, i32) = (2, 60, 5);
pub(super) const HC_RETRIES: (i32, i32, i32) = (1, 10, 3);
pub(super) const HC_START_PERIOD: (i32, i32, i32) = (0, 300, 0);

pub(super) fn depends_on(
    at: &At,
    me: &str,
    deps: &[api::ContainerDependency],
    names: &[&str],
) -> Result<(), Error> {
    let mut seen: HashSet<&str> = HashSet::new();
    for (i, d) in deps.iter().enumerate() {
        let target =
            at.required_str(&d.container_name, &format!("dependsOn[{i}].containerName"))?;
        if target == me {
            return Err(
                at.err("dependsOn names the container itself; a container cannot wait for itself")
            );
        }
        if !names.contains(&target) {
            return Err(at.err(format!(
                "dependsOn[{i}].containerName '{}' is not a container of this task definition; use one of {}",
                shorten(target),
                list_names(names)
            )));
        }
        let cond = at.required_str(&d.condition, &format!("dependsOn[{i}].condition"))?;
        at.one_of(
            cond,
            enums::CONTAINER_CONDITION,
            &format!("dependsOn[{i}].condition"),
        )?;
        if !seen.insert(target) {
            return Err(at.err(format!(
                "dependsOn lists container '{target}' more than once; give one condition per container"
            )));
        }
    }
    Ok(())
}

pub(super) fn health_check(at: &At, hc: &api::HealthCheck) -> Result<api::HealthCheck, Error> {
    let cmd = at.required(&hc.command, "healthCheck.command")?;
    const EXAMPLE: &str = "for example [\"CMD-SHELL\", \"curl -f http://localhost/ || exit 1\"]";
    match cmd.first().map(String::as_str) {
        Some("CMD" | "CMD-SHELL") => {
            if cmd.iter().skip(1).all(|s| s.trim().is_empty()) {
                return Err(at.err(format!(
                    "healthCheck.command needs the command to run after '{}', {EXAMPLE}",
                    cmd[0]
                )));
            }
        }
        Some("NONE") => {}
        Some(other) => {
            return Err(at.err(format!(
                "healthCheck.command must start with CMD, CMD-SHELL or NONE; got '{}'. Use {EXAMPLE}",
                shorten(other)
            )));
        }
        None => {
            return Err(at.err(format!(
                "healthCheck.command must not be empty; use {EXAMPLE}"
            )));
        }
    }
    let timing = |v: Option<i32>, (lo, hi, default): (i32, i32, i32), what: &str, unit: &str| {
        let v = v.unwrap_or(default);
        at.range(v, (lo, hi), what, unit).map(|()| v)
    };
    Ok(api::HealthCheck {
        command: Some(cmd.clone()),
        interval: Some(timing(
            hc.interval,
            HC_INTERVAL,
            "healthCheck.interval",
            " seconds",
        )?),
        timeout: Some(timing(
            hc.timeout,
            HC_TIMEOUT,
            "healthCheck.timeout",
            " seconds",
        )?),
        retries: Some(timing(hc.retries, HC_RETRIES, "healthCheck.retries", "")?),
        start_period: Some(timing(
            hc.start_period,
            HC_START_PERIOD,
            "healthCheck.startPeriod",
            " seconds",
        )?),
    })
}

/// dependsOn conditions against their targets, and no cycles through links, volumesFrom and
/// dependsOn (each makes one container start after another).
pub(super) fn dependencies(
    containers: &[api::ContainerDefinition],
    names: &[&str],
) -> Result<(), Error> {
    let index = |n: &str| names.iter().position(|m| *m == n);
    let mut edges: Vec<Vec<(usize, &'static str)>> = vec![Vec::new(); containers.len()];
    for (i, c) in containers.iter().enumerate() {
        let at = At::container(names[i]);
        for d in c.depends_on.as_deref().unwrap_or_default() {
            let (Some(target), Some(cond)) = (d.container_name.as_deref(), d.condition.as_deref())
            else {
                continue;
            };
            let Some(j) = index(target) else { continue };
            let t = &containers[j];
            match cond {
                "HEALTHY" => {
                    let has_check = t
                        .health_check
                        .as_ref()
                        .and_then(|h| h.command.as_deref())
                        .and_then(|c| c.first())
                        .is_some_and(|first| first != "NONE");
                    if !has_check {
                        return Err(at.err(format!(
                            "dependsOn condition HEALTHY on '{target}' needs a healthCheck on container '{target}'; add one or use START"
                        )));
                    }
                }
                "COMPLETE" | "SUCCESS" if t.essential != Some(false) => {
                    return Err(at.err(format!(
                        "dependsOn condition {cond} on '{target}' needs '{target}' to be non-essential (essential=false): when an essential container exits, the whole task stops"
                    )));
                }
                _ => {}
            }
            edges[i].push((j, "dependsOn"));
        }
        for l in c.links.as_deref().unwrap_or_default() {
            let target = l.split_once(':').map_or(l.as_str(), |(t, _)| t);
            if let Some(j) = index(target) {
                edges[i].push((j, "links"));
            }
        }
        for vf in c.volumes_from.as_deref().unwrap_or_default() {
            if let Some(j) = vf.source_container.as_deref().and_then(index) {
                edges[i].push((j, "volumesFrom"));
            }
        }
    }
    if let Some(cycle) = find_cycle(&edges) {
        let mut desc = String::new();
        for (k, (node, kind)) in cycle.iter().enumerate() {
            if k == 0 {
                desc.push_str(&format!("'{}'", names[*node]));
            }
            let next = cycle.get(k + 1).map_or(cycle[0].0, |(n, _)| *n);
            desc.push_str(&format!(" -({kind})-> '{}'", names[next]));
        }
        return Err(Error::client(format!(
            "Container dependencies form a cycle: {desc}. Remove one of these links, volumesFrom or dependsOn references."
        )));
    }
    Ok(())
}

/// A cycle in `edges` as (node, kind of its edge to the next node); the last node's edge
/// leads back to the first.
pub(super) fn find_cycle(
    edges: &[Vec<(usize, &'static str)>],
) -> Option<Vec<(usize, &'static str)>> {
    fn visit(
        u: usize,
        edges: &[Vec<(usize, &'static str)>],
        state: &mut [u8],
        path: &mut Vec<(usize, &'static str)>,
    ) -> Option<Vec<(usize, &'static str)>> {
        state[u] = 1;
        for &(v, kind) in &edges[u] {
            path.push((u, kind));
            match state[v] {
                1 => {
                    let start = path.iter().position(|(n, _)| *n == v).unwrap_or(0);
                    return Some(path[start..].to_vec());
                }
                0 => {
                    if let Some(c) = visit(v, edges, state, path) {
                        return Some(c);
                    }
                }
                _ => {}
            }
            path.pop();
        }
        state[u] = 2;
        None
    }
    let mut state = vec![0u8; edges.len()];
    for u in 0..edges.len() {
        if state[u] == 0
            && let Some(c) = visit(u, edges, &mut state, &mut Vec::new())
        {
            return Some(c);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use crate::validate::task_definition::tests::*;

    #[test]
    fn depends_on_rules() {
        let dep = |target: &str, cond: &str, other: Value| {
            task(
                vec![
                    ctr(
                        "web",
                        json!({"dependsOn": [{"containerName": target, "condition": cond}]}),
                    ),
                    ctr("init", other),
                ],
                json!({}),
            )
        };
        ok(dep("init", "START", json!({})));
        ok(dep("init", "COMPLETE", json!({"essential": false})));
        ok(dep("init", "SUCCESS", json!({"essential": false})));
        ok(dep(
            "init",
            "HEALTHY",
            json!({"healthCheck": {"command": ["CMD", "true"]}}),
        ));
        client(
            dep("nope", "START", json!({})),
            &[
                "Container 'web'",
                "dependsOn[0].containerName 'nope'",
                "'init'",
            ],
        );
        client(
            dep("web", "START", json!({})),
            &["Container 'web'", "itself"],
        );
        client(
            dep("init", "READY", json!({})),
            &[
                "Container 'web'",
                "'READY'",
                "START, COMPLETE, SUCCESS, HEALTHY",
            ],
        );
        client(
            dep("init", "HEALTHY", json!({})),
            &[
                "Container 'web'",
                "HEALTHY",
                "healthCheck on container 'init'",
            ],
        );
        client(
            dep(
                "init",
                "HEALTHY",
                json!({"healthCheck": {"command": ["NONE"]}}),
            ),
            &["healthCheck on container 'init'"],
        );
        client(
            dep("init", "COMPLETE", json!({})),
            &["Container 'web'", "COMPLETE", "'init' to be non-essential"],
        );
        client(
            dep("init", "SUCCESS", json!({"essential": true})),
            &["SUCCESS", "non-essential"],
        );
        client(
            task(
                vec![
                    ctr("web", json!({"dependsOn": [{"containerName": "init"}]})),
                    ctr("init", json!({})),
                ],
                json!({}),
            ),
            &["Container 'web'", "dependsOn[0].condition"],
        );
        client(
            task(
                vec![
                    ctr(
                        "web",
                        json!({"dependsOn": [{"containerName": "init", "condition": "START"}, {"containerName": "init", "condition": "START"}]}),
                    ),
                    ctr("init", json!({})),
                ],
                json!({}),
            ),
            &["more than once"],
        );
    }

    #[test]
    fn dependency_cycles_are_reported() {
        let start = |t: &str| json!({"dependsOn": [{"containerName": t, "condition": "START"}]});
        client(
            task(
                vec![
                    ctr("a", start("b")),
                    ctr("b", start("c")),
                    ctr("c", start("a")),
                ],
                json!({}),
            ),
            &[
                "cycle",
                "'a' -(dependsOn)-> 'b' -(dependsOn)-> 'c' -(dependsOn)-> 'a'",
            ],
        );
        client(
            task(
                vec![
                    ctr("a", json!({"links": ["b"]})),
                    ctr("b", json!({"volumesFrom": [{"sourceContainer": "a"}]})),
                ],
                json!({}),
            ),
            &["cycle", "'a' -(links)-> 'b' -(volumesFrom)-> 'a'"],
        );
        ok(task(
            vec![
                ctr("a", start("b")),
                ctr("b", start("c")),
                ctr("c", json!({"links": []})),
            ],
            json!({}),
        ));
    }

    #[test]
    fn health_check_rules() {
        let hc = |h: Value| one(json!({"healthCheck": h}));
        client(hc(json!({})), &["Container 'web'", "healthCheck.command"]);
        client(
            hc(json!({"command": []})),
            &["Container 'web'", "healthCheck.command must not be empty"],
        );
        client(
            hc(json!({"command": ["curl", "-f", "localhost"]})),
            &["must start with CMD, CMD-SHELL or NONE", "'curl'"],
        );
        client(
            hc(json!({"command": ["CMD-SHELL"]})),
            &["needs the command to run after 'CMD-SHELL'"],
        );
        client(hc(json!({"command": ["CMD", " "]})), &["after 'CMD'"]);
        let cmd = json!(["CMD", "true"]);
        client(
            hc(json!({"command": cmd, "interval": 4})),
            &["Container 'web'", "healthCheck.interval (4)", "5 and 300"],
        );
        client(
            hc(json!({"command": cmd, "interval": 301})),
            &["healthCheck.interval (301)"],
        );
        client(
            hc(json!({"command": cmd, "timeout": 1})),
            &["healthCheck.timeout (1)", "2 and 60"],
        );
        client(
            hc(json!({"command": cmd, "timeout": 61})),
            &["healthCheck.timeout (61)"],
        );
        client(
            hc(json!({"command": cmd, "retries": 0})),
            &["healthCheck.retries (0)", "1 and 10"],
        );
        client(
            hc(json!({"command": cmd, "retries": 11})),
            &["healthCheck.retries (11)"],
        );
        client(
            hc(json!({"command": cmd, "startPeriod": -1})),
            &["healthCheck.startPeriod (-1)", "0 and 300"],
        );
        client(
            hc(json!({"command": cmd, "startPeriod": 301})),
            &["healthCheck.startPeriod (301)"],
        );
        let t = ok(hc(json!({"command": ["NONE"]})));
        let h = containers(&t)[0].health_check.clone().unwrap();
        assert_eq!(
            (h.interval, h.timeout, h.retries, h.start_period),
            (Some(30), Some(5), Some(3), Some(0))
        );
        let t = ok(hc(
            json!({"command": cmd, "interval": 5, "timeout": 60, "retries": 10, "startPeriod": 300}),
        ));
        let h = containers(&t)[0].health_check.clone().unwrap();
        assert_eq!(
            (h.interval, h.timeout, h.retries, h.start_period),
            (Some(5), Some(60), Some(10), Some(300))
        );
    }
}
