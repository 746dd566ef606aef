//! The UI's HTML, rendered on the server with maud (which escapes every value it interpolates):
//! data in, markup out. No inline scripts or styles, so the pages run under a strict
//! Content-Security-Policy; the one script (`ui.js`) only refreshes a page's live region
//! (`#live`) when the server says something changed, and fills in log tails.
//!
//! This module holds the frame every page shares (layout, sign-in, not found, refused) and the
//! overview; each other page renders its own content (`service`, `task`, `instance`).

use berth_model::Millis;
use maud::{DOCTYPE, Markup, html};

use super::overview::{ClusterView, InstanceView, Overview, ServiceView};

/// A whole page: header with who is logged in, `main`, and the live-update script.
pub fn layout(title: &str, viewer: Option<&Viewer>, main: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · berth" }
                link rel="stylesheet" href="/ui/assets/ui.css";
                @if viewer.is_some() {
                    script src="/ui/assets/ui.js" defer {}
                }
            }
            body {
                header {
                    a.brand href="/ui" { "berth" }
                    @if let Some(v) = viewer {
                        span.who { "signed in as " strong { (v.name) } }
                        form method="post" action="/ui/logout" {
                            input type="hidden" name="csrf" value=(v.csrf);
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main id="main" { (main) }
            }
        }
    }
}

/// A page's `main`: the live region the script refreshes (`fragment`, what `?fragment=1`
/// answers) between what stays put across refreshes (forms above, logs below).
pub fn live(controls: Markup, fragment: Markup, rest: Markup) -> Markup {
    html! {
        (controls)
        div id="live" { (fragment) }
        (rest)
    }
}

/// The page for a path that names nothing (or nothing any more).
pub fn not_found(what: &str) -> Markup {
    html! {
        section.missing data-index="0" {
            h1 { "Not found" }
            p { (what) }
            p { a href="/ui" { "Back to the overview" } }
        }
    }
}

/// The page for something the viewer's policy does not let it read.
pub fn refused(why: &str) -> Markup {
    html! {
        section.refused data-index="0" {
            h1 { "Not allowed" }
            p.error role="alert" { (why) }
            p { a href="/ui" { "Back to the overview" } }
        }
    }
}

/// A moment as UTC, to the second.
pub fn when(at: Millis) -> String {
    match time::OffsetDateTime::from_unix_timestamp(at.0.div_euclid(1000)) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        Err(_) => at.0.to_string(),
    }
}

/// The UI's paths. Cluster and service names are letters, digits, `-` and `_`, ids are hex,
/// so only free text (container names, query values) needs encoding.
pub mod href {
    pub fn service(cluster: &str, service: &str) -> String {
        format!("/ui/clusters/{cluster}/services/{service}")
    }

    pub fn task(cluster: &str, task: &str) -> String {
        format!("/ui/clusters/{cluster}/tasks/{task}")
    }

    pub fn instance(cluster: &str, instance: &str) -> String {
        format!("/ui/clusters/{cluster}/instances/{instance}")
    }
}

/// Who is looking, and the CSRF token their forms carry.
pub struct Viewer {
    pub name: String,
    pub csrf: String,
}

/// The sign-in form; `error` says why the last attempt failed.
pub fn login(error: Option<&str>) -> Markup {
    html! {
        section.login {
            h1 { "Sign in to berth" }
            p { "Use an access key id and its secret (for example from "
                code { "<data-dir>/admin.credentials" } "). The secret is checked once; the "
                "browser keeps only a session cookie." }
            @if let Some(e) = error {
                p.error role="alert" { (e) }
            }
            form method="post" action="/ui/login" {
                label { "Access key id" input name="access_key_id" autocomplete="username" required; }
                label { "Secret access key" input name="secret" type="password" autocomplete="current-password" required; }
                button type="submit" { "Sign in" }
            }
        }
    }
}

/// The overview's `main`: every visible cluster with its tasks, instances and services.
pub fn overview(o: &Overview) -> Markup {
    html! {
        div.overview data-index=(o.index) {
            @if o.clusters.is_empty() {
                p.empty { "No clusters to show. Create one with "
                    code { "aws ecs create-cluster --cluster-name NAME" } "." }
            }
            @for c in &o.clusters {
                (cluster(c))
            }
            @if o.hidden_clusters > 0 {
                p.hidden { (o.hidden_clusters) " more cluster(s) you may not describe." }
            }
        }
    }
}

fn cluster(c: &ClusterView) -> Markup {
    html! {
        section.cluster data-cluster=(c.name) {
            h2 { (c.name) " " small.status { (c.status) } }
            div.tasks {
                h3 { "Tasks" }
                @if c.tasks.is_empty() { p.empty { "none" } }
                ul.counts {
                    @for (status, n) in &c.tasks {
                        li data-status=(status) { span.n { (n) } " " (status) }
                    }
                }
            }
            div.instances {
                h3 { "Container instances" }
                @if c.instances.is_empty() { p.empty { "none registered" } }
                @if !c.instances.is_empty() {
                    table {
                        thead { tr { th { "instance" } th { "status" } th { "CPU" } th { "memory" } th { "tasks" } } }
                        tbody {
                            @for i in &c.instances { (instance(&c.name, i)) }
                        }
                    }
                }
                @if c.more_instances > 0 {
                    p.more { "and " (c.more_instances) " more" }
                }
            }
            div.services {
                h3 { "Services" }
                @if c.services.is_empty() { p.empty { "none" } }
                @for s in &c.services { (service(&c.name, s)) }
            }
        }
    }
}

