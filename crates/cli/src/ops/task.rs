//! `berth task ls|describe` (`berth task explain` lives with `berth explain`), `berth run` and
//! `berth stop`: tasks through RunTask, StopTask, ListTasks and DescribeTasks, and waiting for
//! them to run or stop.
//!
//! ```text
//!  run ─► RunTask ─► failures? exit 3
//!   │ --wait: DescribeTasks every 500 ms
//!   ▼
//!  every task RUNNING (or STOPPED after running with exit 0) ─► exit 0
//!  a task STOPPED otherwise ─► exit 3 (its stop reason)     timeout ─► exit 4
//! ```

use std::time::{Duration, Instant};

use anyhow::Result;
use aws_sdk_ecs::operation::run_task::builders::RunTaskFluentBuilder;
use aws_sdk_ecs::types::{
    DesiredStatus, PlacementConstraint, PlacementConstraintType, PlacementStrategy,
    PlacementStrategyType, Task,
};
use clap::{Args, Subcommand};
use serde::Serialize;

use super::output::{
    Cell, Exit, Paint, Progress, definition, emit, fields, or_dash, short, table, time,
};
use super::{ClusterArg, Common, WaitArgs};

#[derive(Subcommand)]
pub enum TaskCmd {
    /// List tasks (RUNNING by desired status unless --status says otherwise).
    #[command(
        visible_alias = "list",
        after_help = "Examples:\n  berth task ls\n  berth task ls --service web --cluster prod\n  berth task ls --status STOPPED -o json"
    )]
    Ls(TaskLs),
    /// Show tasks in full: containers, exit codes, bindings, stop reasons.
    #[command(after_help = "Examples:\n  berth task describe 5c1d7e0f --cluster default")]
    Describe(TaskDescribe),
    /// Where a task waiting for capacity (PROVISIONING, queued with berth:queue-timeout)
    /// stands in the queue, and what it waits for.
    Explain(super::explain::TaskExplainArgs),
}

#[derive(Args)]
pub struct TaskLs {
    #[command(flatten)]
    cluster: ClusterArg,
    /// Only the tasks of this service.
    #[arg(long)]
    service: Option<String>,
    /// Only tasks of this task definition family.
    #[arg(long)]
    family: Option<String>,
    /// Desired status: RUNNING (the default) or STOPPED.
    #[arg(long, default_value = "RUNNING")]
    status: String,
    /// Print only the task ids, one per line (`berth stop $(berth task ls -q)`).
    #[arg(long, short, conflicts_with = "output")]
    quiet: bool,
    #[command(flatten)]
    common: Common,
}

#[derive(Args)]
pub struct TaskDescribe {
    /// Task ids or ARNs.
    #[arg(required = true)]
    tasks: Vec<String>,
    #[command(flatten)]
    cluster: ClusterArg,
    #[command(flatten)]
    common: Common,
}

/// `berth run`.
#[derive(Args)]
#[command(after_help = concat!("Examples:
  berth run hello
  berth run web:3 --count 3 --wait --cluster prod
  berth run batch --started-by nightly --wait --timeout 60 -o json
  berth run web --count 2 --distinct-instance --strategy spread:attribute:ecs.availability-zone

", exit_codes!()))]
pub struct RunArgs {
    #[command(flatten)]
    pub task: RunTaskArgs,
    #[command(flatten)]
    wait: WaitArgs,
    /// Print only the ids of the tasks started, one per line (`berth logs $(berth run web
    /// --wait -q)`).
    #[arg(long, short, conflicts_with = "output")]
    quiet: bool,
    #[command(flatten)]
    common: Common,
}

