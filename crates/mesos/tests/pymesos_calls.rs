//! Calls exactly as pymesos sends them (`json.dumps` of the dicts its `MesosSchedulerDriver`
//! builds, so with Python's `", "` and `": "` separators), parsed and validated.

use berth_mesos::scheduler::{Call, CallType};
use berth_mesos::v1::{
    ContainerType, DockerNetwork, FrameworkCapabilityType, HealthCheckType, OperationType, TaskId,
    VolumeMode,
};
use berth_mesos::validate::{CallError, LaunchOperation, validate_call, validate_operation};
use berth_mesos::{Base64Bytes, Resources};

fn parse(body: &str) -> Call {
    let call = Call::from_json(body.as_bytes()).unwrap_or_else(|e| panic!("{e}\n{body}"));
    validate_call(&call).unwrap_or_else(|e| panic!("{e}\n{body}"));
    call
}

#[test]
fn subscribe_first_time() {
    // MesosSchedulerDriver.gen_request with the example framework: pymesos adds
    // GPU_RESOURCES for a 1.x master and failover_timeout 100 when unset.
    let call = parse(
        r#"{"type": "SUBSCRIBE", "subscribe": {"framework_info": {"user": "alice", "name": "MinimalFramework", "hostname": "laptop", "capabilities": [{"type": "GPU_RESOURCES"}], "failover_timeout": 100}}}"#,
    );
    assert_eq!(call.r#type, Some(CallType::Subscribe));
    assert_eq!(call.framework_id, None);
    let info = &call.subscribe.as_ref().unwrap().framework_info;
    assert_eq!(info.user, "alice");
    assert_eq!(info.name, "MinimalFramework");
    assert_eq!(info.hostname.as_deref(), Some("laptop"));
    assert_eq!(info.id, None);
    assert_eq!(info.failover_timeout(), 100.0);
    assert!(info.has_capability(FrameworkCapabilityType::GpuResources));
    assert!(!info.has_capability(FrameworkCapabilityType::PartitionAware));
    assert_eq!(info.effective_roles(), vec!["*"]);
}

#[test]
fn resubscribe_names_the_framework_twice() {
    let call = parse(
        r#"{"type": "SUBSCRIBE", "subscribe": {"framework_info": {"user": "", "name": "fw", "id": {"value": "0b1e-0001"}, "capabilities": [{"type": "MULTI_ROLE"}, {"type": "PARTITION_AWARE"}, {"type": "SOME_FUTURE_CAPABILITY"}], "roles": ["a", "b"], "failover_timeout": 604800.0, "checkpoint": true, "principal": "p", "webui_url": "http://fw:8080/", "labels": {"labels": [{"key": "team", "value": "infra"}]}, "offer_filters": {"a": {}}}, "suppressed_roles": ["b"]}, "framework_id": {"value": "0b1e-0001"}}"#,
    );
    let sub = call.subscribe.as_ref().unwrap();
    assert_eq!(sub.framework_info.id.as_ref().unwrap().value, "0b1e-0001");
    assert_eq!(sub.suppressed_roles, vec!["b"]);
    assert_eq!(sub.framework_info.effective_roles(), vec!["a", "b"]);
    assert_eq!(sub.framework_info.checkpoint, Some(true));
    // An unknown capability reads as UNKNOWN, as protobuf reads it.
    assert_eq!(
        sub.framework_info.capabilities[2].r#type,
        Some(FrameworkCapabilityType::Unknown)
    );

    // framework_id without framework_info.id (or different) is refused.
    let bad = Call::from_json(
        br#"{"type": "SUBSCRIBE", "subscribe": {"framework_info": {"user": "u", "name": "fw"}}, "framework_id": {"value": "x"}}"#,
    )
    .unwrap();
    let err = validate_call(&bad).unwrap_err();
    assert_eq!(
        err.to_string(),
        "`framework_id` (`x`) differs from `subscribe.framework_info.id` (unset)"
    );
    assert_eq!(err.http_status(), 400);
}

#[test]
fn subscribe_without_user_or_name_does_not_parse() {
    let err = Call::from_json(
        br#"{"type": "SUBSCRIBE", "subscribe": {"framework_info": {"name": "fw"}}}"#,
    )
    .unwrap_err();
    assert_eq!(err.path, "subscribe.framework_info");
    assert!(
        err.to_string()
            .starts_with("subscribe.framework_info: missing field `user`"),
        "{err}"
    );
    let err = Call::from_json(
        br#"{"type": "SUBSCRIBE", "subscribe": {"framework_info": {"user": "u"}}}"#,
    )
    .unwrap_err();
    assert!(err.message.contains("missing field `name`"), "{err}");
    let call = Call::from_json(br#"{"type": "SUBSCRIBE"}"#).unwrap();
    assert_eq!(
        validate_call(&call).unwrap_err(),
        CallError::MissingPayload {
            call_type: CallType::Subscribe,
            field: "subscribe"
        }
    );
}

/// A command task and a docker task in one LAUNCH, as a pymesos framework builds them from
/// an offer (resources copied with their role, ids as `{"value": ...}`).
const ACCEPT_LAUNCH: &str = r#"{"type": "ACCEPT", "framework_id": {"value": "fw-1"}, "accept": {"offer_ids": [{"value": "offer-7"}], "operations": [{"type": "LAUNCH", "launch": {"task_infos": [
  {"task_id": {"value": "cmd-1"}, "agent_id": {"value": "agent-1"}, "name": "task cmd-1",
   "command": {"value": "echo hello && sleep 10", "environment": {"variables": [{"name": "FOO", "value": "bar"}]}, "uris": [{"value": "http://files/app.tgz", "extract": true, "executable": false}], "user": "nobody"},
   "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}, "role": "*"}, {"name": "mem", "type": "SCALAR", "scalar": {"value": 32}, "role": "*"}],
   "data": "aGVsbG8=", "labels": {"labels": [{"key": "k", "value": "v"}, {"key": "flag"}]}},
  {"task_id": {"value": "web-1"}, "agent_id": {"value": "agent-1"}, "name": "web",
   "container": {"type": "DOCKER", "docker": {"image": "nginx:1.25", "network": "BRIDGE", "port_mappings": [{"host_port": 31000, "container_port": 80, "protocol": "tcp"}], "privileged": false, "parameters": [{"key": "label", "value": "a=b"}], "force_pull_image": true},
                 "volumes": [{"container_path": "/data", "host_path": "/srv/data", "mode": "RW"}, {"container_path": "/etc/conf", "host_path": "/srv/conf", "mode": "RO"}], "hostname": "web"},
   "command": {"shell": false, "arguments": ["-g", "daemon off;"]},
   "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.5}}, {"name": "mem", "type": "SCALAR", "scalar": {"value": 128.0}}, {"name": "ports", "type": "RANGES", "ranges": {"range": [{"begin": 31000, "end": 31000}]}}],
   "kill_policy": {"grace_period": {"nanoseconds": 5000000000.0}},
   "health_check": {"type": "HTTP", "http": {"port": 80, "path": "/health"}, "interval_seconds": 5, "consecutive_failures": 2},
   "discovery": {"visibility": "FRAMEWORK", "name": "web"}, "check": {"type": "TCP", "tcp": {"port": 80}}}
]}}], "filters": {"refuse_seconds": 5.0}}}"#;

