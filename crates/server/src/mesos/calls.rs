//! The calls of a subscribed framework, once the HTTP edge has validated and authorized
//! them: ACCEPT (a launch becomes berth tasks, swapped for the offers' holds in one command),
//! DECLINE, KILL, ACKNOWLEDGE, RECONCILE, REVIVE, SUPPRESS and TEARDOWN.
//!
//! Each is answered 202 before it is carried out, as a master answers it; what goes wrong
//! later reaches the framework as a status UPDATE (TASK_ERROR for a TaskInfo berth cannot run,
//! TASK_LOST or TASK_DROPPED "Some offers are no longer valid" for stale offers), as it would
//! from a Mesos master.

use std::sync::Arc;
use std::time::Duration;

use berth_api::protocol::DEFAULT_REGION;
use berth_mesos::Resources;
use berth_mesos::allocator::refusal;
use berth_mesos::scheduler::{Call, CallType, Event};
use berth_mesos::v1::{self, Reason, TaskState};
use berth_mesos::validate::{check_launch, validate_operation};
use berth_model::arn::ArnContext;
use berth_model::command::{
    AcceptOffers, RegisterTaskDefinition, RemoveFramework, RemoveOffers, StopTask,
};
use berth_model::entity::Tag;
use berth_model::mesos::{Framework, Offer};
use berth_model::{Millis, OfferId};
use berth_scheduler::{Placement, TaskTemplate};
use berth_state::TaskFilter;

use super::{translate, write_or_warn};
use crate::App;
use crate::auth::Principal;

/// Carries out one (validated, authorized) call of a subscribed framework.
pub(super) async fn handle(
    app: &Arc<App>,
    principal: &Principal,
    framework: &str,
    kind: CallType,
    call: Call,
) {
    match kind {
        CallType::Teardown => {
            write_or_warn(
                app,
                RemoveFramework {
                    id: framework.to_owned(),
                    reason: "Framework torn down".into(),
                },
            )
            .await;
            app.mesos.lock().streams.remove(framework);
        }
        CallType::Accept => {
            if let Some(accept) = call.accept {
                accept_offers(app, principal, framework, accept).await;
            }
        }
        CallType::Decline => {
            if let Some(d) = call.decline {
                let refuse = refusal(d.filters.as_ref());
                let ids: Vec<OfferId> = d
                    .offer_ids
                    .iter()
                    .filter_map(|o| o.value.parse().ok())
                    .collect();
                release(app, framework, &ids, refuse).await;
            }
        }
        CallType::Revive => {
            {
                let mut hub = app.mesos.lock();
                hub.suppressed.remove(framework);
                hub.filters.clear(framework);
            }
            app.mesos.wake();
        }
        CallType::Suppress => {
            app.mesos.lock().suppressed.insert(framework.to_owned());
        }
        CallType::Kill => {
            if let Some(k) = call.kill {
                kill(app, framework, &k.task_id.value).await;
            }
        }
        CallType::Acknowledge => {
            if let Some(a) = call.acknowledge {
                let id = translate::task_id(framework, &a.task_id.value);
                let mut hub = app.mesos.lock();
                if let Some(sent) = hub.sent.get_mut(&id) {
                    sent.acknowledge(a.uuid.as_slice());
                }
            }
        }
        CallType::Reconcile => {
            if let Some(r) = call.reconcile {
                reconcile(
                    app,
                    framework,
                    r.tasks.iter().map(|t| t.task_id.value.clone()).collect(),
                );
            }
        }
        // Accepted and ignored: berth has no executors, inverse offers or operation feedback.
        _ => {}
    }
}

/// Releases offers (declined, or unused by an accept) and keeps their instances from this
/// framework for `refuse`.
async fn release(app: &App, framework: &str, ids: &[OfferId], refuse: Duration) {
    let state = app.node.state();
    let now = Millis::now().0;
    {
        let mut hub = app.mesos.lock();
        for id in ids {
            hub.offered.remove(id);
            if let Some(o) = state.offer(*id).filter(|o| o.framework == framework) {
                hub.filters.refuse(framework, o.instance, now, refuse);
            }
        }
    }
    let mine: Vec<OfferId> = ids
        .iter()
        .copied()
        .filter(|id| state.offer(*id).is_some_and(|o| o.framework == framework))
        .collect();
    if !mine.is_empty() {
        write_or_warn(app, RemoveOffers { ids: mine }).await;
    }
}

