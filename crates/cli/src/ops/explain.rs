//! `berth explain RUN-ARGS`: where `berth run RUN-ARGS` (RunTask) would place its tasks, and why not elsewhere. The server
//! plans the request on its current state without committing it (`POST
//! /v1/placement/dry-run`); this renders every instance's verdict: chosen, passed over (by
//! which strategy) or rejected (and the reason, as ECS's failures name it) — and, for a RunTask
//! that would queue (`berth:queue-timeout`), how long it would wait, behind how many, and
//! which lower-priority tasks the queue would preempt to place it.
//!
//! `berth task explain TASK`: the same question for a task already waiting in the queue
//! (PROVISIONING): where it stands (`GET /v1/placement/queue/{cluster}/{task}`) — its turn, its
//! priority, when its wait ends — and what it waits for: why each instance cannot take it now,
//! closest first, or that it fits and goes at the queue's next pass.

use anyhow::{Result, bail};
use clap::Args;
use serde::{Deserialize, Serialize};

use super::output::{Cell, Paint, Tone, emit, or_dash, short, status_tone, table, time};
use super::task::RunTaskArgs;
use super::{ClusterArg, Common};

#[derive(Args)]
#[command(after_help = "Examples:
  berth explain web:3 --count 4
  berth explain web --constraint 'attribute:ecs.availability-zone == us-east-1a'
  berth explain web --strategy binpack:memory -o json")]
pub struct ExplainArgs {
    /// Exactly what `berth run` takes.
    #[command(flatten)]
    task: RunTaskArgs,
    #[command(flatten)]
    common: Common,
}

/// One instance's verdict.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Verdict {
    pub container_instance_arn: String,
    pub verdict: String,
    pub tasks: u32,
    pub reason: Option<String>,
    pub detail: Option<String>,
}

/// The dry run's answer.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    pub cluster: String,
    pub task_definition_arn: String,
    pub group: Option<String>,
    /// The tasks' priority (`berth:priority`); absent from servers before priorities.
    #[serde(default)]
    pub priority: Option<u16>,
    pub requested: u32,
    pub placed: u32,
    pub instances: Vec<Verdict>,
    /// The tasks that would wait for capacity (a RunTask with `berth:queue-timeout`), for how
    /// long, and behind how many already waiting; absent from servers before the queue.
    #[serde(default)]
    pub queued: u32,
    #[serde(default)]
    pub queue_timeout_seconds: Option<u64>,
    #[serde(default)]
    pub queued_ahead: Option<u64>,
    /// What the queue would stop to place waiting tasks at once.
    #[serde(default)]
    pub preemptions: Vec<Preemption>,
}

/// One queued task's preemption: the instance and the lower-priority tasks stopped there.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Preemption {
    pub container_instance_arn: String,
    pub stops: Vec<Victim>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Victim {
    pub task_arn: String,
    pub group: Option<String>,
    pub priority: u16,
}

