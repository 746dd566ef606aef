//! The task page: the task's status and why it stopped, its containers (exit codes, reasons,
//! health, network bindings), a timeline of its retained versions from the state's history,
//! and the tail of each container's log.
//!
//! Everything but the logs is a pure function of one state snapshot. The logs live on the
//! agent, so they are not part of the live region: the page's script fetches each container's
//! tail from [`logs_href`] when the page loads, after every live update and every few seconds
//! while the task is not STOPPED (`data-follow`), and the server reads at most a bounded amount
//! from the agent each time (see `delegate::log_tail`).

use berth_api::types::NetworkBinding;
use berth_model::Millis;
use berth_model::entity::Task;
use berth_state::{Entity, EntityKey, State};
use maud::{Markup, html};

use super::delegate::{DelegateError, LogTail};
use super::page::{self, href};

/// Versions shown in the timeline, newest first (the state keeps `--history-versions`).
pub const HISTORY_SHOWN: usize = 50;

#[derive(Debug, Clone, PartialEq)]
pub struct TaskPage {
    /// The state index the page shows.
    pub index: u64,
    pub cluster: String,
    pub id: String,
    pub status: &'static str,
    pub desired: &'static str,
    pub health: &'static str,
    pub task_definition: String,
    pub group: String,
    /// The service the task belongs to, if its group is a service's.
    pub service: Option<String>,
    pub started_by: Option<String>,
    /// Its scheduling priority, 0 to 1000 (`berth:priority`).
    pub priority: u16,
    pub instance: Option<String>,
    pub created_at: Millis,
    pub started_at: Option<Millis>,
    pub stopped_at: Option<Millis>,
    pub stop_code: Option<String>,
    pub stopped_reason: Option<String>,
    pub containers: Vec<ContainerRow>,
    /// `None` when the viewer may not read the task's history.
    pub history: Option<Vec<HistoryRow>>,
    /// Retained versions beyond [`HISTORY_SHOWN`].
    pub more_history: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ContainerRow {
    pub name: String,
    pub image: String,
    pub essential: bool,
    pub status: &'static str,
    pub exit_code: Option<i32>,
    pub reason: Option<String>,
    pub health: &'static str,
    /// `host:port → container port/protocol`, one per binding.
    pub bindings: Vec<String>,
}

/// One retained version of the task: when, by whom, and what it changed.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryRow {
    pub index: u64,
    pub at: Millis,
    pub by: Option<String>,
    pub changes: Vec<String>,
}

/// The page of task `id` of `cluster`, with its history if `with_history`; `None` if the
/// cluster has no such task.
pub fn task_page(state: &State, cluster: &str, id: &str, with_history: bool) -> Option<TaskPage> {
    let id = id.parse().ok()?;
    let t = state.task(id).filter(|t| *t.cluster == *cluster)?;
    let (history, more_history) = if with_history {
        let (rows, more) = history(state, EntityKey::Task(id));
        (Some(rows), more)
    } else {
        (None, 0)
    };
    Some(TaskPage {
        index: state.index(),
        cluster: cluster.to_owned(),
        id: t.id.to_string(),
        status: t.last_status.as_str(),
        desired: t.desired_status.as_str(),
        health: t.health_status.as_str(),
        task_definition: format!("{}:{}", t.family, t.revision),
        group: t.group.clone(),
        service: t.group.strip_prefix("service:").map(str::to_owned),
        started_by: t.started_by.clone(),
        priority: t.priority().get(),
        instance: t.instance.map(|i| i.to_string()),
        created_at: t.created_at,
        started_at: t.started_at,
        stopped_at: t.stopped_at,
        stop_code: t.stop_code.clone(),
        stopped_reason: t.stopped_reason.clone(),
        containers: t
            .containers
            .iter()
            .map(|c| ContainerRow {
                name: c.name.clone(),
                image: c.image.clone(),
                essential: c.essential,
                status: c.last_status.as_str(),
                exit_code: c.exit_code,
                reason: c.reason.clone(),
                health: c.health_status.as_str(),
                bindings: c.network_bindings.iter().map(binding).collect(),
            })
            .collect(),
        history,
        more_history,
    })
}