/// Sends `state` for Mesos task `task_id` with no uuid (nothing to acknowledge).
fn tell(
    app: &App,
    framework: &str,
    task_id: &str,
    state: TaskState,
    reason: Reason,
    message: String,
) {
    let status = translate::status(task_id, None, state, Some(reason), Some(message));
    if let Ok(event) = Event::update(status) {
        app.mesos.send(framework, &event);
    }
}

async fn accept_offers(
    app: &Arc<App>,
    principal: &Principal,
    framework: &str,
    accept: berth_mesos::scheduler::Accept,
) {
    let refuse = refusal(accept.filters.as_ref());
    let ids: Vec<OfferId> = accept
        .offer_ids
        .iter()
        .filter_map(|o| o.value.parse().ok())
        .collect();
    let infos: Vec<v1::TaskInfo> = accept
        .operations
        .iter()
        .filter_map(|op| validate_operation(op).ok())
        .flat_map(|op| match op {
            berth_mesos::validate::LaunchOperation::Launch(tasks) => tasks.to_vec(),
            berth_mesos::validate::LaunchOperation::LaunchGroup { task_group, .. } => {
                task_group.tasks.clone()
            }
        })
        .collect();
    let state = app.node.state();
    let Some(fw) = state.framework(framework).cloned() else {
        return;
    };
    let offers: Vec<Arc<Offer>> = ids
        .iter()
        .filter_map(|id| state.offer(*id).cloned())
        .collect();
    let valid = !ids.is_empty()
        && offers.len() == ids.len()
        && offers.iter().all(|o| o.framework == framework)
        && offers.iter().all(|o| o.instance == offers[0].instance);
    if !valid {
        for t in &infos {
            tell(
                app,
                framework,
                &t.task_id.value,
                TaskState::Dropped.for_framework(false),
                Reason::InvalidOffers,
                "Some offers are no longer valid".into(),
            );
        }
        return;
    }
    let instance_id = offers[0].instance;
    let Some(instance) = state.instance(instance_id).cloned() else {
        return;
    };
    let offered: Resources = offers.iter().fold(Resources::default(), |acc, o| {
        acc.plus(
            &Resources::parse(&translate::offer_resources(
                o.hold.cpu,
                o.hold.memory,
                &o.hold.tcp,
            ))
            .unwrap_or_default(),
        )
    });
    let agent = translate::agent_id(instance_id);
    let check = check_launch(&agent, &offered, &infos, |id| {
        state
            .task(translate::task_id(framework, &id.value))
            .is_some()
    });
    let family = translate::family(&fw.name);
    let mut tasks = Vec::new();
    for (info, result) in infos.iter().zip(check.tasks) {
        let needs = match result {
            Ok(n) => n,
            Err(e) => {
                tell(
                    app,
                    framework,
                    &info.task_id.value,
                    TaskState::Error,
                    Reason::TaskInvalid,
                    e.to_string(),
                );
                continue;
            }
        };
        match launch_task(app, principal, &fw, &family, info, &needs, &instance).await {
            Ok(t) => tasks.push(t),
            Err(why) => tell(
                app,
                framework,
                &info.task_id.value,
                TaskState::Error,
                Reason::TaskInvalid,
                why.to_string(),
            ),
        }
    }
    {
        // The refusal is in place before the accept commits: the leader loop runs on that
        // commit, and must not offer what is left of the agent straight back.
        let mut hub = app.mesos.lock();
        hub.offered.retain(|id, _| !ids.contains(id));
        hub.filters
            .refuse(framework, instance_id, Millis::now().0, refuse);
    }
    let written = app
        .node
        .write(AcceptOffers {
            framework: framework.to_owned(),
            offers: ids.clone(),
            tasks: tasks.clone(),
        })
        .await;
    let refused = match written {
        Ok(w) => w.result.err().map(|e| e.to_string()),
        Err(e) => Some(e.to_string()),
    };
    if let Some(why) = refused {
        for t in &tasks {
            let mesos = translate::mesos_task_id(t).unwrap_or_default().to_owned();
            tell(
                app,
                framework,
                &mesos,
                TaskState::Dropped.for_framework(false),
                Reason::InvalidOffers,
                why.clone(),
            );
        }
    }
}

/// Why a valid TaskInfo cannot be launched: the message of its TASK_ERROR.
#[derive(Debug, thiserror::Error)]
enum LaunchError {
    /// The task definition it translates to is not one ECS would register.
    #[error(transparent)]
    Definition(berth_model::Error),
    /// It needs a host privilege the framework's principal lacks.
    #[error(
        "launching this task needs the {} permission ({}), which the framework's principal does not have",
        .0.action(),
        .0.describe()
    )]
    Unauthorized(berth_auth::Privilege),
    /// Registering its task definition was not acknowledged.
    #[error(transparent)]
    Write(#[from] berth_raft::WriteError),
    /// Registering its task definition was refused.
    #[error(transparent)]
    Register(berth_model::Error),
}

