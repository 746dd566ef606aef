//! Schedules, through the API people already script against: the subset of **EventBridge
//! Scheduler** (REST-JSON, SigV4 signing name `scheduler`) that runs ECS tasks, so
//! `aws scheduler create-schedule --endpoint-url ...` and boto3's `scheduler` client work
//! unchanged; plus berth's native additions for what that API has no field for.
//!
//! ```text
//!  POST   /schedules/{Name}   CreateSchedule ─┐  validate (expression, zone, dates, window,
//!  PUT    /schedules/{Name}   UpdateSchedule ─┤  target = ECS cluster ARN + EcsParameters +
//!  GET    /schedules/{Name}   GetSchedule     │  Input overrides) ─► RunTask request, stored
//!  DELETE /schedules/{Name}   DeleteSchedule  │  authorize scheduler:<Op> on the schedule ARN
//!  GET    /schedules          ListSchedules   │  (condition: the target's cluster); creating
//!                                             ┘  or updating also needs ecs:RunTask there
//!  GET /v1/schedules/{group}/{name}/runs     berth: the run records, pending run, next due
//!  PUT /v1/schedules/{group}/{name}/policy   berth: concurrency and missed-run policies
//! ```
//! Errors have the Scheduler's shape: `X-Amzn-Errortype` and `{"Message": ...}` with its
//! status (ValidationException 400, ResourceNotFoundException 404, ConflictException 409,
//! InternalServerException 500). Timestamps are epoch seconds, as REST-JSON carries them.
//! berth has one schedule group, `default`; naming another is a ResourceNotFoundException.
//! Runs are the [`runner`]'s.

pub mod runner;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Extension, Router};
use berth_api::types as api;
use berth_api::{EcsError, ErrorCode};
use berth_model::Millis;
use berth_model::arn::parse_cluster;
use berth_model::command::{CreateSchedule, DeleteSchedule, SetSchedulePolicy, UpdateSchedule};
use berth_model::entity::Name;
use berth_model::schedule::{
    AfterCompletion, Concurrency, Creator, DEFAULT_GROUP, MissedRuns, RetryPolicy, RunOutcome,
    RunPolicy, Schedule, ScheduleSpec, ScheduleState, ScheduleTarget, check_name, schedule_arn,
};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::App;
use crate::auth::Principal;
use crate::ecs::{Ctx, context};

/// Largest `Target.Input`, as the Scheduler API allows (256 KB).
const MAX_INPUT: usize = 256 * 1024;
/// Largest `Description`.
const MAX_DESCRIPTION: usize = 512;
/// ListSchedules' page size when `MaxResults` is not given, and its bound.
const MAX_RESULTS: usize = 100;

pub(crate) fn router() -> Router<Arc<App>> {
    Router::new()
        .route("/schedules", get(list))
        .route(
            "/schedules/{name}",
            post(create).get(get_schedule).put(update).delete(delete),
        )
        .route("/v1/schedules/{group}/{name}/runs", get(runs))
        .route("/v1/schedules/{group}/{name}/policy", put(set_policy))
}

// --- errors ------------------------------------------------------------------------------------

/// An error in the Scheduler API's shape.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn validation(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            code: "ValidationException",
            message: message.into(),
        }
    }

    fn not_found(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            code: "ResourceNotFoundException",
            message: message.into(),
        }
    }
}

impl From<EcsError> for ApiError {
    fn from(e: EcsError) -> Self {
        let (status, code) = match e.code {
            ErrorCode::ResourceNotFoundException => {
                (StatusCode::NOT_FOUND, "ResourceNotFoundException")
            }
            ErrorCode::ConflictException => (StatusCode::CONFLICT, "ConflictException"),
            ErrorCode::AccessDeniedException => (StatusCode::FORBIDDEN, "AccessDeniedException"),
            ErrorCode::ServerException => (
                StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                "InternalServerException",
            ),
            _ => (StatusCode::BAD_REQUEST, "ValidationException"),
        };
        Self {
            status,
            code,
            message: e.message,
        }
    }
}

impl From<berth_model::Error> for ApiError {
    fn from(e: berth_model::Error) -> Self {
        EcsError::from(e).into()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (self.status, axum::Json(json!({ "Message": self.message }))).into_response();
        r.headers_mut()
            .insert("x-amzn-errortype", HeaderValue::from_static(self.code));
        r
    }
}

type Answer<T> = Result<axum::Json<T>, ApiError>;

// --- wire shapes -------------------------------------------------------------------------------

/// CreateSchedule's and UpdateSchedule's body.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ScheduleInput {
    group_name: Option<String>,
    schedule_expression: Option<String>,
    start_date: Option<f64>,
    end_date: Option<f64>,
    description: Option<String>,
    schedule_expression_timezone: Option<String>,
    state: Option<String>,
    kms_key_arn: Option<String>,
    target: Option<Target>,
    flexible_time_window: Option<FlexibleTimeWindow>,
    action_after_completion: Option<String>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