fn binding(b: &NetworkBinding) -> String {
    let host = match (&b.host_port, &b.host_port_range) {
        (Some(p), _) => p.to_string(),
        (None, Some(r)) => r.clone(),
        (None, None) => "?".into(),
    };
    let container = match (&b.container_port, &b.container_port_range) {
        (Some(p), _) => p.to_string(),
        (None, Some(r)) => r.clone(),
        (None, None) => "?".into(),
    };
    format!(
        "{}:{host} → {container}/{}",
        b.bind_ip.as_deref().unwrap_or("0.0.0.0"),
        b.protocol.as_deref().unwrap_or("tcp")
    )
}

/// The task's retained versions, newest first (at most [`HISTORY_SHOWN`]), each with what it
/// changed from the one before; and how many older ones were left out.
fn history(state: &State, key: EntityKey) -> (Vec<HistoryRow>, usize) {
    let Some(versions) = state.history(&key) else {
        return (Vec::new(), 0);
    };
    let task_of = |v: &berth_state::Version| match &v.value {
        Some(Entity::Task(t)) => Some(t.clone()),
        _ => None,
    };
    let mut rows = Vec::with_capacity(versions.len());
    let mut before = None;
    for v in versions.iter() {
        let now = task_of(v);
        rows.push(HistoryRow {
            index: v.index,
            at: v.at,
            by: v.by.as_deref().map(str::to_owned),
            changes: changes(before.as_deref(), now.as_deref()),
        });
        before = now;
    }
    rows.reverse();
    let more = rows.len().saturating_sub(HISTORY_SHOWN);
    rows.truncate(HISTORY_SHOWN);
    (rows, more)
}

/// What changed between two versions of a task, in words.
pub fn changes(before: Option<&Task>, after: Option<&Task>) -> Vec<String> {
    let (b, a) = match (before, after) {
        (_, None) => return vec!["forgotten (STOPPED past its retention)".into()],
        (None, Some(a)) => {
            let on = a
                .instance
                .map_or_else(String::new, |i| format!(" on instance {i}"));
            return vec![format!(
                "placed{on}: {}, desired {}",
                a.last_status, a.desired_status
            )];
        }
        (Some(b), Some(a)) => (b, a),
    };
    let mut out = Vec::new();
    let mut field = |name: &str, x: String, y: String| {
        if x != y {
            out.push(format!("{name}: {x} → {y}"));
        }
    };
    let opt = |s: &Option<String>| s.clone().unwrap_or_else(|| "—".into());
    field(
        "status",
        b.last_status.to_string(),
        a.last_status.to_string(),
    );
    field(
        "desired",
        b.desired_status.to_string(),
        a.desired_status.to_string(),
    );
    field(
        "health",
        b.health_status.to_string(),
        a.health_status.to_string(),
    );
    field("stop code", opt(&b.stop_code), opt(&a.stop_code));
    field(
        "stopped reason",
        opt(&b.stopped_reason),
        opt(&a.stopped_reason),
    );
    for c in &a.containers {
        let Some(old) = b.containers.iter().find(|o| o.name == c.name) else {
            continue;
        };
        let exit = |e: Option<i32>| e.map_or_else(|| "—".into(), |e| e.to_string());
        field(
            &format!("{} status", c.name),
            old.last_status.to_string(),
            c.last_status.to_string(),
        );
        field(
            &format!("{} exit code", c.name),
            exit(old.exit_code),
            exit(c.exit_code),
        );
        field(
            &format!("{} health", c.name),
            old.health_status.to_string(),
            c.health_status.to_string(),
        );
        field(
            &format!("{} reason", c.name),
            opt(&old.reason),
            opt(&c.reason),
        );
    }
    if out.is_empty() {
        out.push("other fields (bindings, protection, timestamps)".into());
    }
    out
}