/// What RunTask is asked: `berth run` sends it, `berth explain` dry-runs the same.
#[derive(Args)]
pub struct RunTaskArgs {
    /// The task definition: family, family:revision or ARN.
    task_definition: String,
    #[command(flatten)]
    pub cluster: ClusterArg,
    /// How many tasks to start.
    #[arg(long, default_value_t = 1)]
    pub count: i32,
    /// Recorded as the tasks' startedBy.
    #[arg(long)]
    started_by: Option<String>,
    /// The tasks' group (default: family:NAME).
    #[arg(long)]
    group: Option<String>,
    /// A memberOf constraint expression (cluster query language); repeat for more.
    #[arg(long = "constraint", value_name = "EXPRESSION")]
    constraints: Vec<String>,
    /// Place only one task per instance (the distinctInstance constraint).
    #[arg(long)]
    distinct_instance: bool,
    /// A placement strategy as TYPE[:FIELD] (spread:attribute:ecs.availability-zone,
    /// binpack:memory, random); repeat to chain.
    #[arg(long = "strategy", value_name = "TYPE[:FIELD]")]
    strategies: Vec<String>,
}

impl RunTaskArgs {
    /// (type, expression) of each placement constraint.
    fn constraints(&self) -> Vec<(&str, Option<&str>)> {
        let mut all: Vec<(&str, Option<&str>)> = self
            .constraints
            .iter()
            .map(|e| ("memberOf", Some(e.as_str())))
            .collect();
        if self.distinct_instance {
            all.push(("distinctInstance", None));
        }
        all
    }

    /// (type, field) of each placement strategy.
    fn strategies(&self) -> Vec<(&str, Option<&str>)> {
        self.strategies
            .iter()
            .map(|s| match s.split_once(':') {
                Some((kind, field)) => (kind, Some(field)),
                None => (s.as_str(), None),
            })
            .collect()
    }

    /// The request as RunTask's JSON (what the dry run takes).
    pub fn json(&self) -> serde_json::Value {
        let mut body = serde_json::json!({
            "cluster": self.cluster.cluster,
            "taskDefinition": self.task_definition,
            "count": self.count,
            "placementConstraints": self.constraints().into_iter().map(|(kind, expression)| {
                serde_json::json!({"type": kind, "expression": expression})
            }).collect::<Vec<_>>(),
            "placementStrategy": self.strategies().into_iter().map(|(kind, field)| {
                serde_json::json!({"type": kind, "field": field})
            }).collect::<Vec<_>>(),
        });
        if let Some(group) = &self.group {
            body["group"] = group.clone().into();
        }
        if let Some(started_by) = &self.started_by {
            body["startedBy"] = started_by.clone().into();
        }
        body
    }

    /// The request through the SDK.
    fn send(&self, ecs: &aws_sdk_ecs::Client) -> RunTaskFluentBuilder {
        let constraints = self.constraints().into_iter().map(|(kind, expression)| {
            PlacementConstraint::builder()
                .r#type(PlacementConstraintType::from(kind))
                .set_expression(expression.map(str::to_owned))
                .build()
        });
        let strategies = self.strategies().into_iter().map(|(kind, field)| {
            PlacementStrategy::builder()
                .r#type(PlacementStrategyType::from(kind))
                .set_field(field.map(str::to_owned))
                .build()
        });
        ecs.run_task()
            .cluster(&self.cluster.cluster)
            .task_definition(&self.task_definition)
            .count(self.count)
            .set_started_by(self.started_by.clone())
            .set_group(self.group.clone())
            .set_placement_constraints(Some(constraints.collect()))
            .set_placement_strategy(Some(strategies.collect()))
    }
}

/// `berth stop`.
#[derive(Args)]
#[command(after_help = concat!("Examples:
  berth stop 5c1d7e0f
  berth stop 5c1d7e0f 77aa0b12 --reason 'bad config' --wait

", exit_codes!()))]
pub struct StopArgs {
    /// Task ids or ARNs.
    #[arg(required = true)]
    tasks: Vec<String>,
    #[command(flatten)]
    cluster: ClusterArg,
    /// Why (shown as the tasks' stopped reason).
    #[arg(long)]
    reason: Option<String>,
    #[command(flatten)]
    wait: WaitArgs,
    #[command(flatten)]
    common: Common,
}

/// A container of a task.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerView {
    pub name: String,
    pub last_status: String,
    pub exit_code: Option<i32>,
    pub health: String,
    pub reason: Option<String>,
    /// `hostPort->containerPort/protocol`.
    pub bindings: Vec<String>,
}

