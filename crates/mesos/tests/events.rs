//! Events have exactly the shapes frameworks read: checked as literal JSON, against pymesos's
//! dispatch rules, and through RecordIO.

use berth_mesos::recordio::{Decoder, record};
use berth_mesos::scheduler::{Event, EventError, EventType};
use berth_mesos::v1::{
    AgentId, Attribute, ContainerStatus, ExecutorId, FrameworkId, IpAddress, MasterInfo,
    NetworkInfo, Offer, OfferId, Reason, StatusSource, TaskId, TaskState, TaskStatus,
};
use berth_mesos::{Base64Bytes, RangeSet, Resources};
use serde_json::Value;

const UUID: [u8; 16] = [
    0x98, 0x5e, 0x24, 0x5e, 0xa2, 0x75, 0x42, 0x4d, 0x9b, 0xd6, 0xc2, 0x34, 0xa3, 0x41, 0x89, 0x75,
];

fn json(event: &Event) -> String {
    String::from_utf8(event.to_json()).unwrap()
}

fn offer() -> Offer {
    let resources = Resources {
        cpus: berth_mesos::resources::cpu_units_to_cpus(2048),
        mem: berth_mesos::resources::mib_to_mem(1024),
        ports: RangeSet::range(31000, 31099),
        ..Resources::default()
    };
    Offer {
        id: OfferId::new("o-1"),
        framework_id: FrameworkId::new("fw-1"),
        agent_id: AgentId::new("agent-1"),
        hostname: "host-1".into(),
        url: None,
        resources: resources.to_wire(),
        attributes: vec![Attribute::text("az", "us-east-1a")],
        executor_ids: vec![],
        unavailability: None,
        allocation_info: None,
    }
}

fn running_status() -> TaskStatus {
    TaskStatus {
        source: Some(StatusSource::Agent),
        agent_id: Some(AgentId::new("agent-1")),
        timestamp: Some(1_700_000_000.5),
        uuid: Some(Base64Bytes::from(UUID)),
        healthy: Some(true),
        ..TaskStatus::new(TaskId::new("web-1"), TaskState::Running)
    }
}

/// What pymesos's `on_event` and the `on_*` handlers read, as a check: the lowercase key
/// named by `type` exists (except HEARTBEAT), OFFERS holds `offers.offers` as a list, an
/// UPDATE with a uuid has the agent_id its auto-acknowledgement sends back, a FAILURE has an
/// agent_id and, with an executor_id, a status.
fn pymesos_can_dispatch(event: &Value) {
    let t = event["type"].as_str().expect("type").to_ascii_lowercase();
    if t == "heartbeat" {
        return;
    }
    let body = event
        .get(&t)
        .unwrap_or_else(|| panic!("missing `{t}` in {event}"));
    match t.as_str() {
        "subscribed" => assert!(body["framework_id"]["value"].is_string()),
        "offers" => assert!(body["offers"].is_array(), "OFFERS not nested: {event}"),
        "rescind" => assert!(body["offer_id"]["value"].is_string()),
        "update" => {
            let status = &body["status"];
            if status.get("uuid").is_some() {
                assert!(status["agent_id"]["value"].is_string(), "{event}");
                assert!(status["task_id"]["value"].is_string(), "{event}");
            }
        }
        "message" => {
            for k in ["agent_id", "executor_id", "data"] {
                assert!(body.get(k).is_some(), "{event}");
            }
        }
        "failure" => {
            assert!(body.get("agent_id").is_some(), "{event}");
            if body.get("executor_id").is_some() {
                assert!(body.get("status").is_some(), "{event}");
            }
        }
        "error" => assert!(body["message"].is_string()),
        other => panic!("pymesos has no handler exercised here for {other}"),
    }
}

fn all_events() -> Vec<Event> {
    vec![
        Event::subscribed(FrameworkId::new("fw-1"), 15.0, None),
        Event::offers(vec![offer()]),
        Event::rescind(OfferId::new("o-1")),
        Event::update(running_status()).unwrap(),
        Event::update(TaskStatus::new(TaskId::new("gone"), TaskState::Lost)).unwrap(),
        Event::message(
            AgentId::new("agent-1"),
            ExecutorId::new("ex-1"),
            Base64Bytes(b"pong".to_vec()),
        ),
        Event::agent_failure(AgentId::new("agent-2")),
        Event::executor_failure(AgentId::new("agent-1"), ExecutorId::new("ex-1"), 256),
        Event::error("Framework has been removed"),
        Event::heartbeat(),
    ]
}

