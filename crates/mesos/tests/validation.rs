//! Validating offers, operations and launches the way a master does, with messages a person
//! can act on.

use berth_mesos::resources::{Quantity, ResourceError};
use berth_mesos::v1::*;
use berth_mesos::validate::*;
use berth_mesos::{RangeSet, Resources};

const AGENT: &str = "agent-1";

fn task(id: &str, resources: Vec<Resource>) -> TaskInfo {
    TaskInfo {
        name: id.into(),
        task_id: TaskId::new(id),
        agent_id: AgentId::new(AGENT),
        resources,
        executor: None,
        command: Some(CommandInfo::shell_command("sleep 10")),
        container: None,
        health_check: None,
        kill_policy: None,
        data: None,
        labels: None,
        max_completion_time: None,
    }
}

fn small(id: &str) -> TaskInfo {
    task(
        id,
        vec![
            Resource::scalar("cpus", 0.5),
            Resource::scalar("mem", 128.0),
        ],
    )
}

fn offer(id: &str, agent: &str, cpus: f64, mem: f64, ports: (u64, u64)) -> Offer {
    Offer {
        id: OfferId::new(id),
        framework_id: FrameworkId::new("fw-1"),
        agent_id: AgentId::new(agent),
        hostname: "host".into(),
        url: None,
        resources: vec![
            Resource::scalar("cpus", cpus),
            Resource::scalar("mem", mem),
            Resource::ranges("ports", [ports]),
        ],
        attributes: vec![],
        executor_ids: vec![],
        unavailability: None,
        allocation_info: None,
    }
}

fn offered() -> Resources {
    let o = offer("o-1", AGENT, 2.0, 1024.0, (31000, 31099));
    pool_offers(&FrameworkId::new("fw-1"), &[&o]).unwrap().1
}

fn nobody_known(_: &TaskId) -> bool {
    false
}

fn error_of(check: &LaunchCheck, i: usize) -> String {
    check.tasks[i].as_ref().unwrap_err().to_string()
}

#[test]
fn offer_ids_and_pooling() {
    assert_eq!(validate_offer_ids(&[]), Err(OfferError::NoOffers));
    let twice = [OfferId::new("o-1"), OfferId::new("o-1")];
    assert_eq!(
        validate_offer_ids(&twice).unwrap_err().to_string(),
        "offer o-1 is listed more than once"
    );
    validate_offer_ids(&[OfferId::new("o-1"), OfferId::new("o-2")]).unwrap();

    let fw = FrameworkId::new("fw-1");
    let a = offer("o-1", AGENT, 1.0, 512.0, (31000, 31009));
    let b = offer("o-2", AGENT, 0.5, 256.0, (31010, 31019));
    let (agent, total) = pool_offers(&fw, &[&a, &b]).unwrap();
    assert_eq!(agent, AgentId::new(AGENT));
    assert_eq!(total.cpus, Quantity::from_f64(1.5).unwrap());
    assert_eq!(total.mem, Quantity::from_units(768));
    assert_eq!(total.ports.ranges(), &[(31000, 31019)]);

    let c = offer("o-3", "agent-2", 1.0, 1.0, (1, 1));
    assert_eq!(
        pool_offers(&fw, &[&a, &c]).unwrap_err().to_string(),
        "offers must all be on one agent: offer o-1 is on agent agent-1, offer o-3 on agent agent-2"
    );
    assert!(matches!(
        pool_offers(&fw, &[&a, &a]),
        Err(OfferError::DuplicateOffer { .. })
    ));
    assert_eq!(
        pool_offers(&FrameworkId::new("fw-2"), &[&a])
            .unwrap_err()
            .to_string(),
        "offer o-1 was made to framework fw-1, not this one"
    );
    assert_eq!(pool_offers(&fw, &[]), Err(OfferError::NoOffers));
}