/// A task as `berth` shows it.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskView {
    pub arn: String,
    pub id: String,
    pub task_definition: String,
    pub last_status: String,
    pub desired_status: String,
    pub health: String,
    pub instance: Option<String>,
    pub group: Option<String>,
    pub started_by: Option<String>,
    pub cpu: Option<String>,
    pub memory: Option<String>,
    pub created_at: Option<i64>,
    pub started_at: Option<i64>,
    pub stopped_at: Option<i64>,
    pub stop_code: Option<String>,
    pub stopped_reason: Option<String>,
    pub containers: Vec<ContainerView>,
}

impl From<&Task> for TaskView {
    fn from(t: &Task) -> TaskView {
        let arn = t.task_arn().unwrap_or_default().to_owned();
        TaskView {
            id: short(&arn).to_owned(),
            arn,
            task_definition: definition(t.task_definition_arn().unwrap_or_default()).to_owned(),
            last_status: t.last_status().unwrap_or_default().to_owned(),
            desired_status: t.desired_status().unwrap_or_default().to_owned(),
            health: t
                .health_status()
                .map_or("UNKNOWN", |h| h.as_str())
                .to_owned(),
            instance: t.container_instance_arn().map(|a| short(a).to_owned()),
            group: t.group().map(str::to_owned),
            started_by: t.started_by().map(str::to_owned),
            cpu: t.cpu().map(str::to_owned),
            memory: t.memory().map(str::to_owned),
            created_at: t.created_at().map(|d| d.secs()),
            started_at: t.started_at().map(|d| d.secs()),
            stopped_at: t.stopped_at().map(|d| d.secs()),
            stop_code: t.stop_code().map(|c| c.as_str().to_owned()),
            stopped_reason: t.stopped_reason().map(str::to_owned),
            containers: t
                .containers()
                .iter()
                .map(|c| ContainerView {
                    name: c.name().unwrap_or_default().to_owned(),
                    last_status: c.last_status().unwrap_or_default().to_owned(),
                    exit_code: c.exit_code(),
                    health: c
                        .health_status()
                        .map_or("UNKNOWN", |h| h.as_str())
                        .to_owned(),
                    reason: c.reason().map(str::to_owned),
                    bindings: c
                        .network_bindings()
                        .iter()
                        .map(|b| {
                            format!(
                                "{}->{}/{}",
                                b.host_port().unwrap_or_default(),
                                b.container_port().unwrap_or_default(),
                                b.protocol().map_or("tcp", |p| p.as_str())
                            )
                        })
                        .collect(),
                })
                .collect(),
        }
    }
}

impl TaskView {
    /// Whether the task stopped after its essential work ended well: every container exited
    /// 0 (a batch task that ran to completion).
    fn finished_well(&self) -> bool {
        self.last_status == "STOPPED"
            && self.started_at.is_some()
            && !self.containers.is_empty()
            && self.containers.iter().all(|c| c.exit_code == Some(0))
    }

    /// Why the task stopped, in a line.
    fn stop_line(&self) -> String {
        let exits: Vec<String> = self
            .containers
            .iter()
            .map(|c| match (c.exit_code, &c.reason) {
                (_, Some(reason)) => format!("{}: {reason}", c.name),
                (Some(code), None) => format!("{} exited {code}", c.name),
                (None, None) => format!("{} did not run", c.name),
            })
            .collect();
        format!(
            "task {} stopped ({}): {}; {}",
            self.id,
            or_dash(self.stop_code.as_deref()),
            or_dash(self.stopped_reason.as_deref()),
            exits.join(", ")
        )
    }
}

