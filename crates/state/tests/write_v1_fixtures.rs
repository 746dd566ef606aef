//! Writes the v1 wire fixtures: one `Stamped` of every `Command` variant, with realistic
//! values, applied in order to a fresh state, and what each application answered.
//!
//! Run once on the struct-variant `Command` (before typed commands), so that the typed
//! commands can be checked against what the previous code wrote to the Raft log:
//!
//! ```text
//! cargo test -p berth-state --test write_v1_fixtures -- --ignored
//! ```
//! Output: `crates/model/tests/fixtures/commands-v1.jsonl` (one `Stamped` per line) and
//! `outcomes-v1.jsonl` (the `CommandResult` of applying that line as log entry `line + 1`).

#[path = "common/mod.rs"]
mod common;

use std::io::Write;
use std::sync::Arc;

use berth_api::types as api;
use berth_model::command::{ClientToken, Command, ContainerChange, Stamped};
use berth_model::entity::*;
use berth_model::mesos::{Framework, Offer};
use berth_model::service::*;
use berth_model::{InstanceId, Millis, OfferId, TaskId};
use berth_state::State;
use common::*;

const I1: u128 = 0x5b1e_0c3a_9d24_4f6e_8a71_2c0d_e9b4_1a01;
const T1: u128 = 0x7c40_11aa_6e2b_4d59_9f03_b8e1_2a6c_0001;
const T2: u128 = 0x7c40_11aa_6e2b_4d59_9f03_b8e1_2a6c_0002;
const T3: u128 = 0x7c40_11aa_6e2b_4d59_9f03_b8e1_2a6c_0003;
const T4: u128 = 0x3f9e_d2c1_0b7a_4e68_a5c4_71d0_9e2f_6b04;
const O1: u128 = 0x0ffe_4a11_2233_4455_6677_8899_aabb_cc01;
const O2: u128 = 0x0ffe_4a11_2233_4455_6677_8899_aabb_cc02;
const O3: u128 = 0x0ffe_4a11_2233_4455_6677_8899_aabb_cc03;
const FW: &str = "2d5c7e1a9b3f4c6d8e0a1b2c3d4e5f60-0000";

fn at(index: u64) -> Millis {
    Millis(EPOCH.0 + index as i64 * 1000)
}

