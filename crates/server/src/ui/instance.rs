//! The container instance page: its attributes, capacity registered and remaining, whether its
//! agent is connected, the tasks placed on it, and why a task could (not) be placed there.
//!
//! The placement verdicts come from the same dry-run `berth explain` uses
//! (`POST /v1/placement/dry-run`, planned on the current snapshot, nothing committed): for each
//! service still short of its desired count (a placement that is pending or was refused), and
//! for a task definition the viewer picks in a small form. [`instance_page`] is a pure
//! function of one snapshot and says which placements to explain; the handler asks the
//! dry-run and fills in [`InstancePage::verdicts`].

use std::collections::BTreeSet;

use berth_model::entity::{InstanceStatus, TaskDefinitionStatus};
use berth_model::service::{SchedulingStrategy, ServiceStatus};
use berth_state::{State, TaskFilter};
use maud::{Markup, html};
use serde_json::{Value, json};

use super::delegate::DelegateError;
use super::page::{self, href};
use super::service::{TaskRow, task_rows};

/// Attributes listed (by name); the rest are counted.
pub const ATTRIBUTES_SHOWN: usize = 200;
/// Tasks listed (live first); the rest are counted.
pub const TASKS_SHOWN: usize = 100;
/// Services short of their desired count whose placement here is explained.
pub const PENDING_EXPLAINED: usize = 5;
/// Task definitions (the newest ACTIVE revision of each family) offered in the form.
pub const TASK_DEFINITIONS_OFFERED: usize = 100;

