//! Every modelled message, fully populated, survives JSON and back unchanged; every enum
//! value round-trips by name.

use std::fmt::Debug;

use berth_mesos::scheduler::*;
use berth_mesos::v1::*;
// Explicit: `scheduler::Request` (the call payload) would shadow it otherwise.
use berth_mesos::v1::Request;
use berth_mesos::{Base64Bytes, ProtoEnum};
use serde::Serialize;
use serde::de::DeserializeOwned;

fn round_trip<T: Serialize + DeserializeOwned + PartialEq + Debug>(value: &T) {
    let text = serde_json::to_string(value).unwrap();
    let back: T = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(&back, value, "{text}");
    assert_eq!(serde_json::to_string(&back).unwrap(), text);
}

fn labels() -> Labels {
    Labels {
        labels: vec![
            Label {
                key: "k".into(),
                value: Some("v".into()),
            },
            Label {
                key: "bare".into(),
                value: None,
            },
        ],
    }
}

fn url() -> Url {
    Url {
        scheme: "http".into(),
        address: Address {
            hostname: Some("agent-1.example".into()),
            ip: Some("10.0.0.1".into()),
            port: 5051,
        },
        path: Some("/slave(1)".into()),
        query: vec![Parameter {
            key: "a".into(),
            value: "b".into(),
        }],
        fragment: Some("f".into()),
    }
}

fn command() -> CommandInfo {
    CommandInfo {
        uris: vec![CommandUri {
            value: "http://files/app.tgz".into(),
            executable: Some(false),
            extract: Some(true),
            cache: Some(true),
            output_file: Some("app.tgz".into()),
        }],
        environment: Some(Environment {
            variables: vec![
                EnvironmentVariable::new("A", "1"),
                EnvironmentVariable {
                    name: "S".into(),
                    r#type: Some(VariableType::Secret),
                    value: None,
                },
            ],
        }),
        shell: Some(false),
        value: Some("/bin/app".into()),
        arguments: vec!["app".into(), "--flag".into()],
        user: Some("nobody".into()),
    }
}

fn container() -> ContainerInfo {
    ContainerInfo {
        r#type: ContainerType::Docker,
        volumes: vec![Volume {
            mode: VolumeMode::Ro,
            container_path: "/etc/conf".into(),
            host_path: Some("/srv/conf".into()),
        }],
        hostname: Some("web".into()),
        docker: Some(DockerInfo {
            image: "nginx:1.25".into(),
            network: Some(DockerNetwork::Bridge),
            port_mappings: vec![PortMapping {
                host_port: 31000,
                container_port: 80,
                protocol: Some("tcp".into()),
            }],
            privileged: Some(false),
            parameters: vec![Parameter {
                key: "ulimit".into(),
                value: "nofile=1024".into(),
            }],
            force_pull_image: Some(true),
        }),
        mesos: Some(MesosInfo {
            image: Some(Image {
                r#type: ImageType::Docker,
                appc: Some(AppcImage {
                    name: "a".into(),
                    id: Some("sha512-00".into()),
                }),
                docker: Some(DockerImage {
                    name: "busybox".into(),
                }),
                cached: Some(false),
            }),
        }),
        network_infos: vec![network()],
    }
}

fn network() -> NetworkInfo {
    NetworkInfo {
        ip_addresses: vec![IpAddress {
            protocol: Some(IpProtocol::Ipv6),
            ip_address: Some("fd00::1".into()),
        }],
        name: Some("overlay".into()),
        groups: vec!["g".into()],
        labels: Some(labels()),
        port_mappings: vec![PortMapping {
            host_port: 31001,
            container_port: 443,
            protocol: None,
        }],
    }
}

fn resources() -> Vec<Resource> {
    let mut cpus = Resource::scalar("cpus", 0.5);
    cpus.allocation_info = Some(AllocationInfo {
        role: Some("web".into()),
    });
    vec![
        cpus,
        Resource::ranges("ports", [(31000, 31001), (u64::MAX - 1, u64::MAX)]),
        Resource::set("disks", ["ssd".to_string(), "hdd".to_string()]),
    ]
}

fn executor() -> ExecutorInfo {
    ExecutorInfo {
        r#type: Some(ExecutorType::Custom),
        executor_id: ExecutorId::new("ex-1"),
        framework_id: Some(FrameworkId::new("fw-1")),
        command: Some(command()),
        container: Some(container()),
        resources: resources(),
        name: Some("executor".into()),
        source: Some("src".into()),
        data: Some(Base64Bytes(vec![0, 1, 2, 255])),
        labels: Some(labels()),
        shutdown_grace_period: Some(DurationInfo {
            nanoseconds: 3_000_000_000,
        }),
    }
}

