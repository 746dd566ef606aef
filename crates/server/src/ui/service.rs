//! The service page: a service's deployments and how far each has rolled out, its newest
//! events, and its tasks. Computed from one state snapshot by a pure function, like the
//! overview, and rendered by [`render`]; the tasks come from the state's group index, so the
//! page costs one pass over the service's own tasks.

use std::collections::BTreeMap;

use berth_model::Millis;
use berth_model::entity::Task;
use berth_model::service::Service;
use berth_state::{State, TaskFilter};
use maud::{Markup, html};

use super::overview::{ServiceView, count_live, service_view};
use super::page::{self, href};

/// Newest events shown; a service keeps 100.
pub const EVENTS_SHOWN: usize = 50;
/// Tasks listed (live ones first, then the most recently stopped); the rest are counted.
pub const TASKS_SHOWN: usize = 100;

/// The whole page's data.
#[derive(Debug, Clone, PartialEq)]
pub struct ServicePage {
    /// The state index the page shows.
    pub index: u64,
    pub cluster: String,
    /// ACTIVE, DRAINING or INACTIVE.
    pub status: &'static str,
    /// REPLICA or DAEMON.
    pub scheduling: &'static str,
    /// Name, health, counts and deployments, as the overview shows them.
    pub service: ServiceView,
    /// Newest first.
    pub events: Vec<EventRow>,
    /// Events kept beyond [`EVENTS_SHOWN`].
    pub more_events: usize,
    pub tasks: Vec<TaskRow>,
    /// Tasks beyond [`TASKS_SHOWN`].
    pub more_tasks: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EventRow {
    pub at: Millis,
    pub message: String,
}

/// One task in a list (of a service, or on an instance).
#[derive(Debug, Clone, PartialEq)]
pub struct TaskRow {
    pub id: String,
    pub status: &'static str,
    pub desired: &'static str,
    pub health: &'static str,
    pub task_definition: String,
    /// The deployment (or whoever else) that started it.
    pub started_by: Option<String>,
    pub instance: Option<String>,
    /// When it started running, or was created if it never ran.
    pub since: Millis,
    pub stopped_reason: Option<String>,
}

impl TaskRow {
    pub fn of(t: &Task) -> TaskRow {
        TaskRow {
            id: t.id.to_string(),
            status: t.last_status.as_str(),
            desired: t.desired_status.as_str(),
            health: t.health_status.as_str(),
            task_definition: format!("{}:{}", t.family, t.revision),
            started_by: t.started_by.clone(),
            instance: t.instance.map(|i| i.to_string()),
            since: t.started_at.unwrap_or(t.created_at),
            stopped_reason: t.stopped_reason.clone(),
        }
    }
}

/// At most `shown` of `tasks` as rows: live ones first (newest first), then stopped ones by
/// when they stopped (latest first); and how many were left out.
pub fn task_rows<'a>(tasks: impl Iterator<Item = &'a Task>, shown: usize) -> (Vec<TaskRow>, usize) {
    let mut tasks: Vec<&Task> = tasks.collect();
    tasks.sort_by_key(|t| {
        (
            !t.is_live(),
            std::cmp::Reverse(t.stopped_at.unwrap_or(t.created_at)),
            t.id,
        )
    });
    let more = tasks.len().saturating_sub(shown);
    (
        tasks.into_iter().take(shown).map(TaskRow::of).collect(),
        more,
    )
}

/// The page of service `name` in `cluster`; `None` if there is no such service.
pub fn service_page(state: &State, cluster: &str, name: &str) -> Option<ServicePage> {
    let s: &Service = state.service(cluster, name)?;
    let filter = TaskFilter {
        group: Some(s.group()),
        ..TaskFilter::default()
    };
    let tasks: Vec<&Task> = state
        .tasks_after(cluster, &filter, None)
        .map(|t| &**t)
        .collect();
    let mut by_starter: BTreeMap<&str, (u32, u32)> = BTreeMap::new();
    for t in &tasks {
        if let Some(starter) = t.started_by.as_deref() {
            count_live(by_starter.entry(starter).or_default(), t.last_status);
        }
    }
    let (tasks, more_tasks) = task_rows(tasks.into_iter(), TASKS_SHOWN);
    Some(ServicePage {
        index: state.index(),
        cluster: cluster.to_owned(),
        status: s.status.as_str(),
        scheduling: s.scheduling_strategy.as_str(),
        service: service_view(s, &by_starter),
        events: s
            .events
            .iter()
            .take(EVENTS_SHOWN)
            .map(|e| EventRow {
                at: e.at,
                message: e.message.clone(),
            })
            .collect(),
        more_events: s.events.len().saturating_sub(EVENTS_SHOWN),
        tasks,
        more_tasks,
    })
}