#[test]
fn operations_berth_carries_out() {
    let launch = Operation::launch(vec![small("t")]);
    assert!(matches!(
        validate_operation(&launch),
        Ok(LaunchOperation::Launch(tasks)) if tasks.len() == 1
    ));
    let mut with_id = launch.clone();
    with_id.id = Some(OperationId::new("op-1"));
    assert_eq!(
        validate_operation(&with_id).unwrap_err().to_string(),
        "operation feedback (`id`) is not supported for LAUNCH operations"
    );
    let reserve = Operation {
        r#type: Some(OperationType::Reserve),
        ..Operation::default()
    };
    assert_eq!(
        validate_operation(&reserve).unwrap_err().to_string(),
        "RESERVE operations are not supported (berth supports LAUNCH and LAUNCH_GROUP)"
    );
    let empty_launch = Operation {
        r#type: Some(OperationType::Launch),
        ..Operation::default()
    };
    assert_eq!(
        validate_operation(&empty_launch).unwrap_err().to_string(),
        "LAUNCH operation without `launch`"
    );
    assert_eq!(
        validate_operation(&Operation::default()),
        Err(OperationError::MissingType)
    );
    let unknown: Operation = serde_json::from_str(r#"{"type":"TELEPORT"}"#).unwrap();
    assert_eq!(
        validate_operation(&unknown),
        Err(OperationError::UnknownType)
    );
}

#[test]
fn launch_takes_resources_in_order_and_releases_the_rest() {
    let tasks = vec![small("a"), small("b"), small("c"), small("d"), small("e")];
    let check = check_launch(&AgentId::new(AGENT), &offered(), &tasks, nobody_known);
    // 2 cpus hold four tasks of 0.5; the fifth is refused, with the numbers.
    for i in 0..4 {
        assert!(check.tasks[i].is_ok(), "{:?}", check.tasks[i]);
    }
    assert_eq!(
        error_of(&check, 4),
        "task needs more than the offers have left: cpus: needs 0.5, 0 available"
    );
    assert_eq!(check.unused.cpus, Quantity::ZERO);
    assert_eq!(check.unused.mem, Quantity::from_units(512));
    assert_eq!(check.unused.ports, RangeSet::range(31000, 31099));
}

#[test]
fn tenths_of_a_cpu_add_up_exactly() {
    let tasks: Vec<_> = (0..10)
        .map(|i| task(&format!("t{i}"), vec![Resource::scalar("cpus", 0.1)]))
        .collect();
    let one = Resources::parse(&[Resource::scalar("cpus", 1.0)]).unwrap();
    let check = check_launch(&AgentId::new(AGENT), &one, &tasks, nobody_known);
    assert!(check.tasks.iter().all(Result::is_ok), "{:?}", check.tasks);
    assert!(check.unused.is_empty());
}

#[test]
fn ports_must_be_offered_and_not_taken_twice() {
    let with_ports = |id: &str, ranges: &[(u64, u64)]| {
        task(
            id,
            vec![
                Resource::scalar("cpus", 0.1),
                Resource::ranges("ports", ranges.iter().copied()),
            ],
        )
    };
    let tasks = vec![
        with_ports("a", &[(31000, 31001)]),
        with_ports("b", &[(31001, 31002)]), // 31001 taken by a
        with_ports("c", &[(8080, 8080), (31050, 31050)]), // 8080 never offered
        with_ports("d", &[(31002, 31002), (31099, 31099)]),
    ];
    let check = check_launch(&AgentId::new(AGENT), &offered(), &tasks, nobody_known);
    assert_eq!(
        check.tasks[0].as_ref().unwrap().ports.ranges(),
        &[(31000, 31001)]
    );
    assert_eq!(
        error_of(&check, 1),
        "task needs more than the offers have left: ports [31001] not available"
    );
    assert_eq!(
        error_of(&check, 2),
        "task needs more than the offers have left: ports [8080] not available"
    );
    assert!(check.tasks[3].is_ok());
    assert_eq!(
        check.unused.ports.ranges(),
        &[(31003, 31098)],
        "what a and d took is gone; what b and c asked for is not"
    );
}

#[test]
fn task_ids_must_be_valid_and_fresh() {
    let known = |id: &TaskId| id.value == "old";
    let tasks = vec![
        small("x"),
        small("x"),
        small("old"),
        small(""),
        small("a/b"),
        small("tab\there"),
    ];
    let check = check_launch(&AgentId::new(AGENT), &offered(), &tasks, known);
    assert!(check.tasks[0].is_ok());
    assert_eq!(
        error_of(&check, 1),
        "task_id `x` is already used by another task of this framework"
    );
    assert!(matches!(
        check.tasks[2],
        Err(TaskError::DuplicateTaskId { .. })
    ));
    assert_eq!(error_of(&check, 3), "invalid task_id: id must not be empty");
    assert_eq!(
        error_of(&check, 4),
        "invalid task_id: id \"a/b\" contains a control character, `/` or `\\`"
    );
    assert!(matches!(check.tasks[5], Err(TaskError::InvalidTaskId(_))));
    validate_id("web-1.2_3:abc").unwrap();
}

#[test]
fn task_shape_errors() {
    let agent = AgentId::new(AGENT);
    let run = |t: TaskInfo| {
        check_launch(&agent, &offered(), &[t], nobody_known).tasks[0]
            .as_ref()
            .map(|_| ())
            .map_err(ToString::to_string)
    };

    let mut t = small("t");
    t.agent_id = AgentId::new("agent-9");
    assert_eq!(
        run(t).unwrap_err(),
        "task is for agent agent-9 but the offers are on agent agent-1"
    );

    let mut t = small("t");
    t.command = None;
    assert_eq!(
        run(t).unwrap_err(),
        "task has neither `command` nor `executor`; set exactly one"
    );

    let mut t = small("t");
    t.executor = Some(custom_executor());
    assert_eq!(
        run(t).unwrap_err(),
        "task has both `command` and `executor`; set exactly one"
    );

    assert_eq!(
        run(task("t", vec![])).unwrap_err(),
        "task uses no resources"
    );
    assert_eq!(
        run(task("t", vec![Resource::scalar("fpgas", 1.0)])).unwrap_err(),
        "invalid resources: resource `fpgas` is not one berth offers (cpus, mem, disk, ports, gpus)"
    );
    let mut t = small("t");
    t.kill_policy = Some(KillPolicy {
        grace_period: Some(DurationInfo { nanoseconds: -1 }),
    });
    assert_eq!(
        run(t).unwrap_err(),
        "kill_policy.grace_period must not be negative"
    );

    let mut t = small("t");
    t.command.as_mut().unwrap().environment = Some(Environment {
        variables: vec![EnvironmentVariable {
            name: "TOKEN".into(),
            r#type: Some(VariableType::Secret),
            value: None,
        }],
    });
    assert_eq!(
        run(t).unwrap_err(),
        "environment variable `TOKEN` has no value (secrets are not supported)"
    );

    let mut t = small("t");
    t.health_check = Some(HealthCheck {
        r#type: Some(HealthCheckType::Tcp),
        ..HealthCheck::default()
    });
    assert_eq!(
        run(t).unwrap_err(),
        "invalid health_check: TCP check without `tcp`"
    );
    let mut t = small("t");
    t.health_check = Some(HealthCheck {
        r#type: Some(HealthCheckType::Command),
        command: Some(CommandInfo::shell_command("true")),
        interval_seconds: Some(-1.0),
        ..HealthCheck::default()
    });
    assert_eq!(
        run(t).unwrap_err(),
        "invalid health_check: interval_seconds must not be negative"
    );
}

fn docker_task(network: DockerNetwork, host_port: u32, ports: Option<(u64, u64)>) -> TaskInfo {
    let mut resources = vec![Resource::scalar("cpus", 0.5), Resource::scalar("mem", 64.0)];
    if let Some(p) = ports {
        resources.push(Resource::ranges("ports", [p]));
    }
    let mut t = task("web", resources);
    t.command = Some(CommandInfo {
        shell: Some(false),
        ..CommandInfo::default()
    });
    t.container = Some(ContainerInfo {
        r#type: ContainerType::Docker,
        volumes: vec![],
        hostname: None,
        docker: Some(DockerInfo {
            image: "nginx".into(),
            network: Some(network),
            port_mappings: vec![PortMapping {
                host_port,
                container_port: 80,
                protocol: Some("tcp".into()),
            }],
            ..DockerInfo::default()
        }),
        mesos: None,
        network_infos: vec![],
    });
    t
}

#[test]
fn docker_port_mappings_need_their_host_ports() {
    let agent = AgentId::new(AGENT);
    let ok = docker_task(DockerNetwork::Bridge, 31005, Some((31005, 31005)));
    let check = check_launch(&agent, &offered(), &[ok], nobody_known);
    assert_eq!(
        check.tasks[0].as_ref().unwrap().ports,
        RangeSet::range(31005, 31005)
    );

    let unreserved = docker_task(DockerNetwork::Bridge, 31006, Some((31005, 31005)));
    let check = check_launch(&agent, &offered(), &[unreserved], nobody_known);
    assert_eq!(
        error_of(&check, 0),
        "docker port mapping uses host port 31006, which is not in the task's ports resources"
    );

    // In HOST networking docker ignores port mappings, so they bind nothing.
    let host = docker_task(DockerNetwork::Host, 31006, None);
    assert!(check_launch(&agent, &offered(), &[host], nobody_known).tasks[0].is_ok());

    let mut missing = docker_task(DockerNetwork::Host, 1, None);
    missing.container.as_mut().unwrap().docker = None;
    assert_eq!(
        error_of(
            &check_launch(&agent, &offered(), &[missing], nobody_known),
            0
        ),
        "invalid container: type is DOCKER but `docker` is missing"
    );
}

fn custom_executor() -> ExecutorInfo {
    ExecutorInfo {
        r#type: None,
        executor_id: ExecutorId::new("ex-1"),
        framework_id: None,
        command: Some(CommandInfo::shell_command("./executor")),
        container: None,
        resources: vec![Resource::scalar("cpus", 0.1), Resource::scalar("mem", 32.0)],
        name: None,
        source: None,
        data: None,
        labels: None,
        shutdown_grace_period: None,
    }
}

#[test]
fn custom_executor_tasks_count_the_executor() {
    let agent = AgentId::new(AGENT);
    let mut t = small("t");
    t.command = None;
    t.executor = Some(custom_executor());
    let check = check_launch(&agent, &offered(), &[t.clone()], nobody_known);
    let took = check.tasks[0].as_ref().unwrap();
    assert_eq!(took.cpus, Quantity::from_f64(0.6).unwrap());
    assert_eq!(took.mem, Quantity::from_units(160));

    let mut default = t.clone();
    default.executor.as_mut().unwrap().r#type = Some(ExecutorType::Default);
    assert_eq!(
        error_of(
            &check_launch(&agent, &offered(), &[default], nobody_known),
            0
        ),
        "invalid executor: type must be CUSTOM for a LAUNCH, not DEFAULT"
    );
    let mut no_command = t;
    no_command.executor.as_mut().unwrap().command = None;
    assert_eq!(
        error_of(
            &check_launch(&agent, &offered(), &[no_command], nobody_known),
            0
        ),
        "invalid executor: `command` must be set for a CUSTOM executor"
    );
}

fn default_executor() -> ExecutorInfo {
    ExecutorInfo {
        r#type: Some(ExecutorType::Default),
        command: None,
        resources: vec![Resource::scalar("cpus", 0.1), Resource::scalar("mem", 32.0)],
        ..custom_executor()
    }
}

#[test]
fn task_groups_launch_whole_or_not_at_all() {
    let agent = AgentId::new(AGENT);
    let group = TaskGroupInfo {
        tasks: vec![small("g1"), small("g2")],
    };
    let check = check_launch_group(
        &agent,
        &offered(),
        &default_executor(),
        &group,
        nobody_known,
    );
    assert!(check.tasks.iter().all(Result::is_ok), "{:?}", check.tasks);
    assert_eq!(check.unused.cpus, Quantity::from_f64(0.9).unwrap());
    assert_eq!(check.unused.mem, Quantity::from_units(1024 - 32 - 256));

    let big = TaskGroupInfo {
        tasks: vec![small("g1"), small("g2"), small("g3"), small("g4")],
    };
    let check = check_launch_group(&agent, &offered(), &default_executor(), &big, nobody_known);
    assert_eq!(check.tasks.len(), 4);
    for i in 0..4 {
        assert_eq!(
            error_of(&check, i),
            "task needs more than the offers have left: cpus: needs 2.1, 2 available"
        );
    }
    assert_eq!(check.unused, offered());

    let mut untyped = default_executor();
    untyped.r#type = None;
    let check = check_launch_group(&agent, &offered(), &untyped, &group, nobody_known);
    assert_eq!(
        error_of(&check, 1),
        "task group is invalid: executor.type must be set (to DEFAULT)"
    );

    let mut docker = docker_task(DockerNetwork::Host, 1, None);
    docker.task_id = TaskId::new("g2");
    let with_docker = TaskGroupInfo {
        tasks: vec![small("g1"), docker],
    };
    let check = check_launch_group(
        &agent,
        &offered(),
        &default_executor(),
        &with_docker,
        nobody_known,
    );
    assert_eq!(
        error_of(&check, 0),
        "task group is invalid: task g2: invalid container: a DOCKER container is not supported in a task group"
    );

    let dup = TaskGroupInfo {
        tasks: vec![small("g1"), small("g1")],
    };
    let check = check_launch_group(&agent, &offered(), &default_executor(), &dup, nobody_known);
    assert!(error_of(&check, 0).contains("task_id `g1` is already used"));

    let check = check_launch_group(
        &agent,
        &offered(),
        &default_executor(),
        &TaskGroupInfo::default(),
        nobody_known,
    );
    assert!(check.tasks.is_empty());
}

#[test]
fn resource_errors_surface_through_task_errors() {
    let err = validate_task(&task("t", vec![Resource::ranges("ports", [(9, 1)])])).unwrap_err();
    assert_eq!(
        err,
        TaskError::InvalidResources(ResourceError::InvalidRange {
            name: "ports".into(),
            begin: 9,
            end: 1
        })
    );
    assert!(std::error::Error::source(&err).is_some());
}