pub fn render(plan: &Plan, paint: Paint) -> String {
    let about: Vec<String> = plan
        .group
        .iter()
        .map(|g| format!("group {g}"))
        .chain(plan.priority.map(|p| format!("priority {p}")))
        .collect();
    let mut out = format!(
        "{} of {} tasks of {} would be placed in {}{}\n",
        plan.placed,
        plan.requested,
        super::output::definition(&plan.task_definition_arn),
        short(&plan.cluster),
        if about.is_empty() {
            String::new()
        } else {
            format!(" ({})", about.join(", "))
        },
    );
    let summary = if plan.placed == plan.requested {
        Tone::Good
    } else {
        Tone::Bad
    };
    out = paint.tone(out.trim_end(), summary) + "\n";
    if plan.queued > 0 {
        let wait = plan
            .queue_timeout_seconds
            .map_or_else(String::new, |t| format!(" for up to {t} s"));
        let ahead = plan.queued_ahead.unwrap_or(0);
        out.push_str(&format!(
            "{} would wait for capacity{wait}, behind {ahead} queued task(s) (higher priorities, and the turns of other groups of this one)\n",
            plan.queued
        ));
    }
    if !plan.preemptions.is_empty() {
        out.push_str("To place waiting tasks at once, the queue would stop (preempt):\n");
        let rows: Vec<Vec<Cell>> = plan
            .preemptions
            .iter()
            .flat_map(|p| {
                p.stops.iter().map(|v| {
                    vec![
                        Cell::from(short(&p.container_instance_arn)),
                        Cell::from(short(&v.task_arn)),
                        Cell::from(or_dash(v.group.as_deref())),
                        Cell::from(v.priority.to_string()),
                    ]
                })
            })
            .collect();
        out.push_str(&table(
            &["INSTANCE", "STOPS TASK", "GROUP", "PRIORITY"],
            &rows,
            paint,
            "  ",
        ));
    }
    // Chosen first, then passed over, then rejected: best to worst, as a person reads it.
    let mut instances: Vec<&Verdict> = plan.instances.iter().collect();
    let rank = |v: &str| match v {
        "chosen" => 0,
        "passed-over" => 1,
        _ => 2,
    };
    instances.sort_by_key(|v| rank(&v.verdict));
    let rows: Vec<Vec<Cell>> = instances
        .iter()
        .map(|v| {
            vec![
                Cell::from(short(&v.container_instance_arn)),
                Cell {
                    text: v.verdict.clone(),
                    tone: status_tone(&v.verdict),
                },
                Cell::from(v.tasks.to_string()),
                Cell::from(or_dash(v.reason.as_deref())),
                Cell::from(or_dash(v.detail.as_deref())),
            ]
        })
        .collect();
    if rows.is_empty() {
        out.push_str("The cluster has no container instances.\n");
    } else {
        out.push_str(&table(
            &["INSTANCE", "VERDICT", "TASKS", "REASON", "DETAIL"],
            &rows,
            paint,
            "",
        ));
    }
    out
}

pub async fn run(a: ExplainArgs) -> Result<()> {
    if a.task.count < 1 {
        bail!("--count must be at least 1");
    }
    let client = a.common.clients()?.native;
    let answer = crate::admin::call(
        &client,
        "POST",
        "/v1/placement/dry-run",
        Some(a.task.json()),
    )
    .await?;
    let plan: Plan = serde_json::from_value(answer)?;
    let paint = Paint::detect();
    emit(a.common.output, &plan, || render(&plan, paint))
}

/// `berth task explain`.
#[derive(Args)]
#[command(after_help = "Examples:
  berth task explain 5c1d7e0f --cluster batch
  berth task explain arn:aws:ecs:us-east-1:000000000000:task/batch/5c1d7e0f -o json")]
pub struct TaskExplainArgs {
    /// The queued task: its id, or its ARN (which names its cluster).
    task: String,
    #[command(flatten)]
    cluster: ClusterArg,
    #[command(flatten)]
    common: Common,
}

impl TaskExplainArgs {
    /// The cluster (from the task's ARN when it names one) and the task's id.
    fn target(&self) -> (&str, &str) {
        let id = short(&self.task);
        let named = self
            .task
            .split_once(":task/")
            .and_then(|(_, rest)| rest.split_once('/'))
            .map(|(cluster, _)| cluster);
        (named.unwrap_or_else(|| short(&self.cluster.cluster)), id)
    }
}

/// Where a queued task stands: the standing endpoint's answer.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Standing {
    pub task_arn: String,
    pub cluster: String,
    pub priority: u16,
    /// Its turn: 1 for the next task the queue places.
    pub position: u64,
    /// Tasks waiting in the cluster, this one included.
    pub queued: u64,
    /// When its wait ends (epoch seconds): then it stops, `TaskFailedToStart`.
    pub wait_ends_at: f64,
    /// It would fit on the cluster as it is now, were it alone.
    pub fits_now: bool,
    /// Why it can never be placed (its task definition was deleted, …).
    pub unplaceable: Option<String>,
    /// Why each instance cannot take it now, closest first (at most 10).
    pub waits_for: Vec<Rejection>,
}

/// One instance that cannot take the task now, and why.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Rejection {
    pub container_instance_arn: String,
    pub reason: String,
    pub detail: Option<String>,
}