/// The berth task for one valid TaskInfo: its definition (an identical revision of the
/// framework's family is reused), on the offers' instance, with the ports it asked for.
async fn launch_task(
    app: &App,
    principal: &Principal,
    fw: &Framework,
    family: &str,
    info: &v1::TaskInfo,
    needs: &Resources,
    instance: &berth_model::entity::ContainerInstance,
) -> Result<berth_model::entity::Task, LaunchError> {
    let request = translate::definition(family, info, needs);
    let valid = berth_model::validate::task_definition::register(&request)
        .map_err(LaunchError::Definition)?;
    // A command task is a host process, a privileged container is root on the host: the
    // framework's principal needs the same permissions an ECS caller would.
    let region = ArnContext::new(DEFAULT_REGION, app.config.account_id.clone());
    for privilege in berth_model::privileges::privileges(&valid.spec) {
        principal
            .authorize(&region, privilege.action(), &[], Some(&fw.cluster))
            .map_err(|_| LaunchError::Unauthorized(privilege))?;
    }
    let _registering = app.mesos.registering.lock().await;
    let state = app.node.state();
    let existing = state
        .task_definitions_after(Some((family.into(), 0)), false)
        .take_while(|t| &*t.family == family)
        .filter(|t| t.status == berth_model::entity::TaskDefinitionStatus::Active)
        .find(|t| *t.spec == valid.spec)
        .cloned();
    let definition = match existing {
        Some(d) => d,
        None => {
            let written = app
                .node
                .write_by(
                    &principal.actor(),
                    RegisterTaskDefinition {
                        family: family.into(),
                        spec: Arc::new(valid.spec),
                        requirements: valid.requirements,
                        tags: Vec::new(),
                    },
                )
                .await?;
            written.result.map_err(LaunchError::Register)?
        }
    };
    let template = TaskTemplate::plain(
        fw.cluster.clone(),
        definition,
        fw.group(),
        Some(fw.id.clone()),
        Vec::new(),
        Vec::new(),
        Millis::now(),
    );
    let placement = Placement {
        instance: instance.id,
        dynamic_tcp: Vec::new(),
        dynamic_udp: Vec::new(),
    };
    let mut task = template.task(
        translate::task_id(&fw.id, &info.task_id.value),
        instance,
        &placement,
    );
    task.tags = vec![Tag {
        key: translate::TASK_ID_TAG.into(),
        value: info.task_id.value.clone(),
    }];
    Ok(task)
}

async fn kill(app: &App, framework: &str, task_id: &str) {
    let state = app.node.state();
    let id = translate::task_id(framework, task_id);
    match state.task(id) {
        Some(t) if t.started_by.as_deref() == Some(framework) => {
            let stop = StopTask {
                cluster: t.cluster.clone(),
                id,
                reason: Some("Killed by the framework".into()),
                stop_code: Some("UserInitiated".into()),
            };
            write_or_warn(app, stop).await;
        }
        _ => tell(
            app,
            framework,
            task_id,
            TaskState::Lost,
            Reason::TaskUnknown,
            "Task is unknown".into(),
        ),
    }
}

/// Answers RECONCILE: the latest state of each named task (all the framework's tasks when
/// none is named), without uuid; unknown tasks are TASK_LOST.
fn reconcile(app: &App, framework: &str, named: Vec<String>) {
    let state = app.node.state();
    let Some(fw) = state.framework(framework) else {
        return;
    };
    let ids: Vec<String> = if named.is_empty() {
        state
            .tasks_after(
                &fw.cluster,
                &TaskFilter {
                    started_by: Some(framework.to_owned()),
                    ..Default::default()
                },
                None,
            )
            .filter(|t| t.is_live())
            .filter_map(|t| translate::mesos_task_id(t).map(str::to_owned))
            .collect()
    } else {
        named
    };
    for mesos in ids {
        let task = state.task(translate::task_id(framework, &mesos));
        let status = match task {
            Some(t) => {
                let (s, _, message) = translate::status_of(t);
                translate::status(&mesos, Some(t), s, Some(Reason::Reconciliation), message)
            }
            None => translate::status(
                &mesos,
                None,
                TaskState::Lost,
                Some(Reason::Reconciliation),
                Some("Task is unknown".into()),
            ),
        };
        if let Ok(e) = Event::update(status) {
            app.mesos.send(framework, &e);
        }
    }
}