/// Where the page's script fetches the tail of one container's log.
pub fn logs_href(cluster: &str, task: &str, container: &str) -> String {
    format!(
        "{}/logs?container={}",
        href::task(cluster, task),
        berth_client::path_segment(container)
    )
}

/// The page's live part.
pub fn render(p: &TaskPage) -> Markup {
    let follow = p.status != "STOPPED";
    html! {
        div.task-page data-index=(p.index) data-task=(p.id) data-status=(p.status) data-follow=[follow.then_some("true")] {
            p.crumbs {
                a href="/ui" { "Overview" } " › cluster " (p.cluster)
                @if let Some(s) = &p.service {
                    " › " a href=(href::service(&p.cluster, s)) { "service " (s) }
                }
                " › task"
            }
            h1 { "Task " code { (p.id) } }
            dl.facts {
                dt { "status" } dd.status { (p.status) @if p.desired != p.status { " (desired " (p.desired) ")" } }
                dt { "health" } dd { (p.health) }
                dt { "task definition" } dd { (p.task_definition) }
                dt { "group" } dd { (p.group) }
                @if let Some(s) = &p.started_by { dt { "started by" } dd { code { (s) } } }
                dt { "priority" } dd { (p.priority) }
                dt { "instance" } dd {
                    @match &p.instance {
                        Some(i) => a href=(href::instance(&p.cluster, i)) { code { (i) } },
                        None => "not placed",
                    }
                }
                dt { "created" } dd { (page::when(p.created_at)) }
                @if let Some(at) = p.started_at { dt { "started" } dd { (page::when(at)) } }
                @if let Some(at) = p.stopped_at { dt { "stopped" } dd { (page::when(at)) } }
                @if let Some(c) = &p.stop_code { dt { "stop code" } dd { (c) } }
                @if let Some(r) = &p.stopped_reason { dt { "stopped reason" } dd.reason { (r) } }
            }
            h3 { "Containers" }
            table.containers {
                thead { tr {
                    th { "container" } th { "image" } th { "status" } th { "exit code" }
                    th { "reason" } th { "health" } th { "network bindings" }
                } }
                tbody {
                    @for c in &p.containers {
                        tr data-container=(c.name) data-status=(c.status) {
                            td { (c.name) @if !c.essential { " " small { "(not essential)" } } }
                            td { code { (c.image) } }
                            td { (c.status) }
                            td { @if let Some(e) = c.exit_code { (e) } }
                            td { @if let Some(r) = &c.reason { (r) } }
                            td { (c.health) }
                            td {
                                @for b in &c.bindings { code { (b) } br; }
                            }
                        }
                    }
                }
            }
            h3 { "History" }
            @match &p.history {
                None => p.empty { "You may not read this task's history (berth:GetHistory)." },
                Some(rows) if rows.is_empty() => p.empty { "No versions retained." },
                Some(rows) => ol.timeline reversed {
                    @for r in rows {
                        li data-history-index=(r.index) {
                            time { (page::when(r.at)) } " "
                            @if let Some(by) = &r.by { span.by { "by " (by) } }
                            ul { @for c in &r.changes { li { (c) } } }
                        }
                    }
                },
            }
            @if p.more_history > 0 {
                p.more { "showing the newest " (HISTORY_SHOWN) "; " (p.more_history) " older versions retained" }
            }
        }
    }
}

/// The logs section, outside the live region: one box per container that the script fills.
pub fn logs_panel(p: &TaskPage) -> Markup {
    html! {
        section.logs {
            h3 { "Logs" }
            p.note { "The last " (super::delegate::LOG_LINES) " lines of each container, refreshed while the task runs." }
            @for c in &p.containers {
                h4 { (c.name) }
                div.log data-logs=(logs_href(&p.cluster, &p.id, &c.name)) { p.empty { "loading…" } }
            }
        }
    }
}