/// A queued task's standing, for people: its turn, then what it waits for.
pub fn render_standing(s: &Standing, paint: Paint) -> String {
    let ahead = s.position.saturating_sub(1);
    let mut out = format!(
        "Task {} waits for capacity in {} (priority {}): turn {} of {} queued, {} ahead of it\n",
        short(&s.task_arn),
        short(&s.cluster),
        s.priority,
        s.position,
        s.queued,
        ahead,
    );
    out.push_str(&format!(
        "Its wait ends at {} (then it stops: TaskFailedToStart)\n",
        time(Some(s.wait_ends_at.floor() as i64))
    ));
    if let Some(why) = &s.unplaceable {
        out.push_str(&paint.tone(&format!("It can never be placed: {why}"), Tone::Bad));
        out.push('\n');
    } else if s.fits_now {
        let when = if ahead == 0 {
            "at the queue's next pass".to_owned()
        } else {
            format!("at the queue's next pass, once the {ahead} ahead of it have had their turn")
        };
        out.push_str(&paint.tone(&format!("It fits now: placed {when}"), Tone::Good));
        out.push('\n');
    } else if s.waits_for.is_empty() {
        out.push_str("It waits for an instance: its cluster (or capacity provider) has none.\n");
    } else {
        out.push_str("It waits for room; no instance can take it now (closest first):\n");
        let rows: Vec<Vec<Cell>> = s
            .waits_for
            .iter()
            .map(|r| {
                vec![
                    Cell::from(short(&r.container_instance_arn)),
                    Cell {
                        text: r.reason.clone(),
                        tone: Tone::Bad,
                    },
                    Cell::from(or_dash(r.detail.as_deref())),
                ]
            })
            .collect();
        out.push_str(&table(
            &["INSTANCE", "REASON", "DETAIL"],
            &rows,
            paint,
            "  ",
        ));
    }
    out
}