#[test]
fn subscribed_shape() {
    assert_eq!(
        json(&Event::subscribed(FrameworkId::new("fw-1"), 15.0, None)),
        r#"{"type":"SUBSCRIBED","subscribed":{"framework_id":{"value":"fw-1"},"heartbeat_interval_seconds":15.0}}"#
    );
    let master = MasterInfo {
        id: "berth".into(),
        ip: 0x0100_007f,
        port: 5050,
        hostname: Some("localhost".into()),
        version: Some(berth_mesos::protocol::MESOS_VERSION.into()),
        ..MasterInfo::default()
    };
    assert_eq!(
        json(&Event::subscribed(
            FrameworkId::new("fw-1"),
            15.0,
            Some(master)
        )),
        r#"{"type":"SUBSCRIBED","subscribed":{"framework_id":{"value":"fw-1"},"heartbeat_interval_seconds":15.0,"master_info":{"id":"berth","ip":16777343,"port":5050,"hostname":"localhost","version":"1.11.0"}}}"#
    );
}

#[test]
fn offers_are_nested() {
    assert_eq!(
        json(&Event::offers(vec![offer()])),
        concat!(
            r#"{"type":"OFFERS","offers":{"offers":[{"id":{"value":"o-1"},"framework_id":{"value":"fw-1"},"#,
            r#""agent_id":{"value":"agent-1"},"hostname":"host-1","resources":["#,
            r#"{"name":"cpus","type":"SCALAR","scalar":{"value":2.0},"role":"*"},"#,
            r#"{"name":"mem","type":"SCALAR","scalar":{"value":1024.0},"role":"*"},"#,
            r#"{"name":"ports","type":"RANGES","ranges":{"range":[{"begin":31000,"end":31099}]},"role":"*"}],"#,
            r#""attributes":[{"name":"az","type":"TEXT","text":{"value":"us-east-1a"}}]}]}}"#
        )
    );
}

