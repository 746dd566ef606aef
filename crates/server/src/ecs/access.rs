//! What each ECS operation touches, for authorization: the resources (ARNs, as ECS's IAM
//! resource types name them) and the cluster it acts in (the `ecs:cluster` condition key).
//!
//! Every request type the edge dispatches implements [`Touches`], so an operation cannot be
//! added without saying what it touches. References that do not parse are left to the
//! handler, which answers them with the usual validation errors; what does parse is always
//! authorized first.

use berth_api::types as api;
use berth_model::arn::{
    ArnContext, parse_container_instance, parse_deployment_arn, parse_resource_arn, parse_service,
    parse_task, parse_task_definition, parse_task_set,
};

/// The resources one request acts on, and the cluster it acts in.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Access {
    /// Empty means "no particular resource" (`*`).
    pub resources: Vec<String>,
    /// The cluster's name, when the request acts inside one.
    pub cluster: Option<String>,
}

/// What a request touches.
pub(crate) trait Touches {
    fn touches(&self, arn: &ArnContext) -> Access;
}

/// The cluster a request names (short name or ARN), `default` when absent.
fn cluster_of(cluster: &Option<String>) -> String {
    match cluster.as_deref() {
        None | Some("") => super::DEFAULT_CLUSTER.to_owned(),
        Some(s) => berth_model::arn::parse_cluster(s).unwrap_or_else(|_| s.to_owned()),
    }
}

fn in_cluster(cluster: String, resources: Vec<String>) -> Access {
    Access {
        resources,
        cluster: Some(cluster),
    }
}

fn cluster_itself(arn: &ArnContext, cluster: &Option<String>) -> Access {
    let c = cluster_of(cluster);
    in_cluster(c.clone(), vec![arn.cluster(&c)])
}

fn task_definition_arn(arn: &ArnContext, reference: &str) -> Option<String> {
    let (family, revision) = parse_task_definition(reference).ok()?;
    Some(match revision {
        Some(r) => arn.task_definition(&family, r),
        None => format!(
            "{}:*",
            arn.task_definition(&family, 0).trim_end_matches(":0")
        ),
    })
}

fn task_arns(arn: &ArnContext, cluster: &str, refs: &[String]) -> Vec<String> {
    refs.iter()
        .filter_map(|r| parse_task(r).ok())
        .map(|(named, id)| arn.task(named.as_deref().unwrap_or(cluster), id))
        .collect()
}

fn instance_arns(arn: &ArnContext, cluster: &str, refs: &[String]) -> Vec<String> {
    refs.iter()
        .filter_map(|r| parse_container_instance(r).ok())
        .map(|(named, id)| arn.container_instance(named.as_deref().unwrap_or(cluster), id))
        .collect()
}

fn service_arns(arn: &ArnContext, cluster: &str, refs: &[String]) -> Vec<String> {
    refs.iter()
        .filter_map(|r| parse_service(r).ok())
        .map(|(named, name)| arn.service(named.as_deref().unwrap_or(cluster), &name))
        .collect()
}

/// Requests on no particular resource, outside any cluster.
macro_rules! anywhere {
    ($($t:ty),* $(,)?) => {$(
        impl Touches for $t {
            fn touches(&self, _: &ArnContext) -> Access {
                Access::default()
            }
        }
    )*};
}

anywhere!(
    api::ListClustersRequest,
    // Account settings: whose they are is checked by the handler (ecs/account.rs).
    api::PutAccountSettingRequest,
    api::PutAccountSettingDefaultRequest,
    api::ListAccountSettingsRequest,
    api::DeleteAccountSettingRequest,
    api::RegisterTaskDefinitionRequest,
    api::ListTaskDefinitionsRequest,
    api::ListTaskDefinitionFamiliesRequest,
);

/// Requests on their cluster itself.
macro_rules! on_cluster {
    ($($t:ty),* $(,)?) => {$(
        impl Touches for $t {
            fn touches(&self, arn: &ArnContext) -> Access {
                cluster_itself(arn, &self.cluster)
            }
        }
    )*};
}

