//! CreateService and PutService: a service is written whole, by whoever decided its new value
//! on a snapshot (the API edge or the service reconciler), and refused if it moved since.

use std::sync::Arc;

use berth_model::command::{CreateService, PutService};
use berth_model::entity::TaskDefinitionStatus;
use berth_model::service::{
    DeploymentControllerType, MAX_TASK_SETS, Service, ServiceStatus, TaskSetStatus,
};
use berth_model::{Error, Millis};

use super::Apply;
use crate::{Entity, EntityKey, State};

impl State {
    /// Stores `service` at the current index, keeping the indexes and history in step.
    pub(super) fn store_service(&mut self, at: Millis, service: &Service) -> Arc<Service> {
        let service = Arc::new(Service {
            version: self.index,
            ..service.clone()
        });
        let key = (service.cluster.clone(), service.name.clone());
        let old = self.services.insert(key, service.clone());
        self.service_changed(old.as_ref(), Some(&service));
        self.record(
            EntityKey::Service(service.cluster.clone(), service.name.clone()),
            at,
            Some(Entity::Service(service.clone())),
        );
        service
    }

    /// Every revision a service's deployments (or task sets not being deleted) name must
    /// exist and not be on its way out.
    fn deployments_runnable(&self, service: &Service) -> Result<(), Error> {
        let revisions = service
            .deployments
            .iter()
            .map(|d| (&d.family, d.revision))
            .chain(
                service
                    .task_sets
                    .iter()
                    .filter(|t| t.status != TaskSetStatus::Draining)
                    .map(|t| (&t.family, t.revision)),
            );
        for (family, revision) in revisions {
            match self.task_definition(family, revision) {
                Some(t) if t.status != TaskDefinitionStatus::DeleteInProgress => {}
                _ => {
                    return Err(Error::invalid(format!(
                        "TaskDefinition {family}:{revision} is not found or is being deleted"
                    )));
                }
            }
        }
        Ok(())
    }

    /// INACTIVE services deleted before `before`.
    pub(super) fn expire_services(&mut self, before: Millis) {
        let gone: Vec<_> = self
            .services
            .values()
            .filter(|s| {
                s.status == ServiceStatus::Inactive && s.deleted_at.is_some_and(|d| d < before)
            })
            .cloned()
            .collect();
        for s in gone {
            self.services.remove(&(s.cluster.clone(), s.name.clone()));
            self.service_changed(Some(&s), None);
            self.forget(&EntityKey::Service(s.cluster.clone(), s.name.clone()));
        }
    }
}

impl Apply for CreateService {
    fn apply(&self, state: &mut State, at: Millis) -> Result<Arc<Service>, Error> {
        let CreateService { service } = self;
        state.active_cluster(&service.cluster)?;
        if let Some(existing) = state.service(&service.cluster, &service.name)
            && existing.status != ServiceStatus::Inactive
        {
            return Err(Error::invalid("Creation of service was not idempotent."));
        }
        let deployed = match service.deployment_controller {
            DeploymentControllerType::Ecs => {
                !service.deployments.is_empty() && service.task_sets.is_empty()
            }
            DeploymentControllerType::External => {
                service.deployments.is_empty() && service.task_sets.is_empty()
            }
        };
        if service.status != ServiceStatus::Active || !deployed {
            return Err(Error::invalid(
                "A new service must be ACTIVE, with one deployment (ECS) or no task set yet (EXTERNAL)",
            ));
        }
        state.deployments_runnable(service)?;
        let service = Arc::new(Service {
            created_by: state.actor.as_deref().map(str::to_owned),
            ..(**service).clone()
        });
        let stored = state.store_service(at, &service);
        Ok(stored)
    }
}

impl Apply for PutService {
    fn apply(&self, state: &mut State, at: Millis) -> Result<Arc<Service>, Error> {
        let PutService {
            service,
            expected_version,
        } = self;
        let Some(current) = state.service(&service.cluster, &service.name) else {
            return Err(Error::ServiceNotFound);
        };
        if current.version != *expected_version {
            return Err(Error::Conflict(format!(
                "The service changed since it was read (version {} is now {}); read it again and retry.",
                expected_version, current.version
            )));
        }
        if current.status == ServiceStatus::Inactive {
            return Err(Error::ServiceNotActive);
        }
        if service.deployment_controller != current.deployment_controller {
            return Err(Error::invalid(format!(
                "The deployment controller of service {} is {} and cannot be changed",
                current.name, current.deployment_controller
            )));
        }
        let live = |s: &Service| {
            s.task_sets
                .iter()
                .filter(|t| t.status != TaskSetStatus::Draining)
                .count()
        };
        if live(service) > MAX_TASK_SETS && live(service) > live(current) {
            return Err(Error::invalid(format!(
                "A service can have at most {MAX_TASK_SETS} task sets"
            )));
        }
        state.deployments_runnable(service)?;
        let stored = state.store_service(at, service);
        Ok(stored)
    }
}