struct FlexibleTimeWindow {
    mode: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    maximum_window_in_minutes: Option<i64>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
struct Target {
    arn: Option<String>,
    role_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dead_letter_config: Option<DeadLetterConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    retry_policy: Option<RetryPolicyShape>,
    #[serde(skip_serializing_if = "Option::is_none")]
    input: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ecs_parameters: Option<EcsParameters>,
    /// The other kinds of target (Lambda, SQS, Kinesis, SageMaker, EventBridge): AWS services
    /// berth does not have. Only their presence matters: they are refused.
    #[serde(flatten, skip_serializing)]
    other: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
struct DeadLetterConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    arn: Option<String>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
struct RetryPolicyShape {
    maximum_event_age_in_seconds: Option<i64>,
    maximum_retry_attempts: Option<i64>,
}

/// `Target.EcsParameters`: RunTask's parameters in the Scheduler's spelling.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
struct EcsParameters {
    task_definition_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    task_count: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    launch_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    network_configuration: Option<NetworkConfiguration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    platform_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    group: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    capacity_provider_strategy: Option<Vec<api::CapacityProviderStrategyItem>>,
    #[serde(
        rename = "EnableECSManagedTags",
        skip_serializing_if = "Option::is_none"
    )]
    enable_ecs_managed_tags: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    enable_execute_command: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    placement_constraints: Option<Vec<api::PlacementConstraint>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    placement_strategy: Option<Vec<api::PlacementStrategy>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    propagate_tags: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reference_id: Option<String>,
    /// A list of one-entry maps, `[{"team": "data"}]`, as the Scheduler spells tags.
    #[serde(skip_serializing_if = "Option::is_none")]
    tags: Option<Vec<BTreeMap<String, String>>>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
struct NetworkConfiguration {
    #[serde(
        rename = "awsvpcConfiguration",
        skip_serializing_if = "Option::is_none"
    )]
    awsvpc: Option<AwsVpcConfiguration>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