/// The page's live part.
pub fn render(p: &ServicePage) -> Markup {
    let s = &p.service;
    html! {
        div.service-page data-index=(p.index) data-service=(s.name) data-health=(s.health) {
            p.crumbs { a href="/ui" { "Overview" } " › cluster " (p.cluster) " › service" }
            h1 { (s.name) " " small.health { (s.health) } }
            p {
                (p.status) " · " (p.scheduling) " · "
                span.counts { (s.running) " running, " (s.pending) " pending of " (s.desired) " desired" }
            }
            h3 { "Deployments" }
            table.deployments {
                thead { tr {
                    th { "deployment" } th { "status" } th { "task definition" } th { "rollout" }
                    th { "desired" } th { "pending" } th { "running" } th { "failed" }
                } }
                tbody {
                    @for d in &s.deployments {
                        tr data-deployment=(d.id) {
                            td { code { (d.id) } }
                            td { (d.status) }
                            td { (d.task_definition) }
                            td {
                                (d.rollout)
                                @if let Some(r) = &d.rollout_reason { br; small { (r) } }
                            }
                            td { (d.desired) }
                            td { (d.pending) }
                            td { meter min="0" max=(d.desired.max(1)) value=(d.running) {} " " (d.running) }
                            td { (d.failed) }
                        }
                    }
                }
            }
            h3 { "Tasks" }
            (task_table(&p.cluster, &p.tasks, p.more_tasks, true))
            h3 { "Events" }
            @if p.events.is_empty() { p.empty { "none yet" } }
            ul.events {
                @for e in &p.events {
                    li { time { (page::when(e.at)) } " " (e.message) }
                }
            }
            @if p.more_events > 0 {
                p.more { "showing the newest " (EVENTS_SHOWN) "; " (p.more_events) " older kept" }
            }
        }
    }
}

/// A list of tasks linking to their pages (and, `with_instance`, to their instances').
pub fn task_table(cluster: &str, tasks: &[TaskRow], more: usize, with_instance: bool) -> Markup {
    html! {
        @if tasks.is_empty() { p.empty { "none" } }
        @if !tasks.is_empty() {
            table.tasks {
                thead { tr {
                    th { "task" } th { "status" } th { "health" } th { "task definition" }
                    th { "started by" } @if with_instance { th { "instance" } } th { "since" }
                } }
                tbody {
                    @for t in tasks {
                        tr data-task=(t.id) data-status=(t.status) {
                            td { a href=(href::task(cluster, &t.id)) { code { (t.id) } } }
                            td {
                                (t.status)
                                @if t.desired != t.status { " → " (t.desired) }
                                @if let Some(r) = &t.stopped_reason { br; small { (r) } }
                            }
                            td { (t.health) }
                            td { (t.task_definition) }
                            td { @if let Some(s) = &t.started_by { code { (s) } } }
                            @if with_instance {
                                td {
                                    @if let Some(i) = &t.instance {
                                        a href=(href::instance(cluster, i)) { code { (i) } }
                                    }
                                }
                            }
                            td { time { (page::when(t.since)) } }
                        }
                    }
                }
            }
        }
        @if more > 0 {
            p.more { "showing " (tasks.len()) "; " (more) " more not listed (live ones first)" }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ui::overview::DeploymentView;

    fn sample() -> ServicePage {
        ServicePage {
            index: 9,
            cluster: "prod".into(),
            status: "ACTIVE",
            scheduling: "REPLICA",
            service: ServiceView {
                name: "web<script>".into(),
                health: "failed",
                desired: 2,
                running: 1,
                pending: 0,
                deployments: vec![DeploymentView {
                    id: "ecs-svc/1".into(),
                    status: "PRIMARY",
                    rollout: "FAILED",
                    rollout_reason: Some("circuit breaker <tripped>".into()),
                    task_definition: "web:3".into(),
                    desired: 2,
                    running: 1,
                    pending: 0,
                    failed: 3,
                }],
                last_event: None,
            },
            events: vec![EventRow {
                at: Millis(0),
                message: "(service web) has started 1 tasks".into(),
            }],
            more_events: 50,
            tasks: vec![TaskRow {
                id: "ab12".into(),
                status: "RUNNING",
                desired: "RUNNING",
                health: "HEALTHY",
                task_definition: "web:3".into(),
                started_by: Some("ecs-svc/1".into()),
                instance: Some("cd34".into()),
                since: Millis(0),
                stopped_reason: None,
            }],
            more_tasks: 0,
        }
    }

    #[test]
    fn the_page_links_tasks_and_instances_and_escapes() {
        let html = render(&sample()).into_string();
        assert!(
            html.contains(r#"<a href="/ui/clusters/prod/tasks/ab12"><code>ab12</code></a>"#),
            "{html}"
        );
        assert!(
            html.contains(r#"href="/ui/clusters/prod/instances/cd34""#),
            "{html}"
        );
        assert!(html.contains("circuit breaker &lt;tripped&gt;"), "{html}");
        assert!(html.contains("web&lt;script&gt;"), "{html}");
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("50 older kept"), "{html}");
        assert!(html.contains("1970-01-01 00:00:00Z"), "{html}");
    }
}
