//! The names inside a command, checked again where a command arrives from outside the edge
//! that made it: a write a follower forwards to the leader (`/v1/raft/write`).
//!
//! Handlers validate requests before they build commands; a forwarded command was built by a
//! peer's handlers, and only peers can send one. Still, what goes into the log goes into
//! every replica forever, so names that no API request could produce (a cluster called `""`
//! or `evil/../x"<>`) are refused here too, whoever sent them.

use crate::account::SettingOwner;
use crate::arn::{ResourceArn, valid_cluster_name, valid_family};
use crate::capacity::provider_name;
use crate::command::Command;
use crate::discovery::{
    NAMESPACE_ID_PREFIX, SERVICE_ID_PREFIX, check_id, check_namespace_name, check_service_name,
};
use crate::error::Error;
use crate::schedule::check_name;
use crate::validate::{attribute_name, attribute_value, shorten};

fn cluster(name: &str) -> Result<(), Error> {
    if valid_cluster_name(name) {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "'{}' is not a cluster name",
            shorten(name)
        )))
    }
}

fn family(name: &str) -> Result<(), Error> {
    if valid_family(name) {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "'{}' is not a task definition family",
            shorten(name)
        )))
    }
}

/// A service name: letters, digits, hyphens and underscores, 1 to 255 characters.
pub fn valid_service_name(name: &str) -> bool {
    valid_family(name)
}

fn service(name: &str) -> Result<(), Error> {
    if valid_service_name(name) {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "'{}' is not a service name",
            shorten(name)
        )))
    }
}

fn resource(arn: &ResourceArn) -> Result<(), Error> {
    match arn {
        ResourceArn::Cluster(c)
        | ResourceArn::ContainerInstance(c, _)
        | ResourceArn::Task(c, _) => cluster(c),
        ResourceArn::TaskDefinition(f, _) => family(f),
        ResourceArn::Service(c, s) => cluster(c).and_then(|()| service(s)),
        ResourceArn::CapacityProvider(name) => providers([name.as_str()]),
        ResourceArn::TaskSet(c, s, id) => {
            cluster(c)?;
            service(s)?;
            match crate::arn::parse_task_set(id) {
                Ok((None, _)) => Ok(()),
                _ => Err(Error::invalid(format!(
                    "'{}' is not a task set id",
                    shorten(id)
                ))),
            }
        }
    }
}

fn providers<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<(), Error> {
    names
        .into_iter()
        .try_for_each(|n| provider_name(Some(n)).map(|_| ()))
}

fn schedule(group: &str, name: &str) -> Result<(), Error> {
    check_name("GroupName", group)?;
    check_name("Name", name)
}

fn setting_owner(owner: &SettingOwner) -> Result<(), Error> {
    if owner.is_valid() {
        Ok(())
    } else {
        Err(Error::invalid(
            "an account setting's principal is not an IAM user or role",
        ))
    }
}

