//! Task definition revisions: ACTIVE → INACTIVE (deregistered) → DELETE_IN_PROGRESS (purged by
//! `Expire` once no live task uses it). Revision numbers are never reused.

use std::sync::Arc;

use berth_model::arn::ResourceArn;
use berth_model::command::{
    DeleteTaskDefinitions, DeregisterTaskDefinition, Failure, Partial, RegisterTaskDefinition,
};
use berth_model::entity::*;
use berth_model::{Error, Millis};

use super::Apply;
use crate::{Entity, EntityKey, State};

impl State {
    pub(crate) fn put_task_definition(
        &mut self,
        at: Millis,
        t: TaskDefinition,
    ) -> Arc<TaskDefinition> {
        let old_status = self
            .task_definitions
            .get(&(t.family.clone(), t.revision))
            .map(|o| o.status);
        let t = Arc::new(TaskDefinition {
            version: self.index,
            ..t
        });
        let family = self.families.entry(t.family.clone()).or_default();
        family.last_revision = family.last_revision.max(t.revision);
        let was_active = old_status == Some(TaskDefinitionStatus::Active);
        let is_active = t.status == TaskDefinitionStatus::Active;
        if was_active && !is_active {
            family.active_revisions = family.active_revisions.saturating_sub(1);
        } else if !was_active && is_active {
            family.active_revisions += 1;
        }
        self.task_definitions
            .insert((t.family.clone(), t.revision), t.clone());
        self.record(
            EntityKey::TaskDefinition(t.family.clone(), t.revision),
            at,
            Some(Entity::TaskDefinition(t.clone())),
        );
        t
    }
}

impl Apply for RegisterTaskDefinition {
    fn apply(&self, state: &mut State, at: Millis) -> Result<Arc<TaskDefinition>, Error> {
        let RegisterTaskDefinition {
            family,
            spec,
            requirements,
            tags,
        } = self;
        let revision = state
            .families
            .get(family)
            .map_or(0, |f| f.last_revision)
            .checked_add(1)
            .ok_or_else(|| Error::client("This family has no revision numbers left"))?;
        let t = state.put_task_definition(
            at,
            TaskDefinition {
                family: family.clone(),
                revision,
                status: TaskDefinitionStatus::Active,
                spec: spec.clone(),
                requirements: requirements.clone(),
                registered_at: at,
                deregistered_at: None,
                delete_requested_at: None,
                tags: tags.to_vec(),
                version: 0,
                registered_by: state.actor.as_deref().map(str::to_owned),
            },
        );
        Ok(t)
    }
}

impl Apply for DeregisterTaskDefinition {
    fn apply(&self, state: &mut State, at: Millis) -> Result<Arc<TaskDefinition>, Error> {
        let DeregisterTaskDefinition { family, revision } = self;
        let t = state
            .task_definitions
            .get(&(family.clone(), *revision))
            .cloned()
            .ok_or_else(|| Error::client("The specified task definition does not exist."))?;
        match t.status {
            TaskDefinitionStatus::Inactive => Ok(t),
            TaskDefinitionStatus::DeleteInProgress => Err(Error::client(
                "The specified task definition is being deleted.",
            )),
            TaskDefinitionStatus::Active => {
                let t = state.put_task_definition(
                    at,
                    TaskDefinition {
                        status: TaskDefinitionStatus::Inactive,
                        deregistered_at: Some(at),
                        ..(*t).clone()
                    },
                );
                Ok(t)
            }
        }
    }
}

impl Apply for DeleteTaskDefinitions {
    fn apply(&self, state: &mut State, at: Millis) -> Result<Partial<TaskDefinition>, Error> {
        let DeleteTaskDefinitions { revisions } = self;
        let mut done = Vec::new();
        let mut failures = Vec::new();
        for (family, revision) in revisions {
            let resource = Some(ResourceArn::TaskDefinition(family.to_string(), *revision));
            let fail = |reason: &str| Failure {
                resource: resource.clone(),
                reason: reason.to_owned(),
                detail: None,
            };
            match state
                .task_definitions
                .get(&(family.clone(), *revision))
                .cloned()
            {
                None => failures.push(fail("The specified task definition does not exist.")),
                Some(t) if t.status == TaskDefinitionStatus::Active => failures.push(fail(
                    "The specified task definition is still in ACTIVE status. Deregister it first.",
                )),
                Some(t) if t.status == TaskDefinitionStatus::DeleteInProgress => done.push(t),
                Some(t) => done.push(state.put_task_definition(
                    at,
                    TaskDefinition {
                        status: TaskDefinitionStatus::DeleteInProgress,
                        delete_requested_at: Some(at),
                        ..(*t).clone()
                    },
                )),
            }
        }
        Ok(Partial { done, failures })
    }
}