struct AwsVpcConfiguration {
    #[serde(skip_serializing_if = "Option::is_none")]
    subnets: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    security_groups: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    assign_public_ip: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ScheduleArnOutput {
    schedule_arn: String,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct GetScheduleOutput {
    arn: String,
    group_name: String,
    name: String,
    schedule_expression: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    start_date: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    end_date: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    schedule_expression_timezone: String,
    state: &'static str,
    creation_date: f64,
    last_modification_date: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    kms_key_arn: Option<String>,
    target: Target,
    flexible_time_window: FlexibleTimeWindow,
    action_after_completion: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ScheduleSummary {
    arn: String,
    name: String,
    group_name: String,
    state: &'static str,
    creation_date: f64,
    last_modification_date: f64,
    target: TargetSummary,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct TargetSummary {
    arn: String,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ListSchedulesOutput {
    #[serde(skip_serializing_if = "Option::is_none")]
    next_token: Option<String>,
    schedules: Vec<ScheduleSummary>,
}

// --- validation: the request as a schedule's settings ------------------------------------------

fn group_of(given: Option<&str>) -> Result<Name, ApiError> {
    match given {
        None | Some(DEFAULT_GROUP) => Ok(DEFAULT_GROUP.into()),
        Some(other) => {
            check_name("GroupName", other)?;
            Err(ApiError::not_found(format!(
                "Schedule group {other} does not exist. berth has one schedule group, {DEFAULT_GROUP}."
            )))
        }
    }
}

fn date(value: Option<f64>, what: &str) -> Result<Option<Millis>, ApiError> {
    value
        .map(|s| {
            Millis::from_epoch_seconds(s)
                .ok_or_else(|| ApiError::validation(format!("{what} is not a valid time")))
        })
        .transpose()
}

fn bounded(value: Option<i64>, what: &str, min: i64, max: i64) -> Result<Option<u32>, ApiError> {
    match value {
        None => Ok(None),
        Some(v) if (min..=max).contains(&v) => Ok(Some(v as u32)),
        Some(v) => Err(ApiError::validation(format!(
            "{what} must be between {min} and {max}; got {v}"
        ))),
    }
}

/// IAM role ARNs as the API's pattern has them: `arn:aws…:iam::<12 digits>:role/<path>`.
fn role_arn(value: Option<&str>) -> Result<String, ApiError> {
    let arn = value.ok_or_else(|| ApiError::validation("Target.RoleArn is required"))?;
    let valid = (|| {
        let rest = arn.strip_prefix("arn:aws")?;
        let (partition_rest, after) = rest.split_once(":iam::")?;
        let (account, role) = after.split_once(":role/")?;
        let partition_ok = partition_rest
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b == b'-');
        let account_ok = account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit());
        let role_ok = !role.is_empty()
            && role.len() <= 1500
            && role
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+=,.@/_-".contains(&b));
        (partition_ok && account_ok && role_ok).then_some(())
    })();
    match valid {
        Some(()) => Ok(arn.to_owned()),
        None => Err(ApiError::validation(format!(
            "Target.RoleArn '{}' is not an IAM role ARN (arn:aws:iam::123456789012:role/NAME)",
            arn.chars().take(100).collect::<String>()
        ))),
    }
}

/// The cluster an ECS target ARN names.
fn target_cluster(arn: Option<&str>) -> Result<(String, Name), ApiError> {
    let arn = arn.ok_or_else(|| ApiError::validation("Target.Arn is required"))?;
    let shown: String = arn.chars().take(100).collect();
    let ecs = arn.starts_with("arn:") && arn.split(':').nth(2) == Some("ecs");
    if !ecs {
        return Err(ApiError::validation(format!(
            "Target.Arn '{shown}' is not an ECS cluster ARN: berth's schedules run ECS tasks \
             (arn:aws:ecs:REGION:ACCOUNT:cluster/NAME)"
        )));
    }
    let cluster = parse_cluster(arn).map_err(|e| ApiError::validation(e.to_string()))?;
    Ok((arn.to_owned(), cluster.as_str().into()))
}

fn tags_of(given: Option<&[BTreeMap<String, String>]>) -> Option<Vec<api::Tag>> {
    given.map(|maps| {
        maps.iter()
            .flat_map(|m| {
                m.iter().map(|(k, v)| api::Tag {
                    key: Some(k.clone()),
                    value: Some(v.clone()),
                })
            })
            .collect()
    })
}

/// `startedBy` of a schedule's tasks: RunTask allows letters, digits, `-`, `/` and `_`.
fn started_by(group: &str, name: &str) -> String {
    let clean = |s: &str| s.replace('.', "_");
    let mut s = format!("schedule/{}/{}", clean(group), clean(name));
    s.truncate(128);
    s
}

/// The RunTask request a target's EcsParameters and Input make.
fn run_task_of(
    group: &str,
    name: &str,
    cluster: &str,
    ecs: &EcsParameters,
    input: Option<&str>,
) -> Result<api::RunTaskRequest, ApiError> {
    let task_definition = ecs
        .task_definition_arn
        .as_deref()
        .filter(|t| !t.is_empty() && t.len() <= 1600)
        .ok_or_else(|| {
            ApiError::validation(
                "Target.EcsParameters.TaskDefinitionArn is required (1 to 1600 characters)",
            )
        })?;
    let count = bounded(ecs.task_count, "EcsParameters.TaskCount", 1, 10)?.unwrap_or(1);
    if ecs.tags.as_ref().is_some_and(|t| t.len() > 50) {
        return Err(ApiError::validation(
            "EcsParameters.Tags holds at most 50 tags",
        ));
    }
    let overrides = input
        .map(|text| {
            serde_json::from_str::<api::TaskOverride>(text).map_err(|e| {
                ApiError::validation(format!(
                    "Target.Input must be RunTask overrides as JSON ({{\"containerOverrides\": [...]}}): {e}"
                ))
            })
        })
        .transpose()?;
    Ok(api::RunTaskRequest {
        cluster: Some(cluster.to_owned()),
        task_definition: Some(task_definition.to_owned()),
        count: Some(count as i32),
        launch_type: ecs.launch_type.clone(),
        network_configuration: ecs.network_configuration.as_ref().map(|n| {
            api::NetworkConfiguration {
                awsvpc_configuration: n.awsvpc.as_ref().map(|a| api::AwsVpcConfiguration {
                    subnets: a.subnets.clone(),
                    security_groups: a.security_groups.clone(),
                    assign_public_ip: a.assign_public_ip.clone(),
                }),
            }
        }),
        platform_version: ecs.platform_version.clone(),
        group: ecs.group.clone(),
        capacity_provider_strategy: ecs.capacity_provider_strategy.clone(),
        enable_ecs_managed_tags: ecs.enable_ecs_managed_tags,
        enable_execute_command: ecs.enable_execute_command,
        placement_constraints: ecs.placement_constraints.clone(),
        placement_strategy: ecs.placement_strategy.clone(),
        propagate_tags: ecs.propagate_tags.clone(),
        reference_id: ecs.reference_id.clone(),
        tags: tags_of(ecs.tags.as_deref()),
        overrides,
        started_by: Some(started_by(group, name)),
        ..Default::default()
    })
}

/// EcsParameters as the stored RunTask request gives them back.
fn ecs_parameters_of(run: &api::RunTaskRequest) -> EcsParameters {
    EcsParameters {
        task_definition_arn: run.task_definition.clone(),
        task_count: run.count.map(i64::from),
        launch_type: run.launch_type.clone(),
        network_configuration: run
            .network_configuration
            .as_ref()
            .map(|n| NetworkConfiguration {
                awsvpc: n
                    .awsvpc_configuration
                    .as_ref()
                    .map(|a| AwsVpcConfiguration {
                        subnets: a.subnets.clone(),
                        security_groups: a.security_groups.clone(),
                        assign_public_ip: a.assign_public_ip.clone(),
                    }),
            }),
        platform_version: run.platform_version.clone(),
        group: run.group.clone(),
        capacity_provider_strategy: run.capacity_provider_strategy.clone(),
        enable_ecs_managed_tags: run.enable_ecs_managed_tags,
        enable_execute_command: run.enable_execute_command,
        placement_constraints: run.placement_constraints.clone(),
        placement_strategy: run.placement_strategy.clone(),
        propagate_tags: run.propagate_tags.clone(),
        reference_id: run.reference_id.clone(),
        tags: run.tags.as_ref().map(|tags| {
            tags.iter()
                .map(|t| {
                    BTreeMap::from([(
                        t.key.clone().unwrap_or_default(),
                        t.value.clone().unwrap_or_default(),
                    )])
                })
                .collect()
        }),
    }
}

/// The creator's credential: who the runs act as.
fn creator_of(principal: &Principal) -> Result<Creator, ApiError> {
    match principal {
        Principal::Credential(c) => Ok(Creator {
            access_key_id: c.access_key_id.clone(),
            actor: principal.actor(),
        }),
        Principal::Peer => Err(ApiError::validation(
            "a schedule is created by a credential, whose permissions its runs use",
        )),
    }
}

/// CreateSchedule's or UpdateSchedule's body as a schedule's settings.
fn spec_of(
    group: &str,
    name: &str,
    input: ScheduleInput,
    principal: &Principal,
    now: Millis,
) -> Result<ScheduleSpec, ApiError> {
    let expression = input
        .schedule_expression
        .ok_or_else(|| ApiError::validation("ScheduleExpression is required"))?;
    let time_zone = input.schedule_expression_timezone.filter(|z| z != "UTC");
    let start = date(input.start_date, "StartDate")?;
    let end = date(input.end_date, "EndDate")?;
    berth_schedule::Schedule::new(berth_schedule::Spec {
        expression: &expression,
        time_zone: time_zone.as_deref(),
        start: start.map(|m| m.0),
        end: end.map(|m| m.0),
        created: now.0,
    })
    .map_err(|e| ApiError::validation(e.to_string()))?;
    if input
        .description
        .as_ref()
        .is_some_and(|d| d.chars().count() > MAX_DESCRIPTION)
    {
        return Err(ApiError::validation(format!(
            "Description is at most {MAX_DESCRIPTION} characters"
        )));
    }
    let state = match input.state.as_deref() {
        None => ScheduleState::Enabled,
        Some(s) => ScheduleState::parse(s).ok_or_else(|| {
            ApiError::validation(format!("State must be ENABLED or DISABLED; got '{s}'"))
        })?,
    };
    let after_completion = match input.action_after_completion.as_deref() {
        None => AfterCompletion::None,
        Some(s) => AfterCompletion::parse(s).ok_or_else(|| {
            ApiError::validation(format!(
                "ActionAfterCompletion must be NONE or DELETE; got '{s}'"
            ))
        })?,
    };
    let window = input
        .flexible_time_window
        .ok_or_else(|| ApiError::validation("FlexibleTimeWindow is required"))?;
    let flexible_window_minutes = match (window.mode.as_deref(), window.maximum_window_in_minutes) {
        (Some("OFF"), None) => None,
        (Some("OFF"), Some(_)) => {
            return Err(ApiError::validation(
                "FlexibleTimeWindow.MaximumWindowInMinutes is only for Mode FLEXIBLE",
            ));
        }
        (Some("FLEXIBLE"), Some(m)) => bounded(
            Some(m),
            "FlexibleTimeWindow.MaximumWindowInMinutes",
            1,
            1440,
        )?,
        (Some("FLEXIBLE"), None) => {
            return Err(ApiError::validation(
                "FlexibleTimeWindow.MaximumWindowInMinutes is required for Mode FLEXIBLE",
            ));
        }
        (other, _) => {
            return Err(ApiError::validation(format!(
                "FlexibleTimeWindow.Mode must be OFF or FLEXIBLE; got {other:?}"
            )));
        }
    };
    let target = input
        .target
        .ok_or_else(|| ApiError::validation("Target is required"))?;
    if let Some(kind) = target.other.keys().next() {
        return Err(ApiError::validation(format!(
            "Target.{kind}: berth's schedules run ECS tasks only (Target.EcsParameters)"
        )));
    }
    let (arn, cluster) = target_cluster(target.arn.as_deref())?;
    let role_arn = role_arn(target.role_arn.as_deref())?;
    if target
        .input
        .as_ref()
        .is_some_and(|i| i.is_empty() || i.len() > MAX_INPUT)
    {
        return Err(ApiError::validation(
            "Target.Input must be 1 character to 256 KB",
        ));
    }
    let ecs = target.ecs_parameters.ok_or_else(|| {
        ApiError::validation("Target.EcsParameters is required: berth's schedules run ECS tasks")
    })?;
    let run_task = run_task_of(group, name, &cluster, &ecs, target.input.as_deref())?;
    let defaults = RetryPolicy::default();
    let retry = match target.retry_policy {
        None => defaults,
        Some(r) => RetryPolicy {
            maximum_event_age_seconds: bounded(
                r.maximum_event_age_in_seconds,
                "RetryPolicy.MaximumEventAgeInSeconds",
                60,
                86_400,
            )?
            .unwrap_or(defaults.maximum_event_age_seconds),
            maximum_retry_attempts: bounded(
                r.maximum_retry_attempts,
                "RetryPolicy.MaximumRetryAttempts",
                0,
                185,
            )?
            .unwrap_or(defaults.maximum_retry_attempts),
        },
    };
    Ok(ScheduleSpec {
        expression,
        time_zone,
        start,
        end,
        description: input.description,
        state,
        flexible_window_minutes,
        after_completion,
        kms_key_arn: input.kms_key_arn,
        target: ScheduleTarget {
            arn,
            cluster,
            role_arn,
            input: target.input,
            retry,
            dead_letter_arn: target.dead_letter_config.and_then(|d| d.arn),
            run_task,
        },
        creator: creator_of(principal)?,
    })
}

// --- rendering ---------------------------------------------------------------------------------

fn arn_of(ctx: &Ctx, s: &Schedule) -> String {
    s.arn(&ctx.arn.partition, &ctx.arn.region, &ctx.arn.account)
}

fn render(ctx: &Ctx, s: &Schedule) -> GetScheduleOutput {
    let spec = &s.spec;
    let target = &spec.target;
    GetScheduleOutput {
        arn: arn_of(ctx, s),
        group_name: s.group.to_string(),
        name: s.name.to_string(),
        schedule_expression: spec.expression.clone(),
        start_date: spec.start.map(Millis::as_epoch_seconds),
        end_date: spec.end.map(Millis::as_epoch_seconds),
        description: spec.description.clone(),
        schedule_expression_timezone: spec.time_zone.clone().unwrap_or_else(|| "UTC".into()),
        state: spec.state.as_str(),
        creation_date: s.created_at.as_epoch_seconds(),
        last_modification_date: s.modified_at.as_epoch_seconds(),
        kms_key_arn: spec.kms_key_arn.clone(),
        target: Target {
            arn: Some(target.arn.clone()),
            role_arn: Some(target.role_arn.clone()),
            dead_letter_config: target
                .dead_letter_arn
                .clone()
                .map(|arn| DeadLetterConfig { arn: Some(arn) }),
            retry_policy: Some(RetryPolicyShape {
                maximum_event_age_in_seconds: Some(i64::from(
                    target.retry.maximum_event_age_seconds,
                )),
                maximum_retry_attempts: Some(i64::from(target.retry.maximum_retry_attempts)),
            }),
            input: target.input.clone(),
            ecs_parameters: Some(ecs_parameters_of(&target.run_task)),
            other: BTreeMap::new(),
        },
        flexible_time_window: FlexibleTimeWindow {
            mode: Some(
                if spec.flexible_window_minutes.is_some() {
                    "FLEXIBLE"
                } else {
                    "OFF"
                }
                .into(),
            ),
            maximum_window_in_minutes: spec.flexible_window_minutes.map(i64::from),
        },
        action_after_completion: spec.after_completion.as_str(),
    }
}

// --- handlers ----------------------------------------------------------------------------------

fn parse_body(body: &[u8]) -> Result<ScheduleInput, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(ScheduleInput::default());
    }
    serde_json::from_slice(body).map_err(|e| {
        ApiError::validation(format!(
            "The request body is not valid JSON for this operation: {e}"
        ))
    })
}

/// Allows `scheduler:<op>` on the schedule in `cluster` (the target's), or says why not.
fn authorize(ctx: &Ctx, op: &str, arn: &str, cluster: Option<&str>) -> Result<(), ApiError> {
    ctx.authorize(&format!("scheduler:{op}"), &[arn.to_owned()], cluster)
        .map_err(Into::into)
}

/// A schedule's runs act as its creator: creating or updating one needs RunTask in its
/// cluster, so nobody schedules what they could not run.
fn may_run(ctx: &Ctx, spec: &ScheduleSpec) -> Result<(), ApiError> {
    let definition = spec
        .target
        .run_task
        .task_definition
        .as_deref()
        .unwrap_or("");
    let resource = if definition.starts_with("arn:") {
        definition.to_owned()
    } else {
        format!(
            "arn:{}:ecs:{}:{}:task-definition/{definition}",
            ctx.arn.partition, ctx.arn.region, ctx.arn.account
        )
    };
    ctx.authorize("ecs:RunTask", &[resource], Some(&spec.target.cluster))
        .map_err(Into::into)
}

/// CreateSchedule's and UpdateSchedule's common start: the caller's context, the parsed body
/// and the group it names.
fn settings_request(
    app: &App,
    headers: &HeaderMap,
    principal: Principal,
    name: &str,
    body: &[u8],
) -> Result<(Ctx, ScheduleInput, Name), ApiError> {
    let ctx = context(app, headers, principal);
    check_name("Name", name)?;
    let input = parse_body(body)?;
    let group = group_of(input.group_name.as_deref())?;
    Ok((ctx, input, group))
}

async fn create(
    State(app): State<Arc<App>>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer<ScheduleArnOutput> {
    let (ctx, input, group) = settings_request(&app, &headers, principal, &name, &body)?;
    let spec = spec_of(&group, &name, input, &ctx.principal, Millis::now())?;
    let arn = schedule_arn(
        &ctx.arn.partition,
        &ctx.arn.region,
        &ctx.arn.account,
        &group,
        &name,
    );
    authorize(&ctx, "CreateSchedule", &arn, Some(&spec.target.cluster))?;
    may_run(&ctx, &spec)?;
    let command = CreateSchedule {
        group,
        name: name.as_str().into(),
        spec,
    };
    let s = app.write_by(&ctx.principal, command).await?;
    Ok(axum::Json(ScheduleArnOutput {
        schedule_arn: arn_of(&ctx, &s),
    }))
}

async fn update(
    State(app): State<Arc<App>>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer<ScheduleArnOutput> {
    let (ctx, input, group) = settings_request(&app, &headers, principal, &name, &body)?;
    let existing = existing(&app, &group, &name)?;
    authorize(
        &ctx,
        "UpdateSchedule",
        &arn_of(&ctx, &existing),
        Some(&existing.spec.target.cluster),
    )?;
    let spec = spec_of(&group, &name, input, &ctx.principal, existing.created_at)?;
    authorize(
        &ctx,
        "UpdateSchedule",
        &arn_of(&ctx, &existing),
        Some(&spec.target.cluster),
    )?;
    may_run(&ctx, &spec)?;
    let command = UpdateSchedule {
        group,
        name: name.as_str().into(),
        spec,
    };
    let s = app.write_by(&ctx.principal, command).await?;
    Ok(axum::Json(ScheduleArnOutput {
        schedule_arn: arn_of(&ctx, &s),
    }))
}

#[derive(Debug, Deserialize)]
struct GroupQuery {
    #[serde(rename = "groupName")]
    group_name: Option<String>,
}

fn existing(app: &App, group: &str, name: &str) -> Result<Arc<Schedule>, ApiError> {
    app.node
        .state()
        .schedule(group, name)
        .cloned()
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "Schedule {name} does not exist in schedule group {group}."
            ))
        })
}