on_cluster!(
    api::DeleteClusterRequest,
    api::UpdateClusterRequest,
    api::UpdateClusterSettingsRequest,
    api::RegisterContainerInstanceRequest,
    api::ListContainerInstancesRequest,
    api::PutAttributesRequest,
    api::ListAttributesRequest,
    api::DeleteAttributesRequest,
    api::ListTasksRequest,
    api::ListServicesRequest,
    api::DiscoverPollEndpointRequest,
    api::PutClusterCapacityProvidersRequest,
);

/// A capacity provider, named by its short name or ARN: an account-wide resource, in no
/// cluster.
fn capacity_provider(arn: &ArnContext, reference: &str) -> String {
    arn.capacity_provider(berth_model::capacity::provider_ref(reference))
}

impl Touches for api::CreateCapacityProviderRequest {
    fn touches(&self, arn: &ArnContext) -> Access {
        Access {
            resources: self
                .name
                .iter()
                .map(|n| capacity_provider(arn, n))
                .collect(),
            cluster: None,
        }
    }
}

impl Touches for api::UpdateCapacityProviderRequest {
    fn touches(&self, arn: &ArnContext) -> Access {
        Access {
            resources: self
                .name
                .iter()
                .map(|n| capacity_provider(arn, n))
                .collect(),
            cluster: None,
        }
    }
}

impl Touches for api::DeleteCapacityProviderRequest {
    fn touches(&self, arn: &ArnContext) -> Access {
        Access {
            resources: self
                .capacity_provider
                .iter()
                .map(|n| capacity_provider(arn, n))
                .collect(),
            cluster: None,
        }
    }
}

/// DescribeCapacityProviders: the providers named (none: every provider).
impl Touches for api::DescribeCapacityProvidersRequest {
    fn touches(&self, arn: &ArnContext) -> Access {
        Access {
            resources: self
                .capacity_providers
                .iter()
                .flatten()
                .map(|n| capacity_provider(arn, n))
                .collect(),
            cluster: None,
        }
    }
}

impl Touches for api::CreateClusterRequest {
    fn touches(&self, arn: &ArnContext) -> Access {
        cluster_itself(arn, &self.cluster_name)
    }
}

impl Touches for api::DescribeClustersRequest {
    fn touches(&self, arn: &ArnContext) -> Access {
        let names: Vec<String> = match &self.clusters {
            Some(list) if !list.is_empty() => {
                list.iter().map(|c| cluster_of(&Some(c.clone()))).collect()
            }
            _ => vec![super::DEFAULT_CLUSTER.to_owned()],
        };
        // One cluster: it is also the condition key, so per-cluster policies can describe it.
        let cluster = (names.len() == 1).then(|| names[0].clone());
        Access {
            resources: names.iter().map(|n| arn.cluster(n)).collect(),
            cluster,
        }
    }
}

impl Touches for api::DescribeTaskDefinitionRequest {
    fn touches(&self, arn: &ArnContext) -> Access {
        Access {
            resources: self
                .task_definition
                .as_deref()
                .and_then(|r| task_definition_arn(arn, r))
                .into_iter()
                .collect(),
            cluster: None,
        }
    }
}

impl Touches for api::DeregisterTaskDefinitionRequest {
    fn touches(&self, arn: &ArnContext) -> Access {
        Access {
            resources: self
                .task_definition
                .as_deref()
                .and_then(|r| task_definition_arn(arn, r))
                .into_iter()
                .collect(),
            cluster: None,
        }
    }
}

impl Touches for api::DeleteTaskDefinitionsRequest {
    fn touches(&self, arn: &ArnContext) -> Access {
        Access {
            resources: self
                .task_definitions
                .iter()
                .flatten()
                .filter_map(|r| task_definition_arn(arn, r))
                .collect(),
            cluster: None,
        }
    }
}

impl Touches for api::DeregisterContainerInstanceRequest {
    fn touches(&self, arn: &ArnContext) -> Access {
        let c = cluster_of(&self.cluster);
        let refs: Vec<String> = self.container_instance.iter().cloned().collect();
        in_cluster(c.clone(), instance_arns(arn, &c, &refs))
    }
}

