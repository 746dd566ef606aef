//! Service discovery: namespaces and discovery services, created and deleted whole; a
//! deletion is refused while something still depends on what it would remove.

use std::sync::Arc;

use berth_model::command::{
    CreateDiscoveryService, CreateNamespace, DeleteDiscoveryService, DeleteNamespace,
};
use berth_model::discovery::{
    DiscoveryService, MAX_NAMESPACES, MAX_SERVICES_PER_NAMESPACE, Namespace,
};
use berth_model::service::{Service, ServiceStatus};
use berth_model::{Error, Millis};

use super::Apply;
use crate::State;

impl State {
    /// The namespace with id `id`.
    pub fn namespace(&self, id: &str) -> Option<&Arc<Namespace>> {
        self.namespaces.get(id)
    }

    /// The namespace named `name` (lowercase, no trailing dot).
    pub fn namespace_named(&self, name: &str) -> Option<&Arc<Namespace>> {
        self.namespaces.values().find(|n| &*n.name == name)
    }

    /// Every namespace, by id.
    pub fn namespaces(&self) -> impl Iterator<Item = &Arc<Namespace>> {
        self.namespaces.values()
    }

    /// The discovery service with id `id`.
    pub fn discovery_service(&self, id: &str) -> Option<&Arc<DiscoveryService>> {
        self.discovery_services.get(id)
    }

    /// Every discovery service, by id.
    pub fn discovery_services(&self) -> impl Iterator<Item = &Arc<DiscoveryService>> {
        self.discovery_services.values()
    }

    /// The discovery services of namespace `namespace_id`, by id.
    pub fn discovery_services_in<'a>(
        &'a self,
        namespace_id: &'a str,
    ) -> impl Iterator<Item = &'a Arc<DiscoveryService>> + 'a {
        self.discovery_services
            .values()
            .filter(move |d| &*d.namespace_id == namespace_id)
    }

    /// The ECS services, not INACTIVE, that register their tasks in discovery service `id`.
    pub fn services_registered_in<'a>(
        &'a self,
        id: &'a str,
    ) -> impl Iterator<Item = &'a Arc<Service>> + 'a {
        self.services.values().filter(move |s| {
            s.status != ServiceStatus::Inactive
                && s.service_registries.iter().any(|r| &*r.registry_id == id)
        })
    }
}

impl Apply for CreateNamespace {
    fn apply(&self, state: &mut State, _at: Millis) -> Result<Arc<Namespace>, Error> {
        let new = &self.namespace;
        if let Some(existing) = state.namespace_named(&new.name) {
            if new.creator_request_id.is_some()
                && existing.creator_request_id == new.creator_request_id
            {
                return Ok(existing.clone());
            }
            return Err(Error::Conflict(format!(
                "A namespace named {} exists already ({})",
                new.name, existing.id
            )));
        }
        if state.namespaces.contains_key(&new.id) {
            return Err(Error::Conflict(format!(
                "A namespace has the id {} already",
                new.id
            )));
        }
        if state.namespaces.len() >= MAX_NAMESPACES {
            return Err(Error::LimitExceeded(format!(
                "There are {MAX_NAMESPACES} namespaces already: delete one before creating \
                 another"
            )));
        }
        let namespace = Arc::new(Namespace {
            version: state.index,
            ..new.clone()
        });
        state
            .namespaces
            .insert(namespace.id.clone(), namespace.clone());
        Ok(namespace)
    }
}

impl Apply for DeleteNamespace {
    fn apply(&self, state: &mut State, _at: Millis) -> Result<Arc<Namespace>, Error> {
        let Some(namespace) = state.namespaces.get(&self.id).cloned() else {
            return Err(Error::ResourceNotFound(format!(
                "No namespace has the id {}",
                self.id
            )));
        };
        if let Some(service) = state.discovery_services_in(&self.id).next() {
            return Err(Error::ResourceInUse(format!(
                "Namespace {} holds discovery services (one is {} named {}): delete them \
                 first",
                namespace.name, service.id, service.name
            )));
        }
        state.namespaces.remove(&self.id);
        Ok(namespace)
    }
}

impl Apply for CreateDiscoveryService {
    fn apply(&self, state: &mut State, _at: Millis) -> Result<Arc<DiscoveryService>, Error> {
        let new = &self.service;
        let Some(namespace) = state.namespace(&new.namespace_id) else {
            return Err(Error::ResourceNotFound(format!(
                "No namespace has the id {}",
                new.namespace_id
            )));
        };
        let namespace = namespace.clone();
        let mut siblings = 0;
        for existing in state.discovery_services_in(&new.namespace_id) {
            siblings += 1;
            if existing.name == new.name {
                if new.creator_request_id.is_some()
                    && existing.creator_request_id == new.creator_request_id
                {
                    return Ok(existing.clone());
                }
                return Err(Error::Conflict(format!(
                    "Namespace {} has a service named {} already ({})",
                    namespace.name, new.name, existing.id
                )));
            }
        }
        if state.discovery_services.contains_key(&new.id) {
            return Err(Error::Conflict(format!(
                "A discovery service has the id {} already",
                new.id
            )));
        }
        if siblings >= MAX_SERVICES_PER_NAMESPACE {
            return Err(Error::LimitExceeded(format!(
                "Namespace {} holds {MAX_SERVICES_PER_NAMESPACE} services already",
                namespace.name
            )));
        }
        let service = Arc::new(DiscoveryService {
            version: state.index,
            ..new.clone()
        });
        state
            .discovery_services
            .insert(service.id.clone(), service.clone());
        Ok(service)
    }
}

impl Apply for DeleteDiscoveryService {
    fn apply(&self, state: &mut State, _at: Millis) -> Result<Arc<DiscoveryService>, Error> {
        let Some(service) = state.discovery_services.get(&self.id).cloned() else {
            return Err(Error::ResourceNotFound(format!(
                "No discovery service has the id {}",
                self.id
            )));
        };
        if let Some(user) = state.services_registered_in(&self.id).next() {
            return Err(Error::ResourceInUse(format!(
                "Discovery service {} has instances registered by ECS service {} of cluster \
                 {}: delete that service first",
                service.name, user.name, user.cluster
            )));
        }
        state.discovery_services.remove(&self.id);
        Ok(service)
    }
}