fn commands() -> Vec<Command> {
    let web: api::RegisterTaskDefinitionRequest = serde_json::from_value(serde_json::json!({
        "family": "web",
        "networkMode": "bridge",
        "cpu": "256",
        "memory": "512",
        "containerDefinitions": [
            {
                "name": "app",
                "image": "public.ecr.aws/nginx/nginx:1.27",
                "essential": true,
                "memory": 384,
                "portMappings": [
                    {"containerPort": 80, "hostPort": 8080, "protocol": "tcp"},
                    {"containerPort": 9090, "hostPort": 0, "protocol": "tcp"}
                ],
                "environment": [{"name": "MODE", "value": "production"}],
                "healthCheck": {"command": ["CMD-SHELL", "curl -f http://localhost/ || exit 1"]}
            },
            {
                "name": "log-router",
                "image": "public.ecr.aws/aws-observability/aws-for-fluent-bit:stable",
                "essential": false,
                "memoryReservation": 64
            }
        ],
        "tags": [{"key": "owner", "value": "web-team"}]
    }))
    .unwrap();
    let web = berth_model::validate::task_definition::register(&web).unwrap();

    let run = |cluster: &str, id: u128| {
        task(cluster, id, I1)
            .cpu(256)
            .memory(512)
            .started_by("nightly-batch")
            .tags(vec![tag("job", "reindex")])
    };
    let service = Service {
        cluster: "prod".into(),
        name: "api".into(),
        status: ServiceStatus::Active,
        scheduling_strategy: SchedulingStrategy::Replica,
        desired_count: 2,
        deployment_configuration: DeploymentConfig {
            minimum_healthy_percent: 50,
            maximum_percent: 150,
            circuit_breaker: CircuitBreaker {
                enable: true,
                rollback: true,
            },
        },
        placement_constraints: vec![api::PlacementConstraint {
            r#type: Some("memberOf".into()),
            expression: Some("attribute:ecs.availability-zone in [eu-west-1a, eu-west-1b]".into()),
        }],
        placement_strategy: vec![api::PlacementStrategy {
            r#type: Some("spread".into()),
            field: Some("attribute:ecs.availability-zone".into()),
        }],
        health_check_grace_period_seconds: Some(30),
        deployments: vec![Deployment {
            id: "ecs-svc/4711000000000000042".into(),
            status: DeploymentStatus::Primary,
            family: "web".into(),
            revision: 1,
            desired_count: 2,
            rollout_state: RolloutState::InProgress,
            rollout_state_reason: Some(
                "ECS deployment ecs-svc/4711000000000000042 in progress.".into(),
            ),
            failed_tasks: 0,
            rollback_of: None,
            created_at: at(10),
            updated_at: at(10),
        }],
        events: vec![ServiceEvent {
            id: "9a1b2c3d-4e5f-4a6b-8c7d-0e1f2a3b4c5d".into(),
            at: at(10),
            message: "(service api) has started 2 tasks: (task 7c4011aa).".into(),
        }],
        steady: false,
        enable_ecs_managed_tags: true,
        propagate_tags: Some("SERVICE".into()),
        enable_execute_command: false,
        tags: vec![tag("tier", "frontend")],
        created_at: at(10),
        deleted_at: None,
        request_digest: 0x1d2c_3b4a_5968_7f00,
        version: 0,
    };
    let mut scaled = service.clone();
    scaled.desired_count = 3;
    scaled.deployments[0].desired_count = 3;
    scaled.deployments[0].updated_at = at(11);
    scaled.steady = true;
    let framework = Framework {
        id: FW.into(),
        cluster: "prod".into(),
        name: "marathon".into(),
        user: "root".into(),
        roles: vec!["*".into(), "web".into()],
        hostname: Some("marathon-1.internal".into()),
        principal: Some("marathon".into()),
        webui_url: Some("http://marathon-1.internal:8080".into()),
        capabilities: vec!["MULTI_ROLE".into(), "PARTITION_AWARE".into()],
        checkpoint: true,
        failover_timeout: 604800.0,
        connected: true,
        disconnected_at: None,
        registered_at: at(12),
        version: 0,
    };
    let offer = |id: u128, instance: u128, hold: Reservation| Offer {
        id: OfferId(id),
        framework: FW.into(),
        cluster: "prod".into(),
        instance: InstanceId(instance),
        hold,
        created_at: at(13),
        version: 0,
    };
    let launched = task("prod", T4, I1)
        .family("web", 1)
        .cpu(256)
        .memory(256)
        .tcp(&[31000])
        .group("mesos:marathon")
        .started_by(FW)
        .tags(vec![tag("berth.mesos-task-id", "api.8c5e1a7f-1b2c-11ef")])
        .build();

    vec![
        Command::CreateCluster {
            name: "prod".into(),
            settings: vec![setting("containerInsights", "enabled")],
            configuration: Some(api::ClusterConfiguration {
                execute_command_configuration: Some(api::ExecuteCommandConfiguration {
                    kms_key_id: Some("alias/ecs-exec".into()),
                    logging: Some("DEFAULT".into()),
                    log_configuration: None,
                }),
                managed_storage_configuration: None,
            }),
            service_connect_defaults: Some(api::ClusterServiceConnectDefaults {
                namespace: Some("prod.local".into()),
            }),
            tags: vec![tag("team", "payments"), tag("env", "prod")],
        },
        Command::UpdateCluster {
            name: "prod".into(),
            settings: Some(vec![setting("containerInsights", "disabled")]),
            configuration: Some(api::ClusterConfiguration {
                execute_command_configuration: Some(api::ExecuteCommandConfiguration {
                    kms_key_id: None,
                    logging: Some("NONE".into()),
                    log_configuration: None,
                }),
                managed_storage_configuration: None,
            }),
            service_connect_defaults: Some(api::ClusterServiceConnectDefaults {
                namespace: Some("internal".into()),
            }),
        },
        Command::RegisterTaskDefinition {
            family: web.family.as_str().into(),
            spec: Arc::new(web.spec),
            requirements: web.requirements,
            tags: web.tags,
        },
        Command::RegisterContainerInstance {
            cluster: "prod".into(),
            id: InstanceId(I1),
            reregister: false,
            ec2_instance_id: Some("i-0a1b2c3d4e5f60718".into()),
            resources: Resources {
                cpu: 2048,
                memory: 3943,
                ports: vec![22, 2375, 2376, 51678, 51679],
                udp_ports: vec![53],
                other: vec![api::Resource {
                    name: Some("GPU".into()),
                    r#type: Some("STRINGSET".into()),
                    string_set_value: Some(vec!["GPU-0f1e2d3c".into()]),
                    ..Default::default()
                }],
            },
            attributes: [
                ("ecs.os-type", Some("linux")),
                ("ecs.availability-zone", Some("eu-west-1a")),
                ("berth.agent-endpoint", Some("http://10.0.3.17:51680")),
                ("com.amazonaws.ecs.capability.docker-remote-api.1.44", None),
                ("stack", Some("blue")),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.map(str::to_owned)))
            .collect(),
            version_info: Some(api::VersionInfo {
                agent_version: Some("0.1.0".into()),
                agent_hash: Some("94b5ba7".into()),
                docker_version: Some("27.3.1".into()),
            }),
            tags: vec![tag("rack", "r12")],
        },
        Command::PutAttributes {
            cluster: "prod".into(),
            attributes: vec![attribute(I1, "zone", Some("b")), attribute(I1, "ssd", None)],
        },
        Command::DeleteAttributes {
            cluster: "prod".into(),
            attributes: vec![attribute(I1, "stack", None)],
        },
        Command::PlaceTasks {
            cluster: "prod".into(),
            tasks: vec![
                run("prod", T1).tcp(&[8080]).dynamic_tcp(&[61000]).build(),
                run("prod", T2).group("family:web-canary").build(),
                // Same group and instance as T1: refused by distinctInstance.
                run("prod", T3).build(),
            ],
            client_token: Some(ClientToken {
                token: "0f8b4e2a-run-task-retry".into(),
                request_digest: 0x9e37_79b9_7f4a_7c15,
                continuation: false,
            }),
            distinct_instance: true,
        },
        Command::TaskStateChange {
            cluster: "prod".into(),
            id: TaskId(T1),
            status: Some(TaskStatus::Running),
            reason: None,
            containers: vec![
                ContainerChange {
                    name: "app".into(),
                    status: Some(TaskStatus::Running),
                    exit_code: None,
                    reason: None,
                    runtime_id: Some(
                        "4f1d0c9b8a7e6d5c4b3a29180f1e2d3c4b5a69788796a5b4c3d2e1f0a9b8c7d6".into(),
                    ),
                    image_digest: Some(
                        "sha256:5f1c1e4d9c1b2a3f4e5d6c7b8a9f0e1d2c3b4a5f6e7d8c9b0a1f2e3d4c5b6a79"
                            .into(),
                    ),
                    network_bindings: Some(vec![api::NetworkBinding {
                        bind_ip: Some("0.0.0.0".into()),
                        container_port: Some(80),
                        host_port: Some(8080),
                        protocol: Some("tcp".into()),
                        ..Default::default()
                    }]),
                    health_status: Some(HealthStatus::Healthy),
                },
                ContainerChange {
                    name: "sidecar".into(),
                    status: Some(TaskStatus::Stopped),
                    exit_code: Some(137),
                    reason: Some("OutOfMemoryError: Container killed due to memory usage".into()),
                    ..Default::default()
                },
            ],
            pull_started_at: Some(at(7)),
            pull_stopped_at: Some(Millis(at(7).0 + 640)),
            execution_stopped_at: None,
        },
        Command::StopTask {
            cluster: "prod".into(),
            id: TaskId(T2),
            reason: Some("Scaling activity initiated by deployment ecs-svc/1".into()),
            stop_code: Some("UserInitiated".into()),
        },
        Command::CreateService {
            service: Arc::new(service),
        },
        Command::PutService {
            service: Arc::new(scaled),
            expected_version: 10,
        },
        Command::SubscribeFramework {
            framework: Arc::new(framework),
        },
        Command::MakeOffers {
            offers: vec![
                offer(
                    O1,
                    I1,
                    Reservation {
                        cpu: 512,
                        memory: 1024,
                        tcp: vec![31000, 31001],
                        ..Default::default()
                    },
                ),
                offer(
                    O2,
                    I1,
                    Reservation {
                        cpu: 256,
                        memory: 256,
                        ..Default::default()
                    },
                ),
                // An instance that does not exist: rejected.
                offer(
                    O3,
                    0xdead,
                    Reservation {
                        cpu: 128,
                        memory: 128,
                        ..Default::default()
                    },
                ),
            ],
        },
        Command::AcceptOffers {
            framework: FW.into(),
            offers: vec![OfferId(O1)],
            tasks: vec![launched],
        },
        Command::RemoveOffers {
            ids: vec![OfferId(O2), OfferId(O3)],
        },
        Command::FrameworkDisconnected { id: FW.into() },
        Command::RemoveFramework {
            id: FW.into(),
            reason: "Framework failover timeout".into(),
        },
        Command::TagResource {
            resource: task_arn("prod", T1),
            tags: vec![tag("cost-center", "4021"), tag("job", "reindex-v2")],
        },
        Command::UntagResource {
            resource: task_arn("prod", T1),
            keys: vec!["cost-center".into()],
        },
        Command::AgentConnectivity {
            cluster: "prod".into(),
            ids: vec![InstanceId(I1), InstanceId(0xdead)],
            connected: false,
        },
        Command::AgentLost {
            cluster: "prod".into(),
            id: InstanceId(I1),
            reason: "The container instance's agent was lost".into(),
        },
        Command::UpdateContainerInstancesState {
            cluster: "prod".into(),
            ids: vec![InstanceId(I1)],
            status: InstanceStatus::Draining,
        },
        Command::DeregisterTaskDefinition {
            family: "web".into(),
            revision: 1,
        },
        Command::DeleteTaskDefinitions {
            revisions: vec![("web".into(), 1), ("web".into(), 7)],
        },
        Command::DeregisterContainerInstance {
            cluster: "prod".into(),
            id: InstanceId(I1),
            force: true,
        },
        Command::Expire {
            stopped_before: at(20),
            inactive_before: at(1),
        },
        // Refused: the service is still ACTIVE.
        Command::DeleteCluster {
            name: "prod".into(),
        },
    ]
}

#[test]
#[ignore = "writes the v1 fixtures; run once, on the code that defines v1"]
fn write_v1_fixtures() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../model/tests/fixtures");
    std::fs::create_dir_all(dir).unwrap();
    let mut commands_file = std::fs::File::create(format!("{dir}/commands-v1.jsonl")).unwrap();
    let mut outcomes_file = std::fs::File::create(format!("{dir}/outcomes-v1.jsonl")).unwrap();
    let mut state = State::default();
    let mut kinds = std::collections::BTreeSet::new();
    for (k, command) in commands().into_iter().enumerate() {
        let index = k as u64 + 1;
        let json = serde_json::to_value(&command).unwrap();
        kinds.insert(json.as_object().unwrap().keys().next().unwrap().clone());
        let stamped = Stamped {
            at: at(index),
            command,
        };
        let result = state.apply(index, &stamped);
        writeln!(
            commands_file,
            "{}",
            serde_json::to_string(&stamped).unwrap()
        )
        .unwrap();
        writeln!(outcomes_file, "{}", serde_json::to_string(&result).unwrap()).unwrap();
    }
    assert_eq!(kinds.len(), 27, "one of every command: {kinds:?}");
}