#[derive(Debug, Clone)]
pub struct InstancePage {
    /// The state index the page shows.
    pub index: u64,
    pub cluster: String,
    pub id: String,
    pub status: &'static str,
    pub status_reason: Option<String>,
    pub connected: bool,
    pub ec2_instance_id: Option<String>,
    pub registered_at: berth_model::Millis,
    /// Agent and Docker versions as the agent registered them.
    pub versions: Option<String>,
    pub cpu: Capacity,
    pub memory: Capacity,
    /// TCP ports the host keeps for itself.
    pub reserved_ports: Vec<u16>,
    /// Host ports tasks hold: static and dynamic, TCP and UDP.
    pub ports_in_use: usize,
    pub running: u32,
    pub pending: u32,
    pub attributes: Vec<(String, Option<String>)>,
    /// Attributes beyond [`ATTRIBUTES_SHOWN`].
    pub more_attributes: usize,
    pub tags: Vec<(String, String)>,
    pub tasks: Vec<TaskRow>,
    pub more_tasks: usize,
    /// What the form offers: `family:revision`.
    pub task_definitions: Vec<String>,
    /// Placements to explain, as dry-run (RunTask) bodies with what they are for.
    pub to_explain: Vec<Explain>,
    /// The dry-run's verdict on this instance for each of [`Self::to_explain`].
    pub verdicts: Vec<Verdict>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Capacity {
    pub registered: i64,
    pub used: i64,
}

/// One placement to explain: a label and the RunTask body to dry-run.
#[derive(Debug, Clone, PartialEq)]
pub struct Explain {
    pub subject: String,
    pub request: Value,
}

/// This instance's verdict in one dry-run.
#[derive(Debug, Clone)]
pub struct Verdict {
    pub subject: String,
    /// `chosen`, `passed-over` or `rejected`; or why there is no verdict (the dry-run
    /// failed or refused the viewer).
    pub outcome: Result<InstanceVerdict, DelegateError>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct InstanceVerdict {
    pub verdict: String,
    pub reason: Option<String>,
    pub detail: Option<String>,
    /// Tasks the dry-run placed anywhere in the cluster (of one asked).
    pub placed: u64,
}

impl InstanceVerdict {
    /// This instance's entry in a dry-run's answer (`instances[]`, by ARN).
    pub fn from_dry_run(answer: &Value, instance_arn: &str) -> InstanceVerdict {
        let placed = answer["placed"].as_u64().unwrap_or(0);
        let entry = answer["instances"].as_array().and_then(|all| {
            all.iter()
                .find(|i| i["containerInstanceArn"].as_str() == Some(instance_arn))
        });
        let text = |v: &Value| v.as_str().map(str::to_owned);
        match entry {
            Some(e) => InstanceVerdict {
                verdict: text(&e["verdict"]).unwrap_or_default(),
                reason: text(&e["reason"]),
                detail: text(&e["detail"]),
                placed,
            },
            None => InstanceVerdict {
                verdict: "not considered".into(),
                reason: None,
                detail: Some("the placement engine looks only at registered instances".into()),
                placed,
            },
        }
    }
}

/// The page of instance `id` of `cluster`; `picked` is the task definition the viewer asked
/// about. `None` if the cluster has no such instance.
pub fn instance_page(
    state: &State,
    cluster: &str,
    id: &str,
    picked: Option<&str>,
) -> Option<InstancePage> {
    let id = id.parse().ok()?;
    let i = state.instance(id).filter(|i| *i.cluster == *cluster)?;
    let usage = state.usage(id);
    let filter = TaskFilter {
        instance: Some(id),
        ..TaskFilter::default()
    };
    let (tasks, more_tasks) = task_rows(
        state.tasks_after(cluster, &filter, None).map(|t| &**t),
        TASKS_SHOWN,
    );
    let versions = i.version_info.as_ref().map(|v| {
        format!(
            "agent {}, docker {}",
            v.agent_version.as_deref().unwrap_or("?"),
            v.docker_version.as_deref().unwrap_or("none")
        )
    });
    let task_definitions = state
        .families_after(None)
        .filter_map(|(family, _)| state.latest_active(family))
        .take(TASK_DEFINITIONS_OFFERED)
        .map(|d| format!("{}:{}", d.family, d.revision))
        .collect();

    let mut to_explain = Vec::new();
    if let Some(picked) = picked.filter(|p| !p.is_empty()) {
        to_explain.push(Explain {
            subject: format!("task definition {picked}"),
            request: json!({ "cluster": cluster, "taskDefinition": picked, "count": 1 }),
        });
    }
    if i.status == InstanceStatus::Active {
        to_explain.extend(pending_services(state, cluster, id));
    }
    Some(InstancePage {
        index: state.index(),
        cluster: cluster.to_owned(),
        id: id.to_string(),
        status: i.status.as_str(),
        status_reason: i.status_reason.clone(),
        connected: i.agent_connected,
        ec2_instance_id: i.ec2_instance_id.clone(),
        registered_at: i.registered_at,
        versions,
        cpu: Capacity {
            registered: i.resources.cpu,
            used: usage.map_or(0, |u| u.cpu),
        },
        memory: Capacity {
            registered: i.resources.memory,
            used: usage.map_or(0, |u| u.memory),
        },
        reserved_ports: i.resources.ports.clone(),
        ports_in_use: usage.map_or(0, |u| {
            u.tcp.len() + u.udp.len() + u.dynamic_tcp.len() + u.dynamic_udp.len()
        }),
        running: usage.map_or(0, |u| u.running),
        pending: usage.map_or(0, |u| u.pending),
        attributes: i
            .attributes
            .iter()
            .take(ATTRIBUTES_SHOWN)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        more_attributes: i.attributes.len().saturating_sub(ATTRIBUTES_SHOWN),
        tags: i
            .tags
            .iter()
            .map(|t| (t.key.clone(), t.value.clone()))
            .collect(),
        tasks,
        more_tasks,
        task_definitions,
        to_explain,
        verdicts: Vec::new(),
    })
}

/// Services of the cluster still short of their desired count, where one more task could go on
/// this instance: a REPLICA service whose PRIMARY deployment has fewer live tasks than it
/// wants, a DAEMON service with no live task here. Each is explained as the reconciler would
/// place it (its group, constraints and strategy), at most [`PENDING_EXPLAINED`].
fn pending_services(
    state: &State,
    cluster: &str,
    instance: berth_model::InstanceId,
) -> Vec<Explain> {
    let mut out = Vec::new();
    for s in state.services_after(cluster, None) {
        if out.len() == PENDING_EXPLAINED {
            break;
        }
        let Some(primary) = s.primary().filter(|_| s.status == ServiceStatus::Active) else {
            continue;
        };
        let group = s.group();
        let short = match s.scheduling_strategy {
            SchedulingStrategy::Replica => {
                let filter = TaskFilter {
                    started_by: Some(primary.id.clone()),
                    ..TaskFilter::default()
                };
                let live = state
                    .tasks_after(cluster, &filter, None)
                    .filter(|t| t.is_live())
                    .count();
                live < primary.desired_count as usize
            }
            SchedulingStrategy::Daemon => state.live_in_group_on(cluster, &group, instance) == 0,
        };
        let definition = state.task_definition(&primary.family, primary.revision);
        if !short || definition.is_none_or(|d| d.status != TaskDefinitionStatus::Active) {
            continue;
        }
        let task_definition = format!("{}:{}", primary.family, primary.revision);
        out.push(Explain {
            subject: format!("service {} ({task_definition})", s.name),
            request: json!({
                "cluster": cluster,
                "taskDefinition": task_definition,
                "count": 1,
                "group": group,
                "placementConstraints": s.placement_constraints,
                "placementStrategy": s.placement_strategy,
            }),
        });
    }
    out
}

/// The page's live part.
pub fn render(p: &InstancePage) -> Markup {
    let remaining = |c: Capacity| c.registered - c.used;
    let ports: BTreeSet<u16> = p.reserved_ports.iter().copied().collect();
    html! {
        div.instance-page data-index=(p.index) data-instance=(p.id) data-connected=(p.connected) {
            p.crumbs { a href="/ui" { "Overview" } " › cluster " (p.cluster) " › container instance" }
            h1 { "Instance " code { (p.id) } }
            dl.facts {
                dt { "status" } dd.status {
                    (p.status)
                    @if let Some(r) = &p.status_reason { " (" (r) ")" }
                }
                dt { "agent" } dd.agent {
                    @if p.connected { "connected" } @else { span.warn { "disconnected" } }
                    @if let Some(v) = &p.versions { " · " (v) }
                }
                @if let Some(e) = &p.ec2_instance_id { dt { "host" } dd { code { (e) } } }
                dt { "registered" } dd { (page::when(p.registered_at)) }
            }
            h3 { "Capacity" }
            table.capacity {
                thead { tr { th { "resource" } th { "registered" } th { "used" } th { "remaining" } } }
                tbody {
                    tr data-resource="cpu" {
                        td { "CPU units" } td { (p.cpu.registered) }
                        td { meter min="0" max=(p.cpu.registered.max(1)) value=(p.cpu.used) {} " " (p.cpu.used) }
                        td.remaining { (remaining(p.cpu)) }
                    }
                    tr data-resource="memory" {
                        td { "memory (MiB)" } td { (p.memory.registered) }
                        td { meter min="0" max=(p.memory.registered.max(1)) value=(p.memory.used) {} " " (p.memory.used) }
                        td.remaining { (remaining(p.memory)) }
                    }
                    tr data-resource="ports" {
                        td { "host ports" }
                        td { "reserved: " @for (n, port) in ports.iter().enumerate() { @if n > 0 { ", " } (port) } }
                        td { (p.ports_in_use) " held by tasks" }
                        td {}
                    }
                }
            }
            p { (p.running) " running, " (p.pending) " pending" }
            h3 { "Placement here" }
            @if p.verdicts.is_empty() {
                p.empty { "No service is waiting for a placement. Pick a task definition above to ask whether one of its tasks could go here." }
            }
            @if !p.verdicts.is_empty() {
                table.verdicts {
                    thead { tr { th { "placing" } th { "verdict here" } th { "why" } th { "in the cluster" } } }
                    tbody {
                        @for v in &p.verdicts {
                            @match &v.outcome {
                                Ok(o) => tr data-verdict=(o.verdict) {
                                    td { (v.subject) }
                                    td.verdict { (o.verdict) }
                                    td {
                                        @if let Some(r) = &o.reason { strong { (r) } " " }
                                        @if let Some(d) = &o.detail { (d) }
                                    }
                                    td { @if o.placed > 0 { "would be placed" } @else { span.warn { "fits nowhere" } } }
                                },
                                Err(e) => tr data-verdict="error" {
                                    td { (v.subject) } td.verdict { "no verdict" } td.error { (e.to_string()) } td {}
                                },
                            }
                        }
                    }
                }
                p.note { "A dry-run of one task on the current state, as " code { "berth explain" } " runs it; nothing is placed. "
                    "“passed-over” means it fits here but the strategy preferred another instance." }
            }
            h3 { "Tasks here" }
            (super::service::task_table(&p.cluster, &p.tasks, p.more_tasks, false))
            h3 { "Attributes" }
            table.attributes {
                tbody {
                    @for (name, value) in &p.attributes {
                        tr { td { code { (name) } } td { @if let Some(v) = value { (v) } } }
                    }
                }
            }
            @if p.more_attributes > 0 {
                p.more { "showing " (ATTRIBUTES_SHOWN) "; " (p.more_attributes) " more" }
            }
            @if !p.tags.is_empty() {
                h3 { "Tags" }
                table.tags {
                    tbody { @for (k, v) in &p.tags { tr { td { code { (k) } } td { (v) } } } }
                }
            }
        }
    }
}

/// The form that asks for a task definition's verdict (above the live region, so a choice
/// being made survives live updates).
pub fn explain_form(p: &InstancePage, picked: Option<&str>) -> Markup {
    html! {
        form.explain method="get" action=(href::instance(&p.cluster, &p.id)) {
            label {
                "Could a task of "
                select name="taskdef" {
                    option value="" { "— task definition —" }
                    @for d in &p.task_definitions {
                        option value=(d) selected[picked == Some(d.as_str())] { (d) }
                    }
                }
                " be placed here? "
            }
            button type="submit" { "Explain" }
            @if p.task_definitions.len() == TASK_DEFINITIONS_OFFERED {
                " " small { "(the first " (TASK_DEFINITIONS_OFFERED) " families)" }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_instance_verdict_is_read_from_the_dry_run() {
        let answer = json!({
            "placed": 0,
            "instances": [
                {"containerInstanceArn": "arn:a", "verdict": "chosen"},
                {"containerInstanceArn": "arn:b", "verdict": "rejected",
                 "reason": "RESOURCE:MEMORY", "detail": "needs 512 MiB, 128 free"},
            ],
        });
        let v = InstanceVerdict::from_dry_run(&answer, "arn:b");
        assert_eq!(v.verdict, "rejected");
        assert_eq!(v.reason.as_deref(), Some("RESOURCE:MEMORY"));
        assert_eq!(v.placed, 0);
        let v = InstanceVerdict::from_dry_run(&answer, "arn:c");
        assert_eq!(v.verdict, "not considered");
    }
}