fn query<T: serde::de::DeserializeOwned>(
    q: Result<Query<T>, axum::extract::rejection::QueryRejection>,
) -> Result<T, ApiError> {
    q.map(|Query(q)| q)
        .map_err(|e| ApiError::validation(e.body_text()))
}

async fn get_schedule(
    State(app): State<Arc<App>>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
    q: Result<Query<GroupQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
) -> Answer<GetScheduleOutput> {
    let ctx = context(&app, &headers, principal);
    check_name("Name", &name)?;
    let group = group_of(query(q)?.group_name.as_deref())?;
    let s = existing(&app, &group, &name)?;
    authorize(
        &ctx,
        "GetSchedule",
        &arn_of(&ctx, &s),
        Some(&s.spec.target.cluster),
    )?;
    Ok(axum::Json(render(&ctx, &s)))
}

async fn delete(
    State(app): State<Arc<App>>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
    q: Result<Query<GroupQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
) -> Answer<serde_json::Value> {
    let ctx = context(&app, &headers, principal);
    check_name("Name", &name)?;
    let group = group_of(query(q)?.group_name.as_deref())?;
    let s = existing(&app, &group, &name)?;
    authorize(
        &ctx,
        "DeleteSchedule",
        &arn_of(&ctx, &s),
        Some(&s.spec.target.cluster),
    )?;
    app.write_by(
        &ctx.principal,
        DeleteSchedule {
            group,
            name: name.as_str().into(),
        },
    )
    .await?;
    Ok(axum::Json(json!({})))
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    #[serde(rename = "ScheduleGroup")]
    group: Option<String>,
    #[serde(rename = "NamePrefix")]
    name_prefix: Option<String>,
    #[serde(rename = "State")]
    state: Option<String>,
    #[serde(rename = "NextToken")]
    next_token: Option<String>,
    #[serde(rename = "MaxResults")]
    max_results: Option<i64>,
}