#[test]
fn accept_with_launch_of_a_command_task_and_a_docker_task() {
    let call = parse(ACCEPT_LAUNCH);
    assert_eq!(call.framework_id.as_ref().unwrap().value, "fw-1");
    let accept = call.accept.as_ref().unwrap();
    assert_eq!(accept.offer_ids[0].value, "offer-7");
    assert_eq!(accept.filters.unwrap().refuse_seconds(), 5.0);
    assert_eq!(accept.operations.len(), 1);
    assert_eq!(accept.operations[0].r#type, Some(OperationType::Launch));
    let LaunchOperation::Launch(tasks) = validate_operation(&accept.operations[0]).unwrap() else {
        panic!("not a LAUNCH")
    };
    assert_eq!(tasks.len(), 2);

    let cmd = &tasks[0];
    assert_eq!(cmd.task_id, TaskId::new("cmd-1"));
    assert_eq!(cmd.agent_id.value, "agent-1");
    let command = cmd.command.as_ref().unwrap();
    assert!(command.shell(), "shell defaults to true");
    assert_eq!(command.value.as_deref(), Some("echo hello && sleep 10"));
    assert_eq!(command.user.as_deref(), Some("nobody"));
    let env: Vec<_> = command.environment.as_ref().unwrap().pairs().collect();
    assert_eq!(env, vec![("FOO", "bar")]);
    assert_eq!(command.uris[0].value, "http://files/app.tgz");
    assert_eq!(command.uris[0].extract, Some(true));
    assert_eq!(cmd.data.as_ref().unwrap().as_slice(), b"hello");
    let labels = &cmd.labels.as_ref().unwrap().labels;
    assert_eq!(labels[1].key, "flag");
    assert_eq!(labels[1].value, None);
    let sum = Resources::parse(&cmd.resources).unwrap();
    assert_eq!(sum.cpus.millis(), 100);
    assert_eq!(sum.mem.millis(), 32_000);

    let web = &tasks[1];
    let container = web.container.as_ref().unwrap();
    assert_eq!(container.r#type, ContainerType::Docker);
    assert_eq!(container.hostname.as_deref(), Some("web"));
    let docker = container.docker.as_ref().unwrap();
    assert_eq!(docker.image, "nginx:1.25");
    assert_eq!(docker.network(), DockerNetwork::Bridge);
    assert_eq!(docker.port_mappings[0].host_port, 31000);
    assert_eq!(docker.port_mappings[0].container_port, 80);
    assert_eq!(docker.port_mappings[0].protocol.as_deref(), Some("tcp"));
    assert_eq!(docker.parameters[0].key, "label");
    assert_eq!(docker.force_pull_image, Some(true));
    assert_eq!(container.volumes[1].mode, VolumeMode::Ro);
    assert_eq!(container.volumes[1].host_path.as_deref(), Some("/srv/conf"));
    let command = web.command.as_ref().unwrap();
    assert!(!command.shell());
    assert_eq!(command.value, None);
    assert_eq!(command.arguments, vec!["-g", "daemon off;"]);
    // Python wrote 5e9 as a float; it is still a duration in nanoseconds.
    let grace = web.kill_policy.unwrap().grace_period.unwrap();
    assert_eq!(grace.nanoseconds, 5_000_000_000);
    assert_eq!(grace.as_secs_f64(), 5.0);
    let check = web.health_check.as_ref().unwrap();
    assert_eq!(check.r#type, Some(HealthCheckType::Http));
    assert_eq!(check.http.as_ref().unwrap().port, 80);
    assert_eq!(check.consecutive_failures, Some(2));
    let sum = Resources::parse(&web.resources).unwrap();
    assert_eq!(sum.ports.ranges(), &[(31000, 31000)]);

    // Unknown members (discovery, check) are dropped, not refused; everything modelled
    // survives a round trip.
    let again = Call::from_json(&call.to_json()).unwrap();
    assert_eq!(again, call);
    assert!(
        !String::from_utf8(call.to_json())
            .unwrap()
            .contains("discovery")
    );
}

#[test]
fn decline_with_filters() {
    // pymesos passes offer_ids through as given: a list, or one id dict made a list.
    let call = parse(
        r#"{"type": "DECLINE", "framework_id": {"value": "fw-1"}, "decline": {"offer_ids": [{"value": "o-1"}, {"value": "o-2"}], "filters": {"refuse_seconds": 3600}}}"#,
    );
    let decline = call.decline.as_ref().unwrap();
    assert_eq!(decline.offer_ids.len(), 2);
    assert_eq!(decline.filters.unwrap().refuse_seconds(), 3600.0);

    // No filters: the proto default of 5 s. A huge refusal is capped at 365 days.
    let call = parse(
        r#"{"type": "DECLINE", "framework_id": {"value": "fw-1"}, "decline": {"offer_ids": [{"value": "o-1"}]}}"#,
    );
    let filters = call.decline.as_ref().unwrap().filters;
    assert_eq!(
        berth_mesos::v1::Filters::effective_refuse_seconds(filters.as_ref()),
        5.0
    );
    let call = parse(
        r#"{"type": "DECLINE", "framework_id": {"value": "fw-1"}, "decline": {"offer_ids": [{"value": "o-1"}], "filters": {"refuse_seconds": 1e12}}}"#,
    );
    assert_eq!(
        call.decline.unwrap().filters.unwrap().refuse_seconds(),
        31_536_000.0
    );
}

#[test]
fn kill_without_agent_id() {
    let call = parse(
        r#"{"type": "KILL", "framework_id": {"value": "fw-1"}, "kill": {"task_id": {"value": "web-1"}}}"#,
    );
    let kill = call.kill.as_ref().unwrap();
    assert_eq!(kill.task_id.value, "web-1");
    assert_eq!(kill.agent_id, None);
    assert_eq!(kill.kill_policy, None);
}

#[test]
fn acknowledge_with_base64_uuid() {
    // pymesos echoes status['uuid'] and status['agent_id'] from the UPDATE it received.
    let call = parse(
        r#"{"type": "ACKNOWLEDGE", "framework_id": {"value": "fw-1"}, "acknowledge": {"agent_id": {"value": "agent-1"}, "task_id": {"value": "web-1"}, "uuid": "mF4kXqJ1Qk2b1sI0o0GJdQ=="}}"#,
    );
    let ack = call.acknowledge.as_ref().unwrap();
    assert_eq!(ack.agent_id.value, "agent-1");
    assert_eq!(ack.task_id.value, "web-1");
    assert_eq!(ack.uuid.len(), 16);
    assert_eq!(ack.uuid.to_base64(), "mF4kXqJ1Qk2b1sI0o0GJdQ==");

    let short = Call::from_json(
        br#"{"type": "ACKNOWLEDGE", "framework_id": {"value": "fw-1"}, "acknowledge": {"agent_id": {"value": "a"}, "task_id": {"value": "t"}, "uuid": "AAEC"}}"#,
    )
    .unwrap();
    assert_eq!(
        validate_call(&short).unwrap_err().to_string(),
        "acknowledge.uuid is 3 bytes; a status uuid is 16"
    );
    let err = Call::from_json(
        br#"{"type": "ACKNOWLEDGE", "framework_id": {"value": "fw-1"}, "acknowledge": {"agent_id": {"value": "a"}, "task_id": {"value": "t"}, "uuid": "%%%"}}"#,
    )
    .unwrap_err();
    assert_eq!(err.path, "acknowledge.uuid");
}

#[test]
fn reconcile_empty_and_explicit() {
    // pymesos.reconcileTasks([]) asks for every task.
    let call = parse(
        r#"{"type": "RECONCILE", "framework_id": {"value": "fw-1"}, "reconcile": {"tasks": []}}"#,
    );
    assert!(call.reconcile.as_ref().unwrap().tasks.is_empty());
    // It sends only task_id per task, even when given agent ids.
    let call = parse(
        r#"{"type": "RECONCILE", "framework_id": {"value": "fw-1"}, "reconcile": {"tasks": [{"task_id": {"value": "a"}}, {"task_id": {"value": "b"}, "agent_id": {"value": "agent-2"}}]}}"#,
    );
    let tasks = &call.reconcile.as_ref().unwrap().tasks;
    assert_eq!(tasks[0].task_id.value, "a");
    assert_eq!(tasks[0].agent_id, None);
    assert_eq!(tasks[1].agent_id.as_ref().unwrap().value, "agent-2");
    // A master needs the `reconcile` member.
    let bare =
        Call::from_json(br#"{"type": "RECONCILE", "framework_id": {"value": "fw-1"}}"#).unwrap();
    assert!(validate_call(&bare).is_err());
}

#[test]
fn teardown_revive_suppress() {
    let call = parse(r#"{"type": "TEARDOWN", "framework_id": {"value": "fw-1"}}"#);
    assert_eq!(call.r#type, Some(CallType::Teardown));

    // reviveOffers() / suppressOffers() without roles send no payload at all.
    let call = parse(r#"{"type": "REVIVE", "framework_id": {"value": "fw-1"}}"#);
    assert_eq!(call.revive, None);
    let call = parse(
        r#"{"type": "REVIVE", "framework_id": {"value": "fw-1"}, "revive": {"roles": ["web"]}}"#,
    );
    assert_eq!(call.revive.unwrap().roles, vec!["web"]);
    let call = parse(r#"{"type": "SUPPRESS", "framework_id": {"value": "fw-1"}}"#);
    assert_eq!(call.suppress, None);
    let call = parse(
        r#"{"type": "SUPPRESS", "framework_id": {"value": "fw-1"}, "suppress": {"roles": ["web", "batch"]}}"#,
    );
    assert_eq!(call.suppress.unwrap().roles, vec!["web", "batch"]);

    let call = Call::from_json(br#"{"type": "REVIVE"}"#).unwrap();
    assert_eq!(
        validate_call(&call).unwrap_err().to_string(),
        "REVIVE call without `framework_id`"
    );
}

#[test]
fn message_request_and_inverse_offer_calls() {
    let call = parse(
        r#"{"type": "MESSAGE", "framework_id": {"value": "fw-1"}, "message": {"agent_id": {"value": "agent-1"}, "executor_id": {"value": "ex-1"}, "data": "cGluZw=="}}"#,
    );
    let message = call.message.unwrap();
    assert_eq!(message.data, Base64Bytes(b"ping".to_vec()));
    assert_eq!(message.executor_id.value, "ex-1");

    let call = parse(
        r#"{"type": "REQUEST", "framework_id": {"value": "fw-1"}, "request": {"requests": [{"agent_id": {"value": "agent-1"}, "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 4}}]}]}}"#,
    );
    assert_eq!(call.request.unwrap().requests[0].resources[0].name, "cpus");

    for t in ["ACCEPT_INVERSE_OFFERS", "DECLINE_INVERSE_OFFERS"] {
        let key = t.to_ascii_lowercase();
        let call = parse(&format!(
            r#"{{"type": "{t}", "framework_id": {{"value": "fw-1"}}, "{key}": {{"inverse_offer_ids": [{{"value": "io-1"}}], "filters": {{"refuse_seconds": 1}}}}}}"#
        ));
        let reply = call
            .accept_inverse_offers
            .or(call.decline_inverse_offers)
            .unwrap();
        assert_eq!(reply.inverse_offer_ids[0].value, "io-1");
    }

    // pymesos sends back the whole OperationStatus it got, uuid as a UUID message; a master
    // must still accept the call.
    let call = parse(
        r#"{"type": "ACKNOWLEDGE_OPERATION_STATUS", "framework_id": {"value": "fw-1"}, "acknowledge_operation_status": {"operation_id": {"value": "op-1"}, "state": "OPERATION_FINISHED", "uuid": {"value": "mF4kXqJ1Qk2b1sI0o0GJdQ=="}, "agent_id": {"value": "agent-1"}}}"#,
    );
    let ack = call.acknowledge_operation_status.unwrap();
    assert_eq!(ack.operation_id.unwrap().value, "op-1");
    assert!(ack.uuid.is_some());
}

#[test]
fn unknown_and_missing_call_types() {
    let call =
        Call::from_json(br#"{"type": "FROBNICATE", "framework_id": {"value": "fw-1"}}"#).unwrap();
    assert_eq!(call.r#type, Some(CallType::Unknown));
    let err = validate_call(&call).unwrap_err();
    assert_eq!(err, CallError::UnknownType);
    assert_eq!(err.http_status(), 501);

    let call = Call::from_json(br#"{"framework_id": {"value": "fw-1"}}"#).unwrap();
    assert_eq!(validate_call(&call).unwrap_err(), CallError::MissingType);

    let call =
        Call::from_json(br#"{"type": "ACCEPT", "framework_id": {"value": "fw-1"}}"#).unwrap();
    assert_eq!(
        validate_call(&call).unwrap_err().to_string(),
        "ACCEPT call without `accept`"
    );
}

#[test]
fn parse_errors_name_the_member() {
    let body = ACCEPT_LAUNCH.replace(r#""task_id": {"value": "web-1"}, "#, "");
    let err = Call::from_json(body.as_bytes()).unwrap_err();
    assert_eq!(err.path, "accept.operations[0].launch.task_infos[1]");
    assert!(err.message.starts_with("missing field `task_id`"), "{err}");

    let body = ACCEPT_LAUNCH.replace(r#""mode": "RO""#, r#""mode": "RX""#);
    let err = Call::from_json(body.as_bytes()).unwrap_err();
    assert_eq!(
        err.path,
        "accept.operations[0].launch.task_infos[1].container.volumes[1].mode"
    );
    assert!(err.message.contains("unknown variant `RX`"), "{err}");

    let err = Call::from_json(b"{\"type\": \"TEARDOWN\"} trailing").unwrap_err();
    assert!(err.message.contains("trailing characters"), "{err}");
    let err = Call::from_json(b"\"TEARDOWN\"").unwrap_err();
    assert!(err.message.contains("expected struct Call"), "{err}");
    // serde reads an array as a positional struct; it still has no type.
    let call = Call::from_json(b"[]").unwrap();
    assert_eq!(validate_call(&call).unwrap_err(), CallError::MissingType);
}