pub fn render_list(tasks: &[TaskView], paint: Paint) -> String {
    let rows: Vec<Vec<Cell>> = tasks
        .iter()
        .map(|t| {
            vec![
                Cell::from(t.id.as_str()),
                Cell::from(t.task_definition.as_str()),
                Cell::status(t.last_status.as_str()),
                Cell::status(t.desired_status.as_str()),
                Cell::status(t.health.as_str()),
                Cell::from(or_dash(t.instance.as_deref())),
                Cell::from(or_dash(t.group.as_deref())),
                Cell::from(time(t.started_at)),
            ]
        })
        .collect();
    table(
        &[
            "TASK",
            "DEFINITION",
            "STATUS",
            "DESIRED",
            "HEALTH",
            "INSTANCE",
            "GROUP",
            "STARTED",
        ],
        &rows,
        paint,
        "",
    )
}

pub fn render_describe(tasks: &[TaskView], paint: Paint) -> String {
    tasks
        .iter()
        .map(|t| {
            let mut out = fields(
                &[
                    ("Id", t.id.clone()),
                    ("ARN", t.arn.clone()),
                    ("Definition", t.task_definition.clone()),
                    (
                        "Status",
                        format!("{} (desired {})", t.last_status, t.desired_status),
                    ),
                    ("Health", t.health.clone()),
                    ("Instance", or_dash(t.instance.as_deref())),
                    ("Group", or_dash(t.group.as_deref())),
                    ("Started by", or_dash(t.started_by.as_deref())),
                    ("Created", time(t.created_at)),
                    ("Started", time(t.started_at)),
                    ("Stopped", time(t.stopped_at)),
                    (
                        "Stop reason",
                        match &t.stop_code {
                            Some(code) => {
                                format!("{code}: {}", or_dash(t.stopped_reason.as_deref()))
                            }
                            None => "-".into(),
                        },
                    ),
                ],
                paint,
            );
            out.push_str("Containers:\n");
            let rows: Vec<Vec<Cell>> = t
                .containers
                .iter()
                .map(|c| {
                    vec![
                        Cell::from(c.name.as_str()),
                        Cell::status(c.last_status.as_str()),
                        Cell::from(c.exit_code.map_or("-".into(), |e| e.to_string())),
                        Cell::status(c.health.as_str()),
                        Cell::from(if c.bindings.is_empty() {
                            "-".into()
                        } else {
                            c.bindings.join(", ")
                        }),
                        Cell::from(or_dash(c.reason.as_deref())),
                    ]
                })
                .collect();
            out.push_str(&table(
                &["NAME", "STATUS", "EXIT", "HEALTH", "PORTS", "REASON"],
                &rows,
                paint,
                "  ",
            ));
            out
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Task ARNs of the cluster by ListTasks.
pub async fn list(
    ecs: &aws_sdk_ecs::Client,
    cluster: &str,
    service: Option<&str>,
    family: Option<&str>,
    desired: DesiredStatus,
) -> Result<Vec<String>> {
    let mut arns = Vec::new();
    let mut token = None;
    loop {
        let page = ecs
            .list_tasks()
            .cluster(cluster)
            .set_service_name(service.map(str::to_owned))
            .set_family(family.map(str::to_owned))
            .desired_status(desired.clone())
            .set_next_token(token)
            .send()
            .await?;
        arns.extend(page.task_arns().iter().cloned());
        token = page.next_token().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    Ok(arns)
}

/// DescribeTasks, a hundred at a time; a task the server does not know is an error.
pub async fn describe(
    ecs: &aws_sdk_ecs::Client,
    cluster: &str,
    tasks: &[String],
) -> Result<Vec<TaskView>> {
    let mut views = Vec::new();
    for chunk in tasks.chunks(100) {
        let answer = ecs
            .describe_tasks()
            .cluster(cluster)
            .set_tasks(Some(chunk.to_vec()))
            .send()
            .await?;
        if let Some(f) = answer.failures().first() {
            anyhow::bail!(
                "task {}: {}",
                f.arn().unwrap_or_default(),
                f.reason().unwrap_or_default()
            );
        }
        views.extend(answer.tasks().iter().map(TaskView::from));
    }
    Ok(views)
}

pub async fn run(cmd: TaskCmd) -> Result<()> {
    let paint = Paint::detect();
    match cmd {
        TaskCmd::Ls(a) => {
            let ecs = a.common.clients()?.ecs;
            let arns = list(
                &ecs,
                &a.cluster.cluster,
                a.service.as_deref(),
                a.family.as_deref(),
                DesiredStatus::from(a.status.to_ascii_uppercase().as_str()),
            )
            .await?;
            let mut tasks = describe(&ecs, &a.cluster.cluster, &arns).await?;
            tasks.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
            if a.quiet {
                print_ids(&tasks);
                return Ok(());
            }
            emit(a.common.output, &tasks, || render_list(&tasks, paint))
        }
        TaskCmd::Describe(a) => {
            let ecs = a.common.clients()?.ecs;
            let tasks = describe(&ecs, &a.cluster.cluster, &a.tasks).await?;
            emit(a.common.output, &tasks, || render_describe(&tasks, paint))
        }
        TaskCmd::Explain(a) => super::explain::run_task_explain(a).await,
    }
}

/// What the wait for tasks decides from one look at them.
#[derive(Debug, PartialEq, Eq)]
pub enum TasksAre {
    /// Not yet: where things stand in one line, and (done, of) the tasks.
    Waiting(String, (u64, u64)),
    Done,
    Failed(String),
}

/// For `berth run --wait`: done once every task is RUNNING or finished well; failed as
/// soon as one stopped otherwise.
pub fn running(tasks: &[TaskView]) -> TasksAre {
    if let Some(t) = tasks
        .iter()
        .find(|t| t.last_status == "STOPPED" && !t.finished_well())
    {
        return TasksAre::Failed(t.stop_line());
    }
    let up = tasks
        .iter()
        .filter(|t| t.last_status == "RUNNING" || t.finished_well())
        .count();
    if up == tasks.len() {
        TasksAre::Done
    } else {
        let line = format!("{up}/{} tasks running", tasks.len());
        TasksAre::Waiting(line, (up as u64, tasks.len() as u64))
    }
}

/// For `berth stop --wait`: done once every task is STOPPED.
pub fn stopped(tasks: &[TaskView]) -> TasksAre {
    let down = tasks.iter().filter(|t| t.last_status == "STOPPED").count();
    if down == tasks.len() {
        TasksAre::Done
    } else {
        let line = format!("{down}/{} tasks stopped", tasks.len());
        TasksAre::Waiting(line, (down as u64, tasks.len() as u64))
    }
}

/// Polls DescribeTasks until `decide` says done or failed, showing progress.
async fn wait_for(
    ecs: &aws_sdk_ecs::Client,
    cluster: &str,
    arns: &[String],
    wait: &WaitArgs,
    decide: fn(&[TaskView]) -> TasksAre,
) -> Result<Vec<TaskView>> {
    let mut progress = Progress::start();
    let deadline = Instant::now() + Duration::from_secs(wait.timeout);
    loop {
        let tasks = describe(ecs, cluster, arns).await?;
        match decide(&tasks) {
            TasksAre::Done => {
                progress.finish();
                return Ok(tasks);
            }
            TasksAre::Failed(why) => {
                progress.finish();
                return Err(Exit::Failed(why).into());
            }
            TasksAre::Waiting(line, _) if Instant::now() >= deadline => {
                progress.finish();
                return Err(Exit::TimedOut(format!("after {}s: {line}", wait.timeout)).into());
            }
            TasksAre::Waiting(line, done) => progress.update(line, Some(done)),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

pub async fn run_task(a: RunArgs) -> Result<()> {
    let paint = Paint::detect();
    let ecs = a.common.clients()?.ecs;
    let cluster = &a.task.cluster.cluster;
    let answer = a.task.send(&ecs).send().await?;
    let mut tasks: Vec<TaskView> = answer.tasks().iter().map(TaskView::from).collect();
    let failures: Vec<String> = answer
        .failures()
        .iter()
        .map(|f| {
            format!(
                "{}: {}{}",
                f.reason().unwrap_or_default(),
                f.arn().map_or(String::new(), |a| format!("{} ", short(a))),
                f.detail().unwrap_or_default()
            )
        })
        .collect();
    if a.wait.wait && !tasks.is_empty() {
        let arns: Vec<String> = tasks.iter().map(|t| t.arn.clone()).collect();
        tasks = wait_for(&ecs, cluster, &arns, &a.wait, running).await?;
    }
    if a.quiet {
        print_ids(&tasks);
    } else {
        emit(a.common.output, &tasks, || render_list(&tasks, paint))?;
    }
    if !failures.is_empty() {
        let why = format!(
            "{} of {} tasks not placed: {}",
            a.task.count as usize - tasks.len(),
            a.task.count,
            failures.join("; ")
        );
        return Err(Exit::Failed(why).into());
    }
    Ok(())
}

/// `--quiet`: one task id a line, for the shell.
fn print_ids(tasks: &[TaskView]) {
    for t in tasks {
        println!("{}", t.id);
    }
}

pub async fn stop_tasks(a: StopArgs) -> Result<()> {
    let paint = Paint::detect();
    let ecs = a.common.clients()?.ecs;
    let cluster = &a.cluster.cluster;
    let mut tasks = Vec::new();
    for task in &a.tasks {
        let answer = ecs
            .stop_task()
            .cluster(cluster)
            .task(task)
            .set_reason(a.reason.clone())
            .send()
            .await?;
        tasks.extend(answer.task().map(TaskView::from));
    }
    if a.wait.wait {
        let arns: Vec<String> = tasks.iter().map(|t| t.arn.clone()).collect();
        tasks = wait_for(&ecs, cluster, &arns, &a.wait, stopped).await?;
    }
    emit(a.common.output, &tasks, || render_list(&tasks, paint))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(id: &str, last: &str, exit: Option<i32>) -> TaskView {
        TaskView {
            arn: format!("arn:aws:ecs:us-east-1:000000000000:task/default/{id}"),
            id: id.into(),
            task_definition: "web:3".into(),
            last_status: last.into(),
            desired_status: if last == "STOPPED" {
                "STOPPED"
            } else {
                "RUNNING"
            }
            .into(),
            health: "UNKNOWN".into(),
            instance: Some("0a1b2c3d".into()),
            group: Some("service:web".into()),
            started_by: Some("ecs-svc/1234567890123456789".into()),
            cpu: Some("256".into()),
            memory: Some("512".into()),
            created_at: Some(1_700_000_000),
            started_at: (last != "PENDING").then_some(1_700_000_003),
            stopped_at: (last == "STOPPED").then_some(1_700_000_060),
            stop_code: (last == "STOPPED").then(|| "EssentialContainerExited".into()),
            stopped_reason: (last == "STOPPED")
                .then(|| "Essential container in task exited".into()),
            containers: vec![ContainerView {
                name: "app".into(),
                last_status: last.into(),
                exit_code: exit,
                health: "UNKNOWN".into(),
                reason: None,
                bindings: vec!["61000->8080/tcp".into()],
            }],
        }
    }

    #[test]
    fn tasks_render_as_a_list_and_in_full() {
        let tasks = vec![
            task("5c1d7e0f", "RUNNING", None),
            task("77aa0b12", "STOPPED", Some(1)),
        ];
        insta::assert_snapshot!(render_list(&tasks, Paint(false)));
        insta::assert_snapshot!(render_describe(&tasks[1..], Paint(false)));
    }

    #[test]
    fn waiting_to_run_fails_on_a_task_that_stopped_badly_and_accepts_one_that_finished() {
        let pending = [task("a", "PENDING", None), task("b", "RUNNING", None)];
        assert_eq!(
            running(&pending),
            TasksAre::Waiting("1/2 tasks running".into(), (1, 2))
        );
        let finished = [task("a", "STOPPED", Some(0)), task("b", "RUNNING", None)];
        assert_eq!(running(&finished), TasksAre::Done);
        let TasksAre::Failed(why) = running(&[task("a", "STOPPED", Some(1))]) else {
            panic!("a task that exited 1 fails the wait");
        };
        assert!(why.contains("app exited 1"), "{why}");
        assert_eq!(
            stopped(&finished),
            TasksAre::Waiting("1/2 tasks stopped".into(), (1, 2))
        );
    }
}