/// One container's log tail as the script puts it in its box: the lines, and what was left
/// out; or why there are none.
pub fn log_fragment(tail: &Result<LogTail, DelegateError>) -> Markup {
    html! {
        @match tail {
            Ok(t) => {
                @if t.clipped { p.more { "earlier output not shown" } }
                @if t.text.is_empty() { p.empty { "no output yet" } }
                @else { pre { (t.text) } }
                @if t.unfinished {
                    p.more { "the log is too long to read to its end here; use " code { "berth logs -f" } }
                }
            }
            Err(e) => p.error { "No logs: " (e.to_string()) },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> TaskPage {
        TaskPage {
            index: 7,
            cluster: "prod".into(),
            id: "ab12".into(),
            status: "STOPPED",
            desired: "STOPPED",
            health: "UNKNOWN",
            task_definition: "web:3".into(),
            group: "service:web".into(),
            service: Some("web".into()),
            started_by: Some("ecs-svc/1".into()),
            priority: 500,
            instance: Some("cd34".into()),
            created_at: Millis(0),
            started_at: Some(Millis(1000)),
            stopped_at: Some(Millis(2000)),
            stop_code: Some("UserInitiated".into()),
            stopped_reason: Some("<script>alert(1)</script>".into()),
            containers: vec![ContainerRow {
                name: "app".into(),
                image: "hollow/app:1".into(),
                essential: true,
                status: "STOPPED",
                exit_code: Some(143),
                reason: None,
                health: "UNKNOWN",
                bindings: vec!["0.0.0.0:61000 → 80/tcp".into()],
            }],
            history: Some(vec![HistoryRow {
                index: 5,
                at: Millis(2000),
                by: Some("user/admin".into()),
                changes: vec!["status: RUNNING → STOPPED".into()],
            }]),
            more_history: 0,
        }
    }

    #[test]
    fn the_page_shows_containers_history_and_links_and_escapes() {
        let html = render(&sample()).into_string();
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{html}"
        );
        assert!(!html.contains("<script>"), "{html}");
        assert!(
            html.contains(r#"href="/ui/clusters/prod/services/web""#),
            "{html}"
        );
        assert!(
            html.contains(r#"href="/ui/clusters/prod/instances/cd34""#),
            "{html}"
        );
        assert!(html.contains("<td>143</td>"), "{html}");
        assert!(html.contains("<dt>priority</dt><dd>500</dd>"), "{html}");
        assert!(html.contains("0.0.0.0:61000 → 80/tcp"), "{html}");
        assert!(html.contains("status: RUNNING → STOPPED"), "{html}");
        assert!(
            !html.contains("data-follow"),
            "a stopped task's logs are final"
        );
        let panel = logs_panel(&sample()).into_string();
        assert!(
            panel.contains(r#"data-logs="/ui/clusters/prod/tasks/ab12/logs?container=app""#),
            "{panel}"
        );
    }

    #[test]
    fn a_log_tail_is_escaped_and_says_what_it_left_out() {
        let tail = Ok(LogTail {
            text: "<b>hi</b>".into(),
            clipped: true,
            unfinished: false,
        });
        let html = log_fragment(&tail).into_string();
        assert!(html.contains("<pre>&lt;b&gt;hi&lt;/b&gt;</pre>"), "{html}");
        assert!(html.contains("earlier output not shown"), "{html}");
        let html = log_fragment(&Err(DelegateError::Refused {
            status: 403,
            message: "denied".into(),
        }))
        .into_string();
        assert!(html.contains("No logs: 403: denied"), "{html}");
    }

    #[test]
    fn a_page_without_history_permission_says_so() {
        let mut p = sample();
        p.history = None;
        let html = render(&p).into_string();
        assert!(html.contains("may not read this task's history"), "{html}");
    }
}