impl Touches for api::DescribeContainerInstancesRequest {
    fn touches(&self, arn: &ArnContext) -> Access {
        let c = cluster_of(&self.cluster);
        let mut resources = instance_arns(
            arn,
            &c,
            self.container_instances.as_deref().unwrap_or_default(),
        );
        resources.push(arn.cluster(&c));
        in_cluster(c, resources)
    }
}

impl Touches for api::UpdateContainerInstancesStateRequest {
    fn touches(&self, arn: &ArnContext) -> Access {
        let c = cluster_of(&self.cluster);
        let mut resources = instance_arns(
            arn,
            &c,
            self.container_instances.as_deref().unwrap_or_default(),
        );
        resources.push(arn.cluster(&c));
        in_cluster(c, resources)
    }
}

/// RunTask: the task definition, in the cluster.
impl Touches for api::RunTaskRequest {
    fn touches(&self, arn: &ArnContext) -> Access {
        let c = cluster_of(&self.cluster);
        let resources = self
            .task_definition
            .as_deref()
            .and_then(|r| task_definition_arn(arn, r))
            .into_iter()
            .collect();
        in_cluster(c, resources)
    }
}

/// StartTask: the task definition and the instances chosen, in the cluster.
impl Touches for api::StartTaskRequest {
    fn touches(&self, arn: &ArnContext) -> Access {
        let c = cluster_of(&self.cluster);
        let mut resources: Vec<String> = self
            .task_definition
            .as_deref()
            .and_then(|r| task_definition_arn(arn, r))
            .into_iter()
            .collect();
        resources.extend(instance_arns(
            arn,
            &c,
            self.container_instances.as_deref().unwrap_or_default(),
        ));
        in_cluster(c, resources)
    }
}

impl Touches for api::StopTaskRequest {
    fn touches(&self, arn: &ArnContext) -> Access {
        let c = cluster_of(&self.cluster);
        let refs: Vec<String> = self.task.iter().cloned().collect();
        in_cluster(c.clone(), task_arns(arn, &c, &refs))
    }
}

impl Touches for api::DescribeTasksRequest {
    fn touches(&self, arn: &ArnContext) -> Access {
        let c = cluster_of(&self.cluster);
        let mut resources = task_arns(arn, &c, self.tasks.as_deref().unwrap_or_default());
        resources.push(arn.cluster(&c));
        in_cluster(c, resources)
    }
}

impl Touches for api::UpdateTaskProtectionRequest {
    fn touches(&self, arn: &ArnContext) -> Access {
        let c = cluster_of(&self.cluster);
        let resources = task_arns(arn, &c, self.tasks.as_deref().unwrap_or_default());
        in_cluster(c, resources)
    }
}

impl Touches for api::GetTaskProtectionRequest {
    fn touches(&self, arn: &ArnContext) -> Access {
        let c = cluster_of(&self.cluster);
        let mut resources = task_arns(arn, &c, self.tasks.as_deref().unwrap_or_default());
        resources.push(arn.cluster(&c));
        in_cluster(c, resources)
    }
}

impl Touches for api::SubmitTaskStateChangeRequest {
    fn touches(&self, arn: &ArnContext) -> Access {
        let c = cluster_of(&self.cluster);
        let refs: Vec<String> = self.task.iter().cloned().collect();
        in_cluster(c.clone(), task_arns(arn, &c, &refs))
    }
}

impl Touches for api::SubmitContainerStateChangeRequest {
    fn touches(&self, arn: &ArnContext) -> Access {
        let c = cluster_of(&self.cluster);
        let refs: Vec<String> = self.task.iter().cloned().collect();
        in_cluster(c.clone(), task_arns(arn, &c, &refs))
    }
}

impl Touches for api::CreateServiceRequest {
    fn touches(&self, arn: &ArnContext) -> Access {
        let c = cluster_of(&self.cluster);
        let refs: Vec<String> = self.service_name.iter().cloned().collect();
        let mut resources = service_arns(arn, &c, &refs);
        resources.extend(
            self.task_definition
                .as_deref()
                .and_then(|r| task_definition_arn(arn, r)),
        );
        in_cluster(c, resources)
    }
}