async fn list(
    State(app): State<Arc<App>>,
    Extension(principal): Extension<Principal>,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
) -> Answer<ListSchedulesOutput> {
    let ctx = context(&app, &headers, principal);
    let q = query(q)?;
    let group = group_of(q.group.as_deref())?;
    let state_filter = q
        .state
        .as_deref()
        .map(|s| {
            ScheduleState::parse(s).ok_or_else(|| {
                ApiError::validation(format!("State must be ENABLED or DISABLED; got '{s}'"))
            })
        })
        .transpose()?;
    let max = bounded(q.max_results, "MaxResults", 1, MAX_RESULTS as i64)?
        .map_or(MAX_RESULTS, |m| m as usize);
    let after: Option<(String, String)> =
        crate::pagination::decode("ListSchedules", q.next_token.as_deref())?;
    authorize(&ctx, "ListSchedules", "*", None)?;
    let state = app.node.state();
    let prefix = q.name_prefix.unwrap_or_default();
    let matching = state
        .schedules_after(after.as_ref().map(|(g, n)| (g.as_str(), n.as_str())))
        .filter(|s| s.group == group && s.name.starts_with(prefix.as_str()))
        .filter(|s| state_filter.is_none_or(|f| s.spec.state == f))
        // Only what the caller may see: an operator sees its own cluster's schedules.
        .filter(|s| {
            ctx.authorize(
                "scheduler:GetSchedule",
                &[arn_of(&ctx, s)],
                Some(&s.spec.target.cluster),
            )
            .is_ok()
        });
    let (page, next_token) = crate::pagination::page("ListSchedules", matching, max, |s| {
        (s.group.to_string(), s.name.to_string())
    });
    Ok(axum::Json(ListSchedulesOutput {
        next_token,
        schedules: page
            .iter()
            .map(|s| ScheduleSummary {
                arn: arn_of(&ctx, s),
                name: s.name.to_string(),
                group_name: s.group.to_string(),
                state: s.spec.state.as_str(),
                creation_date: s.created_at.as_epoch_seconds(),
                last_modification_date: s.modified_at.as_epoch_seconds(),
                target: TargetSummary {
                    arn: s.spec.target.arn.clone(),
                },
            })
            .collect(),
    }))
}

