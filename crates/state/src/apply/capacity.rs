//! Capacity providers: created, updated and deleted account-wide, attached to clusters.
//!
//! A provider is a name and its recorded settings; which instances it holds is read from
//! their `ecs.capacity-provider` attribute whenever it is needed, so nothing here follows
//! instances. What must hold at every commit is checked here: a cluster attaches only ACTIVE
//! providers, its default strategy names only attached ones, a provider leaves a cluster only
//! when no live task or service there uses it, and is deleted only when no ACTIVE cluster has
//! it (otherwise the deletion is recorded as DELETE_FAILED, ECS's answer). Deleted providers
//! stay describable (INACTIVE) for a bounded time and number, then are forgotten.

use std::ops::Bound::{Excluded, Unbounded};
use std::sync::Arc;

use berth_model::capacity::{
    CapacityProvider, CapacityProviderStatus, MAX_INACTIVE_PROVIDERS, ProviderUpdateStatus,
    merge_scaling,
};
use berth_model::command::{
    CreateCapacityProvider, DeleteCapacityProvider, PutClusterCapacityProviders,
    UpdateCapacityProvider,
};
use berth_model::entity::{Cluster, ClusterStatus, Name};
use berth_model::service::ServiceStatus;
use berth_model::{Error, Millis};

use super::Apply;
use crate::State;

impl State {
    /// The capacity provider of that name, ACTIVE or deleted.
    pub fn capacity_provider(&self, name: &str) -> Option<&Arc<CapacityProvider>> {
        self.capacity_providers.get(name)
    }

    /// Every capacity provider (ACTIVE or deleted) by name, strictly after `after`.
    pub fn capacity_providers_after(
        &self,
        after: Option<&str>,
    ) -> impl Iterator<Item = &Arc<CapacityProvider>> + '_ {
        let lower = match after {
            Some(name) => Excluded(Name::from(name)),
            None => Unbounded,
        };
        self.capacity_providers
            .range((lower, Unbounded))
            .map(|(_, p)| p)
    }

    /// The ACTIVE provider of that name.
    fn active_provider(&self, name: &str) -> Option<&Arc<CapacityProvider>> {
        self.capacity_providers
            .get(name)
            .filter(|p| p.status == CapacityProviderStatus::Active)
    }

    /// The ACTIVE provider an update or deletion names; a missing or deleted one is ECS's
    /// ClientException, with its words (which tools match on to treat a deletion as done).
    fn provider_to_change(&self, name: &str) -> Result<CapacityProvider, Error> {
        self.active_provider(name)
            .map(|p| (**p).clone())
            .ok_or_else(|| {
                Error::client(
                    "The specified capacity provider does not exist. Specify a valid name or ARN and try again.",
                )
            })
    }

    /// Forgets INACTIVE providers deleted before `before` (the `Expire` command's inactive
    /// cut-off, as for services and instances).
    pub(super) fn expire_capacity_providers(&mut self, before: Millis) {
        let gone: Vec<Name> = self
            .capacity_providers
            .values()
            .filter(|p| {
                p.status == CapacityProviderStatus::Inactive
                    && p.deleted_at.is_none_or(|d| d < before)
            })
            .map(|p| p.name.clone())
            .collect();
        for name in gone {
            self.capacity_providers.remove(&name);
        }
    }

    /// Forgets the longest-deleted INACTIVE providers while more than
    /// [`MAX_INACTIVE_PROVIDERS`] are kept.
    fn bound_inactive_providers(&mut self) {
        let mut inactive: Vec<(Option<Millis>, Name)> = self
            .capacity_providers
            .values()
            .filter(|p| p.status == CapacityProviderStatus::Inactive)
            .map(|p| (p.deleted_at, p.name.clone()))
            .collect();
        if inactive.len() <= MAX_INACTIVE_PROVIDERS {
            return;
        }
        inactive.sort_unstable();
        for (_, name) in &inactive[..inactive.len() - MAX_INACTIVE_PROVIDERS] {
            self.capacity_providers.remove(name);
        }
    }

    pub(super) fn put_provider(&mut self, provider: CapacityProvider) -> Arc<CapacityProvider> {
        let provider = Arc::new(CapacityProvider {
            version: self.index,
            ..provider
        });
        self.capacity_providers
            .insert(provider.name.clone(), provider.clone());
        provider
    }

    /// Checks a cluster's providers and default strategy: attached providers exist and are
    /// ACTIVE, and the strategy names only attached ones.
    pub(crate) fn check_cluster_providers(
        &self,
        providers: &[Name],
        strategy: &[berth_model::capacity::StrategyItem],
    ) -> Result<(), Error> {
        for (k, name) in providers.iter().enumerate() {
            if self.active_provider(name).is_none() {
                return Err(Error::invalid(format!(
                    "The specified capacity provider {name} does not exist. Create it with CreateCapacityProvider first."
                )));
            }
            if providers[..k].contains(name) {
                return Err(Error::invalid(format!(
                    "Capacity provider {name} is listed more than once"
                )));
            }
        }
        if let Some(item) = strategy.iter().find(|i| !providers.contains(&i.provider)) {
            return Err(Error::invalid(format!(
                "The default capacity provider strategy names {}, which is not associated with the cluster. Include it in capacityProviders.",
                item.provider
            )));
        }
        Ok(())
    }

    /// Why `provider` cannot leave `cluster`, if something there uses it.
    fn provider_in_use(&self, cluster: &Name, provider: &Name) -> Option<String> {
        let all = crate::TaskFilter::default();
        let task = self
            .tasks_after(cluster, &all, None)
            .find(|t| t.is_live() && t.capacity_provider.as_ref() == Some(provider));
        if let Some(t) = task {
            return Some(format!(
                "The specified capacity provider {provider} is in use and cannot be removed: task {} still runs on it",
                t.id
            ));
        }
        let service = self.services_after(cluster, None).find(|s| {
            s.status != ServiceStatus::Inactive
                && s.capacity_provider_strategy
                    .iter()
                    .any(|i| i.provider == *provider)
        });
        service.map(|s| {
            format!(
                "The specified capacity provider {provider} is in use and cannot be removed: service {} has it in its capacity provider strategy",
                s.name
            )
        })
    }
}