fn health_check() -> HealthCheck {
    HealthCheck {
        r#type: Some(HealthCheckType::Http),
        command: Some(CommandInfo::shell_command("curl -f localhost")),
        http: Some(HttpCheck {
            protocol: Some(IpProtocol::Ipv4),
            scheme: Some("http".into()),
            port: 80,
            path: Some("/health".into()),
            statuses: vec![200, 204],
        }),
        tcp: Some(TcpCheck {
            protocol: None,
            port: 80,
        }),
        delay_seconds: Some(1.0),
        interval_seconds: Some(2.5),
        timeout_seconds: Some(3.0),
        consecutive_failures: Some(4),
        grace_period_seconds: Some(5.0),
    }
}

fn task() -> TaskInfo {
    TaskInfo {
        name: "web".into(),
        task_id: TaskId::new("web-1"),
        agent_id: AgentId::new("agent-1"),
        resources: resources(),
        executor: Some(executor()),
        command: Some(command()),
        container: Some(container()),
        health_check: Some(health_check()),
        kill_policy: Some(KillPolicy {
            grace_period: Some(DurationInfo::from_secs_f64(2.5)),
        }),
        data: Some(Base64Bytes(b"payload".to_vec())),
        labels: Some(labels()),
        max_completion_time: Some(DurationInfo {
            nanoseconds: i64::MAX,
        }),
    }
}