// --- berth's native additions ------------------------------------------------------------------

/// `GET /v1/schedules/{group}/{name}/runs`: what the Scheduler API cannot show — the recorded
/// runs (newest last), a run in progress, the next due time and the run policy.
async fn runs(
    State(app): State<Arc<App>>,
    Extension(principal): Extension<Principal>,
    Path((group, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Answer<serde_json::Value> {
    let ctx = context(&app, &headers, principal);
    let group = group_of(Some(&group))?;
    let s = existing(&app, &group, &name)?;
    authorize(
        &ctx,
        "GetSchedule",
        &arn_of(&ctx, &s),
        Some(&s.spec.target.cluster),
    )?;
    let next_due = runner::timing(&s)
        .ok()
        .and_then(|t| t.next_due(s.due_after().0))
        .filter(|_| s.spec.state == ScheduleState::Enabled)
        .and_then(berth_schedule::format_utc);
    let task_arn = |id: &berth_model::TaskId| ctx.arn.task(&s.spec.target.cluster, *id);
    let runs: Vec<_> = s
        .runs
        .iter()
        .map(|r| {
            json!({
                "due": berth_schedule::format_utc(r.due.0),
                "at": berth_schedule::format_utc(r.at.0),
                "attempts": r.attempts,
                "tasks": r.tasks.iter().map(task_arn).collect::<Vec<_>>(),
                "outcome": outcome_view(&r.outcome),
            })
        })
        .collect();
    Ok(axum::Json(json!({
        "scheduleArn": arn_of(&ctx, &s),
        "state": s.spec.state,
        "policy": { "concurrency": s.policy.concurrency, "missedRuns": s.policy.missed },
        "lastDue": s.last_due.and_then(|d| berth_schedule::format_utc(d.0)),
        "nextDue": next_due,
        "pending": s.pending.as_ref().map(|p| json!({
            "due": berth_schedule::format_utc(p.due.0),
            "attempts": p.attempts,
            "notBefore": berth_schedule::format_utc(p.not_before.0),
        })),
        "runs": runs,
    })))
}

/// A run's outcome as the runs endpoint shows it (`kind`, and times as RFC 3339).
fn outcome_view(outcome: &RunOutcome) -> serde_json::Value {
    match outcome {
        RunOutcome::Started { failures } => json!({"kind": "STARTED", "failures": failures}),
        RunOutcome::Skipped { reason } => json!({"kind": "SKIPPED", "reason": reason}),
        RunOutcome::Missed { count, last } => json!({
            "kind": "MISSED",
            "count": count,
            "last": berth_schedule::format_utc(last.0),
        }),
        RunOutcome::Failed { reason } => json!({"kind": "FAILED", "reason": reason}),
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PolicyInput {
    concurrency: Option<String>,
    missed_runs: Option<String>,
}

/// `PUT /v1/schedules/{group}/{name}/policy` with `{"concurrency": "ALLOW" |
/// "SKIP_IF_RUNNING" | "REPLACE", "missedRuns": "SKIP" | "CATCH_UP_ONCE"}` (either may be
/// left out, keeping what is set): authorized as `scheduler:UpdateSchedule`.
async fn set_policy(
    State(app): State<Arc<App>>,
    Extension(principal): Extension<Principal>,
    Path((group, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer<serde_json::Value> {
    let ctx = context(&app, &headers, principal);
    let group = group_of(Some(&group))?;
    let s = existing(&app, &group, &name)?;
    authorize(
        &ctx,
        "UpdateSchedule",
        &arn_of(&ctx, &s),
        Some(&s.spec.target.cluster),
    )?;
    let input: PolicyInput = serde_json::from_slice(&body)
        .map_err(|e| ApiError::validation(format!("The body is not a run policy: {e}")))?;
    let concurrency = match input.concurrency.as_deref() {
        None => s.policy.concurrency,
        Some(c) => Concurrency::parse(c).ok_or_else(|| {
            ApiError::validation(format!(
                "concurrency must be ALLOW, SKIP_IF_RUNNING or REPLACE; got '{c}'"
            ))
        })?,
    };
    let missed = match input.missed_runs.as_deref() {
        None => s.policy.missed,
        Some(m) => MissedRuns::parse(m).ok_or_else(|| {
            ApiError::validation(format!(
                "missedRuns must be SKIP or CATCH_UP_ONCE; got '{m}'"
            ))
        })?,
    };
    let updated = app
        .write_by(
            &ctx.principal,
            SetSchedulePolicy {
                group,
                name: name.as_str().into(),
                policy: RunPolicy {
                    concurrency,
                    missed,
                },
            },
        )
        .await?;
    Ok(axum::Json(json!({
        "concurrency": updated.policy.concurrency,
        "missedRuns": updated.policy.missed,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_arns_follow_the_api_pattern() {
        assert!(role_arn(Some("arn:aws:iam::123456789012:role/ecsEventsRole")).is_ok());
        assert!(role_arn(Some("arn:aws-cn:iam::123456789012:role/path/r+=,.@_-")).is_ok());
        for bad in [
            "",
            "arn:aws:iam::12345:role/x",
            "arn:aws:iam::123456789012:user/x",
            "arn:aws:iam::123456789012:role/",
            "role/x",
        ] {
            assert!(role_arn(Some(bad)).is_err(), "{bad}");
        }
        assert!(role_arn(None).is_err());
    }

    #[test]
    fn only_ecs_cluster_targets_are_taken() {
        let (arn, cluster) =
            target_cluster(Some("arn:aws:ecs:us-east-1:000000000000:cluster/prod")).unwrap();
        assert_eq!(
            (arn.as_str(), &*cluster),
            ("arn:aws:ecs:us-east-1:000000000000:cluster/prod", "prod")
        );
        for bad in [
            "prod",
            "arn:aws:lambda:us-east-1:000000000000:function:f",
            "arn:aws:ecs:us-east-1:000000000000:service/prod/web",
        ] {
            let e = target_cluster(Some(bad)).unwrap_err();
            assert_eq!(e.code, "ValidationException", "{bad}");
        }
    }

    #[test]
    fn ecs_parameters_round_trip_through_the_stored_run_task_request() {
        let given: EcsParameters = serde_json::from_value(json!({
            "TaskDefinitionArn": "report:3",
            "TaskCount": 2,
            "Group": "nightly",
            "PlacementConstraints": [{"type": "distinctInstance"}],
            "PlacementStrategy": [{"type": "spread", "field": "attribute:ecs.availability-zone"}],
            "CapacityProviderStrategy": [{"capacityProvider": "spot", "weight": 1, "base": 0}],
            "Tags": [{"berth:queue-timeout": "600"}],
            "NetworkConfiguration": {"awsvpcConfiguration": {"Subnets": ["s-1"]}},
        }))
        .unwrap();
        let run = run_task_of(
            "default",
            "nightly.v2",
            "prod",
            &given,
            Some(r#"{"containerOverrides":[{"name":"app","command":["report","--full"]}]}"#),
        )
        .unwrap();
        assert_eq!(run.count, Some(2));
        assert_eq!(run.cluster.as_deref(), Some("prod"));
        assert_eq!(
            run.started_by.as_deref(),
            Some("schedule/default/nightly_v2")
        );
        let tag = &run.tags.as_ref().unwrap()[0];
        assert_eq!(
            (tag.key.as_deref(), tag.value.as_deref()),
            (Some("berth:queue-timeout"), Some("600"))
        );
        let command = &run
            .overrides
            .as_ref()
            .unwrap()
            .container_overrides
            .as_ref()
            .unwrap()[0];
        assert_eq!(command.command.as_ref().unwrap()[1], "--full");
        let back = serde_json::to_value(ecs_parameters_of(&run)).unwrap();
        assert_eq!(back, serde_json::to_value(&given).unwrap());
    }

    #[test]
    fn bad_input_and_counts_are_validation_errors() {
        let ecs = EcsParameters {
            task_definition_arn: Some("report".into()),
            ..Default::default()
        };
        let e = run_task_of("default", "n", "prod", &ecs, Some("not json")).unwrap_err();
        assert!(e.message.contains("Target.Input"), "{}", e.message);
        let many = EcsParameters {
            task_count: Some(11),
            ..ecs
        };
        let e = run_task_of("default", "n", "prod", &many, None).unwrap_err();
        assert!(e.message.contains("TaskCount"), "{}", e.message);
    }
}