impl Apply for CreateCapacityProvider {
    fn apply(&self, state: &mut State, at: Millis) -> Result<Arc<CapacityProvider>, Error> {
        if state
            .capacity_providers
            .get(&self.name)
            .is_some_and(|p| p.status == CapacityProviderStatus::Active)
        {
            return Err(Error::client(format!(
                "A capacity provider named {} already exists. Use a different name, or delete it first.",
                self.name
            )));
        }
        Ok(state.put_provider(CapacityProvider {
            name: self.name.clone(),
            status: CapacityProviderStatus::Active,
            auto_scaling_group: self.auto_scaling_group.clone(),
            update_status: None,
            update_status_reason: None,
            tags: self.tags.clone(),
            created_at: at,
            deleted_at: None,
            version: 0,
        }))
    }
}

impl Apply for UpdateCapacityProvider {
    fn apply(&self, state: &mut State, _: Millis) -> Result<Arc<CapacityProvider>, Error> {
        let mut provider = state.provider_to_change(&self.name)?;
        let group = &mut provider.auto_scaling_group;
        if let Some(update) = &self.managed_scaling {
            group.managed_scaling = Some(merge_scaling(group.managed_scaling.as_ref(), update)?);
        }
        if let Some(p) = &self.managed_termination_protection {
            group.managed_termination_protection = Some(p.clone());
        }
        if let Some(d) = &self.managed_draining {
            group.managed_draining = Some(d.clone());
        }
        let scaling_on = group
            .managed_scaling
            .as_ref()
            .is_some_and(|s| s.status.as_deref() == Some("ENABLED"));
        if group.managed_termination_protection.as_deref() == Some("ENABLED") && !scaling_on {
            return Err(Error::invalid(
                "managedTerminationProtection can only be ENABLED when managedScaling is ENABLED",
            ));
        }
        provider.update_status = Some(ProviderUpdateStatus::UpdateComplete);
        provider.update_status_reason = None;
        Ok(state.put_provider(provider))
    }
}

impl Apply for DeleteCapacityProvider {
    fn apply(&self, state: &mut State, at: Millis) -> Result<Arc<CapacityProvider>, Error> {
        let provider = state.provider_to_change(&self.name)?;
        let attached = state.clusters.values().find(|c| {
            c.status == ClusterStatus::Active && c.capacity_providers.contains(&self.name)
        });
        // ECS answers such a deletion with the provider, still ACTIVE, DELETE_FAILED.
        if let Some(c) = attached {
            let reason = format!(
                "The capacity provider cannot be deleted because it is associated with cluster: {}. Remove the capacity provider from the cluster and try again.",
                c.name
            );
            return Ok(state.put_provider(CapacityProvider {
                update_status: Some(ProviderUpdateStatus::DeleteFailed),
                update_status_reason: Some(reason),
                ..provider
            }));
        }
        let deleted = state.put_provider(CapacityProvider {
            status: CapacityProviderStatus::Inactive,
            update_status: Some(ProviderUpdateStatus::DeleteComplete),
            update_status_reason: None,
            deleted_at: Some(at),
            ..provider
        });
        state.bound_inactive_providers();
        Ok(deleted)
    }
}

impl Apply for PutClusterCapacityProviders {
    fn apply(&self, state: &mut State, at: Millis) -> Result<Arc<Cluster>, Error> {
        let cluster = (**state.active_cluster(&self.cluster)?).clone();
        state.check_cluster_providers(&self.providers, &self.default_strategy)?;
        for gone in cluster
            .capacity_providers
            .iter()
            .filter(|p| !self.providers.contains(p))
        {
            if let Some(why) = state.provider_in_use(&cluster.name, gone) {
                return Err(Error::ResourceInUse(why));
            }
        }
        Ok(state.put_cluster(
            at,
            Cluster {
                capacity_providers: self.providers.clone(),
                default_strategy: self.default_strategy.clone(),
                ..cluster
            },
        ))
    }
}
