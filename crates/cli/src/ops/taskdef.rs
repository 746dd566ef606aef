//! `berth taskdef ls|describe|register`: task definitions by family and revision.

use anyhow::{Context, Result};
use aws_sdk_ecs::types::{TaskDefinition, TaskDefinitionStatus};
use clap::{Args, Subcommand};
use serde::Serialize;

use super::Common;
use super::output::{Cell, Paint, emit, fields, or_dash, table, time};

#[derive(Subcommand)]
pub enum TaskdefCmd {
    /// List task definition revisions (ACTIVE unless --status INACTIVE).
    #[command(
        visible_alias = "list",
        after_help = "Examples:\n  berth taskdef ls\n  berth taskdef ls --family web -o json"
    )]
    Ls(TaskdefLs),
    /// Show task definitions in full: containers, images, resources.
    #[command(after_help = "Examples:\n  berth taskdef describe web:3")]
    Describe(TaskdefDescribe),
    /// Register a task definition from a file holding RegisterTaskDefinition's JSON (what
    /// `aws ecs register-task-definition --cli-input-json` reads; `-` for stdin).
    #[command(after_help = "Examples:
  berth taskdef register web.json
  echo '{\"family\":\"hello\",\"containerDefinitions\":[{\"name\":\"hello\",\"image\":\"busybox\",\"memory\":64}]}' | berth taskdef register -")]
    Register(TaskdefRegister),
}

#[derive(Args)]
pub struct TaskdefRegister {
    /// The JSON file, or `-` for stdin.
    file: std::path::PathBuf,
    #[command(flatten)]
    common: Common,
}

#[derive(Args)]
pub struct TaskdefLs {
    /// Only revisions of families starting with this.
    #[arg(long)]
    family: Option<String>,
    /// ACTIVE (the default) or INACTIVE.
    #[arg(long, default_value = "ACTIVE")]
    status: String,
    #[command(flatten)]
    common: Common,
}

#[derive(Args)]
pub struct TaskdefDescribe {
    /// family, family:revision or ARN.
    #[arg(required = true)]
    task_definitions: Vec<String>,
    #[command(flatten)]
    common: Common,
}

/// One revision in a listing.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RevisionView {
    pub arn: String,
    pub family: String,
    pub revision: i32,
}

/// A container of a task definition.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerDefinitionView {
    pub name: String,
    pub image: String,
    pub cpu: i32,
    pub memory: Option<i32>,
    pub essential: bool,
    /// `containerPort/protocol`, or `hostPort->containerPort/protocol` when the host port is
    /// fixed.
    pub ports: Vec<String>,
}

/// A task definition in full.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskdefView {
    pub arn: String,
    pub family: String,
    pub revision: i32,
    pub status: String,
    pub cpu: Option<String>,
    pub memory: Option<String>,
    pub network_mode: Option<String>,
    pub registered_at: Option<i64>,
    pub registered_by: Option<String>,
    pub containers: Vec<ContainerDefinitionView>,
}

impl From<&TaskDefinition> for TaskdefView {
    fn from(d: &TaskDefinition) -> TaskdefView {
        TaskdefView {
            arn: d.task_definition_arn().unwrap_or_default().to_owned(),
            family: d.family().unwrap_or_default().to_owned(),
            revision: d.revision(),
            status: d.status().map_or("", |s| s.as_str()).to_owned(),
            cpu: d.cpu().map(str::to_owned),
            memory: d.memory().map(str::to_owned),
            network_mode: d.network_mode().map(|m| m.as_str().to_owned()),
            registered_at: d.registered_at().map(|t| t.secs()),
            registered_by: d.registered_by().map(str::to_owned),
            containers: d
                .container_definitions()
                .iter()
                .map(|c| ContainerDefinitionView {
                    name: c.name().unwrap_or_default().to_owned(),
                    image: c.image().unwrap_or_default().to_owned(),
                    cpu: c.cpu(),
                    memory: c.memory(),
                    essential: c.essential().unwrap_or(true),
                    ports: c
                        .port_mappings()
                        .iter()
                        .map(|p| {
                            let protocol = p.protocol().map_or("tcp", |p| p.as_str());
                            let port = p.container_port().unwrap_or_default();
                            match p.host_port() {
                                Some(host) if host != 0 => format!("{host}->{port}/{protocol}"),
                                _ => format!("{port}/{protocol}"),
                            }
                        })
                        .collect(),
                })
                .collect(),
        }
    }
}

fn render_list(revisions: &[RevisionView], paint: Paint) -> String {
    let rows: Vec<Vec<Cell>> = revisions
        .iter()
        .map(|r| {
            vec![
                Cell::from(r.family.as_str()),
                Cell::from(r.revision.to_string()),
                Cell::from(r.arn.as_str()),
            ]
        })
        .collect();
    table(&["FAMILY", "REVISION", "ARN"], &rows, paint, "")
}