pub async fn run_task_explain(a: TaskExplainArgs) -> Result<()> {
    let (cluster, id) = a.target();
    let client = a.common.clients()?.native;
    let answer = crate::admin::call(
        &client,
        "GET",
        &format!("/v1/placement/queue/{cluster}/{id}"),
        None,
    )
    .await?;
    let standing: Standing = serde_json::from_value(answer)?;
    let paint = Paint::detect();
    emit(a.common.output, &standing, || {
        render_standing(&standing, paint)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dry_run_reads_best_verdict_first_with_reasons() {
        let arn = |id: &str| {
            format!("arn:aws:ecs:us-east-1:000000000000:container-instance/default/{id}")
        };
        let plan = Plan {
            cluster: "arn:aws:ecs:us-east-1:000000000000:cluster/default".into(),
            task_definition_arn: "arn:aws:ecs:us-east-1:000000000000:task-definition/web:3".into(),
            group: Some("family:web".into()),
            priority: Some(100),
            requested: 3,
            placed: 2,
            queued: 0,
            queue_timeout_seconds: None,
            queued_ahead: None,
            preemptions: Vec::new(),
            instances: vec![
                Verdict {
                    container_instance_arn: arn("c3"),
                    verdict: "rejected".into(),
                    tasks: 0,
                    reason: Some("RESOURCE:MEMORY".into()),
                    detail: Some("needs 512 MiB, 128 free".into()),
                },
                Verdict {
                    container_instance_arn: arn("a1"),
                    verdict: "chosen".into(),
                    tasks: 2,
                    reason: None,
                    detail: None,
                },
                Verdict {
                    container_instance_arn: arn("b2"),
                    verdict: "passed-over".into(),
                    tasks: 0,
                    reason: None,
                    detail: Some("spread(attribute:ecs.availability-zone)".into()),
                },
            ],
        };
        insta::assert_snapshot!(render(&plan, Paint(false)));
    }

    #[test]
    fn a_queued_request_says_how_long_it_waits_and_what_it_would_preempt() {
        let answer = serde_json::json!({
            "cluster": "arn:aws:ecs:us-east-1:0:cluster/default",
            "taskDefinitionArn": "arn:aws:ecs:us-east-1:0:task-definition/batch:1",
            "group": "family:batch",
            "priority": 500,
            "requested": 2,
            "placed": 0,
            "instances": [],
            "queued": 2,
            "queueTimeoutSeconds": 600,
            "queuedAhead": 3,
            "preemptions": [{
                "containerInstanceArn": "arn:aws:ecs:us-east-1:0:container-instance/default/i1",
                "stops": [
                    { "taskArn": "arn:aws:ecs:us-east-1:0:task/default/t1", "group": "family:old", "priority": 100 },
                    { "taskArn": "arn:aws:ecs:us-east-1:0:task/default/t2", "group": null, "priority": 0 }
                ]
            }],
        });
        let plan: Plan = serde_json::from_value(answer).unwrap();
        insta::assert_snapshot!(render(&plan, Paint(false)), @r"
        0 of 2 tasks of batch:1 would be placed in default (group family:batch, priority 500)
        2 would wait for capacity for up to 600 s, behind 3 queued task(s) (higher priorities, and the turns of other groups of this one)
        To place waiting tasks at once, the queue would stop (preempt):
          INSTANCE  STOPS TASK  GROUP       PRIORITY
          i1        t1          family:old  100
          i1        t2          -           0
        The cluster has no container instances.
        ");
    }
    fn standing(fits_now: bool, unplaceable: Option<&str>, waits_for: Vec<Rejection>) -> Standing {
        Standing {
            task_arn: "arn:aws:ecs:us-east-1:0:task/batch/5c1d7e0f".into(),
            cluster: "arn:aws:ecs:us-east-1:0:cluster/batch".into(),
            priority: 500,
            position: 3,
            queued: 12,
            wait_ends_at: 1_700_000_600.25,
            fits_now,
            unplaceable: unplaceable.map(str::to_owned),
            waits_for,
        }
    }

    #[test]
    fn a_queued_task_reads_its_turn_then_what_it_waits_for() {
        let arn = |id: &str| format!("arn:aws:ecs:us-east-1:0:container-instance/batch/{id}");
        let waiting = standing(
            false,
            None,
            vec![
                Rejection {
                    container_instance_arn: arn("i1"),
                    reason: "RESOURCE:MEMORY".into(),
                    detail: Some("needs 512 MiB, 256 free".into()),
                },
                Rejection {
                    container_instance_arn: arn("i2"),
                    reason: "ATTRIBUTE".into(),
                    detail: None,
                },
            ],
        );
        insta::assert_snapshot!(render_standing(&waiting, Paint(false)), @r"
        Task 5c1d7e0f waits for capacity in batch (priority 500): turn 3 of 12 queued, 2 ahead of it
        Its wait ends at 2023-11-14T22:23:20Z (then it stops: TaskFailedToStart)
        It waits for room; no instance can take it now (closest first):
          INSTANCE  REASON           DETAIL
          i1        RESOURCE:MEMORY  needs 512 MiB, 256 free
          i2        ATTRIBUTE        -
        ");
        let fits = render_standing(&standing(true, None, Vec::new()), Paint(false));
        assert!(
            fits.ends_with("It fits now: placed at the queue's next pass, once the 2 ahead of it have had their turn\n"),
            "{fits}"
        );
        let never = render_standing(
            &standing(
                false,
                Some("task definition batch:1 no longer exists"),
                Vec::new(),
            ),
            Paint(false),
        );
        assert!(
            never.ends_with("It can never be placed: task definition batch:1 no longer exists\n"),
            "{never}"
        );
        let empty = render_standing(&standing(false, None, Vec::new()), Paint(false));
        assert!(
            empty.ends_with("its cluster (or capacity provider) has none.\n"),
            "{empty}"
        );
    }

    #[test]
    fn a_task_arn_names_its_cluster_and_an_id_takes_the_flag() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            a: TaskExplainArgs,
        }
        let cli = Cli::parse_from([
            "x",
            "arn:aws:ecs:us-east-1:0:task/batch/5c1d",
            "--cluster",
            "other",
        ]);
        assert_eq!(cli.a.target(), ("batch", "5c1d"));
        let cli = Cli::parse_from([
            "x",
            "5c1d",
            "--cluster",
            "arn:aws:ecs:us-east-1:0:cluster/prod",
        ]);
        assert_eq!(cli.a.target(), ("prod", "5c1d"));
    }
}
