//! CreateService and PutService: a service is written whole, by whoever decided its new value
//! on a snapshot (the API edge or the service reconciler), and refused if it moved since.

use std::sync::Arc;

use berth_model::command::{CreateService, PutService};
use berth_model::entity::TaskDefinitionStatus;
use berth_model::service::{Service, ServiceStatus};
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

    /// Every revision a service's deployments name must exist and not be on its way out.
    fn deployments_runnable(&self, service: &Service) -> Result<(), Error> {
        for d in &service.deployments {
            match self.task_definition(&d.family, d.revision) {
                Some(t) if t.status != TaskDefinitionStatus::DeleteInProgress => {}
                _ => {
                    return Err(Error::invalid(format!(
                        "TaskDefinition {}:{} is not found or is being deleted",
                        d.family, d.revision
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
        if service.status != ServiceStatus::Active || service.deployments.is_empty() {
            return Err(Error::invalid(
                "A new service must be ACTIVE with one deployment",
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
        state.deployments_runnable(service)?;
        let stored = state.store_service(at, service);
        Ok(stored)
    }
}