fn render_describe(definitions: &[TaskdefView], paint: Paint) -> String {
    definitions
        .iter()
        .map(|d| {
            let mut out = fields(
                &[
                    ("Definition", format!("{}:{}", d.family, d.revision)),
                    ("ARN", d.arn.clone()),
                    ("Status", d.status.clone()),
                    ("CPU", or_dash(d.cpu.as_deref())),
                    ("Memory", or_dash(d.memory.as_deref())),
                    ("Network mode", or_dash(d.network_mode.as_deref())),
                    ("Registered", time(d.registered_at)),
                    ("Registered by", or_dash(d.registered_by.as_deref())),
                ],
                paint,
            );
            out.push_str("Containers:\n");
            let rows: Vec<Vec<Cell>> = d
                .containers
                .iter()
                .map(|c| {
                    vec![
                        Cell::from(c.name.as_str()),
                        Cell::from(c.image.as_str()),
                        Cell::from(c.cpu.to_string()),
                        Cell::from(c.memory.map_or("-".into(), |m| m.to_string())),
                        Cell::from(if c.essential { "yes" } else { "no" }),
                        Cell::from(if c.ports.is_empty() {
                            "-".into()
                        } else {
                            c.ports.join(", ")
                        }),
                    ]
                })
                .collect();
            out.push_str(&table(
                &["NAME", "IMAGE", "CPU", "MEMORY", "ESSENTIAL", "PORTS"],
                &rows,
                paint,
                "  ",
            ));
            out
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// RegisterTaskDefinition with the request's JSON as it is: the SDK's types cannot be read
/// from JSON, so this one call goes to the ECS endpoint as the wire protocol has it (signed
/// for `ecs` like the SDK's). Answers the new revision's ARN.
async fn register(native: &berth_client::Client, body: serde_json::Value) -> Result<String> {
    let ecs = native.for_service("ecs");
    let answer = ecs
        .send(
            "POST",
            "/",
            &[
                ("content-type", "application/x-amz-json-1.1"),
                (
                    "x-amz-target",
                    "AmazonEC2ContainerServiceV20141113.RegisterTaskDefinition",
                ),
            ],
            bytes::Bytes::from(body.to_string()),
            std::time::Duration::from_secs(30),
        )
        .await?;
    let value: serde_json::Value = serde_json::from_slice(&answer.body).unwrap_or_default();
    if answer.status != 200 {
        anyhow::bail!(
            "{}: {}",
            value["__type"].as_str().unwrap_or("error"),
            value["message"].as_str().unwrap_or_default()
        );
    }
    value["taskDefinition"]["taskDefinitionArn"]
        .as_str()
        .map(str::to_owned)
        .context("the server answered without the task definition's ARN")
}

/// `family:revision` of a task definition ARN.
fn revision(arn: &str) -> RevisionView {
    let (family, revision) = super::output::definition(arn)
        .rsplit_once(':')
        .unwrap_or((arn, "0"));
    RevisionView {
        arn: arn.to_owned(),
        family: family.to_owned(),
        revision: revision.parse().unwrap_or(0),
    }
}

pub async fn run(cmd: TaskdefCmd) -> Result<()> {
    let paint = Paint::detect();
    match cmd {
        TaskdefCmd::Ls(a) => {
            let ecs = a.common.clients()?.ecs;
            let mut revisions = Vec::new();
            let mut token = None;
            loop {
                let page = ecs
                    .list_task_definitions()
                    .set_family_prefix(a.family.clone())
                    .status(TaskDefinitionStatus::from(
                        a.status.to_ascii_uppercase().as_str(),
                    ))
                    .set_next_token(token)
                    .send()
                    .await?;
                revisions.extend(page.task_definition_arns().iter().map(|a| revision(a)));
                token = page.next_token().map(str::to_owned);
                if token.is_none() {
                    break;
                }
            }
            emit(a.common.output, &revisions, || {
                render_list(&revisions, paint)
            })
        }
        TaskdefCmd::Describe(a) => {
            let ecs = a.common.clients()?.ecs;
            let mut definitions = Vec::new();
            for reference in &a.task_definitions {
                let answer = ecs
                    .describe_task_definition()
                    .task_definition(reference)
                    .send()
                    .await?;
                definitions.extend(answer.task_definition().map(TaskdefView::from));
            }
            emit(a.common.output, &definitions, || {
                render_describe(&definitions, paint)
            })
        }
        TaskdefCmd::Register(a) => {
            let text = if a.file.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin())?
            } else {
                std::fs::read_to_string(&a.file)
                    .with_context(|| format!("reading {}", a.file.display()))?
            };
            let body: serde_json::Value = serde_json::from_str(&text)
                .with_context(|| format!("{} is not JSON", a.file.display()))?;
            let clients = a.common.clients()?;
            let registered = register(&clients.native, body).await?;
            let answer = clients
                .ecs
                .describe_task_definition()
                .task_definition(&registered)
                .send()
                .await?;
            let definitions: Vec<TaskdefView> = answer
                .task_definition()
                .map(TaskdefView::from)
                .into_iter()
                .collect();
            emit(a.common.output, &definitions, || {
                render_describe(&definitions, paint)
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_definitions_render_with_their_containers() {
        let d = TaskdefView {
            arn: "arn:aws:ecs:us-east-1:000000000000:task-definition/web:3".into(),
            family: "web".into(),
            revision: 3,
            status: "ACTIVE".into(),
            cpu: None,
            memory: Some("512".into()),
            network_mode: Some("bridge".into()),
            registered_at: Some(1_700_000_000),
            registered_by: Some("arn:aws:iam::000000000000:user/admin".into()),
            containers: vec![ContainerDefinitionView {
                name: "app".into(),
                image: "nginx:1.27".into(),
                cpu: 256,
                memory: Some(128),
                essential: true,
                ports: vec!["8080->80/tcp".into()],
            }],
        };
        insta::assert_snapshot!(render_describe(&[d], Paint(false)));
        let listed = revision("arn:aws:ecs:us-east-1:000000000000:task-definition/web:3");
        assert_eq!((listed.family.as_str(), listed.revision), ("web", 3));
        insta::assert_snapshot!(render_list(&[listed], Paint(false)), @r"
        FAMILY  REVISION  ARN
        web     3         arn:aws:ecs:us-east-1:000000000000:task-definition/web:3
        ");
    }
}