/// Checks every name a command carries.
pub fn check(command: &Command) -> Result<(), Error> {
    match command {
        Command::CreateCluster(c) => {
            cluster(&c.name)?;
            providers(c.capacity_providers.iter().map(|p| &**p))?;
            providers(c.default_strategy.iter().map(|i| &*i.provider))
        }
        Command::DeleteCluster(c) => cluster(&c.name),
        Command::UpdateCluster(c) => cluster(&c.name),
        Command::RegisterTaskDefinition(c) => family(&c.family),
        Command::DeregisterTaskDefinition(c) => family(&c.family),
        Command::DeleteTaskDefinitions(c) => c.revisions.iter().try_for_each(|(f, _)| family(f)),
        Command::RegisterContainerInstance(c) => {
            cluster(&c.cluster)?;
            for (name, value) in &c.attributes {
                attribute_name(name)?;
                if let Some(v) = value {
                    attribute_value(v)?;
                }
            }
            Ok(())
        }
        Command::DeregisterContainerInstance(c) => cluster(&c.cluster),
        Command::UpdateContainerInstancesState(c) => cluster(&c.cluster),
        Command::PutAttributes(c) => {
            cluster(&c.cluster)?;
            for a in &c.attributes {
                attribute_name(&a.name)?;
                if let Some(v) = &a.value {
                    attribute_value(v)?;
                }
            }
            Ok(())
        }
        Command::DeleteAttributes(c) => cluster(&c.cluster),
        Command::PlaceTasks(c) => {
            cluster(&c.cluster)?;
            c.tasks.iter().try_for_each(|t| {
                if t.cluster != c.cluster {
                    return Err(Error::invalid("a placed task belongs to another cluster"));
                }
                providers(t.capacity_provider.as_deref())?;
                family(&t.family)
            })
        }
        Command::PlaceQueuedTasks(c) => {
            cluster(&c.cluster)?;
            c.placements.iter().try_for_each(|p| {
                if p.task.cluster != c.cluster {
                    return Err(Error::invalid("a placed task belongs to another cluster"));
                }
                providers(p.task.capacity_provider.as_deref())?;
                family(&p.task.family)
            })
        }
        Command::ExpireQueuedTasks(c) => cluster(&c.cluster),
        Command::PreemptAndPlace(c) => {
            cluster(&c.cluster)?;
            if c.task.cluster != c.cluster {
                return Err(Error::invalid("a placed task belongs to another cluster"));
            }
            providers(c.task.capacity_provider.as_deref())?;
            family(&c.task.family)
        }
        Command::StopTask(c) => cluster(&c.cluster),
        Command::TaskStateChange(c) => cluster(&c.cluster),
        Command::AgentConnectivity(c) => cluster(&c.cluster),
        Command::AgentLost(c) => cluster(&c.cluster),
        Command::CreateService(c) => {
            cluster(&c.service.cluster).and_then(|()| service(&c.service.name))
        }
        Command::PutService(c) => {
            cluster(&c.service.cluster).and_then(|()| service(&c.service.name))
        }
        Command::SubscribeFramework(c) => cluster(&c.framework.cluster),
        Command::AcceptOffers(c) => c.tasks.iter().try_for_each(|t| {
            cluster(&t.cluster)?;
            family(&t.family)
        }),
        Command::MakeOffers(c) => c.offers.iter().try_for_each(|o| cluster(&o.cluster)),
        Command::PutAccountSetting(c) => {
            setting_owner(&c.owner)?;
            if c.name.values().contains(&c.value.as_str()) {
                Ok(())
            } else {
                Err(Error::invalid(format!("'{}' is not a value of {}", shorten(&c.value), c.name)))
            }
        }
        Command::DeleteAccountSetting(c) => setting_owner(&c.owner),
        Command::UpdateTaskProtection(c) => cluster(&c.cluster),
        Command::CreateCapacityProvider(c) => providers([&*c.name]),
        Command::UpdateCapacityProvider(c) => providers([&*c.name]),
        Command::DeleteCapacityProvider(c) => providers([&*c.name]),
        Command::PutClusterCapacityProviders(c) => {
            cluster(&c.cluster)?;
            providers(c.providers.iter().map(|p| &**p))?;
            providers(c.default_strategy.iter().map(|i| &*i.provider))
        }
        Command::TagResource(c) => resource(&c.resource),
        Command::UntagResource(c) => resource(&c.resource),
        Command::CreateSchedule(c) => {
            schedule(&c.group, &c.name)?;
            cluster(&c.spec.target.cluster)
        }
        Command::UpdateSchedule(c) => {
            schedule(&c.group, &c.name)?;
            cluster(&c.spec.target.cluster)
        }
        Command::SetSchedulePolicy(c) => schedule(&c.group, &c.name),
        Command::DeleteSchedule(c) => schedule(&c.group, &c.name),
        Command::TakeDueTimes(c) => schedule(&c.group, &c.name),
        Command::EndScheduleAttempt(c) => schedule(&c.group, &c.name),
        Command::CreateNamespace(c) => {
            check_id(NAMESPACE_ID_PREFIX, &c.namespace.id)?;
            check_namespace_name(&c.namespace.name).map(drop)
        }
        Command::DeleteNamespace(c) => check_id(NAMESPACE_ID_PREFIX, &c.id),
        Command::CreateDiscoveryService(c) => {
            check_id(SERVICE_ID_PREFIX, &c.service.id)?;
            check_id(NAMESPACE_ID_PREFIX, &c.service.namespace_id)?;
            check_service_name(&c.service.name).map(drop)
        }
        Command::DeleteDiscoveryService(c) => check_id(SERVICE_ID_PREFIX, &c.id),
        Command::FrameworkDisconnected(_)
        | Command::RemoveFramework(_)
        | Command::RemoveOffers(_)
        | Command::Expire(_)
        // Credentials are checked whole when applied (ids, names, policies).
        | Command::Bootstrap(_)
        | Command::CreateCredential(_)
        | Command::DeleteCredential(_) => Ok(()),
        Command::RevokeSession(c) => {
            if berth_auth::valid_session_id(&c.session) {
                Ok(())
            } else {
                Err(Error::invalid(format!("'{}' is not a session id", shorten(&c.session))))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::CreateCluster;

    fn create(name: &str) -> Command {
        CreateCluster {
            name: name.into(),
            settings: Vec::new(),
            configuration: None,
            service_connect_defaults: None,
            tags: Vec::new(),
            capacity_providers: Vec::new(),
            default_strategy: Vec::new(),
        }
        .into()
    }

    #[test]
    fn names_no_request_could_make_are_refused() {
        assert!(check(&create("prod-1")).is_ok());
        assert!(check(&create("")).is_err());
        assert!(check(&create("evil/../x\"<>")).is_err());
    }
}