impl Touches for api::UpdateServiceRequest {
    fn touches(&self, arn: &ArnContext) -> Access {
        let c = cluster_of(&self.cluster);
        let refs: Vec<String> = self.service.iter().cloned().collect();
        let mut resources = service_arns(arn, &c, &refs);
        resources.extend(
            self.task_definition
                .as_deref()
                .and_then(|r| task_definition_arn(arn, r)),
        );
        in_cluster(c, resources)
    }
}

impl Touches for api::DeleteServiceRequest {
    fn touches(&self, arn: &ArnContext) -> Access {
        let c = cluster_of(&self.cluster);
        let refs: Vec<String> = self.service.iter().cloned().collect();
        in_cluster(c.clone(), service_arns(arn, &c, &refs))
    }
}

impl Touches for api::DescribeServicesRequest {
    fn touches(&self, arn: &ArnContext) -> Access {
        let c = cluster_of(&self.cluster);
        let mut resources = service_arns(arn, &c, self.services.as_deref().unwrap_or_default());
        resources.push(arn.cluster(&c));
        in_cluster(c, resources)
    }
}

/// Task set calls act on their service (CreateTaskSet also on the task definition it runs;
/// the calls on one task set on its ARN as well, ECS's `task-set` resource type).
fn on_service(arn: &ArnContext, cluster: &Option<String>, service: &Option<String>) -> Access {
    let c = cluster_of(cluster);
    let refs: Vec<String> = service.iter().cloned().collect();
    in_cluster(c.clone(), service_arns(arn, &c, &refs))
}

fn with_task_set(
    mut access: Access,
    arn: &ArnContext,
    service: &Option<String>,
    set: &Option<String>,
) -> Access {
    let (Some(cluster), Some(service), Some(set)) = (access.cluster.clone(), service, set) else {
        return access;
    };
    let name = parse_service(service).map(|(_, n)| n);
    if let (Ok(name), Ok((_, id))) = (name, parse_task_set(set)) {
        access.resources.push(arn.task_set(&cluster, &name, &id));
    }
    access
}

impl Touches for api::CreateTaskSetRequest {
    fn touches(&self, arn: &ArnContext) -> Access {
        let mut access = on_service(arn, &self.cluster, &self.service);
        access.resources.extend(
            self.task_definition
                .as_deref()
                .and_then(|r| task_definition_arn(arn, r)),
        );
        access
    }
}

impl Touches for api::DescribeTaskSetsRequest {
    fn touches(&self, arn: &ArnContext) -> Access {
        on_service(arn, &self.cluster, &self.service)
    }
}

impl Touches for api::UpdateServicePrimaryTaskSetRequest {
    fn touches(&self, arn: &ArnContext) -> Access {
        let access = on_service(arn, &self.cluster, &self.service);
        with_task_set(access, arn, &self.service, &self.primary_task_set)
    }
}

impl Touches for api::UpdateTaskSetRequest {
    fn touches(&self, arn: &ArnContext) -> Access {
        let access = on_service(arn, &self.cluster, &self.service);
        with_task_set(access, arn, &self.service, &self.task_set)
    }
}

impl Touches for api::DeleteTaskSetRequest {
    fn touches(&self, arn: &ArnContext) -> Access {
        let access = on_service(arn, &self.cluster, &self.service);
        with_task_set(access, arn, &self.service, &self.task_set)
    }
}

impl Touches for api::ListServiceDeploymentsRequest {
    fn touches(&self, arn: &ArnContext) -> Access {
        on_service(arn, &self.cluster, &self.service)
    }
}

/// Service deployments and revisions, by ARN: each one named, in their cluster when they all
/// share one (otherwise in none, which a cluster-scoped policy does not match).
fn deployment_arns(arn: &ArnContext, refs: &[String], kind: &str) -> Access {
    let parsed: Vec<_> = refs
        .iter()
        .filter_map(|r| parse_deployment_arn(r, kind).ok())
        .collect();
    let cluster = parsed
        .first()
        .map(|(c, _, _)| c.clone())
        .filter(|c| parsed.iter().all(|(other, _, _)| other == c));
    let resources = parsed
        .iter()
        .map(|(c, s, id)| match kind {
            "service-revision" => arn.service_revision(c, s, id),
            _ => arn.service_deployment(c, s, id),
        })
        .collect();
    Access { resources, cluster }
}