fn instance(cluster: &str, i: &InstanceView) -> Markup {
    html! {
        tr data-instance=(i.id) {
            td { a href=(href::instance(cluster, &i.id)) { code { (i.id) } } }
            td {
                (i.status)
                @if !i.connected { " " span.warn { "(agent disconnected)" } }
            }
            td { meter min="0" max=(i.cpu_total.max(1)) value=(i.cpu_used) {} " " (i.cpu_used) " / " (i.cpu_total) }
            td { meter min="0" max=(i.memory_total.max(1)) value=(i.memory_used) {} " " (i.memory_used) " / " (i.memory_total) " MiB" }
            td { (i.running) " running" @if i.pending > 0 { ", " (i.pending) " pending" } }
        }
    }
}

fn service(cluster: &str, s: &ServiceView) -> Markup {
    html! {
        article.service data-service=(s.name) data-health=(s.health) {
            h4 { a href=(href::service(cluster, &s.name)) { (s.name) } " " small.health { (s.health) } }
            p { (s.running) " running, " (s.pending) " pending of " (s.desired) " desired" }
            table {
                thead { tr { th { "deployment" } th { "task definition" } th { "rollout" } th { "progress" } } }
                tbody {
                    @for d in &s.deployments {
                        tr {
                            td { (d.status) }
                            td { (d.task_definition) }
                            td { (d.rollout) }
                            td { meter min="0" max=(d.desired.max(1)) value=(d.running) {} " " (d.running) " / " (d.desired) }
                        }
                    }
                }
            }
            @if let Some(e) = &s.last_event { p.event { (e) } }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ui::overview::{DeploymentView, Overview};

    fn sample() -> Overview {
        Overview {
            index: 42,
            hidden_clusters: 1,
            clusters: vec![ClusterView {
                name: "prod<script>".into(),
                status: "ACTIVE",
                tasks: vec![("RUNNING", 3), ("PENDING", 1)],
                instances: vec![InstanceView {
                    id: "0123".into(),
                    status: "ACTIVE",
                    connected: false,
                    cpu_used: 512,
                    cpu_total: 2048,
                    memory_used: 256,
                    memory_total: 4096,
                    running: 3,
                    pending: 1,
                }],
                more_instances: 0,
                services: vec![ServiceView {
                    name: "web".into(),
                    health: "deploying",
                    desired: 4,
                    running: 3,
                    pending: 1,
                    deployments: vec![DeploymentView {
                        id: "ecs-svc/1".into(),
                        status: "PRIMARY",
                        rollout: "IN_PROGRESS",
                        rollout_reason: None,
                        task_definition: "web:2".into(),
                        desired: 4,
                        running: 3,
                        pending: 1,
                        failed: 0,
                    }],
                    last_event: Some("(service web) has started 1 tasks".into()),
                }],
            }],
        }
    }

    #[test]
    fn the_overview_shows_counts_capacity_and_progress() {
        let html = overview(&sample()).into_string();
        assert!(html.contains(r#"data-index="42""#), "{html}");
        assert!(
            html.contains(r#"<li data-status="RUNNING"><span class="n">3</span> RUNNING</li>"#),
            "{html}"
        );
        assert!(
            html.contains(r#"<meter min="0" max="2048" value="512"></meter> 512 / 2048"#),
            "{html}"
        );
        assert!(html.contains("(agent disconnected)"), "{html}");
        assert!(html.contains(r#"data-health="deploying""#), "{html}");
        assert!(html.contains("1 more cluster(s)"), "{html}");
        assert!(
            html.contains(r#"href="/ui/clusters/prod&lt;script&gt;/instances/0123""#),
            "{html}"
        );
        assert!(
            html.contains(r#"href="/ui/clusters/prod&lt;script&gt;/services/web""#),
            "{html}"
        );
    }

    #[test]
    fn names_are_escaped() {
        let html = overview(&sample()).into_string();
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("prod&lt;script&gt;"), "{html}");
    }

    #[test]
    fn a_signed_in_page_carries_the_csrf_token_and_the_script() {
        let viewer = Viewer {
            name: "alice".into(),
            csrf: "c5rf".into(),
        };
        let html = layout("Overview", Some(&viewer), overview(&sample())).into_string();
        assert!(
            html.contains(r#"<input type="hidden" name="csrf" value="c5rf">"#),
            "{html}"
        );
        assert!(
            html.contains(r#"<script src="/ui/assets/ui.js" defer></script>"#),
            "{html}"
        );
        let html = layout("Sign in", None, login(Some("nope"))).into_string();
        assert!(!html.contains("ui.js"), "{html}");
        assert!(
            html.contains(r#"<p class="error" role="alert">nope</p>"#),
            "{html}"
        );
    }
}