fn framework_info() -> FrameworkInfo {
    FrameworkInfo {
        user: "alice".into(),
        name: "fw".into(),
        id: Some(FrameworkId::new("fw-1")),
        failover_timeout: Some(604_800.0),
        checkpoint: Some(true),
        role: Some("web".into()),
        roles: vec!["web".into(), "batch".into()],
        hostname: Some("laptop".into()),
        principal: Some("p".into()),
        webui_url: Some("http://fw:8080/".into()),
        capabilities: vec![
            FrameworkCapabilityType::MultiRole.into(),
            FrameworkCapability { r#type: None },
        ],
        labels: Some(labels()),
    }
}

fn offer() -> Offer {
    Offer {
        id: OfferId::new("o-1"),
        framework_id: FrameworkId::new("fw-1"),
        agent_id: AgentId::new("agent-1"),
        hostname: "host-1".into(),
        url: Some(url()),
        resources: resources(),
        attributes: vec![
            Attribute::text("az", "a"),
            Attribute::scalar("weight", 1.5),
            Attribute {
                name: "racks".into(),
                r#type: value::Type::Ranges,
                scalar: None,
                ranges: Some(value::Ranges {
                    range: vec![value::Range { begin: 1, end: 4 }],
                }),
                set: Some(value::Set {
                    item: vec!["x".into()],
                }),
                text: None,
            },
        ],
        executor_ids: vec![ExecutorId::new("ex-1")],
        unavailability: Some(Unavailability {
            start: TimeInfo {
                nanoseconds: 1_700_000_000_000_000_000,
            },
            duration: Some(DurationInfo {
                nanoseconds: 3_600_000_000_000,
            }),
        }),
        allocation_info: Some(AllocationInfo {
            role: Some("web".into()),
        }),
    }
}

fn status() -> TaskStatus {
    TaskStatus {
        task_id: TaskId::new("web-1"),
        state: TaskState::Failed,
        message: Some("Container exited with status 1".into()),
        source: Some(StatusSource::Executor),
        reason: Some(Reason::ContainerLimitationMemory),
        data: Some(Base64Bytes(b"d".to_vec())),
        agent_id: Some(AgentId::new("agent-1")),
        executor_id: Some(ExecutorId::new("ex-1")),
        timestamp: Some(1_700_000_000.25),
        uuid: Some(Base64Bytes(vec![7; 16])),
        healthy: Some(false),
        labels: Some(labels()),
        container_status: Some(ContainerStatus {
            container_id: Some(ContainerId {
                value: "child".into(),
                parent: Some(Box::new(ContainerId {
                    value: "parent".into(),
                    parent: None,
                })),
            }),
            network_infos: vec![network()],
            executor_pid: Some(99),
        }),
        unreachable_time: Some(TimeInfo { nanoseconds: -1 }),
    }
}

#[test]
fn mesos_messages_round_trip() {
    round_trip(&task());
    round_trip(&offer());
    round_trip(&status());
    round_trip(&framework_info());
    round_trip(&executor());
    round_trip(&health_check());
    round_trip(&TaskGroupInfo {
        tasks: vec![task(), task()],
    });
    round_trip(&MasterInfo {
        id: "m".into(),
        ip: u32::MAX,
        port: 5050,
        pid: Some("master@10.0.0.1:5050".into()),
        hostname: Some("master".into()),
        version: Some("1.11.0".into()),
        address: Some(Address {
            hostname: None,
            ip: Some("10.0.0.1".into()),
            port: 5050,
        }),
    });
    round_trip(&VersionInfo {
        version: "1.11.0".into(),
        build_date: Some("2026-01-01 00:00:00".into()),
        build_time: Some(1.7e9),
        build_user: Some("berth".into()),
        git_sha: Some("abc".into()),
        git_branch: Some("main".into()),
        git_tag: Some("v1".into()),
    });
    round_trip(&InverseOffer {
        id: OfferId::new("io-1"),
        url: Some(url()),
        framework_id: FrameworkId::new("fw-1"),
        agent_id: Some(AgentId::new("agent-1")),
        unavailability: Unavailability::default(),
        resources: resources(),
    });
    round_trip(&Filters {
        refuse_seconds: Some(0.5),
    });
    round_trip(&Request {
        agent_id: Some(AgentId::new("a")),
        resources: resources(),
    });
}

#[test]
fn a_call_with_every_payload_round_trips() {
    let ops = vec![
        Operation::launch(vec![task()]),
        Operation {
            r#type: Some(OperationType::LaunchGroup),
            id: Some(OperationId::new("op-1")),
            launch: None,
            launch_group: Some(LaunchGroup {
                executor: executor(),
                task_group: TaskGroupInfo {
                    tasks: vec![task()],
                },
            }),
        },
        Operation {
            r#type: Some(OperationType::Reserve),
            ..Operation::default()
        },
    ];
    let filters = Some(Filters {
        refuse_seconds: Some(10.0),
    });
    let call = Call {
        framework_id: Some(FrameworkId::new("fw-1")),
        r#type: Some(CallType::Accept),
        subscribe: Some(Subscribe {
            framework_info: framework_info(),
            suppressed_roles: vec!["batch".into()],
        }),
        accept: Some(Accept {
            offer_ids: vec![OfferId::new("o-1"), OfferId::new("o-2")],
            operations: ops,
            filters,
        }),
        decline: Some(Decline {
            offer_ids: vec![OfferId::new("o-3")],
            filters,
        }),
        accept_inverse_offers: Some(InverseOffersReply {
            inverse_offer_ids: vec![OfferId::new("io-1")],
            filters,
        }),
        decline_inverse_offers: Some(InverseOffersReply::default()),
        revive: Some(Revive {
            roles: vec!["web".into()],
        }),
        kill: Some(Kill {
            task_id: TaskId::new("web-1"),
            agent_id: Some(AgentId::new("agent-1")),
            kill_policy: Some(KillPolicy {
                grace_period: Some(DurationInfo { nanoseconds: 0 }),
            }),
        }),
        shutdown: Some(Shutdown {
            executor_id: ExecutorId::new("ex-1"),
            agent_id: AgentId::new("agent-1"),
        }),
        acknowledge: Some(Acknowledge {
            agent_id: AgentId::new("agent-1"),
            task_id: TaskId::new("web-1"),
            uuid: Base64Bytes(vec![9; 16]),
        }),
        acknowledge_operation_status: Some(AcknowledgeOperationStatus {
            agent_id: Some(AgentId::new("agent-1")),
            resource_provider_id: Some(ResourceProviderId::new("rp")),
            uuid: Some(serde_json::json!({"value": "CQkJCQkJCQkJCQkJCQkJCQ=="})),
            operation_id: Some(OperationId::new("op-1")),
        }),
        reconcile: Some(Reconcile {
            tasks: vec![ReconcileTask {
                task_id: TaskId::new("web-1"),
                agent_id: None,
            }],
        }),
        reconcile_operations: Some(ReconcileOperations {
            operations: vec![ReconcileOperation {
                operation_id: OperationId::new("op-1"),
                agent_id: Some(AgentId::new("agent-1")),
                resource_provider_id: None,
            }],
        }),
        message: Some(Message {
            agent_id: AgentId::new("agent-1"),
            executor_id: ExecutorId::new("ex-1"),
            data: Base64Bytes(b"hi".to_vec()),
        }),
        request: Some(berth_mesos::scheduler::Request {
            requests: vec![Request::default()],
        }),
        suppress: Some(Suppress {
            roles: vec!["batch".into()],
        }),
        update_framework: Some(UpdateFramework {
            framework_info: framework_info(),
            suppressed_roles: vec![],
        }),
    };
    round_trip(&call);
    assert_eq!(Call::from_json(&call.to_json()).unwrap(), call);
    // The minimal calls are minimal on the wire.
    assert_eq!(
        Call::new(CallType::Revive, Some(FrameworkId::new("fw-1"))).to_json(),
        br#"{"framework_id":{"value":"fw-1"},"type":"REVIVE"}"#
    );
}

#[test]
fn events_the_server_never_sends_still_round_trip() {
    let events = vec![
        Event::InverseOffers(InverseOffers {
            inverse_offers: vec![InverseOffer {
                id: OfferId::new("io-1"),
                url: None,
                framework_id: FrameworkId::new("fw-1"),
                agent_id: None,
                unavailability: Unavailability::default(),
                resources: vec![],
            }],
        }),
        Event::RescindInverseOffer(RescindInverseOffer {
            inverse_offer_id: OfferId::new("io-1"),
        }),
        Event::UpdateOperationStatus(UpdateOperationStatus {
            status: OperationStatus {
                operation_id: Some(OperationId::new("op-1")),
                state: OperationState::Finished,
                message: Some("ok".into()),
                converted_resources: resources(),
                uuid: Some(Uuid {
                    value: Base64Bytes(vec![1; 16]),
                }),
                agent_id: Some(AgentId::new("agent-1")),
                resource_provider_id: Some(ResourceProviderId::new("rp")),
            },
        }),
        Event::update(status()).unwrap(),
        Event::offers(vec![offer(), offer()]),
    ];
    for event in events {
        round_trip(&event);
        let value: serde_json::Value = serde_json::from_slice(&event.to_json()).unwrap();
        let key = event.event_type().as_str().to_ascii_lowercase();
        assert!(value.get(&key).is_some(), "{value}");
    }
}

fn enum_round_trip<T>(all: &[T])
where
    T: ProtoEnum + Serialize + DeserializeOwned + PartialEq + Debug + std::str::FromStr,
    <T as std::str::FromStr>::Err: Debug,
{
    assert_eq!(all.len(), T::NAMES.len());
    for (value, name) in all.iter().zip(T::NAMES) {
        assert_eq!(value.as_str(), *name);
        assert_eq!(serde_json::to_string(value).unwrap(), format!("\"{name}\""));
        round_trip(value);
        assert_eq!(&name.parse::<T>().unwrap(), value);
    }
}

#[test]
fn every_enum_value_round_trips_by_name() {
    enum_round_trip(FrameworkCapabilityType::ALL);
    enum_round_trip(value::Type::ALL);
    enum_round_trip(OperationType::ALL);
    enum_round_trip(VariableType::ALL);
    enum_round_trip(ExecutorType::ALL);
    enum_round_trip(HealthCheckType::ALL);
    enum_round_trip(ContainerType::ALL);
    enum_round_trip(DockerNetwork::ALL);
    enum_round_trip(ImageType::ALL);
    enum_round_trip(VolumeMode::ALL);
    enum_round_trip(IpProtocol::ALL);
    enum_round_trip(TaskState::ALL);
    enum_round_trip(StatusSource::ALL);
    enum_round_trip(Reason::ALL);
    enum_round_trip(OperationState::ALL);
    enum_round_trip(CallType::ALL);
    enum_round_trip(EventType::ALL);
}

#[test]
fn reasons_a_master_uses_are_all_known() {
    for name in [
        "REASON_TASK_INVALID",
        "REASON_INVALID_OFFERS",
        "REASON_RECONCILIATION",
        "REASON_COMMAND_EXECUTOR_FAILED",
        "REASON_CONTAINER_LAUNCH_FAILED",
        "REASON_AGENT_REMOVED",
        "REASON_AGENT_DISCONNECTED",
        "REASON_FRAMEWORK_REMOVED",
        "REASON_TASK_KILLED_DURING_LAUNCH",
        "REASON_TASK_UNKNOWN",
        "REASON_EXECUTOR_TERMINATED",
        "REASON_CONTAINER_LIMITATION_MEMORY",
        "REASON_TASK_GROUP_INVALID",
    ] {
        assert_eq!(name.parse::<Reason>().unwrap().as_str(), name);
    }
}

#[test]
fn task_state_helpers() {
    use TaskState::*;
    let terminal: Vec<_> = TaskState::ALL.iter().filter(|s| s.is_terminal()).collect();
    assert_eq!(
        terminal,
        vec![
            &Finished,
            &Failed,
            &Killed,
            &Error,
            &Lost,
            &Dropped,
            &Gone,
            &GoneByOperator
        ]
    );
    assert_eq!(Dropped.for_framework(false), Lost);
    assert_eq!(Unreachable.for_framework(false), Lost);
    assert_eq!(Unknown.for_framework(false), Lost);
    assert_eq!(Dropped.for_framework(true), Dropped);
    assert_eq!(Error.for_framework(false), Error);
    assert_eq!(Running.for_framework(false), Running);
}