impl Touches for api::DescribeServiceDeploymentsRequest {
    fn touches(&self, arn: &ArnContext) -> Access {
        let refs = self.service_deployment_arns.as_deref().unwrap_or_default();
        deployment_arns(arn, refs, "service-deployment")
    }
}

impl Touches for api::DescribeServiceRevisionsRequest {
    fn touches(&self, arn: &ArnContext) -> Access {
        let refs = self.service_revision_arns.as_deref().unwrap_or_default();
        deployment_arns(arn, refs, "service-revision")
    }
}

impl Touches for api::StopServiceDeploymentRequest {
    fn touches(&self, arn: &ArnContext) -> Access {
        let refs: Vec<String> = self.service_deployment_arn.iter().cloned().collect();
        deployment_arns(arn, &refs, "service-deployment")
    }
}

/// Tagging: the resource named; its cluster when it lives in one.
fn tagged(arn: &ArnContext, resource_arn: &Option<String>) -> Access {
    let Some(parsed) = resource_arn
        .as_deref()
        .and_then(|r| parse_resource_arn(r).ok())
    else {
        return Access::default();
    };
    Access {
        resources: vec![parsed.render(arn)],
        cluster: parsed.cluster().map(str::to_owned),
    }
}

impl Touches for api::TagResourceRequest {
    fn touches(&self, arn: &ArnContext) -> Access {
        tagged(arn, &self.resource_arn)
    }
}

impl Touches for api::UntagResourceRequest {
    fn touches(&self, arn: &ArnContext) -> Access {
        tagged(arn, &self.resource_arn)
    }
}

impl Touches for api::ListTagsForResourceRequest {
    fn touches(&self, arn: &ArnContext) -> Access {
        tagged(arn, &self.resource_arn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0123456789abcdef0123456789abcdef";

    fn ctx() -> ArnContext {
        ArnContext::new("eu-west-1", "000000000000")
    }

    #[test]
    fn run_task_touches_its_task_definition_in_its_cluster() {
        let req = api::RunTaskRequest {
            cluster: Some("arn:aws:ecs:eu-west-1:000000000000:cluster/prod".into()),
            task_definition: Some("web:3".into()),
            ..Default::default()
        };
        assert_eq!(
            req.touches(&ctx()),
            Access {
                resources: vec!["arn:aws:ecs:eu-west-1:000000000000:task-definition/web:3".into()],
                cluster: Some("prod".into()),
            }
        );
        let latest = api::RunTaskRequest {
            task_definition: Some("web".into()),
            ..Default::default()
        };
        assert_eq!(
            latest.touches(&ctx()).resources,
            ["arn:aws:ecs:eu-west-1:000000000000:task-definition/web:*"]
        );
        assert_eq!(latest.touches(&ctx()).cluster.as_deref(), Some("default"));
    }

    #[test]
    fn a_task_arn_names_its_own_cluster() {
        let req = api::DescribeTasksRequest {
            cluster: Some("a".into()),
            tasks: Some(vec![
                ID.into(),
                format!("arn:aws:ecs:eu-west-1:000000000000:task/b/{ID}"),
                "not a task".into(),
            ]),
            ..Default::default()
        };
        let access = req.touches(&ctx());
        assert_eq!(
            access.resources,
            [
                format!("arn:aws:ecs:eu-west-1:000000000000:task/a/{ID}"),
                format!("arn:aws:ecs:eu-west-1:000000000000:task/b/{ID}"),
                "arn:aws:ecs:eu-west-1:000000000000:cluster/a".into(),
            ],
            "an ARN in another cluster is authorized as such (the handler then refuses it)"
        );
    }

    #[test]
    fn tags_follow_the_resource() {
        let req = api::TagResourceRequest {
            resource_arn: Some("arn:aws:ecs:us-east-1:000000000000:service/prod/web".into()),
            ..Default::default()
        };
        let access = req.touches(&ctx());
        assert_eq!(access.cluster.as_deref(), Some("prod"));
        assert_eq!(
            access.resources,
            ["arn:aws:ecs:eu-west-1:000000000000:service/prod/web"]
        );
    }
}