#[test]
fn rescind_error_heartbeat_failure_message_shapes() {
    assert_eq!(
        json(&Event::rescind(OfferId::new("o-1"))),
        r#"{"type":"RESCIND","rescind":{"offer_id":{"value":"o-1"}}}"#
    );
    assert_eq!(
        json(&Event::error("Framework has been removed")),
        r#"{"type":"ERROR","error":{"message":"Framework has been removed"}}"#
    );
    assert_eq!(json(&Event::heartbeat()), r#"{"type":"HEARTBEAT"}"#);
    assert_eq!(
        json(&Event::agent_failure(AgentId::new("agent-2"))),
        r#"{"type":"FAILURE","failure":{"agent_id":{"value":"agent-2"}}}"#
    );
    assert_eq!(
        json(&Event::executor_failure(
            AgentId::new("agent-1"),
            ExecutorId::new("ex-1"),
            256
        )),
        r#"{"type":"FAILURE","failure":{"agent_id":{"value":"agent-1"},"executor_id":{"value":"ex-1"},"status":256}}"#
    );
    assert_eq!(
        json(&Event::message(
            AgentId::new("agent-1"),
            ExecutorId::new("ex-1"),
            Base64Bytes(b"pong".to_vec())
        )),
        r#"{"type":"MESSAGE","message":{"agent_id":{"value":"agent-1"},"executor_id":{"value":"ex-1"},"data":"cG9uZw=="}}"#
    );
}

#[test]
fn update_with_uuid_carries_agent_id() {
    assert_eq!(
        json(&Event::update(running_status()).unwrap()),
        concat!(
            r#"{"type":"UPDATE","update":{"status":{"task_id":{"value":"web-1"},"state":"TASK_RUNNING","#,
            r#""source":"SOURCE_AGENT","agent_id":{"value":"agent-1"},"timestamp":1700000000.5,"#,
            r#""uuid":"mF4kXqJ1Qk2b1sI0o0GJdQ==","healthy":true}}}"#
        )
    );

    // A master-generated answer (reconciliation, unknown task) has no uuid and needs none.
    let lost = TaskStatus {
        source: Some(StatusSource::Master),
        reason: Some(Reason::Reconciliation),
        message: Some("Reconciliation: Task is unknown".into()),
        ..TaskStatus::new(TaskId::new("gone"), TaskState::Lost)
    };
    assert_eq!(
        json(&Event::update(lost).unwrap()),
        r#"{"type":"UPDATE","update":{"status":{"task_id":{"value":"gone"},"state":"TASK_LOST","message":"Reconciliation: Task is unknown","source":"SOURCE_MASTER","reason":"REASON_RECONCILIATION"}}}"#
    );

    let mut no_agent = running_status();
    no_agent.agent_id = None;
    assert_eq!(
        Event::update(no_agent).unwrap_err(),
        EventError::UuidWithoutAgent {
            task_id: "web-1".into()
        }
    );
    let mut short = running_status();
    short.uuid = Some(Base64Bytes(vec![1, 2, 3]));
    assert_eq!(
        Event::update(short).unwrap_err().to_string(),
        "status of task web-1 has a 3-byte uuid; a status uuid is 16 bytes"
    );
    // Parsing applies the same rule.
    let err = Event::from_json(
        br#"{"type":"UPDATE","update":{"status":{"task_id":{"value":"t"},"state":"TASK_RUNNING","uuid":"mF4kXqJ1Qk2b1sI0o0GJdQ=="}}}"#,
    )
    .unwrap_err();
    assert!(err.to_string().contains("no agent_id"), "{err}");
}

#[test]
fn every_event_has_type_first_and_its_payload_and_round_trips() {
    for event in all_events() {
        let text = json(&event);
        assert!(
            text.starts_with(&format!(r#"{{"type":"{}""#, event.event_type())),
            "{text}"
        );
        assert!(
            !text.contains(' ') || text.contains("has been"),
            "not compact: {text}"
        );
        let value: Value = serde_json::from_str(&text).unwrap();
        let expected_keys = if event.event_type() == EventType::Heartbeat {
            1
        } else {
            2
        };
        assert_eq!(value.as_object().unwrap().len(), expected_keys, "{text}");
        pymesos_can_dispatch(&value);
        assert_eq!(Event::from_json(text.as_bytes()).unwrap(), event);
    }
}

#[test]
fn events_through_recordio() {
    let events = all_events();
    let stream: Vec<u8> = events.iter().flat_map(record).collect();
    // The exact framing of one record: decimal byte length, newline, JSON, nothing else.
    let hb = record(&Event::heartbeat());
    assert_eq!(hb, b"20\n{\"type\":\"HEARTBEAT\"}");
    assert!(!stream.contains(&b'\r'));

    // Read back in awkward pieces, as a socket delivers it.
    let mut decoder = Decoder::new();
    let mut got = Vec::new();
    for chunk in stream.chunks(7) {
        for rec in decoder.feed(chunk).unwrap() {
            got.push(Event::from_json(&rec).unwrap());
        }
    }
    decoder.finish().unwrap();
    assert_eq!(got, events);
}

#[test]
fn decodes_a_real_master_update() {
    // An UPDATE as Mesos 1.11 writes it, with members berth does not model.
    let text = r#"{"type":"UPDATE","update":{"status":{"task_id":{"value":"web-1"},"state":"TASK_RUNNING","source":"SOURCE_EXECUTOR","agent_id":{"value":"a1-S0"},"executor_id":{"value":"web-1"},"timestamp":1700000000.123,"uuid":"mF4kXqJ1Qk2b1sI0o0GJdQ==","container_status":{"container_id":{"value":"c-1"},"network_infos":[{"ip_addresses":[{"protocol":"IPv4","ip_address":"10.0.0.5"}]}],"executor_pid":4242},"reason":"REASON_SOMETHING_NEW","check_status":{"type":"TCP","tcp":{"succeeded":true}}}}}"#;
    let event = Event::from_json(text.as_bytes()).unwrap();
    let Event::Update(update) = &event else {
        panic!("not an update")
    };
    let status = update.status();
    assert_eq!(status.state, TaskState::Running);
    assert_eq!(status.source, Some(StatusSource::Executor));
    // A reason this build does not know reads as no reason, not as an error.
    assert_eq!(status.reason, None);
    assert_eq!(
        status.container_status,
        Some(ContainerStatus {
            container_id: Some(berth_mesos::v1::ContainerId {
                value: "c-1".into(),
                parent: None
            }),
            network_infos: vec![NetworkInfo {
                ip_addresses: vec![IpAddress {
                    protocol: Some(berth_mesos::v1::IpProtocol::Ipv4),
                    ip_address: Some("10.0.0.5".into()),
                }],
                ..NetworkInfo::default()
            }],
            executor_pid: Some(4242),
        })
    );
}

#[test]
fn malformed_events_do_not_decode() {
    for (text, why) in [
        (
            r#"{"type":"OFFERS"}"#,
            "OFFERS event without its `offers` payload",
        ),
        (r#"{"offers":{"offers":[]}}"#, "event without `type`"),
        (r#"{"type":"SOMETHING_NEW"}"#, "event of unknown type"),
    ] {
        let err = Event::from_json(text.as_bytes()).unwrap_err();
        assert!(err.to_string().contains(why), "{text}: {err}");
    }
}
